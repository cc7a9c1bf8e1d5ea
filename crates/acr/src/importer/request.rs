//! What an import is asked to do: the request, its options, a batch of entries, and the batch
//! file that lists them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use acr_import_auth::Secret;
use acr_import_transfer::PlatformFilter;
use serde::Deserialize;

use super::ImportError;
use crate::EngineMode;

/// Credentials for the source registry (`--username` / `--password`). The username may be
/// absent: some registries take a token as the password alone.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceCredentials {
    /// The username, if any.
    pub username: Option<String>,
    /// The password or token.
    pub password: Secret,
}

impl SourceCredentials {
    /// A username and password.
    pub fn new(username: impl Into<String>, password: Secret) -> Self {
        Self {
            username: Some(username.into()),
            password,
        }
    }
}

impl std::fmt::Debug for SourceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceCredentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// One image to import: where from, and which target tags or repositories. The target
/// registry and the options are the request's (or the batch's).
#[derive(Debug, Clone, Default)]
pub struct ImportEntry {
    /// The source as the user wrote it (`--source`): a full reference
    /// (`docker.io/library/nginx:1.27`, `host:5000/app@sha256:…`), an OCI layout
    /// (`oci:PATH[:TAG]`), or `repo[:tag|@digest]` inside [`ImportEntry::registry`].
    pub source: String,
    /// The source registry (`--registry`): a login server or host, or an Azure registry by
    /// name or ARM resource ID.
    pub registry: Option<String>,
    /// Target `repo[:tag]` (`--image`). With neither images nor repositories, the target is
    /// the source's own repository and tag.
    pub images: Vec<String>,
    /// Target repositories for an untagged copy (`--repository`).
    pub repositories: Vec<String>,
    /// Source credentials, used for this entry's source only.
    pub credentials: Option<SourceCredentials>,
}

impl ImportEntry {
    /// An entry for `source`, its targets to be added.
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            ..Self::default()
        }
    }

    /// Adds a target `repo[:tag]`.
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.images.push(image.into());
        self
    }

    /// Adds a target repository for an untagged copy.
    pub fn repository(mut self, repository: impl Into<String>) -> Self {
        self.repositories.push(repository.into());
        self
    }

    /// Names the source registry (`--registry`).
    pub fn registry(mut self, registry: impl Into<String>) -> Self {
        self.registry = Some(registry.into());
        self
    }

    /// Sets the source credentials.
    pub fn credentials(mut self, credentials: SourceCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// What reports call this entry: the source as given.
    pub fn label(&self) -> &str {
        &self.source
    }
}

/// Whether what is attached to the image (signatures, SBOMs, attestations: OCI referrers and
/// digest tags) is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Referrers {
    /// Copied by the client-side engine; the server-side engine may still be chosen: after
    /// `importImage`, what the target lacks is copied from this machine, and when this
    /// machine cannot use the source or target it stays behind with a warning. The default.
    #[default]
    Default,
    /// Asked for explicitly: the import must copy them (the client-side engine is chosen).
    Requested,
    /// Not copied.
    Skip,
}

/// How to import. Every field states its default ([`ImportOptions::default`]).
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Move target tags that point at other content (`--force`). Default: off.
    pub force: bool,
    /// Copy only these platforms of an index (client-side). Default: every platform.
    pub platforms: Vec<PlatformFilter>,
    /// Referrers. Default: [`Referrers::Default`].
    pub referrers: Referrers,
    /// Copy foreign and non-distributable layers as ordinary blobs. Default: off.
    pub foreign_layers: bool,
    /// Blob transfers in flight at most (client-side). Default: 8.
    pub jobs: usize,
    /// Also hash blobs here while streaming them to a registry. Default: off.
    pub verify_blobs: bool,
    /// Say what would be copied; write nothing (client-side). Default: off.
    pub dry_run: bool,
    /// Give up after this long. Default: no limit.
    pub timeout: Option<Duration>,
    /// Return once a server-side import is accepted. Default: off (wait for the end).
    pub no_wait: bool,
    /// Which engine. Default: [`EngineMode::Auto`].
    pub engine: EngineMode,
    /// When a source's rate limit resets later than a retry waits (Docker Hub's spent pull
    /// budget), wait for the reset with a countdown instead of failing (client-side).
    /// Default: off — the import fails at once, with every later entry of a batch on that
    /// registry.
    pub wait_rate_limit: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            force: false,
            platforms: Vec::new(),
            referrers: Referrers::Default,
            foreign_layers: false,
            jobs: 8,
            verify_blobs: false,
            dry_run: false,
            timeout: None,
            no_wait: false,
            engine: EngineMode::Auto,
            wait_rate_limit: false,
        }
    }
}

/// One import: the target registry, the entry, the options.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The target registry (`--name`): an ACR name, a login server, any `host[:port]`, an ARM
    /// resource ID, or `oci:PATH` for an OCI layout folder.
    pub target: String,
    /// The target's resource group (`--resource-group`), for an ACR found by name.
    pub resource_group: Option<String>,
    /// What to import.
    pub entry: ImportEntry,
    /// How.
    pub options: ImportOptions,
}

impl ImportRequest {
    /// An import of `source` into the registry `target`, with default options; the target
    /// tag is the source's unless [`ImportRequest::image`] names others.
    pub fn new(target: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            resource_group: None,
            entry: ImportEntry::new(source),
            options: ImportOptions::default(),
        }
    }

    /// Adds a target `repo[:tag]`.
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.entry.images.push(image.into());
        self
    }

    /// Sets the options.
    pub fn options(mut self, options: ImportOptions) -> Self {
        self.options = options;
        self
    }
}

/// Many imports into one target registry: one transport and one copy engine for all of them
/// (a blob one entry pushed is mounted by the next), each entry with its own outcome.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    /// The target registry, as [`ImportRequest::target`].
    pub target: String,
    /// The imports, reported in this order.
    pub entries: Vec<ImportEntry>,
    /// Options for every entry. Batches run client-side.
    pub options: ImportOptions,
    /// Entries running at once. Default: 4.
    pub concurrency: usize,
}

impl BatchRequest {
    /// A batch into `target` with default options.
    pub fn new(target: impl Into<String>, entries: Vec<ImportEntry>) -> Self {
        Self {
            target: target.into(),
            entries,
            options: ImportOptions::default(),
            concurrency: 4,
        }
    }
}

/// An entry of a batch file (`--from-file`), YAML or JSON:
///
/// ```yaml
/// - source: docker.io/library/nginx:1.27
///   images: [nginx:1.27, nginx:stable]
/// - source: quay.io/org/private:2.0
///   credentials-env: QUAY        # QUAY_USERNAME / QUAY_PASSWORD
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BatchFileEntry {
    /// The source.
    pub source: String,
    /// Target `repo[:tag]`s.
    #[serde(default)]
    pub images: Vec<String>,
    /// Target repositories for untagged copies.
    #[serde(default)]
    pub repositories: Vec<String>,
    /// The source registry.
    #[serde(default)]
    pub registry: Option<String>,
    /// `PREFIX`: the source credentials are `PREFIX_USERNAME` / `PREFIX_PASSWORD`.
    #[serde(default)]
    pub credentials_env: Option<String>,
}

/// A batch file: a YAML or JSON list of [`BatchFileEntry`].
#[derive(Debug, Clone)]
pub struct BatchFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its entries, in file order.
    pub entries: Vec<BatchFileEntry>,
}

impl BatchFile {
    /// Reads and parses `path` (JSON when it starts with `[`, YAML otherwise). An empty
    /// list is an error.
    pub fn read(path: &Path) -> Result<Self, ImportError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ImportError::usage(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(path, &text)
    }

    /// Parses the text of a batch file; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ImportError> {
        let entries: Vec<BatchFileEntry> = if text.trim_start().starts_with('[') {
            serde_json::from_str(text)
                .map_err(|e| ImportError::usage(format!("{}: {e}", path.display())))?
        } else {
            serde_norway::from_str(text)
                .map_err(|e| ImportError::usage(format!("{}: {e}", path.display())))?
        };
        if entries.is_empty() {
            return Err(ImportError::usage(format!(
                "{} lists no imports",
                path.display()
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The entries as imports, `credentials-env` looked up with `env` (e.g.
    /// `|name| std::env::var(name).ok()`).
    pub fn into_entries(
        self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<ImportEntry>, ImportError> {
        let mut out = Vec::new();
        for (i, e) in self.entries.into_iter().enumerate() {
            let credentials = match &e.credentials_env {
                Some(prefix) => {
                    let user = env(&format!("{prefix}_USERNAME"));
                    let Some(pass) = env(&format!("{prefix}_PASSWORD")) else {
                        return Err(ImportError::usage(format!(
                            "entry {}: credentials-env `{prefix}` needs {prefix}_PASSWORD in the environment",
                            i + 1
                        )));
                    };
                    Some(SourceCredentials {
                        username: Some(user.unwrap_or_default()),
                        password: Secret::new(pass),
                    })
                }
                None => None,
            };
            out.push(ImportEntry {
                source: e.source,
                registry: e.registry,
                images: e.images,
                repositories: e.repositories,
                credentials,
            });
        }
        Ok(out)
    }
}
