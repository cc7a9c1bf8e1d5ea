//! `cargo xtask` errors read as a message and its causes, never as a backtrace.

use std::process::Command;

#[test]
fn an_error_is_its_message_and_causes_whatever_rust_backtrace_says() {
    let missing = std::env::temp_dir().join("acr-import-no-such-dir/expected.json");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["conformance", "--expected"])
        .arg(&missing)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!("Error: reading {}\n", missing.display())),
        "{err}"
    );
    assert!(
        err.contains("  caused by: No such file or directory"),
        "{err}"
    );
    assert!(!err.to_lowercase().contains("backtrace"), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
}
