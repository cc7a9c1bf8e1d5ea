//! The registry credential chain of acr-import.
//!
//! Registries authenticate in a handful of ways, and this crate turns each into an
//! `Authorization` header without owning a connection stack:
//!
//! - [`challenge`] parses `WWW-Authenticate` challenges (`Basic`, RFC 6750 `Bearer`);
//! - [`Scope`] and [`ScopeSet`] are the distribution token scopes (`repository:app:pull,push`),
//!   merged per repository;
//! - [`Credential`] is what a registry is told about the caller (anonymous, basic, refresh
//!   token, bearer token) and [`CredentialProvider`] says which one to use for a registry;
//! - [`Authenticator`] runs the flow: remembers each registry's challenge, fetches tokens from
//!   its realm, caches them per scope set until shortly before they expire, and refuses a
//!   plain-http realm off loopback;
//! - [`HttpExchange`] is the one HTTP capability it needs: `acr-import-transfer` supplies it,
//!   so token traffic uses the same TLS, CA bundle and proxy settings as registry traffic.
//!
//! It does not speak the registry API itself (no manifests, no blobs): that is the transport's
//! job. Secrets are [`Secret`]s (a `secrecy::SecretString` inside): `Debug` redacts and there is
//! no `Display`, so formatting one into a message does not compile.
//!
//! ```
//! use acr_import_auth::{challenge, Challenge, Scope, ScopeSet};
//!
//! let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#;
//! let Challenge::Bearer(bearer) = challenge::select([header])? else { unreachable!() };
//! assert_eq!(bearer.service.as_deref(), Some("registry.docker.io"));
//!
//! let scopes = ScopeSet::new().with(Scope::pull("library/nginx")).with(Scope::push("mirror/nginx"));
//! assert_eq!(scopes.to_string(), "repository:library/nginx:pull repository:mirror/nginx:pull,push");
//! # Ok::<(), acr_import_auth::AuthError>(())
//! ```
#![deny(missing_docs)]

mod authenticator;
pub mod azure;
mod chain;
pub mod challenge;
mod credential;
mod docker_config;
mod exchange;
mod jwt;
mod scope;
mod secret;
pub mod token;

pub use authenticator::{Authenticator, Authorization};
pub use azure::{
    AadCredentialChain, AadExplanation, AadOptions, AadSource, AcrAudience, AcrLoginServers,
    AcrTokenExchange, AzureAdProvider, AzureEnvironment, AzureHttpClient,
};
pub use chain::{AzureSettings, ChainExplanation, CredentialChain, CredentialSource};
pub use challenge::{BearerChallenge, Challenge};
pub use credential::{
    Credential, CredentialProvider, NULL_GUID_USERNAME, StaticCredentials, registry_key,
};
pub use docker_config::{
    DEFAULT_HELPER_TIMEOUT, DOCKER_HUB_SERVER_URL, DockerConfigSource, Explanation, Origin,
    SkipReason, Skipped,
};
pub use exchange::{ExchangeError, HttpExchange, host_url, is_loopback_host};
pub use scope::{Action, Scope, ScopeSet};
pub use secret::Secret;

/// Everything that can go wrong while authenticating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A `WWW-Authenticate` header this crate cannot read.
    #[error("the registry sent a malformed WWW-Authenticate header ({reason}): {header}")]
    MalformedChallenge {
        /// The header, cut to 200 characters.
        header: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A challenge of a scheme other than Basic or Bearer.
    #[error("the registry asks for an authentication scheme this tool does not support: {schemes}")]
    UnsupportedChallenge {
        /// The schemes offered.
        schemes: String,
    },
    /// A token realm that is not a usable URL.
    #[error("the registry named an invalid token realm `{realm}`: {reason}")]
    InvalidRealm {
        /// The realm.
        realm: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A plain-http token realm on a host that is neither loopback nor named insecure.
    #[error(
        "refusing to send credentials to the plain-http token realm `{realm}`; \
         if this registry is really meant to be reached without TLS, name its host with --insecure-registry"
    )]
    InsecureRealm {
        /// The realm.
        realm: String,
    },
    /// The registry wants credentials and none were given.
    #[error("the registry requires credentials and {identity} cannot be used for it")]
    CredentialsRequired {
        /// Who was asking (`anonymous`, …).
        identity: String,
    },
    /// The token service refused the credentials.
    #[error(
        "the token service {realm} rejected {identity} (HTTP {status}): check the username and password or token"
    )]
    CredentialsRejected {
        /// The realm.
        realm: String,
        /// Who was asking.
        identity: String,
        /// The HTTP status.
        status: u16,
    },
    /// The token service failed in another way.
    #[error("the token request to {realm} failed with HTTP {status}: {body}")]
    TokenRequestFailed {
        /// The realm.
        realm: String,
        /// The HTTP status.
        status: u16,
        /// An excerpt of the response body.
        body: String,
    },
    /// The token service answered something that is not a token response.
    #[error("the token service {realm} sent an invalid token response: {reason}")]
    InvalidTokenResponse {
        /// The realm.
        realm: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A credential that cannot be put on the wire.
    #[error("invalid credential: {reason}")]
    InvalidCredential {
        /// What is wrong with it.
        reason: String,
    },
    /// A Docker or containers configuration file that exists but cannot be read.
    #[error("cannot read the registry credentials file {}: {source}", path.display())]
    DockerConfigUnreadable {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A Docker or containers configuration file, or one of its entries, that is not in the
    /// expected form. Never carries the value of the entry.
    #[error("the registry credentials file {} is malformed at {entry}: {reason}", path.display())]
    DockerConfigMalformed {
        /// The file.
        path: std::path::PathBuf,
        /// Which entry (`auths["quay.io"]`, `credHelpers`, `(the file)`…).
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `docker-credential-<helper>` that cannot be run or failed. Never carries its stdout.
    #[error("the credential helper docker-credential-{helper} failed: {reason}")]
    CredentialHelper {
        /// The helper name (`desktop` for `docker-credential-desktop`).
        helper: String,
        /// What went wrong: exit status and at most a short, secret-free stderr excerpt.
        reason: String,
    },
    /// The HTTP exchange with a token service failed.
    #[error("cannot reach the token service: {0}")]
    Exchange(#[from] ExchangeError),
    /// Azure AD (Entra ID) settings of the environment that cannot be used (a certificate file
    /// that cannot be read, an authority host that is not https…). Never carries a secret.
    #[error("the Azure AD configuration cannot be used: {reason}")]
    AzureConfig {
        /// What is wrong.
        reason: String,
    },
    /// Getting an Azure AD (Entra ID) access token failed.
    #[error("cannot get an Azure AD (Entra ID) token with {via}: {reason}")]
    AzureToken {
        /// The credential source (`client secret (AZURE_CLIENT_SECRET)`, `Azure CLI`…).
        via: String,
        /// Why, as Azure AD or the SDK said it (no secret).
        reason: String,
    },
    /// The ACR token service refused to exchange the Azure AD token for a refresh token.
    #[error(
        "Access to registry '{registry}' was denied (HTTP {status}): {detail}. \
         Run 'az login' again to refresh permissions, or check the identity's role assignment \
         (AcrPull/AcrPush) on the registry"
    )]
    AcrAccessDenied {
        /// The login server.
        registry: String,
        /// The HTTP status of `/oauth2/exchange`.
        status: u16,
        /// ACR's error message, cut short, tokens removed.
        detail: String,
    },
    /// The ACR token exchange answered something that is not an exchange response.
    #[error("the ACR token exchange of '{registry}' sent an invalid response: {reason}")]
    AcrInvalidExchangeResponse {
        /// The login server.
        registry: String,
        /// What is wrong with it.
        reason: String,
    },
}
