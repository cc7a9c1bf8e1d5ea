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

mod file;
mod helper;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::{AuthError, Credential, CredentialProvider};
use file::{ConfigFile, best_match, entry_credential, normalise, rank, server_url};

/// The server URL Docker's credential stores know Docker Hub by.
pub const DOCKER_HUB_SERVER_URL: &str = "https://index.docker.io/v1/";

/// How long a credential helper may take before it is stopped.
pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(30);

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
            if let Some(credential) = self.ask(path, helper, &server_url, explanation).await? {
                let origin = Origin::CredHelper {
                    path: path.clone(),
                    key: key.clone(),
                    helper: helper.clone(),
                    server_url,
                };
                return Ok(Some((credential, origin)));
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
            if let Some(credential) = self.ask(path, helper, &server_url, explanation).await? {
                let origin = Origin::CredsStore {
                    path: path.clone(),
                    helper: helper.clone(),
                    server_url,
                };
                return Ok(Some((credential, origin)));
            }
        }

        if !consulted {
            explanation.skip(path, SkipReason::NoEntry);
        }
        Ok(None)
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
    /// The registry key looked up (after [`registry_key`](crate::registry_key)).
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

#[cfg(test)]
mod tests {
    use super::*;

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
