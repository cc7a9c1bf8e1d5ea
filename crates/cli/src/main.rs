//! The `acr` command: a thin front end over the acr-import crates — parsing, rendering,
//! exit codes. Import logic lives in the libraries.

mod import;
mod output;
mod render;
mod repository;
mod settings;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use acr_import_cli::args::{Cli, Command};

/// Exit codes, as `--help` documents them.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The import (or listing) failed.
    pub const FAILED: u8 = 1;
    /// The command line was wrong.
    pub const USAGE: u8 = 2;
    /// The network preflight says the import will fail.
    pub const PREFLIGHT: u8 = 3;
    /// Authentication or authorization failed.
    pub const AUTH: u8 = 4;
    /// Interrupted (Ctrl-C).
    pub const INTERRUPTED: u8 = 130;
}

/// An error for the user: what failed, its causes, an optional hint, the exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) causes: Vec<String>,
    pub(crate) hint: Option<String>,
    pub(crate) code: u8,
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            causes: Vec::new(),
            hint: None,
            code,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, message)
    }

    /// `error`'s message and causes.
    pub(crate) fn from_error(code: u8, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut lines = acr_import_cli::report::error_lines(error).into_iter();
        let mut f = Self::new(code, lines.next().unwrap_or_default());
        f.causes = lines.collect();
        f
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn print(&self) {
        eprintln!("ERROR: {}", self.message);
        for c in &self.causes {
            eprintln!("  caused by: {c}");
        }
        if let Some(h) = &self.hint {
            eprintln!("HINT: {h}");
        }
    }
}

impl From<acr_import_transfer::TransferError> for Failure {
    fn from(e: acr_import_transfer::TransferError) -> Self {
        import::import_failure(acr_import_acr::ImportError::copy(
            acr_import_acr::Side::Unknown,
            None,
            e,
        ))
    }
}

fn main() -> ExitCode {
    acr_import_cli::report::quiet_panics("ERROR");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help and --version print as clap writes them; errors in the voice of every other.
        Err(e) if !e.use_stderr() => {
            render::out(e.render().to_string().as_bytes());
            return ExitCode::from(exit::OK);
        }
        Err(e) => {
            usage_error(&e);
            return ExitCode::from(exit::USAGE);
        }
    };
    render::init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ERROR: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let aftermath = import::Aftermath::default();
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(cli, &aftermath) => r,
            _ = tokio::signal::ctrl_c() => Err(aftermath.interrupted()),
        }
    });
    // Abandon in-flight requests at once; a tag is written only after everything it reaches
    // is in place, so the tags already written are all that moved.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(f) => {
            f.print();
            ExitCode::from(f.code)
        }
    }
}

/// A clap error as `ERROR: …`, its usage and tips after it.
fn usage_error(e: &clap::Error) {
    let text = e.render().to_string();
    let mut lines = text.trim_end().lines();
    let first = lines.next().unwrap_or_default();
    eprintln!("ERROR: {}", first.strip_prefix("error: ").unwrap_or(first));
    for line in lines {
        eprintln!("{line}");
    }
}

async fn run(cli: Cli, aftermath: &import::Aftermath) -> Result<(), Failure> {
    match cli.command {
        Command::Import(args) => import::run(*args, &cli.global, aftermath).await,
        Command::Repository(cmd) => repository::run_repository(cmd, &cli.global).await,
        Command::Manifest(cmd) => repository::run_manifest(cmd, &cli.global).await,
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "acr", &mut script);
            render::out(&script);
            Ok(())
        }
    }
}
