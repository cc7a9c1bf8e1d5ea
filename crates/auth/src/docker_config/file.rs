//! The configuration files: their `auths`, `credHelpers` and `credsStore`, how an `auths`
//! entry becomes a credential, and which of a file's keys names a registry.

use std::io;
use std::path::{Path, PathBuf};

use acr_import_reference::docker_hub;
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;
use zeroize::Zeroizing;

use super::DOCKER_HUB_SERVER_URL;
use crate::{AuthError, Credential, Secret, registry_key};

/// Base64 as Docker writes it, padded or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The parts of a configuration file this module reads.
pub(super) struct ConfigFile {
    pub(super) path: PathBuf,
    /// `auths`, key as spelt and entry not yet decoded.
    pub(super) auths: Vec<(String, Value)>,
    /// `credHelpers`, key as spelt and helper name.
    pub(super) cred_helpers: Vec<(String, String)>,
    /// A non-empty `credsStore`.
    pub(super) creds_store: Option<String>,
}

impl ConfigFile {
    /// Reads `path`; `None` when it does not exist.
    pub(super) fn read(path: &Path) -> Result<Option<Self>, AuthError> {
        let text = match std::fs::read(path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(AuthError::DockerConfigUnreadable {
                    path: path.to_owned(),
                    source: e,
                });
            }
        };
        Self::parse(path, &text).map(Some)
    }

    fn parse(path: &Path, text: &[u8]) -> Result<Self, AuthError> {
        let malformed = |entry: &str, reason: String| AuthError::DockerConfigMalformed {
            path: path.to_owned(),
            entry: entry.to_owned(),
            reason,
        };
        let mut config = ConfigFile {
            path: path.to_owned(),
            auths: Vec::new(),
            cred_helpers: Vec::new(),
            creds_store: None,
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(config);
        }
        // Syntax errors name a line and column, never the text there.
        let value: Value = serde_json::from_slice(text)
            .map_err(|e| malformed("(the file)", format!("not valid JSON: {e}")))?;
        let Value::Object(mut top) = value else {
            return Err(malformed(
                "(the file)",
                "the top level is not a JSON object".to_owned(),
            ));
        };
        match top.remove("auths") {
            None | Some(Value::Null) => {}
            Some(Value::Object(auths)) => config.auths = auths.into_iter().collect(),
            Some(_) => return Err(malformed("auths", "not a JSON object".to_owned())),
        }
        match top.remove("credHelpers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(helpers)) => {
                for (key, helper) in helpers {
                    let Value::String(helper) = helper else {
                        return Err(malformed(
                            &format!("credHelpers[\"{key}\"]"),
                            "the helper name is not a string".to_owned(),
                        ));
                    };
                    config.cred_helpers.push((key, helper));
                }
            }
            Some(_) => return Err(malformed("credHelpers", "not a JSON object".to_owned())),
        }
        match top.remove("credsStore") {
            None | Some(Value::Null) => {}
            Some(Value::String(store)) => {
                config.creds_store = Some(store).filter(|s| !s.is_empty());
            }
            Some(_) => return Err(malformed("credsStore", "not a string".to_owned())),
        }
        Ok(config)
    }
}

/// The credential of one `auths` entry; `None` when it holds none.
pub(super) fn entry_credential(
    path: &Path,
    key: &str,
    entry: &Value,
) -> Result<Option<Credential>, AuthError> {
    let malformed = |reason: &str| AuthError::DockerConfigMalformed {
        path: path.to_owned(),
        entry: format!("auths[\"{key}\"]"),
        reason: reason.to_owned(),
    };
    let Value::Object(fields) = entry else {
        return Err(malformed("the entry is not a JSON object"));
    };
    let field = |name: &str| -> Result<&str, AuthError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(""),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(malformed(&format!("`{name}` is not a string"))),
        }
    };

    let identity_token = field("identitytoken")?;
    if !identity_token.is_empty() {
        return Ok(Some(Credential::RefreshToken(Secret::new(identity_token))));
    }
    let registry_token = field("registrytoken")?;
    if !registry_token.is_empty() {
        return Ok(Some(Credential::BearerToken(Secret::new(registry_token))));
    }
    let auth = field("auth")?.trim();
    let (username, password) = if auth.is_empty() {
        (
            field("username")?.to_owned(),
            Secret::new(field("password")?),
        )
    } else {
        decode_auth(auth).map_err(malformed)?
    };
    if username.is_empty() && password.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential::from_username_password(username, password)))
}

/// `base64(username:password)` → its parts. The error never carries the value.
fn decode_auth(auth: &str) -> Result<(String, Secret), &'static str> {
    let bytes = Zeroizing::new(
        BASE64
            .decode(auth)
            .map_err(|_| "`auth` is not valid base64")?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|_| "`auth` does not decode to UTF-8 text")?;
    let (username, password) = text
        .split_once(':')
        .ok_or("`auth` does not decode to `username:password`")?;
    Ok((username.to_owned(), Secret::new(password)))
}

/// A registry or configuration key, compared form.
pub(super) fn normalise(key: &str) -> String {
    registry_key(&key.trim().to_ascii_lowercase())
}

/// What helpers are asked about for a registry key.
pub(super) fn server_url(target: &str) -> String {
    if target == docker_hub::DOMAIN {
        DOCKER_HUB_SERVER_URL.to_owned()
    } else {
        target.to_owned()
    }
}

/// Sort key among the keys of one file that name `target`: the key spelt exactly as `target`
/// first, then keys without a path (a scheme, or Docker Hub's `/v1/`, is fine), then keys with a
/// path; lexical among equals.
pub(super) fn rank(key: &str, target: &str) -> (u8, String) {
    let lower = key.trim().to_ascii_lowercase();
    let bare = lower
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let class = if lower == target {
        0
    } else {
        match bare.split_once('/') {
            None | Some((_, "v1" | "v2")) => 1,
            Some(_) => 2,
        }
    };
    (class, key.to_owned())
}

/// The best-ranked entry of `entries` whose key names `target`.
pub(super) fn best_match<'a>(
    entries: &'a [(String, String)],
    target: &str,
) -> Option<&'a (String, String)> {
    entries
        .iter()
        .filter(|(key, _)| normalise(key) == target)
        .min_by_key(|(key, _)| rank(key, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> PathBuf {
        PathBuf::from("/cfg/config.json")
    }

    fn parse(text: &str) -> Result<ConfigFile, AuthError> {
        ConfigFile::parse(&path(), text.as_bytes())
    }

    #[test]
    fn auth_field_decodes_with_or_without_padding() {
        // "bob:pw" is Ym9iOnB3 (no padding needed); "al:pw" is YWw6cHc= / YWw6cHc.
        for auth in ["YWw6cHc=", "YWw6cHc"] {
            let entry = serde_json::json!({ "auth": auth });
            let c = entry_credential(&path(), "k", &entry).unwrap().unwrap();
            assert_eq!(
                c,
                Credential::Basic {
                    username: "al".into(),
                    password: Secret::new("pw")
                }
            );
        }
    }
    #[test]
    fn password_may_contain_colons() {
        let auth = BASE64.encode("user:pa:ss");
        let entry = serde_json::json!({ "auth": auth });
        let c = entry_credential(&path(), "k", &entry).unwrap().unwrap();
        let Credential::Basic { username, password } = c else {
            panic!()
        };
        assert_eq!(username, "user");
        assert_eq!(password.expose(), "pa:ss");
    }
    #[test]
    fn entry_kinds() {
        let id = serde_json::json!({ "auth": BASE64.encode("x:"), "identitytoken": "idtok" });
        assert_eq!(
            entry_credential(&path(), "k", &id).unwrap(),
            Some(Credential::RefreshToken(Secret::new("idtok")))
        );
        let reg = serde_json::json!({ "registrytoken": "bearer" });
        assert_eq!(
            entry_credential(&path(), "k", &reg).unwrap(),
            Some(Credential::BearerToken(Secret::new("bearer")))
        );
        let guid = serde_json::json!({ "username": crate::NULL_GUID_USERNAME, "password": "rt" });
        assert_eq!(
            entry_credential(&path(), "k", &guid).unwrap(),
            Some(Credential::RefreshToken(Secret::new("rt")))
        );
        for empty in [
            serde_json::json!({}),
            serde_json::json!({ "auth": "", "email": "a@b" }),
        ] {
            assert_eq!(entry_credential(&path(), "k", &empty).unwrap(), None);
        }
    }
    #[test]
    fn bad_entries_name_file_and_key_not_value() {
        let cases = [
            serde_json::json!({ "auth": "!!not-base64-SECRETVALUE!!" }),
            serde_json::json!({ "auth": BASE64.encode("no-colon-SECRETVALUE") }),
            serde_json::json!({ "password": 7 }),
            serde_json::json!("SECRETVALUE"),
        ];
        for entry in cases {
            let e = entry_credential(&path(), "quay.io", &entry).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(
                matches!(e, AuthError::DockerConfigMalformed { .. }),
                "{shown}"
            );
            assert!(shown.contains("/cfg/config.json"), "{shown}");
            assert!(shown.contains("quay.io"), "{shown}");
            assert!(!shown.contains("SECRETVALUE"), "{shown}");
            assert!(!shown.contains("no-colon"), "{shown}");
        }
    }
    #[test]
    fn file_structure_errors() {
        for (text, entry) in [
            (
                "{\"auths\": {\"a\": {\"auth\": \"SECRETVALUE\"",
                "(the file)",
            ),
            ("[1, 2]", "(the file)"),
            ("{\"auths\": \"SECRETVALUE\"}", "auths"),
            (
                "{\"credHelpers\": {\"gcr.io\": 1}}",
                "credHelpers[\"gcr.io\"]",
            ),
            ("{\"credsStore\": 5}", "credsStore"),
        ] {
            let Err(e) = parse(text) else {
                panic!("{text} parsed")
            };
            let shown = e.to_string();
            assert!(shown.contains("/cfg/config.json"), "{shown}");
            assert!(shown.contains(entry), "{shown}");
            assert!(!shown.contains("SECRETVALUE"), "{shown}");
        }
        assert!(parse("  \n").unwrap().auths.is_empty());
        assert_eq!(parse("{\"credsStore\": \"\"}").unwrap().creds_store, None);
    }
    #[test]
    fn keys_normalise_and_rank() {
        for key in [
            "https://index.docker.io/v1/",
            "docker.io",
            "registry-1.docker.io",
            "Index.Docker.IO",
            "HTTPS://registry-1.docker.io/v2/",
        ] {
            assert_eq!(normalise(key), "docker.io", "{key}");
        }
        assert_eq!(normalise("http://localhost:5000"), "localhost:5000");
        assert_eq!(normalise("quay.io/org/repo"), "quay.io");
        let helpers = vec![
            ("quay.io/org".to_owned(), "a".to_owned()),
            ("https://quay.io".to_owned(), "b".to_owned()),
            ("quay.io".to_owned(), "c".to_owned()),
        ];
        assert_eq!(best_match(&helpers, "quay.io").unwrap().1, "c");
        assert_eq!(best_match(&helpers[..2], "quay.io").unwrap().1, "b");
        assert_eq!(server_url("docker.io"), DOCKER_HUB_SERVER_URL);
        assert_eq!(server_url("myreg:5000"), "myreg:5000");
    }
}
