//! Azure clouds: where ARM, Azure AD and registry login servers live.

use std::fmt;
use std::str::FromStr;

use crate::AcrError;

/// A cloud profile: the ARM endpoint, the Azure AD authority and the login-server suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloud {
    name: String,
    /// ARM, e.g. `https://management.azure.com`.
    pub arm_endpoint: String,
    /// The ARM token audience, e.g. `https://management.azure.com` (unchanged when only the
    /// endpoint is overridden, as for an emulator or a private ARM front end).
    pub arm_audience: String,
    /// Azure AD, e.g. `https://login.microsoftonline.com`.
    pub authority_host: String,
    /// Registry login servers end with this, e.g. `.azurecr.io`.
    pub login_server_suffix: String,
}

impl Cloud {
    /// The public cloud.
    pub fn azure_cloud() -> Self {
        Self::known(
            "AzureCloud",
            "https://management.azure.com",
            "https://login.microsoftonline.com",
            ".azurecr.io",
        )
    }

    /// Azure operated by 21Vianet.
    pub fn azure_china_cloud() -> Self {
        Self::known(
            "AzureChinaCloud",
            "https://management.chinacloudapi.cn",
            "https://login.chinacloudapi.cn",
            ".azurecr.cn",
        )
    }

    /// Azure Government.
    pub fn azure_us_government() -> Self {
        Self::known(
            "AzureUSGovernment",
            "https://management.usgovcloudapi.net",
            "https://login.microsoftonline.us",
            ".azurecr.us",
        )
    }

    fn known(name: &str, arm: &str, aad: &str, suffix: &str) -> Self {
        Self {
            name: name.to_owned(),
            arm_endpoint: arm.to_owned(),
            arm_audience: arm.to_owned(),
            authority_host: aad.to_owned(),
            login_server_suffix: suffix.to_owned(),
        }
    }

    /// The profile's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ARM token scope (`<arm audience>/.default`, e.g.
    /// `https://management.azure.com/.default`).
    pub fn arm_scope(&self) -> String {
        format!("{}/.default", self.arm_audience.trim_end_matches('/'))
    }

    /// Applies the documented overrides: `AZURE_AUTHORITY_HOST`, `ACR_IMPORT_ARM_ENDPOINT`
    /// (the endpoint only: the token audience stays the cloud's), `ACR_IMPORT_ARM_AUDIENCE`,
    /// `ACR_IMPORT_LOGIN_SERVER_SUFFIX`, read through `var` (the process environment in
    /// production, a map in tests).
    pub fn with_overrides(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        if let Some(v) = var("AZURE_AUTHORITY_HOST").filter(|v| !v.is_empty()) {
            self.authority_host = v.trim_end_matches('/').to_owned();
        }
        if let Some(v) = var("ACR_IMPORT_ARM_ENDPOINT").filter(|v| !v.is_empty()) {
            self.arm_endpoint = v.trim_end_matches('/').to_owned();
        }
        if let Some(v) = var("ACR_IMPORT_ARM_AUDIENCE").filter(|v| !v.is_empty()) {
            self.arm_audience = v.trim_end_matches('/').to_owned();
        }
        if let Some(v) = var("ACR_IMPORT_LOGIN_SERVER_SUFFIX").filter(|v| !v.is_empty()) {
            self.login_server_suffix = if v.starts_with('.') {
                v
            } else {
                format!(".{v}")
            }
            .to_ascii_lowercase();
        }
        self
    }

    /// The login server of a registry name: lowercase name plus the suffix.
    pub fn login_server(&self, name: &RegistryName) -> String {
        format!(
            "{}{}",
            name.as_str().to_ascii_lowercase(),
            self.login_server_suffix
        )
    }
}

impl FromStr for Cloud {
    type Err = AcrError;
    fn from_str(s: &str) -> Result<Self, AcrError> {
        match s.to_ascii_lowercase().as_str() {
            "azurecloud" | "public" => Ok(Self::azure_cloud()),
            "azurechinacloud" | "china" => Ok(Self::azure_china_cloud()),
            "azureusgovernment" | "usgov" => Ok(Self::azure_us_government()),
            _ => Err(AcrError::UnknownCloud { name: s.to_owned() }),
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A registry name as ARM knows it: 5–50 ASCII letters and digits, compared
/// case-insensitively, printed as given.
#[derive(Debug, Clone, Eq)]
pub struct RegistryName(String);

impl RegistryName {
    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for RegistryName {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl FromStr for RegistryName {
    type Err = AcrError;
    fn from_str(s: &str) -> Result<Self, AcrError> {
        if (5..=50).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(AcrError::InvalidRegistryName { name: s.to_owned() })
        }
    }
}

impl fmt::Display for RegistryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a user's `--name` / `--registry` value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryTarget {
    /// An ACR by name (`myregistry`), with its login server in the chosen cloud.
    Acr {
        /// The name.
        name: RegistryName,
        /// Its login server.
        login_server: String,
    },
    /// A host (`myregistry.azurecr.io`, `ghcr.io`, `127.0.0.1:5000`); `acr` is the registry
    /// name when the host is an ACR login server of the cloud.
    Host {
        /// `host[:port]`, lowercased.
        host: String,
        /// The ACR name, when the host is `<name><suffix>` or `<name>.<region>.geo<suffix>`.
        acr: Option<RegistryName>,
    },
}

impl RegistryTarget {
    /// Reads a `--name` value: a dotted or ported value (or `localhost`) is a host, anything
    /// else an ACR name.
    pub fn parse(value: &str, cloud: &Cloud) -> Result<Self, AcrError> {
        let v = value
            .trim()
            .trim_start_matches("https://")
            .trim_end_matches('/');
        if v.starts_with("http://") {
            let host = v.trim_start_matches("http://").to_ascii_lowercase();
            return Ok(RegistryTarget::Host { host, acr: None });
        }
        if v.contains('.') || v.contains(':') || v.eq_ignore_ascii_case("localhost") {
            let host = v.to_ascii_lowercase();
            let acr = host
                .strip_suffix(&cloud.login_server_suffix)
                .map(|name| name.split('.').next().unwrap_or(name))
                .and_then(|name| name.split('-').next())
                .and_then(|name| name.parse().ok());
            return Ok(RegistryTarget::Host { host, acr });
        }
        let name: RegistryName = v.parse()?;
        let login_server = cloud.login_server(&name);
        Ok(RegistryTarget::Acr { name, login_server })
    }

    /// The host to talk to.
    pub fn host(&self) -> &str {
        match self {
            RegistryTarget::Acr { login_server, .. } => login_server,
            RegistryTarget::Host { host, .. } => host,
        }
    }

    /// The ACR name, when this is an ACR.
    pub fn acr_name(&self) -> Option<&RegistryName> {
        match self {
            RegistryTarget::Acr { name, .. } => Some(name),
            RegistryTarget::Host { acr, .. } => acr.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hosts() {
        let cloud = Cloud::azure_cloud();
        let t = RegistryTarget::parse("MyRegistry", &cloud).unwrap();
        assert_eq!(t.host(), "myregistry.azurecr.io");
        assert_eq!(t.acr_name().unwrap().as_str(), "MyRegistry");
        let t = RegistryTarget::parse("myregistry.azurecr.io", &cloud).unwrap();
        assert_eq!(t.acr_name().unwrap().as_str(), "myregistry");
        let t = RegistryTarget::parse("myregistry.eastus.geo.azurecr.io", &cloud).unwrap();
        assert_eq!(t.acr_name().unwrap().as_str(), "myregistry");
        let t = RegistryTarget::parse("myregistry-abc123.azurecr.io", &cloud).unwrap();
        assert_eq!(t.acr_name().unwrap().as_str(), "myregistry");
        let t = RegistryTarget::parse("127.0.0.1:5000", &cloud).unwrap();
        assert_eq!((t.host(), t.acr_name()), ("127.0.0.1:5000", None));
        assert!(matches!(
            RegistryTarget::parse("abc", &cloud),
            Err(AcrError::InvalidRegistryName { .. })
        ));
        assert!(RegistryTarget::parse("my_registry", &cloud).is_err());
        let china = Cloud::azure_china_cloud();
        assert_eq!(
            RegistryTarget::parse("myregistry", &china).unwrap().host(),
            "myregistry.azurecr.cn"
        );
    }

    #[test]
    fn overrides() {
        let c = Cloud::azure_cloud().with_overrides(|k| match k {
            "ACR_IMPORT_ARM_ENDPOINT" => Some("https://127.0.0.1:8443/".into()),
            "ACR_IMPORT_LOGIN_SERVER_SUFFIX" => Some("example.test".into()),
            _ => None,
        });
        assert_eq!(c.arm_endpoint, "https://127.0.0.1:8443");
        assert_eq!(c.arm_scope(), "https://management.azure.com/.default");
        assert_eq!(
            Cloud::azure_china_cloud().arm_scope(),
            "https://management.chinacloudapi.cn/.default"
        );
        assert_eq!(
            Cloud::azure_us_government().arm_scope(),
            "https://management.usgovcloudapi.net/.default"
        );
        assert_eq!(c.login_server_suffix, ".example.test");
        assert!(
            "AzureUSGovernment"
                .parse::<Cloud>()
                .unwrap()
                .login_server_suffix
                .ends_with(".us")
        );
        assert!("Mars".parse::<Cloud>().is_err());
    }
}
