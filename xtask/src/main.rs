//! `cargo xtask`: the demo, the conformance suite, the benchmark and the man page.
//!
//! Each task starts what it needs itself (local distribution registries on 127.0.0.1, the
//! local Azure emulator) and tears it down at the end.

mod bench;
mod ci;
mod conformance;
mod demo;
mod man;
mod seed;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run the offline demo: local registries, every import scenario, printed as it runs.
    Demo(demo::Args),
    /// Check a registry (the local one by default) against the OCI distribution spec, and
    /// our copies against the generated image matrix.
    Conformance(conformance::Args),
    /// Time the client-side engine against skopeo and the raw-transfer floor.
    Bench(bench::Args),
    /// Write the man page of `acr` to target/man/acr.1.
    Man,
    /// The README's test command: fmt, clippy, docs, layering, tests, conformance.
    Ci(ci::Args),
}

fn main() -> std::process::ExitCode {
    acr_import_cli::report::quiet_panics("Error");
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Demo(a) => demo::run(a),
        Task::Conformance(a) => conformance::run(a),
        Task::Bench(a) => bench::run(a),
        Task::Man => man::run(),
        Task::Ci(a) => ci::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The message and its causes; never anyhow's backtrace.
            acr_import_cli::report::print_error("Error", e.as_ref());
            std::process::ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask's parent).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from("."))
}

/// Variables `cargo run` sets for the program it runs (this one) that a cargo started from
/// here must not inherit: build scripts that track them (ring's tracks `CARGO_MANIFEST_DIR`)
/// would see them change between that cargo and the one that built xtask, and both would
/// rebuild everything each time.
const CARGO_RUN_VARS: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];

/// A `cargo` command (the cargo that runs xtask) in the workspace root, without the
/// variables `cargo run` set for xtask (see [`CARGO_RUN_VARS`], and every `CARGO_PKG_*`).
pub fn cargo() -> std::process::Command {
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.current_dir(workspace_root());
    for var in CARGO_RUN_VARS {
        cmd.env_remove(var);
    }
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("CARGO_PKG_") {
            cmd.env_remove(var);
        }
    }
    cmd
}

/// This program's path, to run another task. `cargo test --workspace` (a step of `cargo xtask
/// ci`) may rebuild xtask while it runs: Linux then names the running file `… (deleted)`, and
/// the rebuilt one at the same path is the one to run.
pub fn xtask_exe() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    if exe.exists() {
        return Ok(exe);
    }
    let text = exe.display().to_string();
    let rebuilt = std::path::PathBuf::from(text.trim_end_matches(" (deleted)"));
    anyhow::ensure!(
        rebuilt.exists(),
        "cannot find this program to run it again: {text}"
    );
    Ok(rebuilt)
}

/// Builds the `acr` binary (release unless `debug`) and returns its path.
pub fn build_acr(release: bool) -> anyhow::Result<std::path::PathBuf> {
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--quiet",
        "--package",
        "acr-import-cli",
        "--bin",
        "acr",
    ]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "building acr failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    Ok(target
        .join(if release { "release" } else { "debug" })
        .join("acr"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn child_cargos_do_not_inherit_what_cargo_run_set() {
        // `cargo test` sets these for this process as `cargo run` does for xtask.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let cmd = super::cargo();
        let removed: Vec<String> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for var in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_PKG_VERSION"] {
            assert!(
                removed.iter().any(|r| r == var),
                "{var} is cleared: {removed:?}"
            );
        }
        assert!(
            !removed
                .iter()
                .any(|r| r == "CARGO_TARGET_DIR" || r == "CARGO_HOME")
        );
        assert_eq!(
            cmd.get_current_dir(),
            Some(super::workspace_root().as_path())
        );
    }
}
