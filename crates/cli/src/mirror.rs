//! `acr import --from-file`: the mirror file into a library request, one progress bar for the
//! batch and a line per finished entry, the summary table, exit code 1 if any entry failed.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use acr_import_acr::mirror::{EntryReport, MirrorFile, MirrorReport, MirrorRequest, Shard};
use acr_import_acr::{ImportEvent, ImportObserver, ImportOptions, Importer};
use acr_import_transfer::copy::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::import::{Aftermath, import_failure};
use crate::{Failure, exit, render};
use acr_import_cli::args::{Global, OutputFormat};

/// Runs the mirror file `path` into `target`; the tags it moves and its bar go to `aftermath`
/// for an interrupt's message.
pub async fn run(
    importer: &Importer,
    target: String,
    path: &Path,
    options: ImportOptions,
    (shard, resource_group): (Shard, Option<String>),
    g: &Global,
    aftermath: &Aftermath,
) -> Result<(), Failure> {
    let file = MirrorFile::read(path).map_err(|e| Failure::usage(e.to_string()))?;
    let request = MirrorRequest {
        options,
        shard,
        resource_group,
        ..MirrorRequest::new(target, file)
    }
    .credentials_from(|k| std::env::var(k).ok())
    .map_err(import_failure)?;
    let quiet = g.only_show_errors || matches!(g.output, Some(OutputFormat::None));
    let observer = BatchProgress::new(request.items.len(), quiet, g.only_show_errors, aftermath);
    aftermath.bar(observer.bar.clone());
    let report = importer.mirror(&request, &observer).await;
    observer.bar.finish_and_clear();
    let report = report.map_err(import_failure)?;
    render(&report, g)
}

/// One bar for the batch (entries done of all, bytes), a line per finished entry.
struct BatchProgress<'a> {
    bar: ProgressBar,
    aftermath: &'a Aftermath,
    quiet: bool,
    only_errors: bool,
    tty: bool,
    /// Bytes copied so far.
    bytes: AtomicU64,
    /// `240 tags, 12 to copy`, once planned.
    planned: Mutex<String>,
    /// The registry of the last rate-limit wait told.
    waited: Mutex<Option<String>>,
}

impl<'a> BatchProgress<'a> {
    fn new(entries: usize, quiet: bool, only_errors: bool, aftermath: &'a Aftermath) -> Self {
        let tty = std::io::stderr().is_terminal() && !quiet;
        let bar = ProgressBar::with_draw_target(
            Some(entries as u64),
            if tty {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {pos}/{len} entries {bar:24} {msg} {elapsed_precise}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            bar,
            aftermath,
            quiet,
            only_errors,
            tty,
            bytes: AtomicU64::new(0),
            planned: Mutex::new("planning".to_owned()),
            waited: Mutex::new(None),
        }
    }

    fn show(&self) {
        let planned = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = self.bytes.load(Ordering::Relaxed);
        self.bar
            .set_message(format!("{planned}, {} copied", render::bytes(bytes)));
    }

    fn line(&self, text: String) {
        if self.tty {
            self.bar.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

impl ImportObserver for BatchProgress<'_> {
    fn event(&self, event: &ImportEvent) {
        match event {
            ImportEvent::Warning(w) if !self.only_errors => self.line(format!("WARNING: {w}")),
            ImportEvent::Note(n) if !self.quiet => self.line(format!("note: {n}")),
            ImportEvent::MirrorPlanned { tags, to_copy, .. } => {
                *self.planned.lock().unwrap_or_else(|e| e.into_inner()) =
                    format!("{tags} tags, {to_copy} to copy");
                self.show();
            }
            ImportEvent::MirrorEntry(e) => {
                self.bar.inc(1);
                if !e.ok() || !self.quiet {
                    let mark = if e.ok() { "done" } else { "FAILED" };
                    self.line(format!("{mark} {}", e.summary()));
                }
            }
            ImportEvent::Copy(Progress::BlobBytes { bytes, .. }) => {
                self.bytes.fetch_add(*bytes, Ordering::Relaxed);
                self.show();
            }
            ImportEvent::Copy(Progress::TagWritten { target }) => self.aftermath.tag_moved(target),
            ImportEvent::Copy(Progress::RateLimitWait(w)) if !self.quiet => {
                let mut waited = self.waited.lock().unwrap_or_else(|e| e.into_inner());
                render::countdown(&self.bar, w, self.tty, &mut waited);
            }
            _ => {}
        }
    }
}

/// A row of the summary table.
#[derive(Serialize)]
struct Row<'a> {
    source: &'a str,
    result: &'a str,
    tags: usize,
    copied: usize,
    up_to_date: usize,
    failed: usize,
    blobs: String,
    /// Manifest `GET`s sent to the source (what Docker Hub counts as pulls).
    pulls: u64,
    detail: String,
}

fn row(e: &EntryReport) -> Row<'_> {
    Row {
        source: &e.source,
        result: e.outcome(),
        tags: e.in_shard,
        copied: e.copied,
        up_to_date: e.up_to_date,
        failed: e.failed,
        blobs: format!("{} copied, {} mounted", e.blobs_copied, e.blobs_mounted),
        pulls: e.source_pulls,
        detail: e
            .error
            .clone()
            .unwrap_or_else(|| render::bytes(e.bytes_copied)),
    }
}

/// The table (or the whole report with `-o json|yaml`), then exit code 1 if any entry failed.
fn render(report: &MirrorReport, g: &Global) -> Result<(), Failure> {
    match g.output {
        None | Some(OutputFormat::Table) | Some(OutputFormat::Tsv) => {
            let rows: Vec<Row> = report.entries.iter().map(row).collect();
            render::print(&rows, g.output.unwrap_or(OutputFormat::Table))?;
            if !g.only_show_errors {
                eprintln!("{}", report.summary());
            }
        }
        Some(f) => render::print(report, f)?,
    }
    let failed: Vec<&str> = report.failed().map(|e| e.source.as_str()).collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        exit::FAILED,
        format!(
            "{} of {} entries failed: {}",
            failed.len(),
            report.entries.len(),
            failed.join(", ")
        ),
    ))
}
