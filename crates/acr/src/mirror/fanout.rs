//! The server-side engine for a mirror: the copies of the plan as `importImage` operations,
//! many at once but at most a bound, started as fast as ARM's write throttling allows and
//! polled together.
//!
//! ARM counts writes per subscription and says how many are left
//! (`x-ms-ratelimit-remaining-subscription-writes`); past the limit it answers `429` with
//! `Retry-After` (<https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling>).
//! So: with no write left, no operation starts for a moment; a `429` puts the operation back
//! in the queue and holds every start for `Retry-After` (or a back-off doubling from 2 s when
//! none is sent). Polls are reads, each operation's at its own `Retry-After`.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::plan::image_text;
use super::report::TagResult;
use super::schedule::{Group, Ledger};
use crate::arm::{ImportStart, MIN_POLL_INTERVAL, PollResult};
use crate::import::{ResolvedSource, import_body};
use crate::importer::plan::SourceSpec;
use crate::{AcrError, ArmClient, ImportEvent, ImportObserver, RegistryResourceId};

/// The first wait when ARM throttles without saying for how long, doubled up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The pause before the next start when ARM says no write is left.
const NO_WRITES_LEFT: Duration = Duration::from_secs(1);
/// Polling interval when the service sends no `Retry-After`.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Runs the groups as `importImage` operations.
pub(crate) struct ServerRun<'a> {
    pub(crate) arm: &'a ArmClient,
    pub(crate) target: RegistryResourceId,
    /// Operations running at once.
    pub(crate) concurrency: usize,
    /// Each entry's source as resolved (an Azure registry by resource ID, any other by host
    /// with its credentials).
    pub(crate) sources: Vec<Option<ResolvedSource>>,
    pub(crate) observer: &'a dyn ImportObserver,
}

/// An operation the service runs.
struct Running {
    group: Group,
    operation_url: String,
    next_poll: Instant,
}

impl ServerRun<'_> {
    /// Runs every group into the ledger; gives back the groups the service imported.
    pub(crate) async fn run(&self, groups: Vec<Group>, ledger: &mut Ledger<'_>) -> Vec<Group> {
        let mut imported = Vec::new();
        let mut done = |g: Group, outcome: Result<(), String>| {
            let mut summary = ledger.summary(&g);
            summary.error = outcome.err();
            let result = if summary.error.is_none() {
                TagResult::Copied
            } else {
                TagResult::Failed
            };
            ledger.finish(&g, summary, result);
            if result == TagResult::Copied {
                imported.push(g);
            }
        };
        self.drive(groups, &mut done).await;
        imported
    }

    /// Starts, throttles and polls until every group has its outcome.
    async fn drive(&self, groups: Vec<Group>, done: &mut dyn FnMut(Group, Result<(), String>)) {
        let mut queue: VecDeque<Group> = groups.into();
        let mut running: Vec<Running> = Vec::new();
        let mut not_before = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            while running.len() < self.concurrency.max(1) && Instant::now() >= not_before {
                let Some(group) = queue.pop_front() else {
                    break;
                };
                match self.start(&group).await {
                    Ok(ImportStart::Done) => done(group, Ok(())),
                    Ok(ImportStart::Accepted {
                        operation_url,
                        retry_after,
                    }) => {
                        backoff = FIRST_BACKOFF;
                        running.push(Running {
                            group,
                            operation_url,
                            next_poll: Instant::now()
                                + retry_after.unwrap_or(POLL_EVERY).max(MIN_POLL_INTERVAL),
                        });
                    }
                    Err(e) if e.arm_status() == Some(429) => {
                        let wait = self.arm.throttle().retry_after.unwrap_or(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        self.observer.event(&ImportEvent::Note(format!(
                            "Azure Resource Manager throttles writes: the next import starts in {} s",
                            wait.as_secs_f64().ceil()
                        )));
                        not_before = Instant::now() + wait;
                        queue.push_front(group);
                        break;
                    }
                    Err(e) => done(group, Err(e.to_string())),
                }
                if self.arm.throttle().remaining_writes == Some(0) {
                    not_before = not_before.max(Instant::now() + NO_WRITES_LEFT);
                }
            }
            if queue.is_empty() && running.is_empty() {
                return;
            }
            // Poll every operation that is due, together.
            let now = Instant::now();
            let (due, later): (Vec<Running>, Vec<Running>) =
                running.drain(..).partition(|r| r.next_poll <= now);
            running = later;
            let polled = join_all(due.into_iter().map(|r| async {
                let result = self.arm.poll(&r.operation_url).await;
                (r, result)
            }))
            .await;
            for (mut r, result) in polled {
                match result {
                    Ok(PollResult::Succeeded) => done(r.group, Ok(())),
                    Ok(PollResult::Running { retry_after, .. }) => {
                        r.next_poll = Instant::now()
                            + retry_after.unwrap_or(POLL_EVERY).max(MIN_POLL_INTERVAL);
                        running.push(r);
                    }
                    Err(e) => done(r.group, Err(e.to_string())),
                }
            }
            let mut wake = running.iter().map(|r| r.next_poll).min();
            if !queue.is_empty() && running.len() < self.concurrency.max(1) {
                wake = Some(wake.map_or(not_before, |w| w.min(not_before)));
            }
            if let Some(w) = wake {
                tokio::time::sleep_until(w.max(Instant::now() + Duration::from_millis(20))).await;
            }
        }
    }

    /// `POST importImage` for a group.
    async fn start(&self, group: &Group) -> Result<ImportStart, AcrError> {
        let source = match (
            &group.plan.source,
            self.sources.get(group.entry).cloned().flatten(),
        ) {
            (
                SourceSpec::Registry {
                    repository,
                    reference,
                    ..
                },
                Some(ResolvedSource::Azure {
                    id, cross_tenant, ..
                }),
            ) => ResolvedSource::Azure {
                id,
                registry: None,
                unreadable: None,
                image: image_text(repository.as_str(), reference),
                cross_tenant,
            },
            (
                SourceSpec::Registry {
                    host,
                    repository,
                    reference,
                },
                resolved,
            ) => ResolvedSource::External {
                // Docker Hub's API host is not what the service takes as its name.
                host: acr_import_reference::docker_hub::canonical(host).to_owned(),
                image: image_text(repository.as_str(), reference),
                credentials: match resolved {
                    Some(ResolvedSource::External { credentials, .. }) => credentials,
                    _ => None,
                },
                unknown_acr: false,
                registry: None,
            },
            (SourceSpec::Layout { path, reference }, _) => ResolvedSource::Layout {
                reference: format!("oci:{}:{reference}", path.display()),
            },
        };
        let (mut images, mut repositories) = (Vec::new(), Vec::new());
        for (repo, tag) in &group.plan.images {
            match tag {
                Some(t) => images.push(format!("{repo}:{t}")),
                None => repositories.push(repo.clone()),
            }
        }
        let body = import_body(&source, &images, &repositories, group.settings.force)?;
        self.arm.begin_import(&self.target, &body).await
    }
}
