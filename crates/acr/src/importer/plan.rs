//! The client-side plan of one import: the source endpoint, the target endpoints and the
//! credentials, resolved from what the user wrote.

use std::path::PathBuf;

use acr_import_auth::Credential;
use acr_import_reference::{AnyReference, RepositoryReference};
use acr_import_transfer::{CopyReport, Endpoint, OciLayout, Source, Target, Transport};

use super::{ImportError, ImportEvent, ImportObserver, SourceCredentials};
use crate::{Cloud, RegistryTarget};

/// One client-side import, resolved: where from, where to, and whose credentials.
#[derive(Debug, Clone)]
pub(crate) struct ClientPlan {
    /// What reports call it (the source as given).
    pub(crate) label: String,
    pub(crate) source: SourceSpec,
    pub(crate) target: TargetSpec,
    /// `(repository, tag)`: `None` for an untagged copy; an empty repository for a layout.
    pub(crate) images: Vec<(String, Option<String>)>,
    /// Source credentials, per registry host.
    pub(crate) credentials: Vec<(String, Credential)>,
}

/// Where a client-side import reads from.
#[derive(Debug, Clone)]
pub(crate) enum SourceSpec {
    Registry {
        host: String,
        repository: String,
        reference: String,
    },
    Layout {
        path: PathBuf,
        reference: String,
    },
}

/// Where a client-side import writes to.
#[derive(Debug, Clone)]
pub(crate) enum TargetSpec {
    Registry(String),
    Layout(PathBuf),
}

impl TargetSpec {
    /// `oci:PATH`, or a registry name, login server or host.
    pub(crate) fn parse(name: &str, cloud: &Cloud) -> Result<TargetSpec, ImportError> {
        if let Some(path) = name.strip_prefix("oci:") {
            if path.is_empty() {
                return Err(ImportError::usage(
                    "--name oci: needs a folder path, e.g. --name oci:./export",
                ));
            }
            return Ok(TargetSpec::Layout(PathBuf::from(path)));
        }
        let t =
            RegistryTarget::parse(name, cloud).map_err(|e| ImportError::usage(e.to_string()))?;
        Ok(TargetSpec::Registry(t.host().to_owned()))
    }
}

impl ClientPlan {
    /// The first target, for the summary line: `host/repo:tag`, `host/repo@digest`,
    /// `oci:path:tag`.
    pub(crate) fn describe_target(&self, report: &CopyReport) -> String {
        let host = match &self.target {
            TargetSpec::Registry(h) => h.clone(),
            TargetSpec::Layout(p) => format!("oci:{}", p.display()),
        };
        match self.images.first() {
            Some((repo, Some(tag))) if repo.is_empty() => format!("{host}:{tag}"),
            Some((repo, Some(tag))) => format!("{host}/{repo}:{tag}"),
            Some((repo, None)) => format!("{host}/{repo}@{}", report.digest),
            None => host,
        }
    }

    /// The copy engine's source and targets for this plan.
    pub(crate) fn endpoints(
        &self,
        transport: &Transport,
    ) -> Result<(Source, Vec<Target>), acr_import_transfer::TransferError> {
        let source = match &self.source {
            SourceSpec::Registry {
                host,
                repository,
                reference,
            } => Source {
                endpoint: Endpoint::registry(transport.registry(host)?, repository.clone()),
                reference: reference.clone(),
            },
            SourceSpec::Layout { path, reference } => Source {
                endpoint: Endpoint::Layout(OciLayout::open(path)?),
                reference: reference.clone(),
            },
        };
        let mut targets = Vec::new();
        for (repo, tag) in &self.images {
            let endpoint = match &self.target {
                TargetSpec::Registry(h) => Endpoint::registry(transport.registry(h)?, repo.clone()),
                TargetSpec::Layout(path) => Endpoint::Layout(OciLayout::create(path)?),
            };
            targets.push(Target {
                endpoint,
                tag: tag.clone(),
            });
        }
        Ok((source, targets))
    }
}

/// What a source names: the spec, the repository a default target takes, the source tag.
type ParsedSource = (SourceSpec, String, Option<String>);

/// `--registry HOST` with `--source repo[:tag|@digest]`.
fn source_in_registry(
    source: &str,
    r: &str,
    observer: &dyn ImportObserver,
) -> Result<ParsedSource, ImportError> {
    let looks_like_host = r.contains('.') || r.contains(':') || r.eq_ignore_ascii_case("localhost");
    if !looks_like_host {
        return Err(ImportError::usage_with_hint(
            format!(
                "--registry `{r}` names an Azure registry by name or resource ID, which needs Azure Resource Manager access that this build does not include yet"
            ),
            format!(
                "name it by its login server instead: --registry {}.azurecr.io",
                r.rsplit('/').next().unwrap_or(r).to_ascii_lowercase()
            ),
        ));
    }
    let host = r
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let mut repo_ref: RepositoryReference = source
        .parse()
        .map_err(|e| ImportError::usage(format!("--source `{source}`: {e}")))?;
    if let Some(stripped) = repo_ref.strip_login_server(&host) {
        observer.event(&ImportEvent::Warning(format!(
            "The login server name of \"{host}\" in the \"--source\" argument will be ignored as \"--registry\" already supplies the same information"
        )));
        repo_ref = stripped;
    }
    let reference = repo_ref
        .digest()
        .map(|d| d.to_string())
        .or_else(|| repo_ref.tag().map(|t| t.to_string()))
        .unwrap_or_else(|| "latest".to_owned());
    let repository = repo_ref.repository().to_string();
    Ok((
        SourceSpec::Registry {
            host,
            repository: repository.clone(),
            reference,
        },
        repository,
        repo_ref.tag().map(|t| t.to_string()),
    ))
}

/// A full `--source`: a registry reference or an OCI layout.
fn full_source(source: &str, observer: &dyn ImportObserver) -> Result<ParsedSource, ImportError> {
    match source.parse::<AnyReference>() {
        Ok(AnyReference::OciLayout(l)) => {
            let reference = l
                .digest()
                .map(|d| d.to_string())
                .or_else(|| l.tag().map(|t| t.to_string()))
                .unwrap_or_else(|| "latest".to_owned());
            let default_repo = l
                .path()
                .file_name()
                .map(|f| f.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_else(|| "image".to_owned());
            Ok((
                SourceSpec::Layout {
                    path: l.path().to_path_buf(),
                    reference,
                },
                default_repo,
                l.tag().map(|t| t.to_string()),
            ))
        }
        Ok(AnyReference::Registry(r)) => {
            let n = r.normalization();
            let normalized = r.normalized();
            if n.added_library {
                observer.event(&ImportEvent::Note(format!(
                    "`{source}` is the Docker Hub official image {normalized}"
                )));
            }
            let reference = normalized.manifest_reference().to_owned();
            let repository = normalized.repository().to_string();
            Ok((
                SourceSpec::Registry {
                    host: normalized.api_host().to_owned(),
                    repository: repository.clone(),
                    reference,
                },
                repository,
                normalized.tag().map(|t| t.to_string()),
            ))
        }
        Err(e) => Err(ImportError::usage(format!("--source `{source}`: {e}"))),
    }
}

/// Resolves one client-side import: source, targets (`images`, `repositories`, or the
/// source's own name) and the source credentials.
pub(crate) fn plan(
    source: &str,
    registry: Option<&str>,
    images: &[String],
    repositories: &[String],
    creds: Option<&SourceCredentials>,
    target: &TargetSpec,
    observer: &dyn ImportObserver,
) -> Result<ClientPlan, ImportError> {
    let (spec, default_repo, source_tag) = match registry {
        Some(r) => source_in_registry(source, r, observer)?,
        None => full_source(source, observer)?,
    };
    let default_tag = source_tag.clone().unwrap_or_else(|| "latest".to_owned());
    let mut targets: Vec<(String, Option<String>)> = Vec::new();
    for i in images {
        let (repo, tag) = split_image(i, &default_tag, target)?;
        targets.push((repo, Some(tag)));
    }
    for r in repositories {
        if r.contains(':') || r.contains('@') {
            return Err(ImportError::usage(format!(
                "--repository `{r}` takes a repository name without tag or digest"
            )));
        }
        targets.push((r.clone(), None));
    }
    if targets.is_empty() {
        targets.push((
            if matches!(target, TargetSpec::Layout(_)) {
                String::new()
            } else {
                default_repo
            },
            Some(default_tag),
        ));
    }
    let mut credentials = Vec::new();
    if let (Some(c), SourceSpec::Registry { host, .. }) = (creds, &spec) {
        credentials.push((
            host.clone(),
            Credential::from_username_password(
                c.username.clone().unwrap_or_default(),
                c.password.clone(),
            ),
        ));
    }
    Ok(ClientPlan {
        label: source.to_owned(),
        source: spec,
        target: target.clone(),
        images: targets,
        credentials,
    })
}

/// `repo[:tag]` → (repo, tag); a layout target takes `tag` or `repo:tag` and keeps the tag.
fn split_image(
    image: &str,
    default_tag: &str,
    target: &TargetSpec,
) -> Result<(String, String), ImportError> {
    let (repo, tag) = match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_owned(), t.to_owned()),
        _ => (image.to_owned(), default_tag.to_owned()),
    };
    if matches!(target, TargetSpec::Layout(_)) {
        let tag = if image.contains(':') {
            tag
        } else {
            image.to_owned()
        };
        return Ok((String::new(), tag));
    }
    let check = format!("{repo}:{tag}")
        .parse::<RepositoryReference>()
        .map_err(|e| ImportError::usage(format!("--image `{image}`: {e}")))?;
    Ok((check.repository().to_string(), tag))
}
