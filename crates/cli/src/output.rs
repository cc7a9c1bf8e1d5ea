//! What `acr import` prints on standard output: the summary line, the table (one row per
//! target), or the report in the chosen format.

use acr_import_acr::{BatchReport, ClientReport, ServerOutcome, ServerReport};
use serde::Serialize;

use crate::{Failure, exit, render};
use acr_import_cli::args::{Global, OutputFormat};

/// One row of the import table: a target and what it received.
#[derive(Serialize)]
struct Row {
    source: String,
    target: String,
    result: String,
    digest: String,
    copied: Option<usize>,
    mounted: Option<usize>,
    skipped: Option<usize>,
    bytes: String,
    /// Manifest `GET`s sent to the source (what Docker Hub counts as pulls), on the entry's
    /// first row: the source is read once for all its targets.
    pulls: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn rows(source: &str, report: &ClientReport) -> impl Iterator<Item = Row> {
    report.targets.iter().enumerate().map(move |(i, t)| Row {
        source: source.to_owned(),
        target: t.target.clone(),
        result: t.result.to_owned(),
        digest: t.digest.clone(),
        copied: Some(t.copied),
        mounted: Some(t.mounted),
        skipped: Some(t.skipped),
        bytes: render::bytes(t.bytes),
        pulls: (i == 0).then_some(report.copy.source_pulls),
        error: None,
    })
}

/// A client-side import: the summary line, one row per target (`table`, `tsv`), or the
/// whole report (`json`, `yaml`).
pub fn client(report: &ClientReport, g: &Global) -> Result<(), Failure> {
    match g.output {
        // Notes were shown by the progress renderer as they happened.
        None => {
            render::line(&report.summary());
            Ok(())
        }
        Some(f @ (OutputFormat::Table | OutputFormat::Tsv)) => {
            let rows: Vec<Row> = rows(&report.copy.source, report).collect();
            render::print(&rows, f)
        }
        Some(f) => render::print(&report.copy, f),
    }
}

/// A server-side import, finished or started.
pub fn server(s: &ServerReport, g: &Global) -> Result<(), Failure> {
    let row = match &s.outcome {
        ServerOutcome::Completed => serde_json::json!({
            "engine": "server", "status": "Succeeded", "source": s.source, "target": s.target_id,
            "targetTags": s.target_tags, "untaggedTargetRepositories": s.untagged_target_repositories,
            "mode": s.mode, "followers": s.followers,
        }),
        ServerOutcome::Started { operation_url } => serde_json::json!({
            "engine": "server", "status": "Started", "source": s.source, "target": s.target_id,
            "operationUrl": operation_url,
        }),
    };
    match (g.output, &s.outcome) {
        (None, ServerOutcome::Completed) => {
            render::line(&s.summary());
            Ok(())
        }
        (None, ServerOutcome::Started { operation_url }) => {
            render::warn(
                g,
                "Import has started. Due to no-wait option, failures will not be reflected here: follow it with `acr import status <url>`",
            );
            render::line(operation_url);
            Ok(())
        }
        (Some(f), _) => render::print(&row, f),
    }
}

/// A batch: one row per target of each entry, in file order (a table unless another format
/// was asked for); an error when any entry failed.
pub fn batch(report: BatchReport, g: &Global) -> Result<(), Failure> {
    let entries = report.entries.len();
    let mut table = Vec::new();
    let mut failed = Vec::new();
    for entry in report.entries {
        match entry.result {
            Ok(rep) => table.extend(rows(&entry.label, &rep)),
            Err(e) => {
                failed.push(entry.label.clone());
                table.push(Row {
                    source: entry.label,
                    target: String::new(),
                    result: "FAILED".into(),
                    digest: String::new(),
                    copied: None,
                    mounted: None,
                    skipped: None,
                    bytes: String::new(),
                    pulls: None,
                    error: Some(e.to_string()),
                });
            }
        }
    }
    render::print(&table, g.output.unwrap_or(OutputFormat::Table))?;
    if failed.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        exit::FAILED,
        format!(
            "{} of {entries} imports failed: {}",
            failed.len(),
            failed.join(", ")
        ),
    ))
}
