//! The environment variables the Azure AD chain reads, injectable for tests.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;

/// Tenant (directory) ID of the service principal or workload identity.
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
/// Client (application) ID; for managed identity, the user-assigned identity's client ID.
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// Client secret of the service principal.
pub const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
/// PEM file holding the client certificate and its unencrypted private key.
pub const AZURE_CLIENT_CERTIFICATE_PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
/// Password of the client certificate: not supported (the PEM key must be unencrypted).
pub const AZURE_CLIENT_CERTIFICATE_PASSWORD: &str = "AZURE_CLIENT_CERTIFICATE_PASSWORD";
/// File holding a federated token (workload identity, e.g. on AKS).
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
/// The Azure AD authority (default `https://login.microsoftonline.com`); must be https.
pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
/// App Service / Functions managed-identity endpoint.
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// App Service / Functions managed-identity secret header value.
pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
/// An extra ACR login-server suffix (`.azurecr.example`), for sovereign or private clouds.
pub const ACR_IMPORT_LOGIN_SERVER_SUFFIX: &str = "ACR_IMPORT_LOGIN_SERVER_SUFFIX";
/// The audience of Azure AD tokens exchanged at ACR: `auto` (default), `acr` or `arm`.
pub const ACR_IMPORT_ACR_AUDIENCE: &str = "ACR_IMPORT_ACR_AUDIENCE";
/// Where the Azure CLI (`az`) is looked for.
pub const PATH: &str = "PATH";

/// The default authority host (public cloud).
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// Every variable [`AzureEnvironment::from_env`] reads.
pub const AZURE_ENV_VARS: [&str; 12] = [
    AZURE_TENANT_ID,
    AZURE_CLIENT_ID,
    AZURE_CLIENT_SECRET,
    AZURE_CLIENT_CERTIFICATE_PATH,
    AZURE_CLIENT_CERTIFICATE_PASSWORD,
    AZURE_FEDERATED_TOKEN_FILE,
    AZURE_AUTHORITY_HOST,
    IDENTITY_ENDPOINT,
    IDENTITY_HEADER,
    ACR_IMPORT_LOGIN_SERVER_SUFFIX,
    ACR_IMPORT_ACR_AUDIENCE,
    PATH,
];

/// Variables whose values are secrets: `Debug` only says they are set.
const SECRET_VARS: [&str; 3] = [
    AZURE_CLIENT_SECRET,
    AZURE_CLIENT_CERTIFICATE_PASSWORD,
    IDENTITY_HEADER,
];

/// A snapshot of the environment variables of [`AZURE_ENV_VARS`].
///
/// The Azure AD chain reads its configuration from one of these and never from the process
/// environment directly, so tests can build one from an explicit map
/// ([`AzureEnvironment::from_vars`]) and run in parallel. Empty values count as unset.
/// `Debug` prints the names of the variables set and the values of the non-secret ones.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AzureEnvironment {
    vars: BTreeMap<String, OsString>,
}

impl AzureEnvironment {
    /// The variables of [`AZURE_ENV_VARS`] from the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(
            AZURE_ENV_VARS
                .iter()
                .filter_map(|name| std::env::var_os(name).map(|value| (*name, value))),
        )
    }

    /// Exactly these variables (names are case-sensitive, as on Unix).
    pub fn from_vars<K: Into<String>, V: Into<OsString>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        }
    }

    /// Sets (or, with an empty value, removes) one variable.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<OsString>) -> Self {
        let (name, value) = (name.into(), value.into());
        if value.is_empty() {
            self.vars.remove(&name);
        } else {
            self.vars.insert(name, value);
        }
        self
    }

    /// A variable's value, when set, non-empty and valid UTF-8 (surrounding spaces trimmed).
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .and_then(|v| v.to_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// A variable's raw value, when set and non-empty.
    pub fn var_os(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(name).map(OsString::as_os_str)
    }

    /// Whether a variable is set (non-empty).
    pub fn is_set(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }
}

impl fmt::Debug for AzureEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.vars {
            if SECRET_VARS.contains(&name.as_str()) {
                map.entry(name, &"[redacted]");
            } else if name == PATH {
                map.entry(name, &"[set]");
            } else {
                map.entry(name, value);
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_vars_and_redaction() {
        let env = AzureEnvironment::from_vars([
            (AZURE_TENANT_ID, "tenant-1"),
            (AZURE_CLIENT_SECRET, "super-secret-value"),
            (IDENTITY_HEADER, "header-secret"),
            (AZURE_CLIENT_ID, ""),
        ]);
        assert_eq!(env.var(AZURE_TENANT_ID), Some("tenant-1"));
        assert_eq!(env.var(AZURE_CLIENT_ID), None);
        assert!(!env.is_set(AZURE_CLIENT_ID));
        let shown = format!("{env:?}");
        assert!(shown.contains("tenant-1"), "{shown}");
        assert!(shown.contains("AZURE_CLIENT_SECRET"), "{shown}");
        assert!(!shown.contains("super-secret-value"), "{shown}");
        assert!(!shown.contains("header-secret"), "{shown}");
        let env = env.with(AZURE_TENANT_ID, "");
        assert!(!env.is_set(AZURE_TENANT_ID));
    }
}
