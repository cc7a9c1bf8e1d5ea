//! [`Importer::mirror`]: a mirror file in, a report out.

use std::sync::Mutex;
use std::time::Instant;

use acr_import_transfer::Transport;
use acr_import_transfer::copy::Progress;
use tokio::sync::mpsc::UnboundedSender;

use super::fanout::ServerRun;
use super::lookup::Lookups;
use super::plan::Planner;
use super::report::{MirrorReport, TagAction, TagResult};
use super::schedule::{ClientRun, Ledger, assemble};
use super::{MirrorEntry, MirrorFile, Shard};
use crate::importer::azure;
use crate::importer::client::{rate_limit_policy, transport_for};
use crate::importer::plan::{ClientPlan, TargetSpec};
use crate::importer::{is_azure_name, names_azure_registry};
use crate::{
    AcrError, AzureContext, EngineMode, ImportEntry, ImportError, ImportEvent, ImportObserver,
    ImportOptions, Importer, Referrers, Registry, ResolvedSource, SourceCredentials,
};

/// An entry of a mirror with its source credentials.
#[derive(Debug, Clone)]
pub struct MirrorItem {
    /// The entry.
    pub entry: MirrorEntry,
    /// Credentials for its source registry, used for that registry only.
    pub credentials: Option<SourceCredentials>,
}

/// A mirror: the entries of a mirror file into one target registry. Every field states its
/// default ([`MirrorRequest::new`]).
#[derive(Debug, Clone)]
pub struct MirrorRequest {
    /// The target registry (`--name`): an ACR name, a login server, an ARM resource ID, any
    /// `host[:port]`, or `oci:PATH`.
    pub target: String,
    /// The target's resource group (`--resource-group`), for an ACR found by name.
    pub resource_group: Option<String>,
    /// The entries, reported in this order.
    pub items: Vec<MirrorItem>,
    /// Options for every entry; an entry's `force`, `platforms` and `referrers` win.
    pub options: ImportOptions,
    /// The part of the plan to run. Default: all of it.
    pub shard: Shard,
    /// Client-side copies running at once; their blob transfers are bounded per registry by
    /// [`ImportOptions::jobs`] for the whole batch. Default: 8.
    pub concurrency: usize,
    /// Server-side `importImage` operations running at once. Default: 8.
    pub server_concurrency: usize,
    /// Tag listings and manifest `HEAD`s in flight per registry while planning. Default: 16.
    pub lookups_per_host: usize,
}

impl MirrorRequest {
    /// A mirror of `file` into `target`, without source credentials, with default options.
    pub fn new(target: impl Into<String>, file: MirrorFile) -> Self {
        Self {
            target: target.into(),
            resource_group: None,
            items: file
                .entries
                .into_iter()
                .map(|entry| MirrorItem {
                    entry,
                    credentials: None,
                })
                .collect(),
            options: ImportOptions::default(),
            shard: Shard::ALL,
            concurrency: 8,
            server_concurrency: 8,
            lookups_per_host: 16,
        }
    }

    /// Reads each entry's `credentials-env: PREFIX` from `env` (`PREFIX_USERNAME`,
    /// `PREFIX_PASSWORD`; e.g. `|name| std::env::var(name).ok()`).
    pub fn credentials_from(
        mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ImportError> {
        for (i, item) in self.items.iter_mut().enumerate() {
            let Some(prefix) = &item.entry.options().credentials_env else {
                continue;
            };
            let Some(password) = env(&format!("{prefix}_PASSWORD")) else {
                return Err(ImportError::usage(format!(
                    "entry {} ({}): credentials-env `{prefix}` needs {prefix}_PASSWORD in the environment",
                    i + 1,
                    item.entry.source()
                )));
            };
            item.credentials = Some(SourceCredentials {
                username: Some(env(&format!("{prefix}_USERNAME")).unwrap_or_default()),
                password: acr_import_auth::Secret::new(password),
            });
        }
        Ok(self)
    }
}

/// Tags written so far (for the timeout's report), told to the caller's observer too.
struct Watch<'a> {
    inner: &'a dyn ImportObserver,
    tags: Mutex<Vec<String>>,
}

impl ImportObserver for Watch<'_> {
    fn event(&self, event: &ImportEvent) {
        if let ImportEvent::Copy(Progress::TagWritten { target }) = event {
            self.tags
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(target.clone());
        }
        self.inner.event(event);
    }
}

/// Where a mirror goes and how its entries read their sources.
struct Resolved {
    target: TargetSpec,
    /// ARM and the target registry, when the mirror runs server-side.
    server: Option<(AzureContext, Registry)>,
    /// Each entry as a single import (its source, credentials and, for an image entry, its
    /// targets) with the source as resolved, or why it could not be.
    bases: Vec<Result<(ClientPlan, ResolvedSource), String>>,
    /// The ACR login servers ARM named, for the registries' credential chain.
    acr_hosts: Vec<(String, Option<bool>)>,
}

impl Importer {
    /// Runs a mirror: plans every entry (a repository entry's tags listed once and filtered,
    /// each target tag of this shard looked up at the source and the target, all at once),
    /// then copies what changed, the whole file on one copy engine (or as `importImage`
    /// operations, server-side). An entry's failure is in its row of the report and never
    /// stops the others; `Err` means nothing could run (a bad target or entry, credentials
    /// that would mix, the timeout).
    pub async fn mirror(
        &self,
        request: &MirrorRequest,
        observer: &dyn ImportObserver,
    ) -> Result<MirrorReport, ImportError> {
        let watch = Watch {
            inner: observer,
            tags: Mutex::new(Vec::new()),
        };
        let run = self.mirror_run(request, &watch);
        match request.options.timeout {
            Some(after) => {
                tokio::time::timeout(after, run)
                    .await
                    .map_err(|_| ImportError::Timeout {
                        after,
                        tags_moved: watch.tags.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                        cause: None,
                    })?
            }
            None => run.await,
        }
    }

    async fn mirror_run(
        &self,
        request: &MirrorRequest,
        observer: &dyn ImportObserver,
    ) -> Result<MirrorReport, ImportError> {
        // The copies' progress and every rate-limit wait (the plan's look-ups' too) reach the
        // observer through one channel, closed when the work ends.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        let work = self.mirror_work(request, observer, tx);
        let forward = async {
            while let Some(p) = rx.recv().await {
                observer.event(&ImportEvent::Copy(p));
            }
        };
        tokio::join!(work, forward).0
    }

    async fn mirror_work(
        &self,
        request: &MirrorRequest,
        observer: &dyn ImportObserver,
        progress: UnboundedSender<Progress>,
    ) -> Result<MirrorReport, ImportError> {
        let started = Instant::now();
        self.check_target(&request.target)?;
        let r = self.resolve_mirror(request, observer).await?;
        // The server-side engine brings no referrers: none are looked for.
        let options = ImportOptions {
            referrers: if r.server.is_some() {
                Referrers::Skip
            } else {
                request.options.referrers
            },
            ..request.options.clone()
        };
        let transport = transport_for(
            self.config(),
            r.bases
                .iter()
                .filter_map(|b| b.as_ref().ok().map(|(p, _)| p)),
            r.acr_hosts.clone(),
            rate_limit_policy(&options, progress.downgrade()),
        )?;
        let planner = Planner {
            transport: &transport,
            target: &r.target,
            cloud: &self.config().cloud,
            shard: request.shard,
            defaults: &options,
            server: r.server.is_some(),
            lookups: Lookups::new(request.lookups_per_host),
        };
        let bases: Vec<Result<ClientPlan, String>> = r
            .bases
            .iter()
            .map(|b| b.as_ref().map(|(p, _)| p.clone()).map_err(Clone::clone))
            .collect();
        let plan = planner.plan(&request.items, &bases).await;
        let (mut entries, mut tags, groups) = assemble(plan);
        observer.event(&ImportEvent::MirrorPlanned {
            entries: entries.len(),
            tags: tags.len(),
            to_copy: tags
                .iter()
                .filter(|t| {
                    matches!(
                        t.action,
                        TagAction::Copy | TagAction::Replace | TagAction::Check
                    )
                })
                .count(),
        });
        let mut copies = Vec::new();
        let mut ledger = Ledger::new(&groups, &mut entries, &mut tags, &mut copies, observer);
        match &r.server {
            // A dry run starts no operation: what the plan would copy is what it says.
            Some(_) if options.dry_run => {
                for g in &groups {
                    let summary = ledger.summary(g);
                    ledger.finish(g, summary, TagResult::WouldCopy);
                }
            }
            Some((ctx, registry)) => {
                let run = ServerRun {
                    arm: &ctx.arm,
                    target: registry.resource_id()?,
                    concurrency: request.server_concurrency,
                    sources: r
                        .bases
                        .iter()
                        .map(|b| b.as_ref().ok().map(|(_, s)| s.clone()))
                        .collect(),
                    observer,
                };
                let imported = run.run(groups, &mut ledger).await;
                if request.options.referrers != Referrers::Skip && !imported.is_empty() {
                    let follow = ClientRun {
                        transport: &transport,
                        options: &request.options,
                        concurrency: request.concurrency,
                        progress,
                    };
                    follow.follow(imported, &mut ledger, observer).await;
                }
            }
            None => {
                let run = ClientRun {
                    transport: &transport,
                    options: &options,
                    concurrency: request.concurrency,
                    progress,
                };
                run.run(groups, &mut ledger).await;
            }
        }
        Ok(MirrorReport {
            engine: if r.server.is_some() {
                "server"
            } else {
                "client"
            }
            .to_owned(),
            target: describe(&r.target),
            shard: request.shard,
            dry_run: options.dry_run,
            entries,
            tags,
            copies,
            millis: started.elapsed().as_millis() as u64,
            requests: requests(&transport),
        })
    }

    /// The target, the engine, and each entry's source, resolved as a single import resolves
    /// them (through Azure Resource Manager for Azure registries).
    async fn resolve_mirror(
        &self,
        request: &MirrorRequest,
        observer: &dyn ImportObserver,
    ) -> Result<Resolved, ImportError> {
        let cloud = &self.config().cloud;
        let target_azure =
            !request.target.starts_with("oci:") && is_azure_name(&request.target, cloud);
        let registry_azure = request.items.iter().any(|i| {
            i.entry
                .registry()
                .is_some_and(|r| names_azure_registry(r, cloud))
        });
        let wants_server = self.wants_server(request, target_azure, observer);
        let (azure, no_arm_reason) = if target_azure || registry_azure || wants_server {
            self.connect_azure(&request.target).await
        } else {
            (None, "no entry names an Azure registry".to_owned())
        };
        let server = if wants_server {
            self.server_target(request, azure.as_ref(), &no_arm_reason, observer)
                .await?
        } else {
            None
        };
        let (target, target_registry) = match &server {
            Some(registry) => (
                TargetSpec::Registry(registry.login_server().to_owned()),
                Some(registry.clone()),
            ),
            None => {
                self.batch_target(&request.target, azure.as_ref(), &no_arm_reason)
                    .await?
            }
        };
        let mut bases = Vec::new();
        let mut acr_hosts = Vec::new();
        for item in &request.items {
            match self
                .plan_entry(&import_entry(item), azure.as_ref(), &target, observer)
                .await
            {
                Ok((plan, source)) => {
                    for host in azure::acr_hosts(target_registry.as_ref(), &source) {
                        if !acr_hosts.contains(&host) {
                            acr_hosts.push(host);
                        }
                    }
                    bases.push(Ok((plan, source)));
                }
                Err(e) if e.is_invalid_request() => return Err(e),
                Err(e) => bases.push(Err(match e.hint() {
                    Some(h) => format!("{e} ({h})"),
                    None => e.to_string(),
                })),
            }
        }
        let server = match (server, azure) {
            (Some(registry), Some(ctx)) => Some((ctx, registry)),
            _ => None,
        };
        Ok(Resolved {
            target,
            server,
            bases,
            acr_hosts,
        })
    }

    /// Whether to try the server-side engine: asked for (`--mode server`), or by default when
    /// the target is an Azure registry and no entry needs the client-side engine (a platform
    /// filter, referrers asked for, an OCI layout, a dry run).
    fn wants_server(
        &self,
        request: &MirrorRequest,
        target_azure: bool,
        observer: &dyn ImportObserver,
    ) -> bool {
        let o = &request.options;
        let client_only = o.dry_run
            || o.referrers == Referrers::Requested
            || !o.platforms.is_empty()
            || request.items.iter().any(|i| {
                let e = i.entry.options();
                !e.platforms.is_empty()
                    || e.referrers == Some(true)
                    || i.entry.source().starts_with("oci:")
            });
        match o.engine {
            EngineMode::Client => false,
            EngineMode::Server => true,
            EngineMode::Auto if target_azure && client_only => {
                observer.event(&ImportEvent::Note(
                    "mirroring client-side: an entry asks for what importImage does not do (a platform filter, referrers, an OCI layout, or a dry run)".to_owned(),
                ));
                false
            }
            EngineMode::Auto => target_azure,
        }
    }

    /// The target registry through ARM for the server-side engine; `None` (client-side, said
    /// in a note) when ARM cannot give it and the engine was not asked for.
    async fn server_target(
        &self,
        request: &MirrorRequest,
        azure: Option<&AzureContext>,
        no_arm_reason: &str,
        observer: &dyn ImportObserver,
    ) -> Result<Option<Registry>, ImportError> {
        let found = match azure {
            Some(ctx) => ctx
                .resolve_target(&request.target, request.resource_group.as_deref())
                .await
                .map_err(|e| format!("looking up {} failed: {e}", request.target)),
            None => Err(no_arm_reason.to_owned()),
        };
        match found {
            Ok(registry) => {
                observer.event(&ImportEvent::Note(
                    "mirroring server-side: each copy is an importImage operation of the target ACR".to_owned(),
                ));
                if request.options.referrers != Referrers::Skip {
                    observer.event(&ImportEvent::Note(
                        "then the signatures, attestations and SBOMs (referrers and digest tags) of each image imported are copied from this machine where the target lacks them (importImage is not documented to copy them)".to_owned(),
                    ));
                }
                Ok(Some(registry))
            }
            Err(why) if request.options.engine == EngineMode::Server => {
                Err(AcrError::InvalidRequest {
                    message: format!(
                        "--mode server needs the target through Azure Resource Manager: {why}"
                    ),
                    hint: "use --mode client, or configure Azure access".into(),
                }
                .into())
            }
            Err(why) => {
                observer.event(&ImportEvent::Note(format!("mirroring client-side: {why}")));
                Ok(None)
            }
        }
    }
}

/// An entry as a single import (a repository entry's targets are chosen later).
fn import_entry(item: &MirrorItem) -> ImportEntry {
    let (images, repositories) = match &item.entry {
        MirrorEntry::Image(i) => (i.images.clone(), i.repositories.clone()),
        MirrorEntry::Repository(_) => (Vec::new(), Vec::new()),
    };
    ImportEntry {
        source: item.entry.source().to_owned(),
        registry: item.entry.registry().map(str::to_owned),
        images,
        repositories,
        credentials: item.credentials.clone(),
    }
}

fn describe(target: &TargetSpec) -> String {
    match target {
        TargetSpec::Registry(h) => h.clone(),
        TargetSpec::Layout(p) => format!("oci:{}", p.display()),
    }
}

fn requests(transport: &Transport) -> std::collections::BTreeMap<String, u64> {
    transport
        .stats()
        .into_iter()
        .map(|(host, s)| (host, s.total()))
        .filter(|(_, n)| *n > 0)
        .collect()
}
