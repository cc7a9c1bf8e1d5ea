//! The import as one library call: [`Importer::import`] takes an [`ImportRequest`] (source,
//! targets, options, engine choice) and returns an [`ImportReport`]; [`Importer::import_batch`]
//! runs many entries through one transport and one copy engine and returns an outcome per
//! entry. Progress goes to an [`ImportObserver`].
//!
//! What happens, in order: the target and the source are resolved (through Azure Resource
//! Manager when they are Azure registries and an Azure AD credential is configured), the
//! engine is chosen (server-side `importImage` when the target is an ACR reachable through ARM
//! and the request is one the service does; the client-side copy engine of
//! `acr-import-transfer` otherwise), the network preflight is asked, and the engine runs.
//!
//! ```no_run
//! use acr_import_acr::{Cloud, ImportRequest, Importer, ImporterConfig};
//!
//! # async fn run() -> Result<(), acr_import_acr::ImportError> {
//! let importer = Importer::new(ImporterConfig::new(Cloud::azure_cloud()));
//! let request = ImportRequest::new("myregistry", "docker.io/library/hello-world:latest")
//!     .image("hello-world:latest");
//! let report = importer.import(&request, &()).await?;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```

mod azure;
mod batch;
mod client;
mod error;
mod observer;
mod plan;
mod report;
mod request;
mod server;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acr_import_auth::{
    AcrAudience, AzureSettings, Credential, CredentialChain, Secret, StaticCredentials,
};
use acr_import_transfer::{TransferError, Transport, TransportBuilder};

pub use error::ImportError;
pub use observer::{ImportEvent, ImportObserver};
pub use report::{
    BatchReport, ClientReport, EntryOutcome, FollowUp, ImportReport, ServerReport, TargetSummary,
};
pub use request::{
    BatchFile, BatchFileEntry, BatchRequest, ImportEntry, ImportOptions, ImportRequest, Referrers,
    SourceCredentials,
};

use crate::import::{
    AzureContext, Engine, EngineFacts, EngineMode, ResolvedSource, SourceArgs, choose_engine,
    preflight_input, resolve_source,
};
use crate::preflight::{Unreadable, evaluate};
use crate::{AcrError, ArmClient, Cloud, Preflight, Registry, RegistryResourceId, RegistryTarget};
use crate::{Verdict, WaitOptions};
use plan::{ClientPlan, TargetSpec, plan};

/// Where imports run and with what. Every field states its default ([`ImporterConfig::new`]).
#[derive(Debug, Clone)]
pub struct ImporterConfig {
    /// The Azure cloud (ARM endpoint, Azure AD authority, login-server suffix).
    pub cloud: Cloud,
    /// A PEM CA bundle trusted in addition to the platform's roots. Default: none.
    pub ca_file: Option<PathBuf>,
    /// Hosts that may be reached over plain http or with an unverified certificate
    /// (loopback hosts never need this). Default: none.
    pub insecure_registries: Vec<String>,
    /// The subscription (ID or name) of the target and of lookups. Default: the only one the
    /// identity sees.
    pub subscription: Option<String>,
    /// Credentials for the target registry, before the Docker configuration and Azure AD.
    /// Default: none.
    pub target_credential: Option<Credential>,
    /// This machine's public IPv4 address, for the client-side preflight. Default: unknown.
    pub client_ip: Option<Ipv4Addr>,
    /// The audience of Azure AD tokens exchanged at ACR login servers. Default:
    /// `ACR_IMPORT_ACR_AUDIENCE`, else [`AcrAudience::Auto`] (the ACR audience; the ARM one
    /// only where the registry accepts it).
    pub acr_audience: Option<AcrAudience>,
    /// One Azure AD credential (and token cache) for ARM and the registries, made on first
    /// use and shared by clones of this configuration.
    session: azure::SharedSession,
}

impl ImporterConfig {
    /// The defaults for `cloud`.
    pub fn new(cloud: Cloud) -> Self {
        Self {
            cloud,
            ca_file: None,
            insecure_registries: Vec::new(),
            subscription: None,
            target_credential: None,
            client_ip: None,
            acr_audience: None,
            session: azure::SharedSession::default(),
        }
    }

    /// The defaults, with what the environment sets: target credentials from
    /// `ACR_IMPORT_TARGET_USERNAME` / `ACR_IMPORT_TARGET_PASSWORD`, the client IP from
    /// `ACR_IMPORT_CLIENT_IP`, the subscription from `AZURE_SUBSCRIPTION_ID`.
    pub fn from_env(cloud: Cloud) -> Self {
        let var = |k: &str| std::env::var(k).ok();
        let mut config = Self::new(cloud);
        if let (Some(user), Some(pass)) = (
            var("ACR_IMPORT_TARGET_USERNAME"),
            var("ACR_IMPORT_TARGET_PASSWORD"),
        ) {
            config.target_credential =
                Some(Credential::from_username_password(user, Secret::new(pass)));
        }
        config.client_ip = var("ACR_IMPORT_CLIENT_IP").and_then(|v| v.parse().ok());
        config.subscription = var("AZURE_SUBSCRIPTION_ID").filter(|s| !s.is_empty());
        config
    }

    /// The registry transport: `--ca-file`, `--insecure-registry`, and the environment's
    /// credential chain with `explicit` first (then the Docker configuration, then Azure AD
    /// for ACR login servers).
    pub fn transport(&self, explicit: StaticCredentials) -> Result<Transport, TransferError> {
        self.transport_with(explicit, Vec::new())
    }

    /// [`ImporterConfig::transport`] knowing `acr_hosts` as ACR login servers (from ARM), each
    /// with whether it accepts ARM-audience tokens. Azure AD tokens come from the run's one
    /// Azure AD credential, the one the ARM client uses.
    pub fn transport_with(
        &self,
        explicit: StaticCredentials,
        acr_hosts: Vec<(String, Option<bool>)>,
    ) -> Result<Transport, TransferError> {
        self.transport_builder_with(explicit, acr_hosts).build()
    }

    /// [`ImporterConfig::transport_with`], still to be built (to set more: a rate-limit
    /// policy).
    pub fn transport_builder_with(
        &self,
        explicit: StaticCredentials,
        acr_hosts: Vec<(String, Option<bool>)>,
    ) -> TransportBuilder {
        let suffix = self.cloud.login_server_suffix.clone();
        let aad = self.aad_for_registries();
        let audience = self.acr_audience;
        let mut builder = Transport::builder().credentials_from(move |http| {
            let azure = AzureSettings {
                aad,
                audience,
                login_servers: acr_hosts,
            };
            Arc::new(CredentialChain::from_env_with(
                http, explicit, &suffix, azure,
            ))
        });
        if let Some(ca) = &self.ca_file {
            builder = builder.ca_file(ca);
        }
        for h in &self.insecure_registries {
            builder = builder.insecure_host(h.clone());
        }
        builder
    }

    /// An ARM client signed in with the environment's Azure AD credential (the run's one), or
    /// why there is none.
    pub fn arm_client(&self) -> Result<ArmClient, String> {
        let session = self.session();
        let http = session.http.clone()?;
        let chain = session.aad.clone()?;
        if chain.source().is_none() {
            return Err("no Azure AD credential is configured (AZURE_* variables, a managed identity, or az login)".into());
        }
        let mut arm =
            ArmClient::new(&self.cloud, http, Arc::new(chain)).map_err(|e| e.to_string())?;
        if let Ok(v) = std::env::var(crate::arm::API_VERSION_ENV)
            && !v.is_empty()
        {
            arm = arm.with_api_version(v);
        }
        Ok(arm)
    }
}

/// What the preflight of a request says.
#[derive(Debug, Clone)]
pub enum PreflightOutcome {
    /// The verdict.
    Verdict(Box<Preflight>),
    /// No verdict: Azure Resource Manager is not available, for this reason.
    Unavailable(String),
}

/// Runs imports. Cheap to make; holds no connection between calls.
#[derive(Debug, Clone)]
pub struct Importer {
    config: ImporterConfig,
}

/// A request resolved up to the engine choice.
struct Prepared {
    azure: Option<AzureContext>,
    /// Why ARM is not used for the target (when it is not).
    no_arm_reason: String,
    target_registry: Option<Registry>,
    source: ResolvedSource,
    engine: Engine,
    verdict: Option<Preflight>,
}

/// The client-side plan of `entry`, its source resolved.
fn client_plan(
    entry: &ImportEntry,
    source: &ResolvedSource,
    target: &TargetSpec,
    observer: &dyn ImportObserver,
) -> Result<ClientPlan, ImportError> {
    if let ResolvedSource::Layout { .. } = source {
        return plan(
            &entry.source,
            &entry.images,
            &entry.repositories,
            None,
            target,
            observer,
        );
    }
    let host = source.pull_host().ok_or_else(|| ImportError::usage(format!(
        "the source {} cannot be read client-side: its login server is unknown (you cannot read the registry through Azure Resource Manager)",
        entry.source
    )))?;
    let image = source.image().unwrap_or_default();
    let creds = match source {
        ResolvedSource::External {
            credentials: Some((u, p)),
            ..
        } => Some(SourceCredentials {
            username: Some(u.clone().unwrap_or_default()),
            password: p.clone(),
        }),
        _ => None,
    };
    let mut plan = plan(
        &format!("{host}/{image}"),
        &entry.images,
        &entry.repositories,
        creds.as_ref(),
        target,
        observer,
    )?;
    plan.label = entry.source.clone();
    Ok(plan)
}

/// `no_wait` does not apply to the client-side engine: says so.
fn warn_no_wait(options: &ImportOptions, observer: &dyn ImportObserver) {
    if options.no_wait {
        observer.event(&ImportEvent::Warning(
            "--no-wait applies to server-side imports only; this import runs client-side and waits"
                .into(),
        ));
    }
}

/// Whether a source `--registry` names an Azure registry by name or resource ID (which only
/// ARM can resolve), not by host.
fn names_azure_registry(registry: &str, cloud: &Cloud) -> bool {
    is_azure_name(registry, cloud) && !registry.contains('.')
        || RegistryResourceId::looks_like(registry)
}

/// Whether `--name` (or `--registry`) needs or can use ARM.
fn is_azure_name(value: &str, cloud: &Cloud) -> bool {
    if RegistryResourceId::looks_like(value) {
        return true;
    }
    RegistryTarget::parse(value, cloud).is_ok_and(|t| t.acr_name().is_some())
}

impl Importer {
    /// An importer with this configuration.
    pub fn new(config: ImporterConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &ImporterConfig {
        &self.config
    }

    /// Checks a target name (`--name`) without looking anything up: an ARM resource ID,
    /// `oci:PATH`, or a registry name, login server or host.
    pub fn check_target(&self, name: &str) -> Result<(), ImportError> {
        if RegistryResourceId::looks_like(name) {
            name.parse::<RegistryResourceId>()?;
        } else if !name.starts_with("oci:") {
            RegistryTarget::parse(name, &self.config.cloud)
                .map_err(|e| ImportError::usage(e.to_string()))?;
        }
        Ok(())
    }

    /// ARM, when the environment has an Azure AD credential and a subscription; otherwise
    /// why not. Without a subscription given, the one a resource-ID `target` names, or the
    /// Azure CLI's default one, is used.
    async fn connect_azure(&self, target: &str) -> (Option<AzureContext>, String) {
        let subscription = self
            .config
            .subscription
            .clone()
            .or_else(|| self.config.implied_subscription(target));
        let reason = match self.config.arm_client() {
            Ok(arm) => {
                match AzureContext::connect(arm, self.config.cloud.clone(), subscription.as_deref())
                    .await
                {
                    Ok(ctx) => return (Some(ctx), String::new()),
                    Err(e) => e.to_string(),
                }
            }
            Err(why) => why,
        };
        tracing::info!("Azure Resource Manager unavailable: {reason}");
        (None, reason)
    }

    /// Resolves the target and the source, chooses the engine and asks the preflight.
    async fn prepare(
        &self,
        request: &ImportRequest,
        preflight_only: bool,
        observer: &dyn ImportObserver,
    ) -> Result<Prepared, ImportError> {
        let cloud = &self.config.cloud;
        let name = &request.target;
        let mode = request.options.engine;
        // Azure Resource Manager: needed for Azure names, wanted for ACR targets (server-side
        // import, preflight), optional otherwise.
        let target_is_layout = name.starts_with("oci:");
        let target_azure = !target_is_layout && is_azure_name(name, cloud);
        let registry_azure = request
            .entry
            .registry
            .as_deref()
            .is_some_and(|r| names_azure_registry(r, cloud));
        let (azure, mut no_arm_reason) = if target_azure || registry_azure || preflight_only {
            self.connect_azure(name).await
        } else {
            (None, "the target is not an Azure registry name".into())
        };

        // The target: through ARM when possible.
        let mut target_registry = None;
        if let (Some(ctx), true) = (&azure, target_azure) {
            match ctx
                .resolve_target(name, request.resource_group.as_deref())
                .await
            {
                Ok(r) => target_registry = Some(r),
                Err(e) if mode == EngineMode::Server || preflight_only => {
                    // A target named by resource ID that the caller may not read: its
                    // permissions there may still say what is missing.
                    if e.unreadable() == Some(Unreadable::Forbidden)
                        && let Ok(id) = name.parse::<RegistryResourceId>()
                    {
                        let v = azure::unreadable_target_verdict(ctx, &id).await;
                        if v.will_fail() {
                            return Err(ImportError::WillFail(Box::new(v)));
                        }
                    }
                    return Err(e.into());
                }
                Err(e) => no_arm_reason = format!("looking up {name} failed: {e}"),
            }
        }
        if mode == EngineMode::Server && target_registry.is_none() {
            return Err(AcrError::InvalidRequest {
                message: format!(
                    "--mode server needs the target through Azure Resource Manager: {no_arm_reason}"
                ),
                hint: "use --mode client, or configure Azure access".into(),
            }
            .into());
        }

        let credentials = request.entry.credentials.as_ref();
        let source_args = SourceArgs {
            source: request.entry.source.clone(),
            registry: request.entry.registry.clone(),
            username: credentials.and_then(|c| c.username.clone()),
            password: credentials.map(|c| c.password.clone()),
        };
        let resolution = resolve_source(azure.as_ref(), cloud, &source_args).await?;
        for w in resolution.warnings {
            observer.event(&ImportEvent::Warning(w));
        }
        for n in resolution.notes {
            observer.event(&ImportEvent::Note(n));
        }

        let options = &request.options;
        let facts = EngineFacts {
            target_via_arm: target_registry.is_none().then(|| no_arm_reason.clone()),
            referrers_requested: options.referrers == Referrers::Requested,
            platform_filter: !options.platforms.is_empty(),
            oci_layout: target_is_layout
                || matches!(resolution.source, ResolvedSource::Layout { .. }),
            dry_run: options.dry_run,
        };
        let (engine, why) = choose_engine(mode, &facts)?;
        if !preflight_only && (target_azure || engine == Engine::Server) {
            let short = match engine {
                Engine::Server => "server-side",
                Engine::Client => "client-side",
            };
            observer.event(&ImportEvent::Note(format!("importing {short}: {why}")));
            if engine == Engine::Server {
                observer.event(&ImportEvent::Note(server::follow_up_plan(options)));
            }
        }
        // The preflight: network rules and policies, then the caller's permissions.
        let verdict = match &azure {
            Some(ctx) => {
                let network = evaluate(&preflight_input(
                    engine,
                    target_registry.as_ref(),
                    &resolution.source,
                    self.config.client_ip,
                ));
                let permissions = azure::permissions_verdict(
                    &self.config,
                    ctx,
                    engine,
                    target_registry.as_ref(),
                    request,
                    &resolution.source,
                )
                .await;
                let audience = azure::arm_audience_verdict(
                    &self.config,
                    engine,
                    target_registry.as_ref(),
                    &resolution.source,
                )
                .await;
                Some(network.merge(permissions).merge(audience))
            }
            None => None,
        };
        Ok(Prepared {
            azure,
            no_arm_reason,
            target_registry,
            source: resolution.source,
            engine,
            verdict,
        })
    }

    /// What the network preflight says about `request`, without importing anything.
    pub async fn preflight(
        &self,
        request: &ImportRequest,
        observer: &dyn ImportObserver,
    ) -> Result<PreflightOutcome, ImportError> {
        self.check_target(&request.target)?;
        let p = self.prepare(request, true, observer).await?;
        Ok(match p.verdict {
            Some(v) => PreflightOutcome::Verdict(Box::new(v)),
            None => PreflightOutcome::Unavailable(p.no_arm_reason),
        })
    }

    /// Runs one import to its end (or, server-side with `no_wait`, to its start).
    pub async fn import(
        &self,
        request: &ImportRequest,
        observer: &dyn ImportObserver,
    ) -> Result<ImportReport, ImportError> {
        self.check_target(&request.target)?;
        let p = self.prepare(request, false, observer).await?;
        if let Some(v) = &p.verdict {
            match v.verdict {
                Verdict::WillFail => return Err(ImportError::WillFail(Box::new(v.clone()))),
                Verdict::CannotTell => {
                    for u in &v.unknowns {
                        observer.event(&ImportEvent::Warning(format!(
                            "preflight cannot tell: {}: {}",
                            u.registry, u.reason
                        )));
                    }
                }
                Verdict::WillWork => {
                    for n in &v.notes {
                        tracing::info!("preflight: {n}");
                    }
                }
            }
        }
        match p.engine {
            Engine::Server => {
                let (Some(ctx), Some(target)) = (&p.azure, &p.target_registry) else {
                    return Err(AcrError::ArmUnavailable {
                        reason: p.no_arm_reason,
                    }
                    .into());
                };
                server::run(&self.config, ctx, target, &p.source, request, observer)
                    .await
                    .map(ImportReport::Server)
            }
            Engine::Client => self
                .import_client(request, p, observer)
                .await
                .map(|c| ImportReport::Client(Box::new(c))),
        }
    }

    /// The client-side engine for one resolved request.
    async fn import_client(
        &self,
        request: &ImportRequest,
        p: Prepared,
        observer: &dyn ImportObserver,
    ) -> Result<ClientReport, ImportError> {
        warn_no_wait(&request.options, observer);
        let name = &request.target;
        let target = match &p.target_registry {
            Some(r) => TargetSpec::Registry(r.login_server().to_owned()),
            None if RegistryResourceId::looks_like(name) => {
                return Err(AcrError::ArmUnavailable {
                    reason: format!("the target is named by resource ID ({})", p.no_arm_reason),
                }
                .into());
            }
            None => TargetSpec::parse(name, &self.config.cloud)?,
        };
        let plan = client_plan(&request.entry, &p.source, &target, observer)?;
        let firewall = p.target_registry.as_ref().map(Registry::network);
        let run = client::Run {
            config: &self.config,
            options: &request.options,
            concurrency: 1,
            observer,
            acr_hosts: azure::acr_hosts(p.target_registry.as_ref(), &p.source),
        };
        let mut results = run.execute(vec![(0, plan)]).await?;
        let (_, _, result) = results.remove(0);
        result.map_err(|e| match (e, &firewall) {
            (
                ImportError::Copy {
                    side,
                    registry,
                    source,
                    hint: None,
                },
                Some(net),
            ) if source.status() == Some(403) => ImportError::Copy {
                side,
                registry,
                source,
                hint: Some(crate::import::firewall_message(net)),
            },
            (e, _) => e,
        })
    }

    /// Follows a server-side import started with `no_wait` (its operation URL) to its end.
    pub async fn wait_operation(
        &self,
        operation_url: &str,
        timeout: Option<Duration>,
        observer: &dyn ImportObserver,
    ) -> Result<(), ImportError> {
        let arm = self
            .config
            .arm_client()
            .map_err(|why| AcrError::ArmUnavailable {
                reason: format!("polling an import operation needs it ({why})"),
            })?;
        let options = WaitOptions {
            deadline: timeout,
            ..WaitOptions::default()
        };
        let mut progress =
            |p: &crate::ImportProgress| observer.event(&ImportEvent::Server(p.clone()));
        arm.wait(operation_url, &options, &mut progress).await?;
        observer.event(&ImportEvent::Server(server::succeeded()));
        Ok(())
    }
}
