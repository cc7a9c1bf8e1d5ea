//! The Azure CLI's profile: which subscription `az` uses by default.
//!
//! `az login` and `az account set` record the signed-in accounts in `azureProfile.json` in the
//! CLI's configuration folder (`AZURE_CONFIG_DIR`, default `~/.azure`), as
//! `{"subscriptions": [{"id", "name", "tenantId", "isDefault", …}], …}`; the file is written
//! with a UTF-8 byte-order mark. An import signed in through the Azure CLI uses that default
//! subscription, as `az acr import` does, when none is named.

use std::path::{Path, PathBuf};

/// The profile file in `config_dir` (`AZURE_CONFIG_DIR`), or under `home` (`~/.azure`).
pub fn profile_path(config_dir: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    match (config_dir, home) {
        (Some(dir), _) => Some(dir.join("azureProfile.json")),
        (None, Some(home)) => Some(home.join(".azure").join("azureProfile.json")),
        (None, None) => None,
    }
}

/// The default subscription's ID in the profile text, if it names one.
pub fn default_subscription(profile: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Profile {
        #[serde(default)]
        subscriptions: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        id: String,
        #[serde(default)]
        is_default: bool,
    }
    let text = profile.trim_start_matches('\u{feff}');
    let parsed: Profile = serde_json::from_str(text).ok()?;
    parsed
        .subscriptions
        .into_iter()
        .find(|s| s.is_default && !s.id.is_empty())
        .map(|s| s.id)
}

/// The Azure CLI's default subscription, read from the process environment's profile
/// (`AZURE_CONFIG_DIR`, else `$HOME/.azure`); `None` when there is no readable profile.
pub fn azure_cli_default_subscription() -> Option<String> {
    let config_dir = std::env::var_os("AZURE_CONFIG_DIR").map(PathBuf::from);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let path = profile_path(config_dir.as_deref(), home.as_deref())?;
    let text = std::fs::read_to_string(path).ok()?;
    default_subscription(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_default_subscription() {
        let profile = "\u{feff}{\"installationId\":\"x\",\"subscriptions\":[\
            {\"id\":\"11111111-0000-4000-8000-000000000001\",\"name\":\"a\",\"isDefault\":false,\"tenantId\":\"t\"},\
            {\"id\":\"22222222-0000-4000-8000-000000000002\",\"name\":\"b\",\"isDefault\":true,\"tenantId\":\"t\"}]}";
        assert_eq!(
            default_subscription(profile).as_deref(),
            Some("22222222-0000-4000-8000-000000000002")
        );
        assert_eq!(default_subscription("{\"subscriptions\":[]}"), None);
        assert_eq!(default_subscription("not json"), None);
        assert_eq!(
            profile_path(Some(Path::new("/cfg")), Some(Path::new("/home/u"))),
            Some(PathBuf::from("/cfg/azureProfile.json"))
        );
        assert_eq!(
            profile_path(None, Some(Path::new("/home/u"))),
            Some(PathBuf::from("/home/u/.azure/azureProfile.json"))
        );
    }
}
