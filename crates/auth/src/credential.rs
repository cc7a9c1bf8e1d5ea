//! What a registry is told about who is asking.

use std::collections::HashMap;
use std::fmt;

use acr_import_reference::docker_hub;

use crate::{AuthError, ScopeSet, Secret};

/// The username ACR and Docker use to say "the password is a refresh token".
pub const NULL_GUID_USERNAME: &str = "00000000-0000-0000-0000-000000000000";

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// No credentials: anonymous pulls.
    Anonymous,
    /// A username and password (or personal access token, service principal secret,
    /// repository-scoped token password): sent as `Basic` to the registry or its token realm.
    Basic {
        /// The username.
        username: String,
        /// The password.
        password: Secret,
    },
    /// A refresh token (Docker's `identitytoken`, ACR's exchanged refresh token): traded at the
    /// realm for access tokens with `grant_type=refresh_token`.
    RefreshToken(Secret),
    /// A ready access token sent as `Authorization: Bearer` as it is.
    BearerToken(Secret),
}

impl Credential {
    /// Username and password, with ACR's convention applied: the null-GUID username means the
    /// password is a refresh token.
    pub fn from_username_password(username: impl Into<String>, password: Secret) -> Self {
        let username = username.into();
        if username == NULL_GUID_USERNAME {
            Credential::RefreshToken(password)
        } else {
            Credential::Basic { username, password }
        }
    }

    /// Who this is, for messages: never the secret.
    pub fn identity(&self) -> String {
        match self {
            Credential::Anonymous => "anonymous".to_owned(),
            Credential::Basic { username, .. } => format!("user `{username}`"),
            Credential::RefreshToken(_) => "a refresh (identity) token".to_owned(),
            Credential::BearerToken(_) => "a bearer token".to_owned(),
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Anonymous => f.write_str("Anonymous"),
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
            Credential::RefreshToken(_) => f.write_str("RefreshToken([redacted])"),
            Credential::BearerToken(_) => f.write_str("BearerToken([redacted])"),
        }
    }
}

/// Answers "which credentials for this registry?".
///
/// `registry` is the registry's host as the transport addresses it (`host[:port]`, with Docker
/// Hub as `registry-1.docker.io`); providers do their own aliasing.
#[async_trait::async_trait]
pub trait CredentialProvider: Send + Sync {
    /// The credential to use, `Credential::Anonymous` when this provider has none.
    async fn credential(&self, registry: &str) -> Result<Credential, AuthError>;

    /// The credential for a request on `registry` that needs `scopes`. Providers that hold
    /// credentials per repository answer by [`ScopeSet::primary_repository`]; the default
    /// is [`CredentialProvider::credential`].
    async fn credential_for(
        &self,
        registry: &str,
        scopes: &ScopeSet,
    ) -> Result<Credential, AuthError> {
        let _ = scopes;
        self.credential(registry).await
    }
}

/// Fixed credentials per registry host, or per repository of a host, anonymous for the rest.
///
/// A request on a repository takes the credential given for that repository, then the one
/// given for its host, then — when every repository credential of the host is the same one —
/// that one (so one set of source credentials still serves a push to another repository of
/// the same registry, and two different ones never mix).
#[derive(Debug, Default, Clone)]
pub struct StaticCredentials {
    by_registry: HashMap<String, Credential>,
    /// (registry key, repository) → credential.
    by_repository: HashMap<(String, String), Credential>,
}

impl StaticCredentials {
    /// No credentials for anyone.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the credential for `registry` (`host[:port]`, compared case-insensitively; the
    /// Docker Hub names are aliases of one another).
    pub fn insert(&mut self, registry: &str, credential: Credential) -> &mut Self {
        self.by_registry.insert(registry_key(registry), credential);
        self
    }

    /// Builder form of [`StaticCredentials::insert`].
    pub fn with(mut self, registry: &str, credential: Credential) -> Self {
        self.insert(registry, credential);
        self
    }

    /// The credential for `registry`, if one was set for the whole host.
    pub fn get(&self, registry: &str) -> Option<&Credential> {
        self.by_registry.get(&registry_key(registry))
    }

    /// Sets the credential for one repository of `registry`. Returns the credential set
    /// before for it, if any (a caller that must not mix credentials can refuse a
    /// different one).
    pub fn insert_for_repository(
        &mut self,
        registry: &str,
        repository: &str,
        credential: Credential,
    ) -> Option<Credential> {
        self.by_repository
            .insert((registry_key(registry), repository.to_owned()), credential)
    }

    /// The credential for a request on `registry` needing `scopes`: the one set for its
    /// repository ([`ScopeSet::primary_repository`]), else the host's.
    pub fn get_for(&self, registry: &str, scopes: &ScopeSet) -> Option<&Credential> {
        let key = registry_key(registry);
        scopes
            .primary_repository()
            .and_then(|repo| self.by_repository.get(&(key.clone(), repo.to_owned())))
            .or_else(|| self.by_registry.get(&key))
    }

    /// The one credential every repository of `registry` was given, when they were all
    /// given the same.
    pub fn only_repository_credential(&self, registry: &str) -> Option<&Credential> {
        let key = registry_key(registry);
        let mut found = self
            .by_repository
            .iter()
            .filter(|((k, _), _)| *k == key)
            .map(|(_, c)| c);
        let first = found.next()?;
        found.all(|c| c == first).then_some(first)
    }
}

#[async_trait::async_trait]
impl CredentialProvider for StaticCredentials {
    async fn credential(&self, registry: &str) -> Result<Credential, AuthError> {
        Ok(self
            .get(registry)
            .or_else(|| self.only_repository_credential(registry))
            .cloned()
            .unwrap_or(Credential::Anonymous))
    }

    async fn credential_for(
        &self,
        registry: &str,
        scopes: &ScopeSet,
    ) -> Result<Credential, AuthError> {
        Ok(self
            .get_for(registry, scopes)
            .or_else(|| self.only_repository_credential(registry))
            .cloned()
            .unwrap_or(Credential::Anonymous))
    }
}

/// The key credentials are stored under: lowercase, Docker Hub's names folded into `docker.io`.
pub fn registry_key(registry: &str) -> String {
    let lower = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let host = lower.split('/').next().unwrap_or_default();
    docker_hub::canonical(host).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let c = Credential::Basic {
            username: "alice".into(),
            password: Secret::new("pa55word"),
        };
        let shown = format!("{c:?} {}", c.identity());
        assert!(!shown.contains("pa55word"), "{shown}");
        assert!(shown.contains("alice"));
        let r = Credential::RefreshToken(Secret::new("eyJrefresh"));
        assert!(!format!("{r:?}").contains("eyJ"));
    }

    #[test]
    fn null_guid_means_refresh_token() {
        let c = Credential::from_username_password(NULL_GUID_USERNAME, Secret::new("rt"));
        assert!(matches!(c, Credential::RefreshToken(_)));
    }

    #[test]
    fn repository_credentials_never_mix() {
        use crate::Scope;
        let basic = |u: &str| Credential::Basic {
            username: u.into(),
            password: Secret::new("p"),
        };
        let mut creds = StaticCredentials::new();
        creds.insert_for_repository("reg.example", "team-a", basic("ann"));
        creds.insert_for_repository("reg.example", "team-b", basic("bob"));
        let on = |repo: &str| ScopeSet::new().with(Scope::pull(repo));
        assert_eq!(
            creds.get_for("reg.example", &on("team-a")),
            Some(&basic("ann"))
        );
        assert_eq!(
            creds.get_for("REG.example", &on("team-b")),
            Some(&basic("bob"))
        );
        // Two different credentials on the host: no guess for a third repository.
        assert_eq!(creds.get_for("reg.example", &on("team-c")), None);
        assert_eq!(creds.only_repository_credential("reg.example"), None);
        // One credential on the host: it serves the host's other repositories too.
        let mut one = StaticCredentials::new();
        one.insert_for_repository("reg.example", "src", basic("ann"));
        assert_eq!(
            one.only_repository_credential("reg.example"),
            Some(&basic("ann"))
        );
        // A host-wide credential comes after the repository's own.
        one.insert("reg.example", basic("target"));
        assert_eq!(one.get_for("reg.example", &on("src")), Some(&basic("ann")));
        assert_eq!(
            one.get_for("reg.example", &on("dst")),
            Some(&basic("target"))
        );
    }

    #[test]
    fn docker_hub_aliases_share_credentials() {
        let creds = StaticCredentials::new().with(
            "index.docker.io",
            Credential::Basic {
                username: "u".into(),
                password: Secret::new("p"),
            },
        );
        assert!(creds.get("registry-1.docker.io").is_some());
        assert!(creds.get("https://index.docker.io/v1/").is_some());
        assert!(creds.get("Docker.IO").is_some());
        assert!(creds.get("ghcr.io").is_none());
    }
}
