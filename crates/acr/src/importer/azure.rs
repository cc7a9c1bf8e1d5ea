//! The Azure side of an import run: one Azure AD credential (and token cache) for ARM and the
//! registries, the subscription to use, and the permissions half of the preflight.

use std::fmt;
use std::sync::{Arc, OnceLock};

use acr_import_auth::azure::{AadCredentialChain, AadOptions, AadSource};
use acr_import_auth::{
    AuthError, AzureSettings, CredentialChain, CredentialSource, HttpExchange, StaticCredentials,
};
use acr_import_transfer::Transport;

use super::{ImportRequest, ImporterConfig};
use crate::import::ResolvedSource;
use crate::permissions::{
    PermissionsEngine, PermissionsInput, PermissionsSource, TargetRef, evaluate, gather,
    registry_access,
};
use crate::{Engine, Preflight, Registry, RegistryResourceId, RoleAssignmentMode};

/// What a run shares for Azure: the HTTP exchange of Azure AD and ARM traffic, and the Azure
/// AD chain chosen from the environment (its clones share one token cache).
pub(crate) struct AzureSession {
    pub(crate) http: Result<Arc<dyn HttpExchange>, String>,
    pub(crate) aad: Result<AadCredentialChain, String>,
}

impl fmt::Debug for AzureSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureSession")
            .field("aad", &self.aad)
            .finish_non_exhaustive()
    }
}

/// The session of a configuration, made on first use and shared by its clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedSession(Arc<OnceLock<AzureSession>>);

impl ImporterConfig {
    /// The run's Azure session (made once per configuration and its clones).
    pub(crate) fn session(&self) -> &AzureSession {
        self.session.0.get_or_init(|| {
            let mut builder = Transport::builder();
            if let Some(ca) = &self.ca_file {
                builder = builder.ca_file(ca);
            }
            let http = builder
                .build()
                .map(|t| t.exchange())
                .map_err(|e| e.to_string());
            let aad = match &http {
                Ok(h) => AadCredentialChain::from_env(h.clone(), AadOptions::default())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            AzureSession { http, aad }
        })
    }

    /// The session's Azure AD chain, as the credential chain of the registries wants it.
    pub(crate) fn aad_for_registries(&self) -> Result<AadCredentialChain, AuthError> {
        self.session()
            .aad
            .clone()
            .map_err(|reason| AuthError::AzureConfig { reason })
    }

    /// The subscription to use when none is given: the one a resource-ID target names, else,
    /// signed in through the Azure CLI, the CLI's default subscription (as `az` would use).
    pub(crate) fn implied_subscription(&self, target: &str) -> Option<String> {
        if let Ok(id) = target.parse::<RegistryResourceId>() {
            return Some(id.subscription().to_owned());
        }
        let via_cli = self
            .session()
            .aad
            .as_ref()
            .is_ok_and(|c| c.source() == Some(AadSource::AzureCli));
        if via_cli {
            crate::profile::azure_cli_default_subscription()
        } else {
            None
        }
    }
}

impl ImporterConfig {
    /// Whether the registries' credential chain signs in to `host` with Azure AD (rather than
    /// with explicit credentials, a Docker login, or anonymously). Runs no token request.
    pub(crate) async fn signs_in_with_azure_ad(
        &self,
        host: &str,
        acr_hosts: &[(String, Option<bool>)],
    ) -> bool {
        let Ok(http) = self.session().http.clone() else {
            return false;
        };
        let mut explicit = StaticCredentials::new();
        if let Some(c) = &self.target_credential {
            explicit.insert(host, c.clone());
        }
        let chain = CredentialChain::from_env_with(
            http,
            explicit,
            &self.cloud.login_server_suffix,
            AzureSettings {
                aad: self.aad_for_registries(),
                audience: self.acr_audience,
                login_servers: acr_hosts.to_vec(),
            },
        );
        matches!(
            chain.explain(host).await.map(|e| e.source),
            Ok(CredentialSource::AzureAd(_))
        )
    }
}

/// The target repositories of a request (for messages about repository conditions).
pub(crate) fn target_repositories(request: &ImportRequest, source: &ResolvedSource) -> Vec<String> {
    let entry = &request.entry;
    let mut repos: Vec<String> = entry
        .images
        .iter()
        .map(|i| match i.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => r.to_owned(),
            _ => i.clone(),
        })
        .chain(entry.repositories.iter().cloned())
        .collect();
    if repos.is_empty()
        && let Some((repo, _, _)) = source.image_parts()
    {
        repos.push(repo);
    }
    repos
}

/// The permissions half of the preflight for an import by `engine` into `target`. The
/// client-side engine uses the caller's role assignments only where it signs in with Azure
/// AD: a registry reached with other credentials is not judged by them.
pub(crate) async fn permissions_verdict(
    config: &ImporterConfig,
    ctx: &crate::AzureContext,
    engine: Engine,
    target: Option<&Registry>,
    request: &ImportRequest,
    source: &ResolvedSource,
) -> Preflight {
    let hosts = acr_hosts(target, source);
    let (engine, target) = match engine {
        Engine::Server => (PermissionsEngine::Server, target),
        Engine::Client => {
            let target = match target {
                Some(t)
                    if config
                        .signs_in_with_azure_ad(t.login_server(), &hosts)
                        .await =>
                {
                    Some(t)
                }
                _ => None,
            };
            (PermissionsEngine::Client, target)
        }
    };
    let mut input = gather(
        &ctx.arm,
        engine,
        target.map(TargetRef::Registry),
        target_repositories(request, source),
        source,
    )
    .await;
    if engine == PermissionsEngine::Client
        && let PermissionsSource::Azure { .. } = &input.source
        && let Some(host) = source.pull_host()
        && !config.signs_in_with_azure_ad(&host, &hosts).await
    {
        input.source = PermissionsSource::NotInvolved;
    }
    evaluate(&input)
}

/// A failure when Azure AD tokens of the ARM audience are asked for (`--acr-audience arm`) and a
/// registry the client signs in to refuses them.
pub(crate) async fn arm_audience_verdict(
    config: &ImporterConfig,
    engine: Engine,
    target: Option<&Registry>,
    source: &ResolvedSource,
) -> Preflight {
    let mut f = crate::preflight::Findings::default();
    let arm_asked = config.acr_audience.or_else(|| {
        std::env::var(acr_import_auth::azure::env::ACR_IMPORT_ACR_AUDIENCE)
            .ok()
            .and_then(|v| v.parse().ok())
    }) == Some(acr_import_auth::AcrAudience::Arm);
    if engine == Engine::Client && arm_asked {
        let hosts = acr_hosts(target, source);
        for (host, accepts) in &hosts {
            if *accepts == Some(false) && config.signs_in_with_azure_ad(host, &hosts).await {
                f.fail(
                    crate::preflight::Rule::ArmAudienceRefused,
                    host,
                    "the registry accepts only ACR-audience Azure AD tokens (azureADAuthenticationAsArmPolicy disabled), and ARM-audience tokens were asked for (--acr-audience arm)".into(),
                    "drop --acr-audience arm (the default asks for the ACR audience), or allow ARM tokens: az acr config authentication-as-arm update -r <registry> --status enabled".into(),
                );
            }
        }
    }
    f.finish()
}

/// The verdict for a server-side import into a target named by resource ID that ARM would
/// not let the caller read: what its permissions there say.
pub(crate) async fn unreadable_target_verdict(
    ctx: &crate::AzureContext,
    id: &RegistryResourceId,
) -> Preflight {
    let input = PermissionsInput {
        engine: PermissionsEngine::Server,
        principal: ctx.arm.caller_object_id().await.ok().flatten(),
        target: Some(
            registry_access(
                &ctx.arm,
                id.as_str(),
                id.name().as_str(),
                RoleAssignmentMode::LegacyRegistryPermissions,
            )
            .await,
        ),
        target_repositories: Vec::new(),
        source: PermissionsSource::NotInvolved,
    };
    evaluate(&input)
}

/// The source's registry name and login server, for naming the side of a failure.
pub(crate) fn source_names(source: &ResolvedSource) -> Option<(String, String)> {
    match source {
        ResolvedSource::Azure {
            registry: Some(r), ..
        } => Some((r.name.clone(), r.login_server().to_owned())),
        ResolvedSource::Azure { id, .. } => Some((id.name().to_string(), String::new())),
        ResolvedSource::External {
            registry: Some(r), ..
        } => Some((r.name.clone(), r.login_server().to_owned())),
        ResolvedSource::External { host, .. } => Some((host.clone(), host.clone())),
        ResolvedSource::Layout { .. } => None,
    }
}

/// The ACR login servers an import touches, from ARM, with whether each accepts ARM-audience
/// tokens: the registries' credential chain treats them as ACRs (also on loopback, an
/// emulator) and knows where the ARM audience may serve as a fallback.
pub(crate) fn acr_hosts(
    target: Option<&Registry>,
    source: &ResolvedSource,
) -> Vec<(String, Option<bool>)> {
    let source_registry = match source {
        ResolvedSource::Azure { registry, .. } | ResolvedSource::External { registry, .. } => {
            registry.as_deref()
        }
        ResolvedSource::Layout { .. } => None,
    };
    target
        .into_iter()
        .chain(source_registry)
        .filter(|r| !r.login_server().is_empty())
        .map(|r| {
            (
                r.login_server().to_owned(),
                Some(r.accepts_arm_audience_tokens()),
            )
        })
        .collect()
}
