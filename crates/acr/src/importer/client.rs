//! The client-side engine for resolved plans: one transport and one copier for all of them.

use acr_import_auth::StaticCredentials;
use acr_import_transfer::copy::Progress;
use std::sync::Arc;

use acr_import_transfer::{
    Copier, CopyOptions, RateLimitPolicy, RateLimitWait, TransferError, Transport,
};
use futures_util::StreamExt;
use tokio::sync::mpsc::WeakUnboundedSender;

use super::plan::{ClientPlan, SourceSpec, TargetSpec};
use super::{
    ClientReport, ImportError, ImportEvent, ImportObserver, ImportOptions, ImporterConfig,
    Referrers, TargetSummary,
};
use crate::Side;

/// One run of the copy engine over some plans.
pub(crate) struct Run<'a> {
    pub(crate) config: &'a ImporterConfig,
    pub(crate) options: &'a ImportOptions,
    /// Plans copying at once.
    pub(crate) concurrency: usize,
    pub(crate) observer: &'a dyn ImportObserver,
    /// ACR login servers known through ARM, with whether each accepts ARM-audience tokens.
    pub(crate) acr_hosts: Vec<(String, Option<bool>)>,
}

/// `(index, label, outcome)` of each plan.
pub(crate) type Outcomes = Vec<(usize, String, Result<ClientReport, ImportError>)>;

impl Run<'_> {
    /// The transport of the run; a rate-limit wait's countdown goes to `progress` (held
    /// weakly: the progress channel closes when the copier is done).
    fn transport<'p>(
        &self,
        plans: impl Iterator<Item = &'p ClientPlan> + Clone,
        progress: WeakUnboundedSender<Progress>,
    ) -> Result<Transport, ImportError> {
        // Each entry's source credentials serve its source repository: two entries on one
        // host keep their own, and one repository cannot be read with two.
        let mut explicit = StaticCredentials::new();
        let mut owners: Vec<(&str, &str, &str)> = Vec::new();
        for p in plans.clone() {
            let Some((host, repository, c)) = &p.credentials else {
                continue;
            };
            if let Some(before) = explicit.insert_for_repository(host, repository, c.clone())
                && before != *c
            {
                let first = owners
                    .iter()
                    .find(|(h, r, _)| h == host && r == repository)
                    .map_or("another entry", |(_, _, label)| label);
                return Err(ImportError::usage_with_hint(
                    format!(
                        "`{}` and `{first}` read {host}/{repository} with different credentials",
                        p.label
                    ),
                    "give the entries that read one repository the same credentials",
                ));
            }
            owners.push((host, repository, &p.label));
        }
        if let Some(c) = &self.config.target_credential {
            for p in plans.clone() {
                if let TargetSpec::Registry(h) = &p.target {
                    explicit.insert(h, c.clone());
                }
            }
        }
        let policy = RateLimitPolicy {
            wait: self.options.wait_rate_limit,
            on_wait: Some(Arc::new(move |w: &RateLimitWait| {
                if let Some(tx) = progress.upgrade() {
                    let _ = tx.send(Progress::RateLimitWait(w.clone()));
                }
            })),
            ..RateLimitPolicy::default()
        };
        self.config
            .transport_builder_with(explicit, self.acr_hosts.clone())
            .rate_limit(policy)
            .build()
            .map_err(|e| ImportError::copy(Side::Unknown, None, e))
    }

    fn copy_options(&self) -> CopyOptions {
        let o = self.options;
        CopyOptions {
            force: o.force,
            platforms: o.platforms.clone(),
            referrers: o.referrers != Referrers::Skip,
            foreign_layers: o.foreign_layers,
            jobs: o.jobs.max(1),
            dry_run: o.dry_run,
            verify: o.verify_blobs,
            ..CopyOptions::default()
        }
    }

    /// Copies every plan, `concurrency` at a time, and gives each its outcome (in the order
    /// they finish). `Err` only when nothing could start or the timeout passed.
    pub(crate) async fn execute(
        &self,
        plans: Vec<(usize, ClientPlan)>,
    ) -> Result<Outcomes, ImportError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        let transport = self.transport(plans.iter().map(|(_, p)| p), tx.downgrade())?;
        let options = CopyOptions {
            progress: Some(Arc::new(tx)),
            ..self.copy_options()
        };
        let observer = self.observer;
        let plans = &plans;
        let transport = &transport;
        // The copier (and with it the progress sender) lives inside `work`: when `work` ends
        // or is dropped at the timeout, the forwarding below ends too.
        let work = async move {
            let copier = Copier::new(options);
            let copier = &copier;
            futures_util::stream::iter(plans.iter().map(|(i, p)| async move {
                let i = *i;
                let result = run_one(p, transport, copier).await;
                observer.event(&ImportEvent::EntryFinished {
                    index: i,
                    label: p.label.clone(),
                    ok: result.is_ok(),
                });
                (i, p.label.clone(), result)
            }))
            .buffer_unordered(self.concurrency)
            .collect::<Outcomes>()
            .await
        };
        let timed = async {
            match self.options.timeout {
                Some(after) => tokio::time::timeout(after, work).await.map_err(|_| after),
                None => Ok(work.await),
            }
        };
        let mut tags_moved = Vec::new();
        let forward = async {
            while let Some(p) = rx.recv().await {
                if let Progress::TagWritten { target } = &p {
                    tags_moved.push(target.clone());
                }
                observer.event(&ImportEvent::Copy(p));
            }
        };
        let (results, ()) = tokio::join!(timed, forward);
        results.map_err(|after| ImportError::Timeout {
            after,
            tags_moved,
            cause: transport.last_retried_failure(),
        })
    }
}

async fn run_one(
    p: &ClientPlan,
    transport: &Transport,
    copier: &Copier,
) -> Result<ClientReport, ImportError> {
    let copy = async {
        let (source, targets) = p.endpoints(transport)?;
        copier.copy(&source, &targets).await
    };
    match copy.await {
        Ok(copy) => {
            let targets: Vec<TargetSummary> = p
                .target_names(&copy)
                .into_iter()
                .map(|(name, place)| TargetSummary::of(name, &place, &copy))
                .collect();
            Ok(ClientReport {
                target: targets
                    .first()
                    .map(|t| t.target.clone())
                    .unwrap_or_default(),
                targets,
                copy,
            })
        }
        Err(source) => {
            let registry = place_of(&source).map(|(place, _)| place);
            Err(ImportError::copy(side_of(&source, p), registry, source))
        }
    }
}

/// The registry host (or layout path) an error is about, when it says.
fn place_of(e: &TransferError) -> Option<(String, Option<String>)> {
    if let Some(d) = e.details() {
        return Some((d.context.registry.clone(), d.context.repository.clone()));
    }
    let from_url = |u: &str| {
        url::Url::parse(u).ok().map(|u| {
            let host = u.host_str().unwrap_or_default().to_owned();
            match u.port() {
                Some(p) => (format!("{host}:{p}"), None),
                None => (host, None),
            }
        })
    };
    match e {
        TransferError::ManifestTooLarge { context, .. }
        | TransferError::InvalidManifest { context, .. }
        | TransferError::Protocol { context, .. }
        | TransferError::Schema1(context) => {
            Some((context.registry.clone(), context.repository.clone()))
        }
        TransferError::Unreachable { context, .. } => {
            Some((context.registry.clone(), context.repository.clone()))
        }
        TransferError::ScopeDenied {
            registry,
            repository,
            ..
        } => Some((registry.clone(), Some(repository.clone()))),
        TransferError::Auth { registry, .. } => Some((registry.clone(), None)),
        TransferError::RateLimitReached(stop) => Some((stop.registry.clone(), None)),
        TransferError::Connection { url, .. }
        | TransferError::Timeout { url, .. }
        | TransferError::Refused { url, .. } => from_url(url),
        TransferError::Io { path, .. } => Some((format!("oci:{path}"), None)),
        _ => None,
    }
}

/// Which side an error of the copy engine is about: the registry (and repository) it names,
/// compared with the plan's source and targets; the operation when both sides share a host.
fn side_of(e: &TransferError, p: &ClientPlan) -> Side {
    match e {
        TransferError::TagConflict { .. } => return Side::Target,
        TransferError::NoMatchingPlatform { .. }
        | TransferError::GraphTooDeep { .. }
        | TransferError::TooManyManifests { .. }
        | TransferError::Schema1(_) => return Side::Source,
        _ => {}
    }
    let Some((place, repository)) = place_of(e) else {
        return Side::Unknown;
    };
    // A layout error names a file inside the layout folder.
    let same =
        |a: &str, b: &str| a.eq_ignore_ascii_case(b) || (b.starts_with("oci:") && a.starts_with(b));
    let (source_place, source_repo) = match &p.source {
        SourceSpec::Registry {
            host, repository, ..
        } => (host.clone(), Some(repository.as_str())),
        SourceSpec::Layout { path, .. } => (format!("oci:{}", path.display()), None),
    };
    let target_place = match &p.target {
        TargetSpec::Registry(h) => h.clone(),
        TargetSpec::Layout(path) => format!("oci:{}", path.display()),
    };
    let is_source = same(&place, &source_place);
    let is_target = same(&place, &target_place);
    match (is_source, is_target) {
        (true, false) => Side::Source,
        (false, true) => Side::Target,
        (true, true) => {
            if let Some(r) = &repository {
                if source_repo == Some(r.as_str()) {
                    return Side::Source;
                }
                if p.images.iter().any(|(t, _)| t == r) {
                    return Side::Target;
                }
            }
            match e.details().map(|d| d.context.operation) {
                Some(
                    acr_import_transfer::Operation::PutManifest
                    | acr_import_transfer::Operation::StartUpload
                    | acr_import_transfer::Operation::Upload,
                ) => Side::Target,
                Some(acr_import_transfer::Operation::GetBlob) => Side::Source,
                _ => Side::Unknown,
            }
        }
        (false, false) => Side::Unknown,
    }
}
