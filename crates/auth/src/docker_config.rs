//! Credentials from Docker and containers (podman, skopeo, buildah) configuration files, and the
//! `docker-credential-<name>` helpers they name.
//!
//! # What is read, and in which order
//!
//! [`DockerConfigSource::from_env`] consults these files, in this order (a file that does not
//! exist is skipped):
//!
//! 1. `$REGISTRY_AUTH_FILE`, when set;
//! 2. `$XDG_RUNTIME_DIR/containers/auth.json`, when `XDG_RUNTIME_DIR` is set (where `podman login`
//!    writes);
//! 3. `$XDG_CONFIG_HOME/containers/auth.json`, or `~/.config/containers/auth.json`;
//! 4. `$DOCKER_CONFIG/config.json` when `DOCKER_CONFIG` is set, otherwise `~/.docker/config.json`
//!    (where `docker login` writes).
//!
//! This is podman's and skopeo's order, except that `REGISTRY_AUTH_FILE` is the first file of the
//! chain rather than replacing the containers files: every file is consulted until one yields a
//! credential. The legacy `~/.dockercfg` is not read.
//!
//! Within one file the sources are tried in this order, and the first that yields a credential
//! wins:
//!
//! 1. `credHelpers[registry]`: the per-registry credential helper;
//! 2. `auths[registry]`: an inline entry, read as
//!    - `identitytoken` ⇒ [`Credential::RefreshToken`],
//!    - `registrytoken` ⇒ [`Credential::BearerToken`],
//!    - `auth` (base64 of `username:password`), or else `username` and `password` ⇒
//!      [`Credential::from_username_password`] (so ACR's null-GUID username means a refresh
//!      token);
//!
//!    an entry without any of these (Docker Desktop writes `{}` next to a `credsStore`) is
//!    skipped;
//! 3. `credsStore`: the default credential helper, asked about every registry.
//!
//! A helper that answers "credentials not found" is skipped as well, so the next source (and then
//! the next file) is tried. [`DockerConfigSource::explain`] records every skipped source and why.
//!
//! # Registry keys
//!
//! Keys of `auths` and `credHelpers` may be spelt `https://index.docker.io/v1/`, `docker.io`,
//! `registry-1.docker.io`, `http://host:port`, `host:port/some/path`…: they are compared after
//! [`registry_key`] (scheme and path dropped, lowercase, Docker Hub's names folded into
//! `docker.io`). When several keys of one file name the same registry, the bare key (`host[:port]`,
//! `docker.io` for Docker Hub, any case) is preferred, then keys without a path (a scheme is fine,
//! and Docker Hub's `/v1/` does not count as a path), then keys with a path; lexical order among
//! equals.
//!
//! # Credential helpers
//!
//! A helper `name` is the executable `docker-credential-<name>`, looked up in the `PATH` the
//! source was built with (never the current directory). It is run as `docker-credential-<name>
//! get` with the server URL on stdin (no newline, as Docker sends it): `https://index.docker.io/v1/`
//! for Docker Hub, the registry's `host[:port]` otherwise. It answers
//! `{"ServerURL": …, "Username": …, "Secret": …}` on stdout; the username `<token>` means the
//! secret is an identity token ([`Credential::RefreshToken`]). A non-zero exit whose output says
//! `credentials not found in native keychain` means "none". A helper is stopped after
//! [`DEFAULT_HELPER_TIMEOUT`] (see [`DockerConfigSource::with_helper_timeout`]).
//!
//! Helper output is untrusted: an error names the helper and its exit status, and includes at
//! most 200 characters of its stderr (and none if they mention a secret); its stdout is never
//! repeated. Errors about a malformed file name the file and the entry key, never a value.
//!
//! ```
//! use acr_import_auth::{Credential, DockerConfigSource, Origin};
//!
//! let dir = std::env::temp_dir().join(format!("acr-import-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let file = dir.join("config.json");
//! // "alice:s3cret" in base64.
//! std::fs::write(&file, r#"{"auths": {"https://index.docker.io/v1/": {"auth": "YWxpY2U6czNjcmV0"}}}"#)?;
//!
//! let source = DockerConfigSource::new([&file], None);
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let (credential, origin) = source.lookup("registry-1.docker.io").await?.expect("an entry");
//! assert!(matches!(credential, Credential::Basic { ref username, .. } if username == "alice"));
//! assert!(matches!(origin, Origin::AuthsEntry { ref key, .. } if key == "https://index.docker.io/v1/"));
//! # Ok::<(), acr_import_auth::AuthError>(())
//! # })?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use zeroize::Zeroizing;

use crate::{AuthError, Credential, CredentialProvider, Secret, registry_key};

/// The server URL Docker's credential stores know Docker Hub by.
pub const DOCKER_HUB_SERVER_URL: &str = "https://index.docker.io/v1/";

/// How long a credential helper may take before it is stopped.
pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// What helpers print (on stdout, as the docker-credential-helpers library does) when they have
/// nothing for the server.
const NOT_FOUND_MESSAGE: &str = "credentials not found in native keychain";

/// The helper username that means "the secret is an identity token".
const TOKEN_USERNAME: &str = "<token>";

/// How much of a helper's stderr an error may repeat.
const STDERR_EXCERPT_CHARS: usize = 200;

/// Base64 as Docker writes it, padded or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Docker and containers configuration files, read in order, and the helpers they name.
///
/// The environment (which files, which `PATH` to find helpers in) is fixed when the source is
/// built: [`DockerConfigSource::from_env`] reads the process environment, [`DockerConfigSource::new`]
/// takes it explicitly. Files are read on every lookup, so a `docker login` in between is seen.
#[derive(Debug, Clone)]
pub struct DockerConfigSource {
    paths: Vec<PathBuf>,
    path_env: Option<OsString>,
    helper_timeout: Duration,
}

impl DockerConfigSource {
    /// The files of the process environment (see [`DockerConfigSource::paths_from`]), with
    /// helpers found on `$PATH`.
    pub fn from_env() -> Self {
        Self::new(
            Self::paths_from(|name| std::env::var_os(name)),
            std::env::var_os("PATH"),
        )
    }

    /// Exactly these files, in this order, with helpers found in the directories of `path_env`
    /// (a `PATH`-style list; `None` means no helper can be run, and a file naming one is an
    /// error).
    pub fn new<P: Into<PathBuf>>(
        paths: impl IntoIterator<Item = P>,
        path_env: Option<OsString>,
    ) -> Self {
        Self {
            paths: paths.into_iter().map(Into::into).collect(),
            path_env,
            helper_timeout: DEFAULT_HELPER_TIMEOUT,
        }
    }

    /// The files to read, in order, for an environment given as a lookup function (the process
    /// environment is `|name| std::env::var_os(name)`): `REGISTRY_AUTH_FILE`,
    /// `XDG_RUNTIME_DIR/containers/auth.json`, `XDG_CONFIG_HOME/containers/auth.json` (default
    /// `HOME/.config`), then `DOCKER_CONFIG/config.json` or `HOME/.docker/config.json`. Unset or
    /// empty variables contribute nothing; `HOME` falls back to `USERPROFILE`.
    pub fn paths_from(env: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
        let var = |name: &str| {
            env(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        let home = var("HOME").or_else(|| var("USERPROFILE"));
        let mut paths = Vec::new();
        if let Some(file) = var("REGISTRY_AUTH_FILE") {
            paths.push(file);
        }
        if let Some(dir) = var("XDG_RUNTIME_DIR") {
            paths.push(dir.join("containers").join("auth.json"));
        }
        if let Some(dir) =
            var("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")))
        {
            paths.push(dir.join("containers").join("auth.json"));
        }
        if let Some(dir) = var("DOCKER_CONFIG") {
            paths.push(dir.join("config.json"));
        } else if let Some(home) = &home {
            paths.push(home.join(".docker").join("config.json"));
        }
        let mut unique: Vec<PathBuf> = Vec::with_capacity(paths.len());
        for path in paths {
            if !unique.contains(&path) {
                unique.push(path);
            }
        }
        unique
    }

    /// Stops helpers that take longer than `timeout` (default [`DEFAULT_HELPER_TIMEOUT`]).
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Self {
        self.helper_timeout = timeout;
        self
    }

    /// The files consulted, in order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The first credential found for `registry` (`host[:port]`, any Docker Hub spelling), and
    /// where it came from; `None` when no file or helper has one.
    pub async fn lookup(&self, registry: &str) -> Result<Option<(Credential, Origin)>, AuthError> {
        Ok(self.explain(registry).await?.found)
    }

    /// [`DockerConfigSource::lookup`], also saying which sources were skipped and why.
    pub async fn explain(&self, registry: &str) -> Result<Explanation, AuthError> {
        let target = normalise(registry);
        let mut explanation = Explanation {
            registry: target.clone(),
            found: None,
            skipped: Vec::new(),
        };
        for path in &self.paths {
            let Some(config) = ConfigFile::read(path)? else {
                explanation.skip(path, SkipReason::Missing);
                continue;
            };
            if let Some(found) = self.lookup_in(&config, &target, &mut explanation).await? {
                explanation.found = Some(found);
                return Ok(explanation);
            }
        }
        Ok(explanation)
    }

    async fn lookup_in(
        &self,
        config: &ConfigFile,
        target: &str,
        explanation: &mut Explanation,
    ) -> Result<Option<(Credential, Origin)>, AuthError> {
        let path = &config.path;
        let server_url = server_url(target);
        let mut consulted = false;

        if let Some((key, helper)) = best_match(&config.cred_helpers, target) {
            consulted = true;
            match self.run_helper(helper, &server_url).await? {
                Some(credential) => {
                    let origin = Origin::CredHelper {
                        path: path.clone(),
                        key: key.clone(),
                        helper: helper.clone(),
                        server_url,
                    };
                    return Ok(Some((credential, origin)));
                }
                None => explanation.skip(
                    path,
                    SkipReason::HelperHadNone {
                        helper: helper.clone(),
                        server_url: server_url.clone(),
                    },
                ),
            }
        }

        let mut entries: Vec<&(String, Value)> = config
            .auths
            .iter()
            .filter(|(key, _)| normalise(key) == target)
            .collect();
        entries.sort_by_cached_key(|(key, _)| rank(key, target));
        for (key, entry) in entries {
            consulted = true;
            match entry_credential(path, key, entry)? {
                Some(credential) => {
                    let origin = Origin::AuthsEntry {
                        path: path.clone(),
                        key: key.clone(),
                    };
                    return Ok(Some((credential, origin)));
                }
                None => explanation.skip(path, SkipReason::EmptyEntry { key: key.clone() }),
            }
        }

        if let Some(helper) = &config.creds_store {
            consulted = true;
            match self.run_helper(helper, &server_url).await? {
                Some(credential) => {
                    let origin = Origin::CredsStore {
                        path: path.clone(),
                        helper: helper.clone(),
                        server_url,
                    };
                    return Ok(Some((credential, origin)));
                }
                None => explanation.skip(
                    path,
                    SkipReason::HelperHadNone {
                        helper: helper.clone(),
                        server_url,
                    },
                ),
            }
        }

        if !consulted {
            explanation.skip(path, SkipReason::NoEntry);
        }
        Ok(None)
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

#[async_trait::async_trait]
impl CredentialProvider for DockerConfigSource {
    async fn credential(&self, registry: &str) -> Result<Credential, AuthError> {
        match self.lookup(registry).await? {
            Some((credential, origin)) => {
                tracing::trace!(registry, %origin, identity = %credential.identity(), "credential from a Docker configuration");
                Ok(credential)
            }
            None => Ok(Credential::Anonymous),
        }
    }
}

/// Where a credential came from: a file and key, or a helper. Never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// An inline `auths` entry.
    AuthsEntry {
        /// The file.
        path: PathBuf,
        /// The entry's key, as spelt in the file.
        key: String,
    },
    /// The per-registry helper of a `credHelpers` entry.
    CredHelper {
        /// The file naming the helper.
        path: PathBuf,
        /// The `credHelpers` key, as spelt in the file.
        key: String,
        /// The helper name (`gcloud` for `docker-credential-gcloud`).
        helper: String,
        /// The server URL the helper was asked about.
        server_url: String,
    },
    /// The default helper of a `credsStore`.
    CredsStore {
        /// The file naming the helper.
        path: PathBuf,
        /// The helper name (`desktop` for `docker-credential-desktop`).
        helper: String,
        /// The server URL the helper was asked about.
        server_url: String,
    },
}

impl Origin {
    /// The configuration file this came from.
    pub fn path(&self) -> &Path {
        match self {
            Origin::AuthsEntry { path, .. }
            | Origin::CredHelper { path, .. }
            | Origin::CredsStore { path, .. } => path,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::AuthsEntry { path, key } => {
                write!(f, "auths entry `{key}` in {}", path.display())
            }
            Origin::CredHelper {
                path,
                key,
                helper,
                server_url,
            } => write!(
                f,
                "credential helper docker-credential-{helper} for `{server_url}` \
                 (credHelpers entry `{key}` in {})",
                path.display()
            ),
            Origin::CredsStore {
                path,
                helper,
                server_url,
            } => write!(
                f,
                "credential store docker-credential-{helper} for `{server_url}` (credsStore in {})",
                path.display()
            ),
        }
    }
}

/// The outcome of [`DockerConfigSource::explain`].
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The registry key looked up (after [`registry_key`]).
    pub registry: String,
    /// The credential chosen and its origin; `None` when nothing had one.
    pub found: Option<(Credential, Origin)>,
    /// The sources consulted before, in order, and why each gave nothing.
    pub skipped: Vec<Skipped>,
}

impl Explanation {
    fn skip(&mut self, path: &Path, reason: SkipReason) {
        self.skipped.push(Skipped {
            path: path.to_owned(),
            reason,
        });
    }
}

/// A source that gave no credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The configuration file.
    pub path: PathBuf,
    /// Why it gave nothing.
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Why a source gave no credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The file does not exist.
    Missing,
    /// The file has no `credHelpers` or `auths` entry for the registry, and no `credsStore`.
    NoEntry,
    /// The `auths` entry has no credentials in it.
    EmptyEntry {
        /// The entry's key, as spelt in the file.
        key: String,
    },
    /// The helper answered that it has no credentials for the server.
    HelperHadNone {
        /// The helper name.
        helper: String,
        /// The server URL it was asked about.
        server_url: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Missing => f.write_str("the file does not exist"),
            SkipReason::NoEntry => f.write_str("no entry for this registry"),
            SkipReason::EmptyEntry { key } => {
                write!(f, "the auths entry `{key}` holds no credentials")
            }
            SkipReason::HelperHadNone { helper, server_url } => write!(
                f,
                "docker-credential-{helper} has no credentials for `{server_url}`"
            ),
        }
    }
}

/// The parts of a configuration file this module reads.
struct ConfigFile {
    path: PathBuf,
    /// `auths`, key as spelt and entry not yet decoded.
    auths: Vec<(String, Value)>,
    /// `credHelpers`, key as spelt and helper name.
    cred_helpers: Vec<(String, String)>,
    /// A non-empty `credsStore`.
    creds_store: Option<String>,
}

impl ConfigFile {
    /// Reads `path`; `None` when it does not exist.
    fn read(path: &Path) -> Result<Option<Self>, AuthError> {
        let text = match std::fs::read(path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(AuthError::DockerConfigUnreadable {
                    path: path.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        Self::parse(path, &text).map(Some)
    }

    fn parse(path: &Path, text: &[u8]) -> Result<Self, AuthError> {
        let malformed = |entry: &str, reason: String| AuthError::DockerConfigMalformed {
            path: path.to_owned(),
            entry: entry.to_owned(),
            reason,
        };
        let mut config = ConfigFile {
            path: path.to_owned(),
            auths: Vec::new(),
            cred_helpers: Vec::new(),
            creds_store: None,
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(config);
        }
        // Syntax errors name a line and column, never the text there.
        let value: Value = serde_json::from_slice(text)
            .map_err(|e| malformed("(the file)", format!("not valid JSON: {e}")))?;
        let Value::Object(mut top) = value else {
            return Err(malformed(
                "(the file)",
                "the top level is not a JSON object".to_owned(),
            ));
        };
        match top.remove("auths") {
            None | Some(Value::Null) => {}
            Some(Value::Object(auths)) => config.auths = auths.into_iter().collect(),
            Some(_) => return Err(malformed("auths", "not a JSON object".to_owned())),
        }
        match top.remove("credHelpers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(helpers)) => {
                for (key, helper) in helpers {
                    let Value::String(helper) = helper else {
                        return Err(malformed(
                            &format!("credHelpers[\"{key}\"]"),
                            "the helper name is not a string".to_owned(),
                        ));
                    };
                    config.cred_helpers.push((key, helper));
                }
            }
            Some(_) => return Err(malformed("credHelpers", "not a JSON object".to_owned())),
        }
        match top.remove("credsStore") {
            None | Some(Value::Null) => {}
            Some(Value::String(store)) => {
                config.creds_store = Some(store).filter(|s| !s.is_empty());
            }
            Some(_) => return Err(malformed("credsStore", "not a string".to_owned())),
        }
        Ok(config)
    }
}

/// The credential of one `auths` entry; `None` when it holds none.
fn entry_credential(
    path: &Path,
    key: &str,
    entry: &Value,
) -> Result<Option<Credential>, AuthError> {
    let malformed = |reason: &str| AuthError::DockerConfigMalformed {
        path: path.to_owned(),
        entry: format!("auths[\"{key}\"]"),
        reason: reason.to_owned(),
    };
    let Value::Object(fields) = entry else {
        return Err(malformed("the entry is not a JSON object"));
    };
    let field = |name: &str| -> Result<&str, AuthError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(""),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(malformed(&format!("`{name}` is not a string"))),
        }
    };

    let identity_token = field("identitytoken")?;
    if !identity_token.is_empty() {
        return Ok(Some(Credential::RefreshToken(Secret::new(identity_token))));
    }
    let registry_token = field("registrytoken")?;
    if !registry_token.is_empty() {
        return Ok(Some(Credential::BearerToken(Secret::new(registry_token))));
    }
    let auth = field("auth")?.trim();
    let (username, password) = if auth.is_empty() {
        (
            field("username")?.to_owned(),
            Secret::new(field("password")?),
        )
    } else {
        decode_auth(auth).map_err(malformed)?
    };
    if username.is_empty() && password.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential::from_username_password(username, password)))
}

/// `base64(username:password)` → its parts. The error never carries the value.
fn decode_auth(auth: &str) -> Result<(String, Secret), &'static str> {
    let bytes = Zeroizing::new(
        BASE64
            .decode(auth)
            .map_err(|_| "`auth` is not valid base64")?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|_| "`auth` does not decode to UTF-8 text")?;
    let (username, password) = text
        .split_once(':')
        .ok_or("`auth` does not decode to `username:password`")?;
    Ok((username.to_owned(), Secret::new(password)))
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

/// A registry or configuration key, compared form.
fn normalise(key: &str) -> String {
    registry_key(&key.trim().to_ascii_lowercase())
}

/// What helpers are asked about for a registry key.
fn server_url(target: &str) -> String {
    if target == "docker.io" {
        DOCKER_HUB_SERVER_URL.to_owned()
    } else {
        target.to_owned()
    }
}

/// Sort key among the keys of one file that name `target`: the key spelt exactly as `target`
/// first, then keys without a path (a scheme, or Docker Hub's `/v1/`, is fine), then keys with a
/// path; lexical among equals.
fn rank(key: &str, target: &str) -> (u8, String) {
    let lower = key.trim().to_ascii_lowercase();
    let bare = lower
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let class = if lower == target {
        0
    } else {
        match bare.split_once('/') {
            None | Some((_, "v1" | "v2")) => 1,
            Some(_) => 2,
        }
    };
    (class, key.to_owned())
}

/// The best-ranked entry of `entries` whose key names `target`.
fn best_match<'a>(entries: &'a [(String, String)], target: &str) -> Option<&'a (String, String)> {
    entries
        .iter()
        .filter(|(key, _)| normalise(key) == target)
        .min_by_key(|(key, _)| rank(key, target))
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

    fn path() -> PathBuf {
        PathBuf::from("/cfg/config.json")
    }

    fn parse(text: &str) -> Result<ConfigFile, AuthError> {
        ConfigFile::parse(&path(), text.as_bytes())
    }

    #[test]
    fn auth_field_decodes_with_or_without_padding() {
        // "bob:pw" is Ym9iOnB3 (no padding needed); "al:pw" is YWw6cHc= / YWw6cHc.
        for auth in ["YWw6cHc=", "YWw6cHc"] {
            let entry = serde_json::json!({ "auth": auth });
            let c = entry_credential(&path(), "k", &entry).unwrap().unwrap();
            assert_eq!(
                c,
                Credential::Basic {
                    username: "al".into(),
                    password: Secret::new("pw")
                }
            );
        }
    }

    #[test]
    fn password_may_contain_colons() {
        let auth = BASE64.encode("user:pa:ss");
        let entry = serde_json::json!({ "auth": auth });
        let c = entry_credential(&path(), "k", &entry).unwrap().unwrap();
        let Credential::Basic { username, password } = c else {
            panic!()
        };
        assert_eq!(username, "user");
        assert_eq!(password.expose(), "pa:ss");
    }

    #[test]
    fn entry_kinds() {
        let id = serde_json::json!({ "auth": BASE64.encode("x:"), "identitytoken": "idtok" });
        assert_eq!(
            entry_credential(&path(), "k", &id).unwrap(),
            Some(Credential::RefreshToken(Secret::new("idtok")))
        );
        let reg = serde_json::json!({ "registrytoken": "bearer" });
        assert_eq!(
            entry_credential(&path(), "k", &reg).unwrap(),
            Some(Credential::BearerToken(Secret::new("bearer")))
        );
        let guid = serde_json::json!({ "username": crate::NULL_GUID_USERNAME, "password": "rt" });
        assert_eq!(
            entry_credential(&path(), "k", &guid).unwrap(),
            Some(Credential::RefreshToken(Secret::new("rt")))
        );
        for empty in [
            serde_json::json!({}),
            serde_json::json!({ "auth": "", "email": "a@b" }),
        ] {
            assert_eq!(entry_credential(&path(), "k", &empty).unwrap(), None);
        }
    }

    #[test]
    fn bad_entries_name_file_and_key_not_value() {
        let cases = [
            serde_json::json!({ "auth": "!!not-base64-SECRETVALUE!!" }),
            serde_json::json!({ "auth": BASE64.encode("no-colon-SECRETVALUE") }),
            serde_json::json!({ "password": 7 }),
            serde_json::json!("SECRETVALUE"),
        ];
        for entry in cases {
            let e = entry_credential(&path(), "quay.io", &entry).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(
                matches!(e, AuthError::DockerConfigMalformed { .. }),
                "{shown}"
            );
            assert!(shown.contains("/cfg/config.json"), "{shown}");
            assert!(shown.contains("quay.io"), "{shown}");
            assert!(!shown.contains("SECRETVALUE"), "{shown}");
            assert!(!shown.contains("no-colon"), "{shown}");
        }
    }

    #[test]
    fn file_structure_errors() {
        for (text, entry) in [
            (
                "{\"auths\": {\"a\": {\"auth\": \"SECRETVALUE\"",
                "(the file)",
            ),
            ("[1, 2]", "(the file)"),
            ("{\"auths\": \"SECRETVALUE\"}", "auths"),
            (
                "{\"credHelpers\": {\"gcr.io\": 1}}",
                "credHelpers[\"gcr.io\"]",
            ),
            ("{\"credsStore\": 5}", "credsStore"),
        ] {
            let Err(e) = parse(text) else {
                panic!("{text} parsed")
            };
            let shown = e.to_string();
            assert!(shown.contains("/cfg/config.json"), "{shown}");
            assert!(shown.contains(entry), "{shown}");
            assert!(!shown.contains("SECRETVALUE"), "{shown}");
        }
        assert!(parse("  \n").unwrap().auths.is_empty());
        assert_eq!(parse("{\"credsStore\": \"\"}").unwrap().creds_store, None);
    }

    #[test]
    fn keys_normalise_and_rank() {
        for key in [
            "https://index.docker.io/v1/",
            "docker.io",
            "registry-1.docker.io",
            "Index.Docker.IO",
            "HTTPS://registry-1.docker.io/v2/",
        ] {
            assert_eq!(normalise(key), "docker.io", "{key}");
        }
        assert_eq!(normalise("http://localhost:5000"), "localhost:5000");
        assert_eq!(normalise("quay.io/org/repo"), "quay.io");
        let helpers = vec![
            ("quay.io/org".to_owned(), "a".to_owned()),
            ("https://quay.io".to_owned(), "b".to_owned()),
            ("quay.io".to_owned(), "c".to_owned()),
        ];
        assert_eq!(best_match(&helpers, "quay.io").unwrap().1, "c");
        assert_eq!(best_match(&helpers[..2], "quay.io").unwrap().1, "b");
        assert_eq!(server_url("docker.io"), DOCKER_HUB_SERVER_URL);
        assert_eq!(server_url("myreg:5000"), "myreg:5000");
    }

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

    #[test]
    fn paths_follow_the_documented_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(*v))
            }
        };
        let all = DockerConfigSource::paths_from(env(&[
            ("REGISTRY_AUTH_FILE", "/a/auth.json"),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("XDG_CONFIG_HOME", "/xdg"),
            ("DOCKER_CONFIG", "/dc"),
            ("HOME", "/home/u"),
        ]));
        assert_eq!(
            all,
            [
                "/a/auth.json",
                "/run/user/1/containers/auth.json",
                "/xdg/containers/auth.json",
                "/dc/config.json"
            ]
            .map(PathBuf::from)
        );
        let home_only =
            DockerConfigSource::paths_from(env(&[("HOME", "/home/u"), ("DOCKER_CONFIG", "")]));
        assert_eq!(
            home_only,
            [
                "/home/u/.config/containers/auth.json",
                "/home/u/.docker/config.json"
            ]
            .map(PathBuf::from)
        );
        assert!(DockerConfigSource::paths_from(|_| None).is_empty());
    }
}
