//! [`Importer::mirror`]: a mirror file in, a report out.

use std::time::Instant;

use acr_import_transfer::Transport;

use super::fanout::ServerRun;
use super::lookup::Lookups;
use super::plan::Planner;
use super::report::{MirrorReport, TagAction};
use super::schedule::{ClientRun, Ledger, assemble};
use super::{MirrorEntry, MirrorFile, Shard};
use crate::importer::client::transport_for;
use crate::importer::is_azure_name;
use crate::importer::plan::{ClientPlan, TargetSpec, plan};
use crate::{
    AcrError, AzureContext, EngineMode, ImportError, ImportEvent, ImportObserver, ImportOptions,
    Importer, Referrers, Registry, SourceCredentials,
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
    /// [`ImportOptions::jobs`] for the whole batch. Default: 16.
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
            concurrency: 16,
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

impl Importer {
    /// Runs a mirror: plans every entry (a repository entry's tags listed once and filtered,
    /// each target tag of this shard looked up at the source and the target, all at once),
    /// then copies what changed, the whole file on one copy engine. An entry's failure is in
    /// its row of the report and never stops the others; `Err` means nothing could run (a bad
    /// target, the timeout).
    pub async fn mirror(
        &self,
        request: &MirrorRequest,
        observer: &dyn ImportObserver,
    ) -> Result<MirrorReport, ImportError> {
        let run = self.mirror_run(request, observer);
        match request.options.timeout {
            Some(after) => tokio::time::timeout(after, run)
                .await
                .map_err(|_| ImportError::Timeout { after })?,
            None => run.await,
        }
    }

    async fn mirror_run(
        &self,
        request: &MirrorRequest,
        observer: &dyn ImportObserver,
    ) -> Result<MirrorReport, ImportError> {
        let started = Instant::now();
        self.check_target(&request.target)?;
        let server = self.mirror_engine(request, observer).await?;
        let target = match &server {
            Some((_, registry)) => TargetSpec::Registry(registry.login_server().to_owned()),
            None => TargetSpec::parse(&request.target, &self.config().cloud)?,
        };
        // The server-side engine brings no referrers: none are looked for.
        let options = ImportOptions {
            referrers: if server.is_some() {
                Referrers::Skip
            } else {
                request.options.referrers
            },
            ..request.options.clone()
        };
        // Each entry as a single import: its source, credentials and (image entries) targets.
        let bases: Vec<Result<ClientPlan, String>> = request
            .items
            .iter()
            .map(|item| base_plan(item, &target, observer))
            .collect();
        let planned: Vec<ClientPlan> = bases.iter().filter_map(|b| b.clone().ok()).collect();
        // A target found through ARM is an ACR for Azure AD, whatever its host looks like.
        let acr_hosts = server
            .iter()
            .map(|(_, r)| {
                (
                    r.login_server().to_owned(),
                    Some(r.accepts_arm_audience_tokens()),
                )
            })
            .collect();
        let transport = transport_for(self.config(), &planned, acr_hosts)?;
        let planner = Planner {
            transport: &transport,
            target: &target,
            cloud: &self.config().cloud,
            shard: request.shard,
            defaults: &options,
            server: server.is_some(),
            lookups: Lookups::new(request.lookups_per_host),
        };
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
        match &server {
            Some((ctx, registry)) => {
                let run = ServerRun {
                    arm: &ctx.arm,
                    target: registry.resource_id()?,
                    concurrency: request.server_concurrency,
                    credentials: request
                        .items
                        .iter()
                        .map(|i| i.credentials.clone())
                        .collect(),
                    observer,
                };
                run.run(groups, &mut ledger).await;
            }
            None => {
                let run = ClientRun {
                    transport: &transport,
                    options: &options,
                    concurrency: request.concurrency,
                    observer,
                };
                run.run(groups, &mut ledger).await;
            }
        }
        Ok(MirrorReport {
            engine: if server.is_some() { "server" } else { "client" }.to_owned(),
            target: describe(&target),
            shard: request.shard,
            dry_run: options.dry_run,
            entries,
            tags,
            copies,
            millis: started.elapsed().as_millis() as u64,
            requests: requests(&transport),
        })
    }

    /// The server-side engine (ARM and the target registry) when the mirror runs there: when
    /// asked (`--mode server`), or by default when the target is an ACR reachable through
    /// ARM and no entry needs the client-side engine (a platform filter, referrers asked for,
    /// an OCI layout, a dry run). `None`: client-side.
    async fn mirror_engine(
        &self,
        request: &MirrorRequest,
        observer: &dyn ImportObserver,
    ) -> Result<Option<(AzureContext, Registry)>, ImportError> {
        let mode = request.options.engine;
        if mode == EngineMode::Client {
            return Ok(None);
        }
        let cloud = &self.config().cloud;
        let target_azure =
            !request.target.starts_with("oci:") && is_azure_name(&request.target, cloud);
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
        if mode == EngineMode::Auto && (!target_azure || client_only) {
            if target_azure {
                observer.event(&ImportEvent::Note(
                    "mirroring client-side: an entry asks for what importImage does not do (a platform filter, referrers, an OCI layout, or a dry run)".to_owned(),
                ));
            }
            return Ok(None);
        }
        let (azure, why) = self.connect_azure(&request.target).await;
        let found = match azure {
            Some(ctx) => match ctx
                .resolve_target(&request.target, request.resource_group.as_deref())
                .await
            {
                Ok(registry) => Ok((ctx, registry)),
                Err(e) => Err(format!("looking up {} failed: {e}", request.target)),
            },
            None => Err(why),
        };
        match (found, mode) {
            (Ok(found), _) => {
                observer.event(&ImportEvent::Note(
                    "mirroring server-side: each copy is an importImage operation of the target ACR (referrers are not copied that way; --mode client brings them)".to_owned(),
                ));
                Ok(Some(found))
            }
            (Err(why), EngineMode::Server) => Err(AcrError::InvalidRequest {
                message: format!(
                    "--mode server needs the target through Azure Resource Manager: {why}"
                ),
                hint: "use --mode client, or configure Azure access".into(),
            }
            .into()),
            (Err(why), _) => {
                observer.event(&ImportEvent::Note(format!("mirroring client-side: {why}")));
                Ok(None)
            }
        }
    }
}

/// An entry as a single import (a repository entry's targets are chosen later).
fn base_plan(
    item: &MirrorItem,
    target: &TargetSpec,
    observer: &dyn ImportObserver,
) -> Result<ClientPlan, String> {
    let credentials = item.credentials.as_ref();
    let planned = match &item.entry {
        MirrorEntry::Image(i) => plan(
            &i.source,
            i.registry.as_deref(),
            &i.images,
            &i.repositories,
            credentials,
            target,
            observer,
        ),
        MirrorEntry::Repository(r) => plan(
            &r.source,
            r.registry.as_deref(),
            &[],
            &[],
            credentials,
            target,
            observer,
        ),
    };
    planned.map_err(|e| match e.hint() {
        Some(h) => format!("{e} ({h})"),
        None => e.to_string(),
    })
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
