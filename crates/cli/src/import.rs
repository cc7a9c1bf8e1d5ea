//! `acr import`: flags into a library request, secrets from stdin, the report rendered.
//! The import itself is `acr_import_acr::Importer`.

use std::io::BufRead;
use std::sync::Mutex;
use std::time::Duration;

use acr_import_acr::{
    AcrError, BatchFile, BatchRequest, EngineMode, ImportEntry, ImportError, ImportEvent,
    ImportObserver, ImportOptions, ImportReport, ImportRequest, Importer, PreflightOutcome,
    Referrers, SourceCredentials,
};
use acr_import_auth::Secret;
use acr_import_transfer::copy::Progress;
use tokio::sync::mpsc::UnboundedSender;

use crate::{Failure, exit, output, render};
use acr_import_cli::args::{Global, ImportArgs, ImportSubcommand, Mode, OutputFormat};

/// Maps an error of the ARM half to an exit code.
pub(crate) fn acr_failure(e: AcrError) -> Failure {
    let code = if e.is_auth() {
        exit::AUTH
    } else {
        match e {
            AcrError::InvalidRequest { .. }
            | AcrError::InvalidReference { .. }
            | AcrError::CredentialsWithResourceId { .. }
            | AcrError::InvalidResourceId { .. }
            | AcrError::InvalidRegistryName { .. }
            | AcrError::UnknownCloud { .. }
            | AcrError::ArmUnavailable { .. }
            | AcrError::NoSubscription { .. } => exit::USAGE,
            _ => exit::FAILED,
        }
    };
    Failure::from_error(code, &e)
}

/// Maps an import error to what the user reads and the exit code.
pub(crate) fn import_failure(e: ImportError) -> Failure {
    let code = match &e {
        ImportError::InvalidRequest { .. } => exit::USAGE,
        ImportError::WillFail(_) => exit::PREFLIGHT,
        e if e.is_auth() => exit::AUTH,
        _ => exit::FAILED,
    };
    match e {
        ImportError::Azure(a) => acr_failure(*a),
        e => {
            let failure = Failure::from_error(code, &e);
            match e.hint() {
                Some(h) => failure.with_hint(h),
                None => failure,
            }
        }
    }
}

/// What an interrupted import leaves behind, as far as this process saw: the tags it
/// moved, a server-side import that runs on.
#[derive(Debug, Default)]
pub(crate) struct Aftermath {
    tags: Mutex<Vec<String>>,
    operation: Mutex<Option<String>>,
    display: Mutex<Option<render::ProgressDisplay>>,
}

impl Aftermath {
    /// The failure to report when Ctrl-C stopped the command; the progress frame is cleared
    /// first, so the message is not drawn over.
    pub(crate) fn interrupted(&self) -> Failure {
        if let Some(d) = self
            .display
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            d.clear();
        }
        let tags = self.tags.lock().unwrap_or_else(|e| e.into_inner());
        let operation = self.operation.lock().unwrap_or_else(|e| e.into_inner());
        let message = match (&*operation, tags.as_slice()) {
            (Some(url), _) => format!(
                "interrupted: the server-side import runs on in Azure; follow it with `acr import status {url}`"
            ),
            (None, []) => {
                "interrupted: uploads in flight were abandoned and no tag was moved".to_owned()
            }
            (None, moved) => format!(
                "interrupted: uploads in flight were abandoned; {} tag{} had moved before: {}",
                moved.len(),
                if moved.len() == 1 { "" } else { "s" },
                moved.join(", ")
            ),
        };
        Failure::new(exit::INTERRUPTED, message)
    }
}

/// Renders what the import tells: warnings, notes, the server-side state (one line per
/// change), and the copy engine's progress (handed to the progress renderer); keeps what an
/// interrupt must report.
struct Observer<'a> {
    only_errors: bool,
    quiet: bool,
    progress: UnboundedSender<Progress>,
    last_state: Mutex<String>,
    aftermath: &'a Aftermath,
}

impl ImportObserver for Observer<'_> {
    fn event(&self, event: &ImportEvent) {
        match event {
            ImportEvent::Warning(w) if !self.only_errors => eprintln!("WARNING: {w}"),
            ImportEvent::Note(n) if !self.only_errors => eprintln!("note: {n}"),
            ImportEvent::Copy(p) => {
                if let Progress::TagWritten { target } = p {
                    let mut tags = self
                        .aftermath
                        .tags
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    tags.push(target.clone());
                }
                let _ = self.progress.send(p.clone());
            }
            ImportEvent::ServerStarted { operation_url } => {
                *self
                    .aftermath
                    .operation
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(operation_url.clone());
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
async fn observed<T>(g: &Global, aftermath: &Aftermath, f: impl AsyncFnOnce(&Observer) -> T) -> T {
    let quiet = g.only_show_errors || matches!(g.output, Some(OutputFormat::None));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let display = render::ProgressDisplay::new(quiet);
    *aftermath.display.lock().unwrap_or_else(|e| e.into_inner()) = Some(display.clone());
    let renderer = tokio::spawn(render::progress(rx, display, g.verbose, quiet));
    let observer = Observer {
        only_errors: g.only_show_errors,
        quiet,
        progress: tx,
        last_state: Mutex::new(String::new()),
        aftermath,
    };
    let out = f(&observer).await;
    drop(observer);
    let _ = renderer.await;
    out
}

/// `acr import status URL`.
async fn status(
    operation_url: &str,
    args: &ImportArgs,
    g: &Global,
    aftermath: &Aftermath,
) -> Result<(), Failure> {
    let importer = Importer::new(crate::settings::config(g)?);
    let timeout = args.timeout.map(Duration::from_secs);
    observed(g, aftermath, async |o| {
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
        wait_rate_limit: args.wait_rate_limit,
    })
}

/// Every missing required flag, named at once.
fn require(args: &ImportArgs) -> Result<(), Failure> {
    let missing: Vec<&str> = [
        ("--name/-n", args.name.is_none()),
        (
            "--source",
            args.source.is_none() && args.from_file.is_none(),
        ),
    ]
    .into_iter()
    .filter_map(|(flag, absent)| absent.then_some(flag))
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "the following arguments are required: {}",
        missing.join(", ")
    )))
}

/// `--from-file`: the entries (with their `credentials-env`) as one batch.
async fn batch(
    importer: &Importer,
    target: String,
    from_file: &std::path::Path,
    options: ImportOptions,
    g: &Global,
    aftermath: &Aftermath,
) -> Result<(), Failure> {
    let entries = BatchFile::read(from_file)
        .and_then(|f| f.into_entries(|k| std::env::var(k).ok()))
        .map_err(import_failure)?;
    let batch = BatchRequest {
        options,
        ..BatchRequest::new(target, entries)
    };
    let report = observed(g, aftermath, async |o| {
        importer.import_batch(&batch, o).await
    })
    .await
    .map_err(import_failure)?;
    output::batch(report, g)
}

pub async fn run(args: ImportArgs, g: &Global, aftermath: &Aftermath) -> Result<(), Failure> {
    if let Some(ImportSubcommand::Status { operation_url }) = &args.status {
        return status(operation_url, &args, g, aftermath).await;
    }
    require(&args)?;
    let importer = Importer::new(crate::settings::config(g)?);
    let name = args.name.clone().unwrap_or_default();
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
        return batch(&importer, name, from_file, options, g, aftermath).await;
    }
    let request = ImportRequest {
        target: name,
        resource_group: args.resource_group.clone(),
        entry: ImportEntry {
            source: args.source.clone().unwrap_or_default(),
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
        return preflight(&importer, &request, g, aftermath).await;
    }
    let report = observed(g, aftermath, async |o| importer.import(&request, o).await)
        .await
        .map_err(import_failure)?;
    match report {
        ImportReport::Server(s) => output::server(&s, g),
        ImportReport::Client(c) => output::client(&c, g),
        _ => Ok(()),
    }
}

/// `--preflight-only`: the verdict, and exit code 3 when it says the import will fail.
async fn preflight(
    importer: &Importer,
    request: &ImportRequest,
    g: &Global,
    aftermath: &Aftermath,
) -> Result<(), Failure> {
    let outcome = observed(g, aftermath, async |o| importer.preflight(request, o).await)
        .await
        .map_err(import_failure)?;
    let v = match outcome {
        PreflightOutcome::Verdict(v) => v,
        PreflightOutcome::Unavailable(reason) => {
            render::line(&format!(
                "preflight: cannot tell whether the import will work: Azure Resource Manager is not available ({reason})"
            ));
            return Ok(());
        }
    };
    match g.output {
        None => render::out(v.to_string().as_bytes()),
        Some(f) => render::print(&v, f)?,
    }
    if v.will_fail() {
        Err(Failure::new(
            exit::PREFLIGHT,
            "the preflight says the import will fail (see above)",
        ))
    } else {
        Ok(())
    }
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
