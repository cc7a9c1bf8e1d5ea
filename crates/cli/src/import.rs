//! `acr import`: flags into a library request, secrets from stdin, the report rendered.
//! The import itself is `acr_import_acr::Importer`.

use std::io::BufRead;
use std::sync::Mutex;
use std::time::Duration;

use acr_import_acr::{
    AcrError, BatchFile, BatchReport, BatchRequest, EngineMode, ImportEntry, ImportError,
    ImportEvent, ImportObserver, ImportOptions, ImportReport, ImportRequest, Importer,
    PreflightOutcome, Referrers, ServerOutcome, ServerReport, SourceCredentials,
};
use acr_import_auth::Secret;
use acr_import_transfer::copy::Progress;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use crate::{Failure, exit, render};
use acr_import_cli::args::{Global, ImportArgs, ImportSubcommand, Mode, OutputFormat};

#[derive(Serialize)]
struct BatchRow {
    source: String,
    result: String,
    digest: String,
    blobs: String,
    detail: String,
}

/// Maps an error of the ARM half to an exit code.
pub(crate) fn acr_failure(e: AcrError) -> Failure {
    let code = if e.is_auth() {
        exit::AUTH
    } else {
        match e {
            AcrError::InvalidRequest { .. }
            | AcrError::CredentialsWithResourceId { .. }
            | AcrError::InvalidResourceId { .. }
            | AcrError::InvalidRegistryName { .. }
            | AcrError::UnknownCloud { .. }
            | AcrError::ArmUnavailable { .. }
            | AcrError::NoSubscription { .. } => exit::USAGE,
            _ => exit::FAILED,
        }
    };
    Failure {
        message: e.to_string(),
        hint: None,
        code,
    }
}

/// Maps an import error to what the user reads and the exit code.
pub(crate) fn import_failure(e: ImportError) -> Failure {
    let hint = e.hint();
    let code = match &e {
        ImportError::InvalidRequest { .. } => exit::USAGE,
        ImportError::WillFail(_) => exit::PREFLIGHT,
        e if e.is_auth() => exit::AUTH,
        _ => exit::FAILED,
    };
    match e {
        ImportError::Azure(a) => acr_failure(*a),
        e => Failure {
            message: e.to_string(),
            hint,
            code,
        },
    }
}

/// Renders what the import tells: warnings, notes, the server-side state (one line per
/// change), and the copy engine's progress (handed to the progress renderer).
struct Observer {
    only_errors: bool,
    quiet: bool,
    progress: UnboundedSender<Progress>,
    last_state: Mutex<String>,
}

impl ImportObserver for Observer {
    fn event(&self, event: &ImportEvent) {
        match event {
            ImportEvent::Warning(w) if !self.only_errors => eprintln!("WARNING: {w}"),
            ImportEvent::Note(n) if !self.only_errors => eprintln!("note: {n}"),
            ImportEvent::Copy(p) => {
                let _ = self.progress.send(p.clone());
            }
            ImportEvent::Server(p) => {
                let text = p.to_string();
                let mut last = self.last_state.lock().unwrap_or_else(|e| e.into_inner());
                if !self.quiet && text != *last {
                    eprintln!("{text}");
                    *last = text;
                }
            }
            _ => {}
        }
    }
}

/// Runs `f` with an observer whose copy progress is drawn by the progress renderer; the
/// renderer has finished (its bars cleared) when this returns.
async fn observed<T>(g: &Global, f: impl AsyncFnOnce(&Observer) -> T) -> T {
    let quiet = g.only_show_errors || matches!(g.output, Some(OutputFormat::None));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let renderer = tokio::spawn(render::progress(rx, g.verbose, quiet));
    let observer = Observer {
        only_errors: g.only_show_errors,
        quiet,
        progress: tx,
        last_state: Mutex::new(String::new()),
    };
    let out = f(&observer).await;
    drop(observer);
    let _ = renderer.await;
    out
}

/// `acr import status URL`.
async fn status(operation_url: &str, args: &ImportArgs, g: &Global) -> Result<(), Failure> {
    let importer = Importer::new(crate::settings::config(g)?);
    let timeout = args.timeout.map(Duration::from_secs);
    observed(g, async |o| {
        importer.wait_operation(operation_url, timeout, o).await
    })
    .await
    .map_err(import_failure)?;
    match g.output {
        None | Some(OutputFormat::None) => {
            if !g.only_show_errors {
                eprintln!("the import finished successfully");
            }
            Ok(())
        }
        Some(f) => render::print(
            &serde_json::json!({"operationUrl": operation_url, "status": "Succeeded"}),
            f,
        ),
    }
}

/// The options every import takes from the flags.
fn options(args: &ImportArgs) -> Result<ImportOptions, Failure> {
    let platforms = args
        .platforms
        .iter()
        .map(|p| p.parse())
        .collect::<Result<_, _>>()
        .map_err(|e: acr_import_transfer::TransferError| Failure::usage(e.to_string()))?;
    Ok(ImportOptions {
        force: args.force.unwrap_or(false),
        platforms,
        referrers: match (args.no_referrers, args.include_referrers) {
            (true, _) | (false, Some(false)) => Referrers::Skip,
            (false, Some(true)) => Referrers::Requested,
            (false, None) => Referrers::Default,
        },
        foreign_layers: args.include_foreign_layers,
        jobs: args.jobs.max(1),
        verify_blobs: args.verify_blobs,
        dry_run: args.dry_run,
        timeout: args.timeout.map(Duration::from_secs),
        no_wait: args.no_wait,
        engine: match args.mode {
            Mode::Auto => EngineMode::Auto,
            Mode::Server => EngineMode::Server,
            Mode::Client => EngineMode::Client,
        },
    })
}

pub async fn run(args: ImportArgs, g: &Global) -> Result<(), Failure> {
    if let Some(ImportSubcommand::Status { operation_url }) = &args.status {
        return status(operation_url, &args, g).await;
    }
    let importer = Importer::new(crate::settings::config(g)?);
    let name = args
        .name
        .clone()
        .ok_or_else(|| Failure::usage("the following arguments are required: --name/-n"))?;
    importer.check_target(&name).map_err(import_failure)?;
    let password = source_password(&args, g)?;
    if args.username.is_some() && password.is_none() {
        return Err(
            Failure::usage("Authentication failed. Please provide password.").with_hint(
                "add --password-stdin and pipe the password, or set ACR_IMPORT_SOURCE_PASSWORD",
            ),
        );
    }
    let options = options(&args)?;
    if let Some(from_file) = &args.from_file {
        if args.mode == Mode::Server || args.preflight_only {
            return Err(Failure::usage(
                "--from-file imports run client-side: --mode server and --preflight-only take a single --source",
            ));
        }
        let entries = BatchFile::read(from_file)
            .and_then(|f| f.into_entries(|k| std::env::var(k).ok()))
            .map_err(import_failure)?;
        let batch = BatchRequest {
            options,
            ..BatchRequest::new(name, entries)
        };
        let report = observed(g, async |o| importer.import_batch(&batch, o).await)
            .await
            .map_err(import_failure)?;
        return render_batch(report, g);
    }
    let source = args
        .source
        .clone()
        .ok_or_else(|| Failure::usage("the following arguments are required: --source"))?;
    let request = ImportRequest {
        target: name,
        resource_group: args.resource_group.clone(),
        entry: ImportEntry {
            source,
            registry: args.registry.clone(),
            images: args.images.clone(),
            repositories: args.repositories.clone(),
            credentials: password.map(|password| SourceCredentials {
                username: args.username.clone(),
                password,
            }),
        },
        options,
    };
    if args.preflight_only {
        return preflight(&importer, &request, g).await;
    }
    let report = observed(g, async |o| importer.import(&request, o).await)
        .await
        .map_err(import_failure)?;
    match report {
        ImportReport::Server(s) => render_server(&s, g),
        ImportReport::Client(c) => match g.output {
            // Notes were shown by the progress renderer as they happened.
            None => {
                println!("{}", c.summary());
                Ok(())
            }
            Some(f) => render::print(&c.copy, f),
        },
        _ => Ok(()),
    }
}

/// `--preflight-only`: the verdict, and exit code 3 when it says the import will fail.
async fn preflight(
    importer: &Importer,
    request: &ImportRequest,
    g: &Global,
) -> Result<(), Failure> {
    let outcome = observed(g, async |o| importer.preflight(request, o).await)
        .await
        .map_err(import_failure)?;
    let v = match outcome {
        PreflightOutcome::Verdict(v) => v,
        PreflightOutcome::Unavailable(reason) => {
            println!(
                "preflight: cannot tell whether the import will work: Azure Resource Manager is not available ({reason})"
            );
            return Ok(());
        }
    };
    match g.output {
        None => print!("{v}"),
        Some(f) => render::print(&v, f)?,
    }
    if v.will_fail() {
        Err(Failure {
            message: "the preflight says the import will fail (see above)".into(),
            hint: None,
            code: exit::PREFLIGHT,
        })
    } else {
        Ok(())
    }
}

fn render_server(s: &ServerReport, g: &Global) -> Result<(), Failure> {
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
            println!("{}", s.summary());
            Ok(())
        }
        (None, ServerOutcome::Started { operation_url }) => {
            render::warn(
                g,
                "Import has started. Due to no-wait option, failures will not be reflected here: follow it with `acr import status <url>`",
            );
            println!("{operation_url}");
            Ok(())
        }
        (Some(f), _) => render::print(&row, f),
    }
}

fn render_batch(report: BatchReport, g: &Global) -> Result<(), Failure> {
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for entry in report.entries {
        match entry.result {
            Ok(rep) => rows.push(BatchRow {
                source: entry.label,
                result: if rep.copy.up_to_date {
                    "up to date".into()
                } else {
                    "imported".into()
                },
                digest: rep.copy.digest.clone(),
                blobs: format!(
                    "{} copied, {} mounted, {} skipped",
                    rep.copy.totals.blobs_copied,
                    rep.copy.totals.blobs_mounted,
                    rep.copy.totals.blobs_skipped
                ),
                detail: render::bytes(rep.copy.totals.bytes_copied),
            }),
            Err(e) => {
                failed.push(entry.label.clone());
                rows.push(BatchRow {
                    source: entry.label,
                    result: "FAILED".into(),
                    digest: String::new(),
                    blobs: String::new(),
                    detail: e.to_string(),
                });
            }
        }
    }
    render::print(&rows, g.output.unwrap_or(OutputFormat::Table))?;
    if failed.is_empty() {
        return Ok(());
    }
    Err(Failure {
        message: format!(
            "{} of {} imports failed: {}",
            failed.len(),
            rows.len(),
            failed.join(", ")
        ),
        hint: None,
        code: exit::FAILED,
    })
}

fn source_password(args: &ImportArgs, g: &Global) -> Result<Option<Secret>, Failure> {
    if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            Failure::usage(format!("cannot read the password from standard input: {e}"))
        })?;
        let p = line.trim_end_matches(['\r', '\n']).to_owned();
        if p.is_empty() {
            return Err(Failure::usage("--password-stdin read an empty password"));
        }
        return Ok(Some(Secret::new(p)));
    }
    let Some(p) = &args.password else {
        return Ok(None);
    };
    let from_env = std::env::var("ACR_IMPORT_SOURCE_PASSWORD").is_ok_and(|v| v == *p);
    if !from_env {
        render::warn(
            g,
            "a password on the command line is visible to other users and kept in shell history: use --password-stdin or ACR_IMPORT_SOURCE_PASSWORD",
        );
    }
    Ok(Some(Secret::new(p.clone())))
}
