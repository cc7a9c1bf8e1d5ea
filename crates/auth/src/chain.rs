//! The credential chain: explicit credentials, then Docker configuration, then Azure AD for
//! ACR login servers, then anonymous.

use std::fmt;

use std::sync::Arc;

use crate::azure::env::ACR_IMPORT_ACR_AUDIENCE;
use crate::azure::{
    AadCredentialChain, AadOptions, AcrAudience, AcrLoginServers, AzureAdProvider, AzureEnvironment,
};
use crate::docker_config::{DockerConfigSource, Origin};
use crate::{AuthError, Credential, CredentialProvider, HttpExchange, ScopeSet, StaticCredentials};

/// Where the chain's credential for a registry comes from. Never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialSource {
    /// Given explicitly (command line, API) for this registry.
    Explicit,
    /// A Docker or containers configuration file, or a helper it names.
    DockerConfig(Origin),
    /// An Azure AD token exchanged for an ACR refresh token; the text says which credential.
    AzureAd(String),
    /// Nothing applies: anonymous.
    Anonymous,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Explicit => f.write_str("explicit credentials"),
            CredentialSource::DockerConfig(origin) => write!(f, "Docker configuration: {origin}"),
            CredentialSource::AzureAd(what) => f.write_str(what),
            CredentialSource::Anonymous => f.write_str("anonymous (no credentials)"),
        }
    }
}

/// What [`CredentialChain::explain`] found for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainExplanation {
    /// The registry key looked up.
    pub registry: String,
    /// The source that would be used.
    pub source: CredentialSource,
    /// The sources consulted before it (and, for Azure AD, the credential sources of the Azure
    /// AD chain), with why each gave nothing.
    pub skipped: Vec<String>,
}

impl ChainExplanation {
    /// One line for the choice, then one per skipped source.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!("{}: using {}", self.registry, self.source)];
        lines.extend(self.skipped.iter().map(|s| format!("  skipped {s}")));
        lines
    }
}

impl fmt::Display for ChainExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

/// The Azure AD side of [`CredentialChain::from_env_with`].
#[derive(Debug)]
pub struct AzureSettings {
    /// The Azure AD chain; its clones share one token cache, so giving the same chain to the
    /// ARM client makes one Azure AD request per scope in a run.
    pub aad: Result<AadCredentialChain, AuthError>,
    /// The audience of exchanged tokens. Default (`None`): `ACR_IMPORT_ACR_AUDIENCE`, else
    /// [`AcrAudience::Auto`].
    pub audience: Option<AcrAudience>,
    /// Login servers known to be ACRs (from ARM), each with whether it accepts ARM-audience
    /// tokens (its `azureADAuthenticationAsArmPolicy`), when known.
    pub login_servers: Vec<(String, Option<bool>)>,
}

impl AzureSettings {
    /// `aad`, the default audience, no extra login server.
    pub fn new(aad: Result<AadCredentialChain, AuthError>) -> Self {
        Self {
            aad,
            audience: None,
            login_servers: Vec::new(),
        }
    }
}

/// The credential chain of acr-import, a [`CredentialProvider`]. For each registry, in order:
///
/// 1. explicit credentials for it ([`StaticCredentials`]);
/// 2. Docker and containers configuration files and their helpers ([`DockerConfigSource`]);
/// 3. for an ACR login server, Azure AD ([`AzureAdProvider`]), when a credential is configured;
/// 4. anonymous.
///
/// [`CredentialChain::explain`] tells which source applies and why the others do not, without
/// secrets and without fetching any token.
#[derive(Debug, Default)]
pub struct CredentialChain {
    explicit: StaticCredentials,
    docker: Option<DockerConfigSource>,
    azure: Option<AzureAdProvider>,
}

impl CredentialChain {
    /// An empty chain: anonymous everywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Explicit credentials, first in the chain.
    pub fn with_explicit(mut self, credentials: StaticCredentials) -> Self {
        self.explicit = credentials;
        self
    }

    /// Docker configuration files, second.
    pub fn with_docker_config(mut self, source: DockerConfigSource) -> Self {
        self.docker = Some(source);
        self
    }

    /// The chain a command-line tool wants, from the process environment: `explicit` first,
    /// then the Docker / podman config files and credential helpers, then Azure AD (the
    /// `AZURE_*` variables, a managed identity, the Azure CLI) for ACR login servers — the
    /// standard suffixes, `ACR_IMPORT_LOGIN_SERVER_SUFFIX` and `login_server_suffix` — then
    /// anonymous. Azure AD traffic goes through `http`. An Azure AD configuration that cannot
    /// be used is logged and skipped: registries that need no Azure AD keep working.
    pub fn from_env(
        http: Arc<dyn HttpExchange>,
        explicit: StaticCredentials,
        login_server_suffix: &str,
    ) -> Self {
        let aad = AadCredentialChain::from_env(http.clone(), AadOptions::default());
        Self::from_env_with(http, explicit, login_server_suffix, AzureSettings::new(aad))
    }

    /// [`CredentialChain::from_env`] with the Azure AD side given by the caller: one Azure AD
    /// chain (and its token cache) for the registries and Azure Resource Manager alike, the
    /// audience, and the login servers ARM said are ACRs.
    pub fn from_env_with(
        http: Arc<dyn HttpExchange>,
        explicit: StaticCredentials,
        login_server_suffix: &str,
        azure: AzureSettings,
    ) -> Self {
        let env = AzureEnvironment::from_env();
        let mut servers = AcrLoginServers::from_env(&env).with_suffix(login_server_suffix);
        for (host, _) in &azure.login_servers {
            servers = servers.with_host(host);
        }
        let audience = azure.audience.unwrap_or_else(|| {
            match env
                .var(ACR_IMPORT_ACR_AUDIENCE)
                .map(str::parse::<AcrAudience>)
            {
                Some(Ok(a)) => a,
                Some(Err(e)) => {
                    tracing::warn!("{e}; using the default (auto)");
                    AcrAudience::default()
                }
                None => AcrAudience::default(),
            }
        });
        let chain = Self::new()
            .with_explicit(explicit)
            .with_docker_config(DockerConfigSource::from_env());
        match azure.aad {
            Ok(aad) => {
                let provider = AzureAdProvider::from_chain(&aad, http, servers, audience);
                if let Some(exchange) = provider.exchange() {
                    for (host, accepts) in &azure.login_servers {
                        if let Some(accepts) = accepts {
                            exchange.set_arm_audience_accepted(host, *accepts);
                        }
                    }
                }
                chain.with_azure(provider)
            }
            Err(e) => {
                tracing::warn!("Azure AD credentials unavailable: {e}");
                chain
            }
        }
    }

    /// Azure AD for ACR login servers, third.
    pub fn with_azure(mut self, provider: AzureAdProvider) -> Self {
        self.azure = Some(provider);
        self
    }

    /// The Azure AD provider, when one is set.
    pub fn azure(&self) -> Option<&AzureAdProvider> {
        self.azure.as_ref()
    }

    /// The credential for `registry` and where it came from. Exchanges tokens for Azure AD.
    pub async fn resolve(
        &self,
        registry: &str,
    ) -> Result<(Credential, CredentialSource), AuthError> {
        self.resolve_for(registry, &ScopeSet::new()).await
    }

    /// The credential for a request on `registry` needing `scopes`, and where it came from:
    /// explicit credentials for its repository or its host first; explicit credentials of the
    /// host's other repositories only when nothing else applies and they are all the same.
    pub async fn resolve_for(
        &self,
        registry: &str,
        scopes: &ScopeSet,
    ) -> Result<(Credential, CredentialSource), AuthError> {
        if let Some(c) = self.explicit.get_for(registry, scopes) {
            return Ok((c.clone(), CredentialSource::Explicit));
        }
        let (credential, source) = self.resolve_implicit(registry).await?;
        if source == CredentialSource::Anonymous
            && let Some(c) = self.explicit.only_repository_credential(registry)
        {
            return Ok((c.clone(), CredentialSource::Explicit));
        }
        Ok((credential, source))
    }

    /// The Docker configuration, then Azure AD, then anonymous.
    async fn resolve_implicit(
        &self,
        registry: &str,
    ) -> Result<(Credential, CredentialSource), AuthError> {
        if let Some(docker) = &self.docker
            && let Some((credential, origin)) = docker.lookup(registry).await?
        {
            return Ok((credential, CredentialSource::DockerConfig(origin)));
        }
        if let Some(azure) = &self.azure
            && azure.is_configured()
            && azure.is_login_server(registry)
        {
            let credential = azure.credential(registry).await?;
            return Ok((credential, CredentialSource::AzureAd(azure.describe())));
        }
        Ok((Credential::Anonymous, CredentialSource::Anonymous))
    }

    /// Which source [`CredentialChain::resolve`] would use for `registry`, and why the others
    /// do not apply. Runs Docker credential helpers (as a lookup does) but fetches no token.
    pub async fn explain(&self, registry: &str) -> Result<ChainExplanation, AuthError> {
        let key = crate::registry_key(registry);
        let mut skipped = Vec::new();
        let done = |source, skipped| {
            Ok(ChainExplanation {
                registry: key.clone(),
                source,
                skipped,
            })
        };
        if self.explicit.get(registry).is_some() {
            return done(CredentialSource::Explicit, skipped);
        }
        skipped.push("explicit credentials: none given for this registry".to_owned());
        match &self.docker {
            Some(docker) => {
                let explanation = docker.explain(registry).await?;
                if let Some((_, origin)) = explanation.found {
                    return done(CredentialSource::DockerConfig(origin), skipped);
                }
                if explanation.skipped.is_empty() {
                    skipped.push("Docker configuration: no file to read".to_owned());
                }
                for s in explanation.skipped {
                    skipped.push(format!("Docker configuration: {s}"));
                }
            }
            None => skipped.push("Docker configuration: not consulted".to_owned()),
        }
        match &self.azure {
            None => skipped.push("Azure AD: not enabled".to_owned()),
            Some(azure) if !azure.is_login_server(registry) => skipped.push(format!(
                "Azure AD: `{key}` is not an ACR login server (see ACR_IMPORT_LOGIN_SERVER_SUFFIX)"
            )),
            Some(azure) if !azure.is_configured() => {
                let lines = azure
                    .aad_explanation()
                    .map(|e| e.lines())
                    .unwrap_or_default();
                skipped.push("Azure AD: no Azure AD credential is configured".to_owned());
                skipped.extend(lines.into_iter().map(|l| format!("  {l}")));
            }
            Some(azure) => {
                if let Some(e) = azure.aad_explanation() {
                    skipped.extend(
                        e.skipped
                            .iter()
                            .map(|(source, why)| format!("Azure AD {source}: {why}")),
                    );
                }
                return done(CredentialSource::AzureAd(azure.describe()), skipped);
            }
        }
        done(CredentialSource::Anonymous, skipped)
    }
}

#[async_trait::async_trait]
impl CredentialProvider for CredentialChain {
    async fn credential(&self, registry: &str) -> Result<Credential, AuthError> {
        self.credential_for(registry, &ScopeSet::new()).await
    }

    async fn credential_for(
        &self,
        registry: &str,
        scopes: &ScopeSet,
    ) -> Result<Credential, AuthError> {
        let (credential, source) = self.resolve_for(registry, scopes).await?;
        // Per request: trace, not debug (--debug shows the requests themselves).
        tracing::trace!(registry, %source, identity = %credential.identity(), "credential chosen");
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    #[tokio::test]
    async fn explicit_then_docker_then_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        // "bob:d0cker-pw"
        std::fs::write(
            &file,
            r#"{"auths":{"quay.io":{"auth":"Ym9iOmQwY2tlci1wdw=="}}}"#,
        )
        .unwrap();
        let chain = CredentialChain::new()
            .with_explicit(StaticCredentials::new().with(
                "ghcr.io",
                Credential::Basic {
                    username: "alice".into(),
                    password: Secret::new("expl1cit-pw"),
                },
            ))
            .with_docker_config(DockerConfigSource::new([&file], None));

        let (c, s) = chain.resolve("ghcr.io").await.unwrap();
        assert!(matches!(c, Credential::Basic { ref username, .. } if username == "alice"));
        assert_eq!(s, CredentialSource::Explicit);

        let (c, s) = chain.resolve("quay.io").await.unwrap();
        assert!(matches!(c, Credential::Basic { ref username, .. } if username == "bob"));
        assert!(matches!(s, CredentialSource::DockerConfig(_)));

        let (c, s) = chain.resolve("myreg.azurecr.io").await.unwrap();
        assert_eq!(c, Credential::Anonymous);
        assert_eq!(s, CredentialSource::Anonymous);

        let e = chain.explain("quay.io").await.unwrap();
        let text = e.to_string();
        assert!(
            text.starts_with("quay.io: using Docker configuration: auths entry `quay.io`"),
            "{text}"
        );
        assert!(text.contains("explicit credentials: none given"), "{text}");
        let e = chain.explain("myreg.azurecr.io").await.unwrap().to_string();
        assert!(e.contains("using anonymous"), "{e}");
        assert!(e.contains("Azure AD: not enabled"), "{e}");
        assert!(e.contains("no entry for this registry"), "{e}");
        for text in [
            e,
            format!("{chain:?}"),
            chain.explain("ghcr.io").await.unwrap().to_string(),
        ] {
            assert!(
                !text.contains("expl1cit-pw") && !text.contains("d0cker-pw"),
                "{text}"
            );
        }
    }
}
