//! The client-side plan of one import: the source endpoint, the target endpoints and the
//! credentials, resolved from what the user wrote.

use std::path::PathBuf;

use acr_import_auth::Credential;
use acr_import_reference::{AnyReference, Repository, RepositoryReference, TagOrDigest};
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
    /// Source credentials: `(host, repository, credential)`, for the source repository only.
    pub(crate) credentials: Option<(String, String, Credential)>,
}

/// Where a client-side import reads from.
#[derive(Debug, Clone)]
pub(crate) enum SourceSpec {
    Registry {
        host: String,
        repository: Repository,
        reference: TagOrDigest,
    },
    Layout {
        path: PathBuf,
        reference: TagOrDigest,
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
    /// Every target, `(name, place)`: the name people read (`host/repo:tag`,
    /// `host/repo@digest`, `oci:path:tag`) and the place the copy report names its blobs by.
    pub(crate) fn target_names(&self, report: &CopyReport) -> Vec<(String, String)> {
        self.images
            .iter()
            .map(|(repo, tag)| {
                let place = match &self.target {
                    TargetSpec::Registry(h) => format!("{h}/{repo}"),
                    TargetSpec::Layout(p) => format!("oci:{}", p.display()),
                };
                let name = match tag {
                    Some(t) => format!("{place}:{t}"),
                    None => format!("{place}@{}", report.digest),
                };
                (name, place)
            })
            .collect()
    }

    /// The copy engine's source and targets for this plan.
    pub(crate) fn endpoints(
        &self,
        transport: &Transport,
    ) -> Result<(Source, Vec<Target>), acr_import_transfer::TransferError> {
        let repository = |side: &str, repository: &str| {
            repository.parse().map_err(|e| {
                acr_import_transfer::TransferError::Config(format!(
                    "the {side} repository `{repository}`: {e}"
                ))
            })
        };
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
                TargetSpec::Registry(h) => {
                    Endpoint::registry(transport.registry(h)?, repository("target", repo)?)
                }
                TargetSpec::Layout(path) => Endpoint::Layout(OciLayout::create(path)?),
            };
            let tag = tag.as_deref().map(str::parse).transpose().map_err(|e| {
                acr_import_transfer::TransferError::Config(format!("the target tag: {e}"))
            })?;
            targets.push(Target { endpoint, tag });
        }
        Ok((source, targets))
    }
}

/// What a source names: the spec, the repository a default target takes, the source tag.
type ParsedSource = (SourceSpec, String, Option<String>);

/// A full `--source`: a registry reference or an OCI layout.
fn full_source(source: &str, observer: &dyn ImportObserver) -> Result<ParsedSource, ImportError> {
    match source.parse::<AnyReference>() {
        Ok(AnyReference::OciLayout(l)) => {
            let reference = l.manifest_reference();
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
            Ok((
                SourceSpec::Registry {
                    host: normalized.api_host().to_owned(),
                    repository: normalized.repository().clone(),
                    reference: normalized.manifest_reference(),
                },
                normalized.repository().to_string(),
                normalized.tag().map(|t| t.to_string()),
            ))
        }
        Err(e) => Err(ImportError::usage(format!("--source `{source}`: {e}"))),
    }
}

/// Resolves one client-side import of a full source reference: source, targets (`images`,
/// `repositories`, or the source's own name) and the source credentials.
pub(crate) fn plan(
    source: &str,
    images: &[String],
    repositories: &[String],
    creds: Option<&SourceCredentials>,
    target: &TargetSpec,
    observer: &dyn ImportObserver,
) -> Result<ClientPlan, ImportError> {
    let (spec, default_repo, source_tag) = full_source(source, observer)?;
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
    let credentials = match (creds, &spec) {
        (
            Some(c),
            SourceSpec::Registry {
                host, repository, ..
            },
        ) => Some((
            host.clone(),
            repository.to_string(),
            Credential::from_username_password(
                c.username.clone().unwrap_or_default(),
                c.password.clone(),
            ),
        )),
        _ => None,
    };
    Ok(ClientPlan {
        label: source.to_owned(),
        source: spec,
        target: target.clone(),
        images: targets,
        credentials,
    })
}

/// `repo[:tag]` → (repo, tag), parsed with the reference grammar; a layout target takes
/// `tag` or `repo:tag` and keeps the tag. A digest is refused: a target is a tag (or, with
/// `--repository`, no tag at all).
fn split_image(
    image: &str,
    default_tag: &str,
    target: &TargetSpec,
) -> Result<(String, String), ImportError> {
    if let TargetSpec::Layout(_) = target {
        let tag = match image.rsplit_once(':') {
            Some((_, t)) => t,
            None => image,
        };
        if image.contains('@') || tag.is_empty() {
            return Err(ImportError::usage(format!(
                "--image `{image}`: an OCI layout target takes a tag (e.g. -t 1.0), not a digest"
            )));
        }
        return Ok((String::new(), tag.to_owned()));
    }
    let parsed = image
        .parse::<RepositoryReference>()
        .map_err(|e| ImportError::usage(format!("--image `{image}`: {e}")))?;
    if parsed.digest().is_some() {
        return Err(ImportError::usage_with_hint(
            format!("--image `{image}` names a digest: a target is repo[:tag]"),
            format!(
                "to copy by digest without a tag, use --repository {}",
                parsed.repository()
            ),
        ));
    }
    let tag = parsed
        .tag()
        .map_or_else(|| default_tag.to_owned(), |t| t.to_string());
    Ok((parsed.repository().to_string(), tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn target_images_are_parsed_with_the_reference_grammar() {
        let registry = TargetSpec::Registry("reg.example".into());
        let split = |i: &str| split_image(i, "1.0", &registry);
        assert_eq!(split("app").unwrap(), ("app".into(), "1.0".into()));
        assert_eq!(
            split("team/app:v2").unwrap(),
            ("team/app".into(), "v2".into())
        );
        let e = split(&format!("x@sha256:{HEX}")).unwrap_err();
        assert!(e.to_string().contains("names a digest"), "{e}");
        assert_eq!(
            e.hint().as_deref(),
            Some("to copy by digest without a tag, use --repository x")
        );
        let e = split(&format!("x:v1@sha256:{HEX}")).unwrap_err();
        assert!(e.to_string().contains("names a digest"), "{e}");
        assert!(split("Bad:Name").unwrap_err().is_invalid_request());
        let layout = TargetSpec::Layout("out".into());
        assert_eq!(
            split_image("1.0", "x", &layout).unwrap(),
            (String::new(), "1.0".into())
        );
        assert_eq!(
            split_image("app:2.0", "x", &layout).unwrap(),
            (String::new(), "2.0".into())
        );
        assert!(split_image(&format!("app@sha256:{HEX}"), "x", &layout).is_err());
    }
}
