//! Helpers the `acr` binary's test files share: running it, reading its output.
// Each test file uses some of them.
#![allow(dead_code)]

use std::process::{Command, Output};

/// The `acr` binary under test.
pub const ACR: &str = env!("CARGO_BIN_EXE_acr");

/// Runs `acr` with `args`, without source credentials from the environment.
pub fn acr(args: &[&str]) -> Output {
    Command::new(ACR)
        .args(args)
        .env_remove("ACR_IMPORT_SOURCE_PASSWORD")
        .env_remove("ACR_IMPORT_SOURCE_USERNAME")
        .output()
        .expect("run acr")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}
