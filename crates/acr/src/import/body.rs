//! The `importImage` request body.

use super::ResolvedSource;
use crate::AcrError;
use crate::model::{ImportImageParameters, ImportMode, ImportSource, ImportSourceCredentials};

/// Builds the `importImage` body. With neither `images` nor `repositories`, the target is the
/// source's repository and tag (a digest-only source gives the bare repository, as az does:
/// the service then tags it `latest`).
pub fn import_body(
    source: &ResolvedSource,
    images: &[String],
    repositories: &[String],
    force: bool,
) -> Result<ImportImageParameters, AcrError> {
    let (image, import_source) = match source {
        ResolvedSource::Azure { id, image, .. } => (
            image.clone(),
            ImportSource {
                source_image: image.clone(),
                resource_id: Some(id.to_string()),
                registry_uri: None,
                credentials: None,
            },
        ),
        ResolvedSource::External {
            host,
            image,
            credentials,
            ..
        } => (
            image.clone(),
            ImportSource {
                source_image: image.clone(),
                resource_id: None,
                registry_uri: Some(host.clone()),
                credentials: credentials.as_ref().map(|(u, p)| ImportSourceCredentials {
                    username: u.clone(),
                    password: p.expose().to_owned(),
                }),
            },
        ),
        ResolvedSource::Layout { reference } => {
            return Err(AcrError::InvalidRequest {
                message: format!(
                    "{reference} is a local OCI layout, which the server-side import cannot read"
                ),
                hint: "use --mode client".into(),
            });
        }
    };
    for r in repositories {
        if r.contains(':') || r.contains('@') {
            return Err(AcrError::InvalidRequest {
                message: format!(
                    "--repository `{r}` takes a repository name without tag or digest"
                ),
                hint: "use --image repo:tag for tagged targets".into(),
            });
        }
    }
    for i in images {
        if i.contains('@') {
            return Err(AcrError::InvalidRequest {
                message: format!("--image `{i}` cannot name a digest"),
                hint: "use --repository for an untagged copy".into(),
            });
        }
    }
    let mut target_tags = images.to_vec();
    if images.is_empty() && repositories.is_empty() {
        target_tags.push(image.split('@').next().unwrap_or(&image).to_owned());
    }
    Ok(ImportImageParameters {
        source: import_source,
        target_tags,
        untagged_target_repositories: repositories.to_vec(),
        mode: if force {
            ImportMode::Force
        } else {
            ImportMode::NoForce
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use acr_import_auth::Secret;

    fn azure_source(image: &str) -> ResolvedSource {
        ResolvedSource::Azure {
            id: "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/source1".parse().unwrap(),
            registry: None,
            unreadable: None,
            image: image.into(),
            cross_tenant: false,
        }
    }

    #[test]
    fn bodies() {
        let b = import_body(&azure_source("app:v1"), &[], &[], false).unwrap();
        assert_eq!(b.target_tags, ["app:v1"]);
        assert_eq!(b.mode, ImportMode::NoForce);
        assert!(b.source.resource_id.is_some() && b.source.registry_uri.is_none());
        let b = import_body(
            &azure_source(
                "app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ),
            &[],
            &[],
            true,
        )
        .unwrap();
        assert_eq!(b.target_tags, ["app"]);
        assert_eq!(b.mode, ImportMode::Force);
        let b = import_body(
            &azure_source("app:v1"),
            &["a:1".into(), "b:2".into()],
            &["c".into()],
            false,
        )
        .unwrap();
        assert_eq!(b.target_tags, ["a:1", "b:2"]);
        assert_eq!(b.untagged_target_repositories, ["c"]);
        let b = import_body(&azure_source("app:v1"), &[], &["c".into()], false).unwrap();
        assert!(b.target_tags.is_empty());
        assert!(import_body(&azure_source("app:v1"), &[], &["c:1".into()], false).is_err());
        let ext = ResolvedSource::External {
            host: "docker.io".into(),
            image: "library/nginx:1".into(),
            credentials: Some((Some("me".into()), Secret::new("pw-Secret"))),
            unknown_acr: false,
            registry: None,
        };
        let b = import_body(&ext, &[], &[], false).unwrap();
        assert_eq!(b.source.registry_uri.as_deref(), Some("docker.io"));
        assert_eq!(b.source.credentials.as_ref().unwrap().password, "pw-Secret");
        assert!(!format!("{b:?}").contains("pw-Secret"));
        assert!(
            import_body(
                &ResolvedSource::Layout {
                    reference: "oci:x".into()
                },
                &[],
                &[],
                false
            )
            .is_err()
        );
    }
}
