//! Helpers of the `acr` binary's tests in the local Azure (`arm.rs`): command lines run as a
//! principal of the [`ArmWorld`], and the checks of their output the tests repeat.

use std::ffi::OsStr;
use std::process::Output;
use std::time::Duration;

use acr_import_tests::ArmWorld;
use acr_import_tests::world::{ADMIN, SUB};

use crate::common::{ACR, stderr, stdout};

/// `acr args` as `who` in the local Azure, with nothing of this machine's environment and no
/// subscription chosen.
pub fn command_without_subscription<I>(
    w: &ArmWorld,
    who: (&str, &str),
    args: I,
) -> tokio::process::Command
where
    I: IntoIterator,
    I::Item: AsRef<OsStr>,
{
    let mut cmd = tokio::process::Command::new(ACR);
    cmd.args(args)
        .arg("--ca-file")
        .arg(w.ca_file())
        .env_clear()
        .envs(w.env_for(who))
        .kill_on_drop(true);
    cmd
}

/// `acr args` as `who` in the local Azure, in the target's subscription ([`SUB`]).
pub fn command<I>(w: &ArmWorld, who: (&str, &str), args: I) -> tokio::process::Command
where
    I: IntoIterator,
    I::Item: AsRef<OsStr>,
{
    let mut cmd = command_without_subscription(w, who, args);
    cmd.env("AZURE_SUBSCRIPTION_ID", SUB);
    cmd
}

/// `acr import -n targetreg args…` as `who` ([`command`]).
pub fn import_command(w: &ArmWorld, who: (&str, &str), args: &[&str]) -> tokio::process::Command {
    command(w, who, ["import", "-n", "targetreg"].iter().chain(args))
}

/// `cmd` with the admin user of the target for the client-side part of the import.
pub fn with_target_admin(mut cmd: tokio::process::Command) -> tokio::process::Command {
    cmd.env("ACR_IMPORT_TARGET_USERNAME", ADMIN.0)
        .env("ACR_IMPORT_TARGET_PASSWORD", ADMIN.1);
    cmd
}

/// What `cmd` printed and how it exited, within two minutes.
pub async fn output(mut cmd: tokio::process::Command) -> Output {
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("acr finished in time")
        .expect("run acr")
}

/// Runs `acr args` as `who` ([`command`]).
pub async fn acr<I>(w: &ArmWorld, who: (&str, &str), args: I) -> Output
where
    I: IntoIterator,
    I::Item: AsRef<OsStr>,
{
    output(command(w, who, args)).await
}

/// Runs `acr import -n targetreg args…` as `who` ([`import_command`]).
pub async fn import(w: &ArmWorld, who: (&str, &str), args: &[&str]) -> Output {
    output(import_command(w, who, args)).await
}

/// Runs `acr import -n targetreg args…` as `who`, with the target's admin user for the
/// client-side part ([`with_target_admin`]).
pub async fn import_with_target_admin(w: &ArmWorld, who: (&str, &str), args: &[&str]) -> Output {
    output(with_target_admin(import_command(w, who, args))).await
}

/// The exit code of `o` (-1 when a signal ended it).
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Asserts that `o` exited with `want`, showing what it printed otherwise.
#[track_caller]
pub fn assert_exit(o: &Output, want: i32) {
    assert_eq!(code(o), want, "{}{}", stdout(o), stderr(o));
}

/// Asserts that `o` printed `want` on its standard output.
#[track_caller]
pub fn assert_stdout_has(o: &Output, want: &str) {
    assert!(stdout(o).contains(want), "{want}: {}", stdout(o));
}

/// Asserts that `o` printed `want` on its standard error.
#[track_caller]
pub fn assert_stderr_has(o: &Output, want: &str) {
    assert!(stderr(o).contains(want), "{want}: {}", stderr(o));
}

/// The words of a command line, split at white space (no value in these tests holds a space).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}
