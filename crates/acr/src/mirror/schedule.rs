//! From the plan to copies, and the copies run for the whole file at once: one copy engine
//! whose blob transfers are bounded per registry for the batch, a blob shared by many images
//! fetched once and mounted elsewhere, each entry's own options, one failure never stopping
//! the others.

use std::collections::HashMap;

use acr_import_transfer::copy::Progress;
use acr_import_transfer::{Copier, CopyOptions, CopyReport, Transport};
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;

use super::plan::{Planned, Unit, source_text};
use super::report::{CopySummary, EntryReport, TagAction, TagReport, TagResult};
use crate::importer::client::{copy_options, run_one};
use crate::importer::plan::{ClientPlan, SourceSpec};
use crate::{ImportError, ImportEvent, ImportObserver, ImportOptions};

/// One copy of the plan: a source image (by digest when the plan knows it) to the target tags
/// of one entry that need it.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) entry: usize,
    pub(crate) plan: ClientPlan,
    pub(crate) settings: super::plan::Settings,
    /// Every tag of the source repository, when the plan listed them.
    pub(crate) source_tags: Option<std::sync::Arc<[String]>>,
    /// Indices into the report's tags.
    pub(crate) tags: Vec<usize>,
}

/// The report's rows and tags from the plan, and the copies to make.
pub(crate) fn assemble(planned: Planned) -> (Vec<EntryReport>, Vec<TagReport>, Vec<Group>) {
    let mut tags = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut by_source: HashMap<(usize, String), usize> = HashMap::new();
    for unit in planned.units {
        let source = unit.source_text();
        let mut pending = Vec::new();
        for t in &unit.targets {
            let (result, error) = match t.action {
                TagAction::UpToDate => (TagResult::UpToDate, None),
                TagAction::Conflict => (
                    TagResult::Failed,
                    Some(format!(
                        "the target tag holds {} and the source {}: set `force: true` on the entry (or --force) to replace it",
                        t.before
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        unit.source_digest
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    )),
                ),
                TagAction::Unreadable => (TagResult::Failed, unit.error.clone()),
                TagAction::Copy | TagAction::Replace | TagAction::Check => {
                    pending.push((tags.len(), t.clone()));
                    (TagResult::Failed, None)
                }
            };
            tags.push(TagReport {
                entry: unit.entry,
                source: source.clone(),
                source_digest: unit.source_digest.as_ref().map(ToString::to_string),
                target: unit.target_text(t),
                before: t.before.as_ref().map(ToString::to_string),
                action: t.action,
                result,
                copy: None,
                error,
            });
        }
        if pending.is_empty() {
            continue;
        }
        let key = (unit.entry, group_source(&unit));
        let g = match by_source.get(&key) {
            Some(&g) => g,
            None => {
                by_source.insert(key, groups.len());
                groups.push(new_group(&unit));
                groups.len() - 1
            }
        };
        for (i, t) in pending {
            groups[g].plan.images.push((t.repository, t.tag));
            groups[g].tags.push(i);
        }
    }
    (planned.entries, tags, groups)
}

/// Tags of one entry that name the same content copy together.
fn group_source(unit: &Unit) -> String {
    match (&unit.source_digest, &unit.plan.source) {
        (
            Some(d),
            SourceSpec::Registry {
                host, repository, ..
            },
        ) => format!("{host}/{repository}@{d}"),
        _ => unit.source_text(),
    }
}

fn new_group(unit: &Unit) -> Group {
    let mut plan = unit.plan.clone();
    plan.images.clear();
    // Copy what the plan looked at, not what the tag names by the time the copy starts.
    if let (
        Some(d),
        SourceSpec::Registry {
            host, repository, ..
        },
    ) = (&unit.source_digest, &plan.source)
    {
        plan.source = SourceSpec::Registry {
            host: host.clone(),
            repository: repository.clone(),
            reference: d.clone().into(),
        };
    }
    Group {
        entry: unit.entry,
        plan,
        settings: unit.settings.clone(),
        source_tags: unit.source_tags.clone(),
        tags: Vec::new(),
    }
}

/// Fills in an entry's counts from its tags and copies (again, when a copy changed).
pub(crate) fn tally(row: &mut EntryReport, tags: &[TagReport], copies: &[CopySummary]) {
    let mine = || tags.iter().filter(|t| t.entry == row.index);
    row.copied = mine()
        .filter(|t| matches!(t.result, TagResult::Copied | TagResult::WouldCopy))
        .count();
    row.up_to_date = mine().filter(|t| t.result == TagResult::UpToDate).count();
    row.failed = mine().filter(|t| t.result == TagResult::Failed).count();
    (row.blobs_copied, row.blobs_mounted) = (0, 0);
    (row.bytes_copied, row.source_pulls) = (0, 0);
    for c in copies.iter().filter(|c| c.entry == row.index) {
        row.blobs_copied += c.blobs_copied;
        row.blobs_mounted += c.blobs_mounted;
        row.bytes_copied += c.bytes;
        row.source_pulls += c.source_pulls;
    }
    if row.error.is_none() {
        row.error = mine().find_map(|t| t.error.clone());
    }
}

/// The report being filled in as copies end: each copy's outcome goes to its tags, and an
/// entry's row is tallied and told to the observer when its last copy ends (at once for an
/// entry with none).
pub(crate) struct Ledger<'a> {
    pub(crate) entries: &'a mut [EntryReport],
    pub(crate) tags: &'a mut [TagReport],
    pub(crate) copies: &'a mut Vec<CopySummary>,
    left: HashMap<usize, usize>,
    observer: &'a dyn ImportObserver,
}

impl<'a> Ledger<'a> {
    pub(crate) fn new(
        groups: &[Group],
        entries: &'a mut [EntryReport],
        tags: &'a mut [TagReport],
        copies: &'a mut Vec<CopySummary>,
        observer: &'a dyn ImportObserver,
    ) -> Self {
        let mut left: HashMap<usize, usize> = HashMap::new();
        for g in groups {
            *left.entry(g.entry).or_default() += 1;
        }
        for row in entries.iter_mut().filter(|r| !left.contains_key(&r.index)) {
            tally(row, tags, copies);
            observer.event(&ImportEvent::MirrorEntry(row.clone()));
        }
        Self {
            entries,
            tags,
            copies,
            left,
            observer,
        }
    }

    /// A copy summary for `g`, its targets filled in.
    pub(crate) fn summary(&self, g: &Group) -> CopySummary {
        CopySummary {
            entry: g.entry,
            source: source_text(&g.plan.source),
            targets: g
                .tags
                .iter()
                .map(|&i| self.tags[i].target.clone())
                .collect(),
            ..CopySummary::default()
        }
    }

    /// The row of `entry` counted again from its tags and copies.
    fn retally(&mut self, entry: usize) {
        if let Some(row) = self.entries.iter_mut().find(|r| r.index == entry) {
            tally(row, self.tags, self.copies);
        }
    }

    /// `g` ended: `result` for each of its tags, `summary` in the copies.
    pub(crate) fn finish(&mut self, g: &Group, summary: CopySummary, result: TagResult) {
        for &i in &g.tags {
            self.tags[i].result = result;
            self.tags[i].error = summary.error.clone();
            self.tags[i].copy = Some(self.copies.len());
        }
        self.copies.push(summary);
        let n = self.left.entry(g.entry).or_default();
        *n = n.saturating_sub(1);
        if *n == 0
            && let Some(row) = self.entries.iter_mut().find(|r| r.index == g.entry)
        {
            tally(row, self.tags, self.copies);
            self.observer.event(&ImportEvent::MirrorEntry(row.clone()));
        }
    }
}

/// Runs the groups client-side, `concurrency` at a time, on one copy engine.
pub(crate) struct ClientRun<'a> {
    pub(crate) transport: &'a Transport,
    pub(crate) options: &'a ImportOptions,
    pub(crate) concurrency: usize,
    /// Where the copies' progress goes.
    pub(crate) progress: UnboundedSender<Progress>,
}

impl ClientRun<'_> {
    /// Copies every group into the ledger.
    pub(crate) async fn run(self, groups: Vec<Group>, ledger: &mut Ledger<'_>) {
        let base = CopyOptions {
            progress: Some(std::sync::Arc::new(self.progress)),
            ..copy_options(self.options)
        };
        let copier = Copier::new(base.clone());
        let copier = &copier;
        let transport = self.transport;
        let mut running = futures_util::stream::iter(groups.into_iter().map(|g| {
            let options = CopyOptions {
                force: g.settings.force,
                platforms: g.settings.platforms.clone(),
                referrers: g.settings.referrers,
                source_tags: g.source_tags.clone(),
                ..base.clone()
            };
            async move {
                let engine = copier.with_options(options);
                let result = run_one(&g.plan, transport, &engine).await;
                (g, result.map(|r| r.copy))
            }
        }))
        .buffer_unordered(self.concurrency.max(1));
        while let Some((g, result)) = running.next().await {
            record(&g, result, self.options.dry_run, ledger);
        }
    }
}

impl ClientRun<'_> {
    /// After the server-side copies: what is attached to each image the service imported
    /// (signatures, attestations, SBOMs: referrers and digest tags) and missing on the target,
    /// copied by this engine (it finds the image in place, so only those move). A copy that
    /// cannot (this machine may not read the source or write the target) says what stayed
    /// behind, in its summary and as a warning.
    pub(crate) async fn follow(
        self,
        groups: Vec<Group>,
        ledger: &mut Ledger<'_>,
        observer: &dyn ImportObserver,
    ) {
        let base = CopyOptions {
            progress: Some(std::sync::Arc::new(self.progress)),
            referrers: true,
            dry_run: false,
            ..copy_options(self.options)
        };
        let copier = Copier::new(base);
        let (copier, transport) = (&copier, self.transport);
        let mut running = futures_util::stream::iter(groups.into_iter().map(|g| async move {
            let engine = copier.with_options(CopyOptions {
                source_tags: g.source_tags.clone(),
                ..copier.options().clone()
            });
            let result = run_one(&g.plan, transport, &engine).await;
            (g, result)
        }))
        .buffer_unordered(self.concurrency.max(1));
        while let Some((g, result)) = running.next().await {
            let Some(copy) = g.tags.first().and_then(|&i| ledger.tags[i].copy) else {
                continue;
            };
            let summary = &mut ledger.copies[copy];
            match result {
                Ok(r) => {
                    summary.followed = r.copy.totals.followed;
                    summary.source_pulls += r.copy.source_pulls;
                }
                Err(e) => {
                    let reason = e.to_string();
                    observer.event(&ImportEvent::Warning(format!(
                        "signatures, attestations and SBOMs of {} (referrers and digest tags) were not followed: {reason}; whatever is attached to the image stayed behind",
                        summary.source
                    )));
                    summary.followers_left_behind = Some(reason);
                }
            }
            ledger.retally(g.entry);
        }
    }
}

/// A copy's outcome into the ledger.
fn record(
    g: &Group,
    result: Result<CopyReport, ImportError>,
    dry_run: bool,
    ledger: &mut Ledger<'_>,
) {
    let mut summary = ledger.summary(g);
    let result = match result {
        Ok(report) => {
            summary.digest = Some(report.digest.clone());
            summary.blobs_copied = report.totals.blobs_copied;
            summary.blobs_mounted = report.totals.blobs_mounted;
            summary.blobs_skipped = report.totals.blobs_skipped;
            summary.bytes = report.totals.bytes_copied;
            summary.source_pulls = report.source_pulls;
            summary.followed = report.totals.followed.clone();
            if report.up_to_date {
                TagResult::UpToDate
            } else if dry_run {
                TagResult::WouldCopy
            } else {
                TagResult::Copied
            }
        }
        Err(e) => {
            summary.error = Some(match e.hint() {
                Some(h) => format!("{e} ({h})"),
                None => e.to_string(),
            });
            TagResult::Failed
        }
    };
    ledger.finish(g, summary, result);
}
