//! The `docker-credential-<name>` helpers: finding one on the source's `PATH`, running
//! `get`, reading its answer, and saying why it failed without repeating its output.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use zeroize::Zeroizing;

use super::{DockerConfigSource, Explanation, SkipReason};
use crate::{AuthError, Credential, Secret};

/// What helpers print (on stdout, as the docker-credential-helpers library does) when they have
/// nothing for the server.
const NOT_FOUND_MESSAGE: &str = "credentials not found in native keychain";

/// The helper username that means "the secret is an identity token".
const TOKEN_USERNAME: &str = "<token>";

/// How much of a helper's stderr an error may repeat.
const STDERR_EXCERPT_CHARS: usize = 200;

impl DockerConfigSource {
    /// The credential `helper` (named in `path`) has for `server_url`; when it has none, the
    /// skip is recorded in `explanation`.
    pub(super) async fn ask(
        &self,
        path: &Path,
        helper: &str,
        server_url: &str,
        explanation: &mut Explanation,
    ) -> Result<Option<Credential>, AuthError> {
        let found = self.run_helper(helper, server_url).await?;
        if found.is_none() {
            explanation.skip(
                path,
                SkipReason::HelperHadNone {
                    helper: helper.to_owned(),
                    server_url: server_url.to_owned(),
                },
            );
        }
        Ok(found)
    }

    /// Runs `docker-credential-<helper> get` for `server_url`: `None` when it has nothing.
    async fn run_helper(
        &self,
        helper: &str,
        server_url: &str,
    ) -> Result<Option<Credential>, AuthError> {
        let fail = |reason: String| AuthError::CredentialHelper {
            helper: helper.to_owned(),
            reason,
        };
        if helper.is_empty() || helper.contains(['/', '\\', '\0']) {
            return Err(fail(
                "the helper name must not be empty or contain a path separator".to_owned(),
            ));
        }
        let executable = self.find_helper(helper).ok_or_else(|| {
            fail(format!(
                "the executable docker-credential-{helper} is not on PATH: install it, \
                 or remove it from the configuration file"
            ))
        })?;

        let output = tokio::time::timeout(self.helper_timeout, run_get(&executable, server_url))
            .await
            .map_err(|_| {
                fail(format!(
                    "it did not answer within {} s and was stopped",
                    self.helper_timeout.as_secs_f64()
                ))
            })?
            .map_err(|e| fail(format!("cannot run {}: {e}", executable.display())))?;

        let stdout = Zeroizing::new(output.stdout);
        let stderr = Zeroizing::new(output.stderr);
        if !output.status.success() {
            if contains(&stdout, NOT_FOUND_MESSAGE) || contains(&stderr, NOT_FOUND_MESSAGE) {
                return Ok(None);
            }
            return Err(fail(failure_reason(output.status, &stderr)));
        }
        parse_helper_output(&stdout).map_err(|reason| fail(reason.to_owned()))
    }

    /// `docker-credential-<helper>` in the first directory of the `PATH` that has it as an
    /// executable file. Empty `PATH` entries (the current directory) are ignored.
    fn find_helper(&self, helper: &str) -> Option<PathBuf> {
        let path_env = self.path_env.as_ref()?;
        let name = format!("docker-credential-{helper}");
        std::env::split_paths(path_env)
            .filter(|dir| !dir.as_os_str().is_empty())
            .flat_map(|dir| executable_names(&name).map(move |n| dir.join(n)))
            .find(|candidate| is_executable(candidate))
    }
}

/// Parses a successful `get` answer. `None` when it names no one; the error never carries the
/// output.
fn parse_helper_output(stdout: &[u8]) -> Result<Option<Credential>, &'static str> {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(stdout) else {
        return Err("it printed something that is not a JSON object on stdout");
    };
    let mut take = |name: &str| -> Result<String, &'static str> {
        match answer.remove(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err("its answer has a non-string `Username` or `Secret`"),
        }
    };
    let username = take("Username")?;
    let secret = Secret::new(take("Secret")?);
    drop(answer);
    if secret.is_empty() && username.is_empty() {
        return Ok(None);
    }
    if username == TOKEN_USERNAME {
        return Ok(Some(Credential::RefreshToken(secret)));
    }
    Ok(Some(Credential::from_username_password(username, secret)))
}

/// Runs `<executable> get` with `server_url` on stdin, collecting its output.
async fn run_get(executable: &Path, server_url: &str) -> io::Result<std::process::Output> {
    let mut attempt = 0;
    let mut child = loop {
        let spawned = tokio::process::Command::new(executable)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            // A helper just written (tests, installers) can be briefly busy while another
            // thread's fork still holds it open for writing.
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other?,
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        match stdin.write_all(server_url.as_bytes()).await {
            // A helper may exit without reading (e.g. "not found" for every server).
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            other => other?,
        }
        drop(stdin);
    }
    child.wait_with_output().await
}

/// Why a helper failed: its status, and a short stderr excerpt if it looks harmless.
fn failure_reason(status: ExitStatus, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let mut reason = format!("it exited with {status}");
    if !text.is_empty() && !text.to_ascii_lowercase().contains("secret") {
        let excerpt: String = text
            .chars()
            .take(STDERR_EXCERPT_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        reason.push_str(": ");
        reason.push_str(&excerpt);
        if text.chars().count() > STDERR_EXCERPT_CHARS {
            reason.push('…');
        }
    }
    reason
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

fn executable_names(name: &str) -> impl Iterator<Item = String> {
    let mut names = vec![name.to_owned()];
    if cfg!(windows) {
        names.insert(0, format!("{name}.exe"));
    }
    names.into_iter()
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_output_parsing() {
        let basic = br#"{"ServerURL":"x","Username":"u","Secret":"s"}"#;
        assert_eq!(
            parse_helper_output(basic).unwrap(),
            Some(Credential::Basic {
                username: "u".into(),
                password: Secret::new("s")
            })
        );
        let token = br#"{"ServerURL":"x","Username":"<token>","Secret":"rt"}"#;
        assert_eq!(
            parse_helper_output(token).unwrap(),
            Some(Credential::RefreshToken(Secret::new("rt")))
        );
        assert_eq!(parse_helper_output(b"\n").unwrap(), None);
        assert_eq!(
            parse_helper_output(br#"{"Username":"","Secret":""}"#).unwrap(),
            None
        );
        let bad = parse_helper_output(b"Secret=SECRETVALUE").unwrap_err();
        assert!(!bad.contains("SECRETVALUE"));
    }
    #[cfg(unix)]
    #[test]
    fn failure_reason_filters_stderr() {
        use std::os::unix::process::ExitStatusExt as _;
        let status = ExitStatus::from_raw(1 << 8);
        let plain = failure_reason(status, b"permission denied\n");
        assert!(
            plain.contains("exit status: 1") && plain.contains("permission denied"),
            "{plain}"
        );
        let secret = failure_reason(status, b"{\"Secret\":\"hunter2\"}");
        assert!(!secret.contains("hunter2"), "{secret}");
        let long = failure_reason(status, "z".repeat(1000).as_bytes());
        assert!(
            long.chars().filter(|&c| c == 'z').count() == STDERR_EXCERPT_CHARS,
            "{long}"
        );
    }
}
