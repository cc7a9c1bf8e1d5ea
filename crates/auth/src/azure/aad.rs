//! The environment-driven Azure AD (Entra ID) credential chain.
//!
//! `azure_identity` 1.x has no `DefaultAzureCredential` and no `EnvironmentCredential`; this is
//! ours. The first source whose variables are all set is chosen, in this order:
//!
//! 1. **client secret** — `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`
//!    (`ClientSecretCredential`);
//! 2. **client certificate** — `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!    `AZURE_CLIENT_CERTIFICATE_PATH` (a PEM file with the certificate and an unencrypted RSA
//!    key; an RS256 assertion signed with ring, given to `ClientAssertionCredential`);
//! 3. **workload identity** — `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!    `AZURE_FEDERATED_TOKEN_FILE` (`WorkloadIdentityCredential`);
//! 4. **App Service managed identity** — `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` (with
//!    `AZURE_CLIENT_ID` as the user-assigned identity, when set). IMDS is **never** used: a
//!    virtual machine's identity is not picked up by this chain;
//! 5. **Azure CLI** — when `az` is on `PATH` (`AzureCliCredential`, `az account
//!    get-access-token`; `AZURE_TENANT_ID` selects the tenant when set).
//!
//! The choice is made once, from the variables, when the chain is built: a chosen source that
//! later fails is reported, not silently replaced by the next one. A source whose variables are
//! set but unusable (an unreadable certificate, a token file that does not exist, a non-https
//! `AZURE_AUTHORITY_HOST`) is an error at build time. [`AadCredentialChain::explanation`] says
//! which source was chosen and why each other was skipped, without secrets.
//!
//! The authority is `AZURE_AUTHORITY_HOST` (default `https://login.microsoftonline.com`) and
//! is passed to `azure_identity` explicitly, so the process environment is never consulted.
//! Every credential sends its requests through an [`AzureHttpClient`] (our TLS, CA bundle and
//! proxy) with [`AadOptions::retries`] retries.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenRequestOptions;
use azure_core::credentials::{AccessToken, Secret as AzureSecret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    Executor, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::assertion::{CertificateAssertion, ClientCertificate};
use super::cache::CachedCredential;
use super::client::AzureHttpClient;
use super::env::{
    AZURE_AUTHORITY_HOST, AZURE_CLIENT_CERTIFICATE_PASSWORD, AZURE_CLIENT_CERTIFICATE_PATH,
    AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID,
    AzureEnvironment, DEFAULT_AUTHORITY_HOST, IDENTITY_ENDPOINT, IDENTITY_HEADER, PATH,
};
use super::managed::AppServiceManagedIdentity;
use crate::exchange::HttpExchange;
use crate::{AuthError, Secret};

/// One kind of Azure AD credential the chain knows, in chain order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AadSource {
    /// A service principal's client secret.
    ClientSecret,
    /// A service principal's client certificate.
    ClientCertificate,
    /// A federated token file (AKS workload identity and similar).
    WorkloadIdentity,
    /// The managed identity of App Service, Functions or Container Apps.
    AppServiceManagedIdentity,
    /// The Azure CLI's signed-in account.
    AzureCli,
}

impl AadSource {
    /// Every source, in the order the chain tries them.
    pub const ORDER: [AadSource; 5] = [
        AadSource::ClientSecret,
        AadSource::ClientCertificate,
        AadSource::WorkloadIdentity,
        AadSource::AppServiceManagedIdentity,
        AadSource::AzureCli,
    ];
}

impl fmt::Display for AadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AadSource::ClientSecret => "client secret (AZURE_CLIENT_SECRET)",
            AadSource::ClientCertificate => "client certificate (AZURE_CLIENT_CERTIFICATE_PATH)",
            AadSource::WorkloadIdentity => "workload identity (AZURE_FEDERATED_TOKEN_FILE)",
            AadSource::AppServiceManagedIdentity => {
                "App Service managed identity (IDENTITY_ENDPOINT)"
            }
            AadSource::AzureCli => "Azure CLI (az)",
        })
    }
}

/// Which source the chain chose and why the others were not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AadExplanation {
    /// The source chosen and who it speaks for (client ID, tenant, file…); `None` when no
    /// source is configured.
    pub chosen: Option<(AadSource, String)>,
    /// The sources not chosen, in chain order, with the reason.
    pub skipped: Vec<(AadSource, String)>,
}

impl AadExplanation {
    /// One line per source, chain order: `chosen: …` or `skipped: …`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for source in AadSource::ORDER {
            if let Some((chosen, detail)) = &self.chosen
                && *chosen == source
            {
                lines.push(format!("Azure AD: chose {source}: {detail}"));
            } else if let Some((_, why)) = self.skipped.iter().find(|(s, _)| *s == source) {
                lines.push(format!("Azure AD: skipped {source}: {why}"));
            }
        }
        if self.chosen.is_none() {
            lines.push("Azure AD: no credential is configured".to_owned());
        }
        lines
    }
}

impl fmt::Display for AadExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

/// Settings of the Azure AD chain that do not come from the environment.
#[derive(Debug, Clone)]
pub struct AadOptions {
    /// Retries of a failed token request (0: none; tests should use 0). Default: 2.
    pub retries: u32,
    /// The authority host, overriding `AZURE_AUTHORITY_HOST`. Default: none.
    pub authority_host: Option<String>,
    /// Whether the Azure CLI may be used when no other source is configured. Default: yes.
    pub allow_azure_cli: bool,
}

impl Default for AadOptions {
    fn default() -> Self {
        Self {
            retries: 2,
            authority_host: None,
            allow_azure_cli: true,
        }
    }
}

/// The Azure AD credential chosen from an [`AzureEnvironment`] (see the module docs for the
/// order). Implements [`TokenCredential`]: without a configured source, `get_token` fails
/// with the explanation.
#[derive(Clone)]
pub struct AadCredentialChain {
    credential: Option<Arc<dyn TokenCredential>>,
    tenant_id: Option<String>,
    explanation: AadExplanation,
}

impl fmt::Debug for AadCredentialChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AadCredentialChain")
            .field("source", &self.source())
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

impl AadCredentialChain {
    /// The chain of the process environment.
    pub fn from_env(http: Arc<dyn HttpExchange>, options: AadOptions) -> Result<Self, AuthError> {
        Self::new(&AzureEnvironment::from_env(), http, options)
    }

    /// The chain of `env`, sending Azure AD requests through `http`.
    pub fn new(
        env: &AzureEnvironment,
        http: Arc<dyn HttpExchange>,
        options: AadOptions,
    ) -> Result<Self, AuthError> {
        let mut builder = Builder {
            env,
            client: AzureHttpClient::new(http.clone()),
            http,
            options: &options,
            explanation: AadExplanation::default(),
        };
        let found = builder.choose()?;
        let mut explanation = builder.explanation;
        let (credential, tenant_id) = match found {
            Some((source, detail, credential, tenant)) => {
                explanation.chosen = Some((source, detail));
                (Some(cached(credential)), tenant)
            }
            None => (None, None),
        };
        Ok(Self {
            credential,
            tenant_id,
            explanation,
        })
    }

    /// A chain around one credential built elsewhere (`source` names it in explanations).
    pub fn with_credential(
        credential: Arc<dyn TokenCredential>,
        source: AadSource,
        tenant_id: Option<String>,
    ) -> Self {
        Self {
            credential: Some(cached(credential)),
            explanation: AadExplanation {
                chosen: Some((source, "given explicitly".to_owned())),
                skipped: Vec::new(),
            },
            tenant_id,
        }
    }

    /// The chosen credential, if any source is configured. Every clone of the chain, and every
    /// credential it hands out, shares one token cache: the ARM client and the ACR token
    /// exchange of a run ask Azure AD once per scope.
    pub fn credential(&self) -> Option<Arc<dyn TokenCredential>> {
        self.credential.clone()
    }

    /// The chosen source.
    pub fn source(&self) -> Option<AadSource> {
        self.explanation.chosen.as_ref().map(|(s, _)| *s)
    }

    /// The tenant the credential signs in to, when the configuration names it.
    pub fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }

    /// Which source was chosen and why the others were skipped.
    pub fn explanation(&self) -> &AadExplanation {
        &self.explanation
    }
}

#[async_trait::async_trait]
impl TokenCredential for AadCredentialChain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        match &self.credential {
            Some(c) => c.get_token(scopes, options).await,
            None => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!(
                    "no Azure AD credential is configured: {}",
                    self.explanation.lines().join("; ")
                ),
            )),
        }
    }
}

type Found = (AadSource, String, Arc<dyn TokenCredential>, Option<String>);

/// `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`, when set.
struct Ids {
    tenant: Option<String>,
    client: Option<String>,
}

/// Wraps a credential in the chain's token cache.
fn cached(credential: Arc<dyn TokenCredential>) -> Arc<dyn TokenCredential> {
    Arc::new(CachedCredential::new(credential))
}

struct Builder<'a> {
    env: &'a AzureEnvironment,
    client: AzureHttpClient,
    http: Arc<dyn HttpExchange>,
    options: &'a AadOptions,
    explanation: AadExplanation,
}

impl Builder<'_> {
    fn skip(&mut self, source: AadSource, why: impl Into<String>) {
        self.explanation.skipped.push((source, why.into()));
    }

    /// The first configured source, in chain order; every other one is recorded as skipped.
    fn choose(&mut self) -> Result<Option<Found>, AuthError> {
        let env = self.env;
        let ids = Ids {
            tenant: env.var(AZURE_TENANT_ID).map(str::to_owned),
            client: env.var(AZURE_CLIENT_ID).map(str::to_owned),
        };
        if let Some(t) = &ids.tenant
            && !valid_tenant(t)
        {
            return Err(AuthError::AzureConfig {
                reason: format!(
                    "AZURE_TENANT_ID `{t}` is not a tenant ID (letters, digits, `.` and `-`)"
                ),
            });
        }
        let mut found: Option<Found> = None;
        for source in AadSource::ORDER {
            if found.is_some() {
                let why = self.after_chosen(source);
                self.skip(source, why);
                continue;
            }
            found = match source {
                AadSource::ClientSecret => self.client_secret(&ids)?,
                AadSource::ClientCertificate => self.client_certificate(&ids)?,
                AadSource::WorkloadIdentity => self.workload_identity(&ids)?,
                AadSource::AppServiceManagedIdentity => self.app_service(&ids)?,
                AadSource::AzureCli => self.azure_cli(&ids)?,
            };
        }
        if env.is_set(AZURE_CLIENT_CERTIFICATE_PASSWORD)
            && matches!(&found, Some((AadSource::ClientCertificate, ..)))
        {
            tracing::warn!(
                "AZURE_CLIENT_CERTIFICATE_PASSWORD is ignored: the PEM key must be unencrypted"
            );
        }
        Ok(found)
    }

    /// Why `source` is skipped once an earlier one is chosen: its variable is not set, or it
    /// is configured but comes later.
    fn after_chosen(&self, source: AadSource) -> String {
        let env = self.env;
        let selector = match source {
            AadSource::ClientCertificate => Some((
                AZURE_CLIENT_CERTIFICATE_PATH,
                env.var_os(AZURE_CLIENT_CERTIFICATE_PATH).is_some(),
            )),
            AadSource::WorkloadIdentity => Some((
                AZURE_FEDERATED_TOKEN_FILE,
                env.var_os(AZURE_FEDERATED_TOKEN_FILE).is_some(),
            )),
            AadSource::AppServiceManagedIdentity => {
                Some((IDENTITY_ENDPOINT, env.var(IDENTITY_ENDPOINT).is_some()))
            }
            AadSource::ClientSecret | AadSource::AzureCli => None,
        };
        match selector {
            Some((var, false)) => format!("{var} is not set"),
            _ => "a source earlier in the chain is configured".to_owned(),
        }
    }

    /// `value` of the service-principal variable `var` with the tenant and client IDs, when
    /// all three are set; otherwise `source` is recorded as skipped, saying what is missing.
    fn with_ids<'i, T>(
        &mut self,
        source: AadSource,
        var: &str,
        value: Option<T>,
        ids: &'i Ids,
    ) -> Option<(T, &'i str, &'i str)> {
        match (value, &ids.tenant, &ids.client) {
            (None, _, _) => {
                self.skip(source, format!("{var} is not set"));
                None
            }
            (Some(v), Some(t), Some(c)) => Some((v, t, c)),
            (Some(_), t, c) => {
                self.skip(source, missing_ids(var, t, c));
                None
            }
        }
    }

    /// 1. Client secret.
    fn client_secret(&mut self, ids: &Ids) -> Result<Option<Found>, AuthError> {
        let source = AadSource::ClientSecret;
        let secret = self.env.var(AZURE_CLIENT_SECRET);
        let Some((secret, t, c)) = self.with_ids(source, AZURE_CLIENT_SECRET, secret, ids) else {
            return Ok(None);
        };
        let credential = ClientSecretCredential::new(
            t,
            c.to_owned(),
            AzureSecret::new(secret.to_owned()),
            Some(ClientSecretCredentialOptions {
                client_options: self.client_options()?,
            }),
        )
        .map_err(sdk_config_error)?;
        Ok(Some((
            source,
            format!("client '{c}' in tenant '{t}'"),
            credential,
            Some(t.to_owned()),
        )))
    }

    /// 2. Client certificate.
    fn client_certificate(&mut self, ids: &Ids) -> Result<Option<Found>, AuthError> {
        let source = AadSource::ClientCertificate;
        let var = AZURE_CLIENT_CERTIFICATE_PATH;
        let path = self.env.var_os(var).map(PathBuf::from);
        match self.with_ids(source, var, path, ids) {
            Some((path, t, c)) => self.certificate(&path, t, c).map(Some),
            None => Ok(None),
        }
    }

    /// 3. Workload identity.
    fn workload_identity(&mut self, ids: &Ids) -> Result<Option<Found>, AuthError> {
        let source = AadSource::WorkloadIdentity;
        let var = AZURE_FEDERATED_TOKEN_FILE;
        let path = self.env.var_os(var).map(PathBuf::from);
        let Some((path, t, c)) = self.with_ids(source, var, path, ids) else {
            return Ok(None);
        };
        // Options structs grow between releases: keep `..Default::default()`.
        #[allow(clippy::needless_update)]
        let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: self.client_options()?,
            },
            client_id: Some(c.to_owned()),
            tenant_id: Some(t.to_owned()),
            token_file_path: Some(path.clone()),
            ..Default::default()
        }))
        .map_err(|e| AuthError::AzureConfig {
            reason: format!(
                "AZURE_FEDERATED_TOKEN_FILE {}: {}",
                path.display(),
                first_line(&e.to_string())
            ),
        })?;
        Ok(Some((
            source,
            format!(
                "client '{c}' in tenant '{t}', token file {}",
                path.display()
            ),
            credential,
            Some(t.to_owned()),
        )))
    }

    /// 4. App Service managed identity (never IMDS).
    fn app_service(&mut self, ids: &Ids) -> Result<Option<Found>, AuthError> {
        let source = AadSource::AppServiceManagedIdentity;
        let (endpoint, header) = match (
            self.env.var(IDENTITY_ENDPOINT),
            self.env.var(IDENTITY_HEADER),
        ) {
            (Some(endpoint), Some(header)) => (endpoint, header),
            (Some(_), None) => {
                self.skip(
                    source,
                    "IDENTITY_ENDPOINT is set without IDENTITY_HEADER \
                     (Azure Arc and other managed-identity kinds are not supported)",
                );
                return Ok(None);
            }
            (None, _) => {
                self.skip(
                    source,
                    "IDENTITY_ENDPOINT and IDENTITY_HEADER are not set \
                     (the VM metadata endpoint, IMDS, is never used)",
                );
                return Ok(None);
            }
        };
        let url = url::Url::parse(endpoint)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| AuthError::AzureConfig {
                reason: format!("IDENTITY_ENDPOINT `{endpoint}` is not an http(s) URL"),
            })?;
        let credential = AppServiceManagedIdentity::new(
            url,
            Secret::new(header),
            ids.client.clone(),
            self.http.clone(),
            self.options.retries,
        );
        let who = match &ids.client {
            Some(c) => format!("user-assigned identity '{c}'"),
            None => "system-assigned identity".to_owned(),
        };
        Ok(Some((
            source,
            format!("{who} at {endpoint}"),
            Arc::new(credential),
            ids.tenant.clone(),
        )))
    }

    /// 5. Azure CLI.
    fn azure_cli(&mut self, ids: &Ids) -> Result<Option<Found>, AuthError> {
        let source = AadSource::AzureCli;
        if !self.options.allow_azure_cli {
            self.skip(source, "disabled");
            return Ok(None);
        }
        let Some(az) = find_az(self.env.var_os(PATH)) else {
            self.skip(source, "az is not on PATH");
            return Ok(None);
        };
        let credential = AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: ids.tenant.clone(),
            executor: Some(Arc::new(PathExecutor {
                path: self.env.var_os(PATH).map(OsStr::to_owned),
            })),
            ..Default::default()
        }))
        .map_err(sdk_config_error)?;
        Ok(Some((
            source,
            format!("{} (the account of 'az login')", az.display()),
            credential,
            ids.tenant.clone(),
        )))
    }

    fn authority(&self) -> Result<String, AuthError> {
        let authority = self
            .options
            .authority_host
            .clone()
            .or_else(|| self.env.var(AZURE_AUTHORITY_HOST).map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.to_owned());
        let url = url::Url::parse(&authority).map_err(|e| AuthError::AzureConfig {
            reason: format!("the authority host `{authority}` is not a URL: {e}"),
        })?;
        if url.scheme() != "https" {
            return Err(AuthError::AzureConfig {
                reason: format!(
                    "the authority host `{authority}` (AZURE_AUTHORITY_HOST) must use https"
                ),
            });
        }
        Ok(authority)
    }

    fn client_options(&self) -> Result<ClientOptions, AuthError> {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = self.authority()?;
        let mut options = self.client.client_options(self.options.retries);
        options.cloud = Some(Arc::new(CloudConfiguration::Custom(cloud)));
        Ok(options)
    }

    fn certificate(&self, path: &Path, tenant: &str, client: &str) -> Result<Found, AuthError> {
        let certificate = ClientCertificate::from_pem_file(path)?;
        let authority =
            url::Url::parse(&self.authority()?).map_err(|e| AuthError::AzureConfig {
                reason: e.to_string(),
            })?;
        // The same URL azure_identity posts to: the assertion's audience.
        let audience = authority
            .join(&format!("/{tenant}/oauth2/v2.0/token"))
            .map_err(|e| AuthError::AzureConfig {
                reason: format!("cannot build the token endpoint for tenant `{tenant}`: {e}"),
            })?
            .to_string();
        let thumbprint = certificate.thumbprint_sha1();
        let assertion = CertificateAssertion {
            certificate,
            client_id: client.to_owned(),
            audience,
        };
        let credential = ClientAssertionCredential::new(
            tenant.to_owned(),
            client.to_owned(),
            assertion,
            Some(ClientAssertionCredentialOptions {
                client_options: self.client_options()?,
            }),
        )
        .map_err(sdk_config_error)?;
        Ok((
            AadSource::ClientCertificate,
            format!(
                "client '{client}' in tenant '{tenant}', certificate {} (x5t {thumbprint})",
                path.display()
            ),
            credential as Arc<dyn TokenCredential>,
            Some(tenant.to_owned()),
        ))
    }
}

fn missing_ids(var: &str, tenant: &Option<String>, client: &Option<String>) -> String {
    let missing: Vec<&str> = [
        tenant.is_none().then_some(AZURE_TENANT_ID),
        client.is_none().then_some(AZURE_CLIENT_ID),
    ]
    .into_iter()
    .flatten()
    .collect();
    format!("{var} is set but {} is not", missing.join(" and "))
}

fn valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn sdk_config_error(e: azure_core::Error) -> AuthError {
    AuthError::AzureConfig {
        reason: first_line(&e.to_string()),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// `az` in the directories of `path`, when it is an executable file there.
fn find_az(path: Option<&OsStr>) -> Option<PathBuf> {
    let path = path?;
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(if cfg!(windows) { "az.cmd" } else { "az" }))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Runs the Azure CLI with the chain's `PATH` rather than the process's, so that an injected
/// environment decides which `az` runs.
#[derive(Debug)]
struct PathExecutor {
    path: Option<OsString>,
}

#[async_trait::async_trait]
impl Executor for PathExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> io::Result<Output> {
        let mut command = tokio::process::Command::new(program);
        command.args(args).kill_on_drop(true);
        match &self.path {
            Some(p) => command.env(PATH, p),
            None => command.env_remove(PATH),
        };
        command.output().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::ExchangeError;
    use bytes::Bytes;

    struct NoNetwork;

    #[async_trait::async_trait]
    impl HttpExchange for NoNetwork {
        async fn exchange(
            &self,
            _: http::Request<Bytes>,
        ) -> Result<http::Response<Bytes>, ExchangeError> {
            Err(ExchangeError::new("no network in unit tests"))
        }
    }

    fn chain(vars: &[(&str, &str)]) -> Result<AadCredentialChain, AuthError> {
        let env = AzureEnvironment::from_vars(vars.iter().copied());
        AadCredentialChain::new(
            &env,
            Arc::new(NoNetwork),
            AadOptions {
                retries: 0,
                ..Default::default()
            },
        )
    }

    #[test]
    fn nothing_configured_explains_every_source() {
        let c = chain(&[]).unwrap();
        assert!(c.credential().is_none());
        let lines = c.explanation().lines();
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert!(lines[0].contains("AZURE_CLIENT_SECRET is not set"));
        assert!(lines[3].contains("IMDS"), "{lines:?}");
        assert!(lines[4].contains("az is not on PATH"));
        assert!(lines[5].contains("no credential"));
    }

    #[test]
    fn client_secret_wins_and_never_shows() {
        let c = chain(&[
            (AZURE_TENANT_ID, "tenant-a"),
            (AZURE_CLIENT_ID, "app-1"),
            (AZURE_CLIENT_SECRET, "very-secret-sauce"),
            (AZURE_FEDERATED_TOKEN_FILE, "/nonexistent/token"),
        ])
        .unwrap();
        assert_eq!(c.source(), Some(AadSource::ClientSecret));
        assert_eq!(c.tenant_id(), Some("tenant-a"));
        let text = format!("{}\n{c:?}", c.explanation());
        assert!(text.contains("chose client secret"), "{text}");
        assert!(text.contains("app-1"), "{text}");
        assert!(
            text.contains(
                "skipped workload identity (AZURE_FEDERATED_TOKEN_FILE): a source earlier"
            ),
            "{text}"
        );
        assert!(!text.contains("very-secret-sauce"), "{text}");
    }

    #[test]
    fn sources_after_the_chosen_one_say_why_they_are_skipped() {
        let c = chain(&[
            (AZURE_TENANT_ID, "t"),
            (AZURE_CLIENT_ID, "c"),
            (AZURE_CLIENT_SECRET, "s"),
            (IDENTITY_ENDPOINT, "http://127.0.0.1:1/msi/token"),
        ])
        .unwrap();
        let earlier = "a source earlier in the chain is configured";
        assert_eq!(
            c.explanation().skipped,
            [
                (
                    AadSource::ClientCertificate,
                    "AZURE_CLIENT_CERTIFICATE_PATH is not set".to_owned()
                ),
                (
                    AadSource::WorkloadIdentity,
                    "AZURE_FEDERATED_TOKEN_FILE is not set".to_owned()
                ),
                (AadSource::AppServiceManagedIdentity, earlier.to_owned()),
                (AadSource::AzureCli, earlier.to_owned()),
            ]
        );
    }

    #[test]
    fn partial_configuration_is_skipped_with_a_reason() {
        let c = chain(&[(AZURE_CLIENT_SECRET, "s"), (AZURE_CLIENT_ID, "app")]).unwrap();
        assert!(c.credential().is_none());
        let text = c.explanation().to_string();
        assert!(
            text.contains("AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID is not"),
            "{text}"
        );
    }

    #[test]
    fn managed_identity_needs_both_variables() {
        let c = chain(&[(IDENTITY_ENDPOINT, "http://127.0.0.1:1/msi/token")]).unwrap();
        assert!(c.credential().is_none());
        assert!(
            c.explanation()
                .to_string()
                .contains("without IDENTITY_HEADER")
        );
        let c = chain(&[
            (IDENTITY_ENDPOINT, "http://127.0.0.1:1/msi/token"),
            (IDENTITY_HEADER, "hdr-secret"),
        ])
        .unwrap();
        assert_eq!(c.source(), Some(AadSource::AppServiceManagedIdentity));
        assert!(!format!("{c:?} {}", c.explanation()).contains("hdr-secret"));
    }

    #[test]
    fn unusable_settings_are_errors() {
        let err = chain(&[
            (AZURE_TENANT_ID, "t"),
            (AZURE_CLIENT_ID, "c"),
            (AZURE_CLIENT_SECRET, "s"),
            (AZURE_AUTHORITY_HOST, "http://login.example"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("must use https"), "{err}");
        let err = chain(&[
            (AZURE_TENANT_ID, "t"),
            (AZURE_CLIENT_ID, "c"),
            (AZURE_CLIENT_CERTIFICATE_PATH, "/nonexistent/cert.pem"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
        let err = chain(&[(AZURE_TENANT_ID, "bad tenant!")]).unwrap_err();
        assert!(err.to_string().contains("not a tenant ID"), "{err}");
        let err = chain(&[
            (AZURE_TENANT_ID, "t"),
            (AZURE_CLIENT_ID, "c"),
            (AZURE_FEDERATED_TOKEN_FILE, "/nonexistent/federated"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/federated"), "{err}");
    }

    #[test]
    fn azure_cli_is_found_on_the_injected_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let az = dir.path().join("az");
        std::fs::write(&az, "#!/bin/sh\nexit 1\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = dir.path().to_str().unwrap();
        let c = chain(&[(PATH, path)]).unwrap();
        assert_eq!(c.source(), Some(AadSource::AzureCli));
        let c = AadCredentialChain::new(
            &AzureEnvironment::from_vars([(PATH, path)]),
            Arc::new(NoNetwork),
            AadOptions {
                allow_azure_cli: false,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(c.credential().is_none());
    }

    #[tokio::test]
    async fn unconfigured_chain_fails_with_the_explanation() {
        let c = chain(&[]).unwrap();
        let err = c
            .get_token(&["https://management.azure.com/.default"], None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no Azure AD credential"), "{err}");
    }
}
