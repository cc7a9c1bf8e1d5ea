//! Import orchestration: resolving the target and the source, choosing the engine, building the
//! `importImage` body, running it, and the inputs of the preflight.

use std::fmt;
use std::time::Duration;

use acr_import_auth::Secret;
use acr_import_reference::{AnyReference, ReferenceError, RepositoryReference};

use crate::arm::{ArmClient, ImportProgress, ImportStart, WaitOptions, normalize_login_server};
use crate::model::{
    ImportImageParameters, ImportMode, ImportSource, ImportSourceCredentials, Registry,
    Subscription,
};
use crate::preflight::{
    PreflightEngine, PreflightInput, PreflightSource, RegistryNetwork, Unreadable,
};
use crate::{AcrError, Cloud, RegistryResourceId, RegistryTarget, resource_id::is_guid};

/// What the ARM side knows about the caller: the client, the subscription, and what it can
/// see.
#[derive(Debug)]
pub struct AzureContext {
    /// The ARM client.
    pub arm: ArmClient,
    /// The cloud.
    pub cloud: Cloud,
    /// The current subscription (of the target and of lookups).
    pub subscription: String,
    /// Every subscription the identity can see (empty if listing them failed).
    pub subscriptions: Vec<Subscription>,
}

impl AzureContext {
    /// Resolves `--subscription` (an ID or a display name; `None`: the only visible
    /// subscription) and lists the visible subscriptions.
    pub async fn connect(
        arm: ArmClient,
        cloud: Cloud,
        subscription: Option<&str>,
    ) -> Result<Self, AcrError> {
        let listed = arm.list_subscriptions().await;
        let subscriptions = match (&listed, subscription) {
            (Ok(s), _) => s.clone(),
            (Err(_), Some(s)) if is_guid(s) => Vec::new(),
            (Err(e), _) => {
                return Err(AcrError::NoSubscription {
                    reason: format!("listing subscriptions failed: {e}"),
                });
            }
        };
        let subscription = match subscription {
            Some(s) if is_guid(s) => s.to_owned(),
            Some(s) => subscriptions
                .iter()
                .find(|x| {
                    x.display_name.eq_ignore_ascii_case(s)
                        || x.subscription_id.eq_ignore_ascii_case(s)
                })
                .map(|x| x.subscription_id.clone())
                .ok_or_else(|| AcrError::NoSubscription {
                    reason: format!("no subscription named `{s}` is visible to this identity"),
                })?,
            None => match subscriptions.as_slice() {
                [only] => only.subscription_id.clone(),
                [] => {
                    return Err(AcrError::NoSubscription {
                        reason: "this identity sees no subscription".into(),
                    });
                }
                many => {
                    return Err(AcrError::NoSubscription {
                        reason: format!(
                            "this identity sees {} subscriptions ({})",
                            many.len(),
                            many.iter()
                                .map(|s| s.subscription_id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            },
        };
        Ok(Self {
            arm,
            cloud,
            subscription,
            subscriptions,
        })
    }

    /// The tenant of a subscription, when it is visible.
    pub fn tenant_of(&self, subscription: &str) -> Option<&str> {
        self.subscriptions
            .iter()
            .find(|s| s.subscription_id.eq_ignore_ascii_case(subscription))
            .map(|s| s.tenant_id.as_str())
            .filter(|t| !t.is_empty())
    }

    /// The current subscription first, then every other visible one.
    fn search_order(&self) -> Vec<String> {
        let mut order = vec![self.subscription.clone()];
        for s in &self.subscriptions {
            if !s.subscription_id.eq_ignore_ascii_case(&self.subscription) {
                order.push(s.subscription_id.clone());
            }
        }
        order
    }

    /// The target registry: a resource ID, a name (with `resource_group`, a direct GET; without,
    /// a lookup in the current subscription) or a login server.
    pub async fn resolve_target(
        &self,
        name: &str,
        resource_group: Option<&str>,
    ) -> Result<Registry, AcrError> {
        if RegistryResourceId::looks_like(name) {
            let id: RegistryResourceId = name.parse()?;
            return self.arm.get_registry(&id).await;
        }
        let target = RegistryTarget::parse(name, &self.cloud)?;
        if let (Some(rg), Some(n), RegistryTarget::Acr { .. }) =
            (resource_group, target.acr_name(), &target)
        {
            let id = RegistryResourceId::new(&self.subscription, rg, n)?;
            return self.arm.get_registry(&id).await;
        }
        let wanted = match &target {
            RegistryTarget::Acr { name, .. } => name.to_string(),
            RegistryTarget::Host { host, .. } => host.clone(),
        };
        let found = self
            .arm
            .find_registry(&wanted, std::slice::from_ref(&self.subscription))
            .await?;
        match found {
            Some(r) => {
                if let Some(rg) = resource_group
                    && let Ok(id) = r.resource_id()
                    && !id.resource_group().eq_ignore_ascii_case(rg)
                {
                    return Err(AcrError::RegistryNotFound {
                        value: name.to_owned(),
                        scope: format!(
                            "resource group '{rg}' of subscription '{}'",
                            self.subscription
                        ),
                    });
                }
                Ok(r)
            }
            None => Err(AcrError::RegistryNotFound {
                value: name.to_owned(),
                scope: format!("subscription '{}'", self.subscription),
            }),
        }
    }
}

/// The source as the user gave it.
#[derive(Debug, Clone, Default)]
pub struct SourceArgs {
    /// `--source`.
    pub source: String,
    /// `--registry`.
    pub registry: Option<String>,
    /// `--username`.
    pub username: Option<String>,
    /// `--password`.
    pub password: Option<Secret>,
}

/// Where the image comes from, resolved.
#[derive(Debug, Clone)]
pub enum ResolvedSource {
    /// An Azure registry named by (or resolved to) its resource ID.
    Azure {
        /// The resource ID, sent verbatim.
        id: RegistryResourceId,
        /// The registry, when it could be read.
        registry: Option<Box<Registry>>,
        /// Why it could not be read.
        unreadable: Option<Unreadable>,
        /// `repo:tag` or `repo@digest`.
        image: String,
        /// Whether its subscription is in another tenant than the target's.
        cross_tenant: bool,
    },
    /// Any registry by `host[:port]` (`registryUri`).
    External {
        /// `host[:port]`.
        host: String,
        /// `repo:tag` or `repo@digest`.
        image: String,
        /// Credentials (username optional).
        credentials: Option<(Option<String>, Secret)>,
        /// The host is an ACR login server no visible subscription holds.
        unknown_acr: bool,
        /// The Azure registry behind the host, when found (named by login server).
        registry: Option<Box<Registry>>,
    },
    /// A local OCI layout (client-side only).
    Layout {
        /// The `oci:PATH[:TAG]` reference.
        reference: String,
    },
}

impl ResolvedSource {
    /// `sourceImage`.
    pub fn image(&self) -> Option<&str> {
        match self {
            ResolvedSource::Azure { image, .. } | ResolvedSource::External { image, .. } => {
                Some(image)
            }
            ResolvedSource::Layout { .. } => None,
        }
    }

    /// The host a client-side copy pulls from.
    pub fn pull_host(&self) -> Option<String> {
        match self {
            ResolvedSource::Azure { registry, .. } => {
                registry.as_ref().map(|r| r.login_server().to_owned())
            }
            ResolvedSource::External { host, .. } => Some(host.clone()),
            ResolvedSource::Layout { .. } => None,
        }
    }

    /// `(repository, tag or digest, tag)` of the image.
    pub fn image_parts(&self) -> Option<(String, String, Option<String>)> {
        let image = self.image()?;
        let r: RepositoryReference = image.parse().ok()?;
        let reference = r
            .digest()
            .map(|d| d.to_string())
            .or_else(|| r.tag().map(|t| t.to_string()))
            .unwrap_or_else(|| "latest".to_owned());
        Some((
            r.repository().to_string(),
            reference,
            r.tag().map(|t| t.to_string()),
        ))
    }

    /// The preflight's view of this source.
    pub fn preflight(&self) -> PreflightSource {
        match self {
            ResolvedSource::Azure {
                id,
                registry: Some(r),
                cross_tenant,
                ..
            } => {
                let _ = id;
                PreflightSource::Azure {
                    registry: r.network(),
                    by_resource_id: true,
                    cross_tenant: *cross_tenant,
                }
            }
            ResolvedSource::Azure { id, unreadable, .. } => PreflightSource::Unreadable {
                id: id.to_string(),
                why: unreadable.unwrap_or(Unreadable::Forbidden),
            },
            ResolvedSource::External {
                registry: Some(r), ..
            } => PreflightSource::Azure {
                registry: r.network(),
                by_resource_id: false,
                cross_tenant: false,
            },
            ResolvedSource::External {
                host,
                unknown_acr: true,
                ..
            } => PreflightSource::UnknownAcr {
                login_server: host.clone(),
            },
            ResolvedSource::External { host, .. } => {
                PreflightSource::External { host: host.clone() }
            }
            ResolvedSource::Layout { .. } => PreflightSource::Local,
        }
    }
}

/// A resolved source with what the user should be told about it.
#[derive(Debug, Clone)]
pub struct SourceResolution {
    /// The source.
    pub source: ResolvedSource,
    /// Warnings (printed as `WARNING:`).
    pub warnings: Vec<String>,
    /// Notes (what was looked up, normalized, chosen).
    pub notes: Vec<String>,
}

/// Whether a host is worth an ARM lookup: an ACR login server of the cloud (or a regional
/// endpoint of one), or a loopback host (local emulators and mirrors).
pub fn is_acr_candidate(host: &str, cloud: &Cloud) -> bool {
    let h = normalize_login_server(host);
    let bare = h.rsplit_once(':').map_or(h.as_str(), |(a, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            a
        } else {
            h.as_str()
        }
    });
    bare.ends_with(&cloud.login_server_suffix) || acr_import_auth::is_loopback_host(bare)
}

fn parse_image(image: &str) -> Result<String, AcrError> {
    let r: RepositoryReference = image.parse().map_err(|e| {
        // Only where --source names no repository at all.
        let hint = matches!(
            e,
            ReferenceError::Empty | ReferenceError::MissingRepository { .. }
        )
        .then(|| "inside --registry, --source is repo[:tag|@digest]".to_owned());
        AcrError::InvalidReference {
            flag: "--source",
            value: image.to_owned(),
            source: Box::new(e),
            hint,
        }
    })?;
    Ok(match (r.digest(), r.tag()) {
        (Some(d), _) => format!("{}@{d}", r.repository()),
        (None, Some(t)) => format!("{}:{t}", r.repository()),
        (None, None) => format!("{}:latest", r.repository()),
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() > prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// Resolves the source (see the crate docs for the rules). `azure` is `None` when ARM cannot
/// be reached; then only registries named by host work.
pub async fn resolve_source(
    azure: Option<&AzureContext>,
    cloud: &Cloud,
    args: &SourceArgs,
) -> Result<SourceResolution, AcrError> {
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    if args.username.is_some() && args.password.is_none() {
        return Err(AcrError::InvalidRequest {
            message: "Authentication failed. Please provide password.".into(),
            hint: "add --password-stdin and pipe the password, or set ACR_IMPORT_SOURCE_PASSWORD"
                .into(),
        });
    }
    let credentials = args.password.clone().map(|p| (args.username.clone(), p));
    let target_tenant = azure.and_then(|a| a.tenant_of(&a.subscription).map(str::to_owned));
    let cross = |id: &RegistryResourceId| -> bool {
        match (
            azure.and_then(|a| a.tenant_of(id.subscription())),
            &target_tenant,
        ) {
            (Some(t), Some(home)) => !t.eq_ignore_ascii_case(home),
            _ => false,
        }
    };

    let read_by_id = |id: RegistryResourceId, image: String| async move {
        let Some(a) = azure else {
            return Err(AcrError::ArmUnavailable {
                reason: format!("the source {id} is named by resource ID"),
            });
        };
        let (registry, unreadable) = match a.arm.get_registry(&id).await {
            Ok(r) => (Some(Box::new(r)), None),
            Err(e) => match e.unreadable() {
                Some(why) => (None, Some(why)),
                None => return Err(e),
            },
        };
        let cross_tenant = cross(&id) || unreadable == Some(Unreadable::OtherTenant);
        Ok(ResolvedSource::Azure {
            id,
            registry,
            unreadable,
            image,
            cross_tenant,
        })
    };

    if let Some(r) = args.registry.as_deref() {
        if RegistryResourceId::looks_like(r) {
            let id: RegistryResourceId = r.parse()?;
            if credentials.is_some() {
                return Err(AcrError::CredentialsWithResourceId { id: id.to_string() });
            }
            let image = parse_image(&args.source)?;
            let source = read_by_id(id, image).await?;
            return Ok(SourceResolution {
                source,
                warnings,
                notes,
            });
        }
        let looks_like_host =
            r.contains('.') || r.contains(':') || r.eq_ignore_ascii_case("localhost");
        let found = match azure {
            Some(a) => a.arm.find_registry(r, &a.search_order()).await?,
            None => None,
        };
        let login_server = match &found {
            Some(reg) => reg.login_server().to_owned(),
            None => normalize_login_server(r),
        };
        let mut source_text = args.source.as_str();
        if let Some(rest) = strip_prefix_ci(source_text, &format!("{login_server}/")) {
            warnings.push(format!(
                "The login server name of \"{login_server}\" in the \"--source\" argument will be ignored as \"--registry\" already supplies the same information"
            ));
            source_text = rest;
        }
        let image = parse_image(source_text)?;
        return match found {
            Some(reg) => {
                if credentials.is_some() {
                    return Err(AcrError::CredentialsWithResourceId { id: reg.id.clone() });
                }
                let id = reg.resource_id()?;
                notes.push(format!(
                    "--registry {r} is {id} (Azure AD authorizes the service to read it)"
                ));
                let cross_tenant = cross(&id);
                Ok(SourceResolution {
                    source: ResolvedSource::Azure {
                        id,
                        registry: Some(Box::new(reg)),
                        unreadable: None,
                        image,
                        cross_tenant,
                    },
                    warnings,
                    notes,
                })
            }
            None if looks_like_host => {
                let unknown_acr = is_acr_candidate(r, cloud);
                if azure.is_some() && unknown_acr {
                    warnings.push(format!(
                        "{login_server} is not a registry in any subscription you can read: it is imported as an external registry, {}",
                        if credentials.is_some() { "with the credentials given" } else { "anonymously" }
                    ));
                }
                Ok(SourceResolution {
                    source: ResolvedSource::External {
                        host: login_server,
                        image,
                        credentials,
                        unknown_acr: unknown_acr && azure.is_some(),
                        registry: None,
                    },
                    warnings,
                    notes,
                })
            }
            None => match azure {
                None => Err(AcrError::ArmUnavailable {
                    reason: format!("--registry `{r}` names an Azure registry by name"),
                }),
                Some(a) => Err(AcrError::RegistryNotFound {
                    value: r.to_owned(),
                    scope: format!(
                        "any of the {} subscription(s) you can read",
                        a.search_order().len()
                    ),
                }),
            },
        };
    }

    let parsed: AnyReference = args.source.parse().map_err(|e| {
        // Only where the reference says nothing about where the image is.
        let hint = matches!(
            e,
            ReferenceError::Empty | ReferenceError::MissingRepository { .. }
        )
        .then(|| "give a full reference (registry/repository:tag) or name the source registry with --registry".to_owned());
        AcrError::InvalidReference {
            flag: "--source",
            value: args.source.clone(),
            source: Box::new(e),
            hint,
        }
    })?;
    let reference = match parsed {
        AnyReference::OciLayout(l) => {
            return Ok(SourceResolution {
                source: ResolvedSource::Layout {
                    reference: l.to_string(),
                },
                warnings,
                notes,
            });
        }
        AnyReference::Registry(r) => r,
    };
    let n = reference.normalization();
    let normalized = n.reference.clone();
    if n.added_library || n.added_domain {
        notes.push(format!(
            "`{}` means {normalized}{}",
            args.source,
            if n.added_library {
                " (the library/ prefix of Docker Hub official images was added; az acr import would not add it and fail)"
            } else {
                ""
            }
        ));
    }
    let host = normalized
        .domain()
        .map(|d| d.as_str().to_owned())
        .unwrap_or_default();
    let image = match (normalized.digest(), normalized.tag()) {
        (Some(d), _) => format!("{}@{d}", normalized.repository()),
        (None, Some(t)) => format!("{}:{t}", normalized.repository()),
        (None, None) => format!("{}:latest", normalized.repository()),
    };
    let candidate = is_acr_candidate(&host, cloud);
    let found = match azure {
        Some(a) if candidate => {
            a.arm
                .find_registry(&normalize_login_server(&host), &a.search_order())
                .await?
        }
        _ => None,
    };
    match found {
        Some(reg) if credentials.is_none() => {
            let id = reg.resource_id()?;
            notes.push(format!(
                "{host} is the Azure registry {id}: importing with Azure AD (resourceId), not anonymously"
            ));
            let cross_tenant = cross(&id);
            return Ok(SourceResolution {
                source: ResolvedSource::Azure {
                    id,
                    registry: Some(Box::new(reg)),
                    unreadable: None,
                    image,
                    cross_tenant,
                },
                warnings,
                notes,
            });
        }
        Some(reg) => {
            notes.push(format!(
                "{host} is the Azure registry {}, named by login server with the credentials given (registryUri); drop the credentials to use Azure AD",
                reg.id
            ));
            return Ok(SourceResolution {
                source: ResolvedSource::External {
                    host,
                    image,
                    credentials,
                    unknown_acr: false,
                    registry: Some(Box::new(reg)),
                },
                warnings,
                notes,
            });
        }
        None if candidate && azure.is_some() => warnings.push(if credentials.is_some() {
            format!(
                "{host} is not a registry in any subscription you can read: the import uses the credentials given (registryUri)"
            )
        } else {
            format!(
                "{host} is not a registry in any subscription you can read: the import will be anonymous (pass --username/--password, or --registry <resource ID> if you can get read access)"
            )
        }),
        None => {}
    }
    Ok(SourceResolution {
        source: ResolvedSource::External {
            host,
            image,
            credentials,
            unknown_acr: candidate && azure.is_some(),
            registry: None,
        },
        warnings,
        notes,
    })
}

/// Builds the `importImage` body. With neither `images` nor `repositories`, the target is the
/// source's repository and tag (a digest-only source gives the bare repository, as az does:
/// the service then tags it `latest`).
pub fn import_body(
    source: &ResolvedSource,
    images: &[String],
    repositories: &[String],
    force: bool,
) -> Result<ImportImageParameters, AcrError> {
    let (image, import_source) = match source {
        ResolvedSource::Azure { id, image, .. } => (
            image.clone(),
            ImportSource {
                source_image: image.clone(),
                resource_id: Some(id.to_string()),
                registry_uri: None,
                credentials: None,
            },
        ),
        ResolvedSource::External {
            host,
            image,
            credentials,
            ..
        } => (
            image.clone(),
            ImportSource {
                source_image: image.clone(),
                resource_id: None,
                registry_uri: Some(host.clone()),
                credentials: credentials.as_ref().map(|(u, p)| ImportSourceCredentials {
                    username: u.clone(),
                    password: p.expose().to_owned(),
                }),
            },
        ),
        ResolvedSource::Layout { reference } => {
            return Err(AcrError::InvalidRequest {
                message: format!(
                    "{reference} is a local OCI layout, which the server-side import cannot read"
                ),
                hint: "use --mode client".into(),
            });
        }
    };
    for r in repositories {
        if r.contains(':') || r.contains('@') {
            return Err(AcrError::InvalidRequest {
                message: format!(
                    "--repository `{r}` takes a repository name without tag or digest"
                ),
                hint: "use --image repo:tag for tagged targets".into(),
            });
        }
    }
    for i in images {
        if i.contains('@') {
            return Err(AcrError::InvalidRequest {
                message: format!("--image `{i}` cannot name a digest"),
                hint: "use --repository for an untagged copy".into(),
            });
        }
    }
    let mut target_tags = images.to_vec();
    if images.is_empty() && repositories.is_empty() {
        target_tags.push(image.split('@').next().unwrap_or(&image).to_owned());
    }
    Ok(ImportImageParameters {
        source: import_source,
        target_tags,
        untagged_target_repositories: repositories.to_vec(),
        mode: if force {
            ImportMode::Force
        } else {
            ImportMode::NoForce
        },
    })
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineMode {
    /// Server-side when possible.
    #[default]
    Auto,
    /// Server-side only.
    Server,
    /// Client-side only.
    Client,
}

/// An engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// ARM `importImage`.
    Server,
    /// The streaming copy engine.
    Client,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Server => "server-side (ARM importImage: no bytes through this machine)",
            Engine::Client => "client-side (bytes stream through this machine)",
        })
    }
}

/// What the engine choice depends on.
#[derive(Debug, Clone, Default)]
pub struct EngineFacts {
    /// `Err(why)` when the target is not an ACR reachable through ARM.
    pub target_via_arm: Option<String>,
    /// Referrers asked for explicitly (`--include-referrers`).
    pub referrers_requested: bool,
    /// A platform filter.
    pub platform_filter: bool,
    /// An OCI layout source or target.
    pub oci_layout: bool,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// Chooses the engine and says why.
pub fn choose_engine(mode: EngineMode, facts: &EngineFacts) -> Result<(Engine, String), AcrError> {
    let mut unsupported = Vec::new();
    if facts.referrers_requested {
        unsupported.push("referrers were requested (importImage does not copy signatures, SBOMs or attestations)");
    }
    if facts.platform_filter {
        unsupported.push("a platform filter was given (importImage copies every platform)");
    }
    if facts.oci_layout {
        unsupported.push("an OCI layout is involved (the service cannot read local files)");
    }
    if facts.dry_run {
        unsupported.push("--dry-run was given (importImage has no dry run)");
    }
    match mode {
        EngineMode::Client => Ok((Engine::Client, "--mode client".into())),
        EngineMode::Server => {
            if let Some(why) = &facts.target_via_arm {
                return Err(AcrError::InvalidRequest {
                    message: format!(
                        "--mode server needs an ACR target reachable through Azure Resource Manager: {why}"
                    ),
                    hint: "use --mode client, or fix the Azure access named above".into(),
                });
            }
            if !unsupported.is_empty() {
                return Err(AcrError::InvalidRequest {
                    message: format!(
                        "--mode server cannot do this import: {}",
                        unsupported.join("; ")
                    ),
                    hint: "use --mode client (or --mode auto)".into(),
                });
            }
            Ok((Engine::Server, "--mode server".into()))
        }
        EngineMode::Auto => {
            if let Some(why) = &facts.target_via_arm {
                return Ok((
                    Engine::Client,
                    format!(
                        "the target is not an ACR reachable through Azure Resource Manager ({why})"
                    ),
                ));
            }
            if !unsupported.is_empty() {
                return Ok((Engine::Client, unsupported.join("; ")));
            }
            Ok((
                Engine::Server,
                "the target is an ACR reachable through Azure Resource Manager".into(),
            ))
        }
    }
}

/// How a server-side import ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOutcome {
    /// The operation succeeded.
    Completed,
    /// `--no-wait`: the operation runs on; `acr import status <operation_url>` follows it.
    Started {
        /// The operation URL.
        operation_url: String,
    },
}

/// Starts `importImage` and, unless `wait` is `None` (`--no-wait`), polls it to the end.
pub async fn run_server_import(
    arm: &ArmClient,
    target: &RegistryResourceId,
    body: &ImportImageParameters,
    wait: Option<&WaitOptions>,
    on_progress: &mut (dyn FnMut(&ImportProgress) + Send),
) -> Result<ServerOutcome, AcrError> {
    run_server_import_with(arm, target, body, wait, &mut |_| {}, on_progress).await
}

/// [`run_server_import`], telling `on_started` the operation URL as soon as the service
/// has accepted the import (from then on it runs whatever this process does).
pub async fn run_server_import_with(
    arm: &ArmClient,
    target: &RegistryResourceId,
    body: &ImportImageParameters,
    wait: Option<&WaitOptions>,
    on_started: &mut (dyn FnMut(&str) + Send),
    on_progress: &mut (dyn FnMut(&ImportProgress) + Send),
) -> Result<ServerOutcome, AcrError> {
    let started = tokio::time::Instant::now();
    // ARM's throttling of the POST is waited out only until the client deadline.
    let deadline = wait.and_then(|w| w.deadline).map(|d| started + d);
    match arm.begin_import_until(target, body, deadline).await? {
        ImportStart::Done => Ok(ServerOutcome::Completed),
        ImportStart::Accepted {
            operation_url,
            retry_after,
        } => {
            on_started(&operation_url);
            let Some(options) = wait else {
                return Ok(ServerOutcome::Started { operation_url });
            };
            if let Some(first) = retry_after {
                tokio::time::sleep(first.min(options.max_interval)).await;
            }
            let remaining = options
                .deadline
                .map(|d| d.saturating_sub(started.elapsed()));
            let options = WaitOptions {
                deadline: remaining.map(|r| r.max(Duration::from_millis(1))),
                ..options.clone()
            };
            arm.wait(&operation_url, &options, on_progress).await?;
            Ok(ServerOutcome::Completed)
        }
    }
}

/// The preflight input for an import.
pub fn preflight_input(
    engine: Engine,
    target: Option<&Registry>,
    source: &ResolvedSource,
    client_ip: Option<std::net::Ipv4Addr>,
) -> PreflightInput {
    PreflightInput {
        engine: match engine {
            Engine::Server => PreflightEngine::Server,
            Engine::Client => PreflightEngine::Client { client_ip },
        },
        target: target.map(Registry::network),
        source: source.preflight(),
    }
}

/// The message for a client-side `403` on `/v2/` of an Azure registry.
pub fn firewall_message(registry: &RegistryNetwork) -> String {
    format!(
        "your IP is not allowed by the registry's firewall ({}); to see the rules: az acr show --query networkRuleSet --name {}",
        registry.summary(),
        registry.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn azure_source(image: &str) -> ResolvedSource {
        ResolvedSource::Azure {
            id: "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/source1".parse().unwrap(),
            registry: None,
            unreadable: None,
            image: image.into(),
            cross_tenant: false,
        }
    }

    #[test]
    fn bodies() {
        let b = import_body(&azure_source("app:v1"), &[], &[], false).unwrap();
        assert_eq!(b.target_tags, ["app:v1"]);
        assert_eq!(b.mode, ImportMode::NoForce);
        assert!(b.source.resource_id.is_some() && b.source.registry_uri.is_none());
        let b = import_body(
            &azure_source(
                "app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ),
            &[],
            &[],
            true,
        )
        .unwrap();
        assert_eq!(b.target_tags, ["app"]);
        assert_eq!(b.mode, ImportMode::Force);
        let b = import_body(
            &azure_source("app:v1"),
            &["a:1".into(), "b:2".into()],
            &["c".into()],
            false,
        )
        .unwrap();
        assert_eq!(b.target_tags, ["a:1", "b:2"]);
        assert_eq!(b.untagged_target_repositories, ["c"]);
        let b = import_body(&azure_source("app:v1"), &[], &["c".into()], false).unwrap();
        assert!(b.target_tags.is_empty());
        assert!(import_body(&azure_source("app:v1"), &[], &["c:1".into()], false).is_err());
        let ext = ResolvedSource::External {
            host: "docker.io".into(),
            image: "library/nginx:1".into(),
            credentials: Some((Some("me".into()), Secret::new("pw-Secret"))),
            unknown_acr: false,
            registry: None,
        };
        let b = import_body(&ext, &[], &[], false).unwrap();
        assert_eq!(b.source.registry_uri.as_deref(), Some("docker.io"));
        assert_eq!(b.source.credentials.as_ref().unwrap().password, "pw-Secret");
        assert!(!format!("{b:?}").contains("pw-Secret"));
        assert!(
            import_body(
                &ResolvedSource::Layout {
                    reference: "oci:x".into()
                },
                &[],
                &[],
                false
            )
            .is_err()
        );
    }

    #[test]
    fn engine_choice() {
        let ok = EngineFacts::default();
        assert_eq!(
            choose_engine(EngineMode::Auto, &ok).unwrap().0,
            Engine::Server
        );
        assert_eq!(
            choose_engine(EngineMode::Client, &ok).unwrap().0,
            Engine::Client
        );
        let no_arm = EngineFacts {
            target_via_arm: Some("no subscription".into()),
            ..Default::default()
        };
        let (e, why) = choose_engine(EngineMode::Auto, &no_arm).unwrap();
        assert_eq!(e, Engine::Client);
        assert!(why.contains("no subscription"));
        assert!(choose_engine(EngineMode::Server, &no_arm).is_err());
        for facts in [
            EngineFacts {
                referrers_requested: true,
                ..Default::default()
            },
            EngineFacts {
                platform_filter: true,
                ..Default::default()
            },
            EngineFacts {
                oci_layout: true,
                ..Default::default()
            },
            EngineFacts {
                dry_run: true,
                ..Default::default()
            },
        ] {
            assert_eq!(
                choose_engine(EngineMode::Auto, &facts).unwrap().0,
                Engine::Client
            );
            assert!(choose_engine(EngineMode::Server, &facts).is_err());
        }
    }

    #[tokio::test]
    async fn resolution_without_arm() {
        let cloud = Cloud::azure_cloud();
        let r = resolve_source(
            None,
            &cloud,
            &SourceArgs {
                source: "nats:2.1.8".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        match &r.source {
            ResolvedSource::External { host, image, .. } => {
                assert_eq!(host, "docker.io");
                assert_eq!(image, "library/nats:2.1.8");
            }
            other => panic!("{other:?}"),
        }
        assert!(r.notes.iter().any(|n| n.contains("library/")));
        let r = resolve_source(
            None,
            &cloud,
            &SourceArgs {
                source: "localhost:5000/x".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(
            matches!(&r.source, ResolvedSource::External { host, image, .. } if host == "localhost:5000" && image == "x:latest")
        );
        let r = resolve_source(
            None,
            &cloud,
            &SourceArgs {
                source: "[::1]:5000/x:1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(matches!(&r.source, ResolvedSource::External { host, .. } if host == "[::1]:5000"));
        let r = resolve_source(
            None,
            &cloud,
            &SourceArgs {
                source: "oci:./layout:v1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(matches!(r.source, ResolvedSource::Layout { .. }));
        // --registry as a host, with the login server repeated in --source.
        let r = resolve_source(
            None,
            &cloud,
            &SourceArgs {
                source: "MyReg.azurecr.io/app:v1".into(),
                registry: Some("myreg.azurecr.io".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(matches!(&r.source, ResolvedSource::External { image, .. } if image == "app:v1"));
        assert!(r.warnings[0].contains("will be ignored"));
        // A resource ID needs ARM; credentials with one are refused.
        let id = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/source1";
        let e = resolve_source(
            None,
            &cloud,
            &SourceArgs {
                source: "app:v1".into(),
                registry: Some(id.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, AcrError::ArmUnavailable { .. }), "{e}");
        let e = resolve_source(
            None,
            &cloud,
            &SourceArgs {
                source: "app:v1".into(),
                registry: Some(id.into()),
                username: Some("u".into()),
                password: Some(Secret::new("p")),
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, AcrError::CredentialsWithResourceId { .. }),
            "{e}"
        );
        let e = resolve_source(None, &cloud, &SourceArgs { source: "app:v1".into(), registry: Some("/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.Web/sites/app".into()), ..Default::default() }).await.unwrap_err();
        assert!(e.to_string().contains("expected"), "{e}");
        let e = resolve_source(
            None,
            &cloud,
            &SourceArgs {
                source: "app:v1".into(),
                username: Some("u".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("Please provide password"));
        let e = resolve_source(
            None,
            &cloud,
            &SourceArgs {
                source: "app:v1".into(),
                registry: Some("myregistry".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, AcrError::ArmUnavailable { .. }));
    }

    #[test]
    fn candidates() {
        let cloud = Cloud::azure_cloud();
        assert!(is_acr_candidate("myreg.azurecr.io", &cloud));
        assert!(is_acr_candidate("myreg.westus.geo.azurecr.io", &cloud));
        assert!(is_acr_candidate("127.0.0.1:5000", &cloud));
        assert!(!is_acr_candidate("docker.io", &cloud));
        assert!(!is_acr_candidate("myreg.azurecr.cn", &cloud));
        assert!(is_acr_candidate(
            "myreg.azurecr.cn",
            &Cloud::azure_china_cloud()
        ));
    }
}
