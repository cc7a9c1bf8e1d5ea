//! Where a copy reads and writes: a registry repository or an OCI layout, and the source
//! and targets of one copy.

use acr_import_reference::{Digest, Repository, Tag, TagOrDigest};

use crate::layout::OciLayout;
use crate::manifest::{Descriptor, Manifest};
use crate::registry::cache::Reads;
use crate::{BlobStream, ManifestHead, Registry, RetryPolicy, TransferError};

/// Where content lives: a repository of a registry, or an OCI image-layout folder.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A repository of a registry.
    Registry {
        /// The registry.
        registry: Registry,
        /// The repository.
        repository: Repository,
    },
    /// An OCI image layout.
    Layout(OciLayout),
}

impl Endpoint {
    /// A registry repository.
    ///
    /// ```
    /// use acr_import_transfer::{Endpoint, Transport};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = Transport::builder().build()?.registry("registry.example")?;
    /// let place = Endpoint::registry(registry, "samples/app".parse()?);
    /// assert_eq!(place.describe(), "registry.example/samples/app");
    /// # Ok(())
    /// # }
    /// ```
    pub fn registry(registry: Registry, repository: Repository) -> Self {
        Endpoint::Registry {
            registry,
            repository,
        }
    }

    /// `host/repository` or `oci:path`.
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => format!("{}/{repository}", registry.host()),
            Endpoint::Layout(l) => format!("oci:{}", l.path().display()),
        }
    }

    /// The key of this endpoint's limiter: a registry host, or a layout's path.
    pub(super) fn limiter_key(&self) -> String {
        match self {
            Endpoint::Registry { registry, .. } => registry.host().to_owned(),
            Endpoint::Layout(l) => format!("oci:{}", l.path().display()),
        }
    }

    /// How often a request to this endpoint's registry is tried again; `None` for a layout.
    pub(super) fn retry_policy(&self) -> Option<RetryPolicy> {
        match self {
            Endpoint::Registry { registry, .. } => Some(registry.retry_policy()),
            Endpoint::Layout(_) => None,
        }
    }

    pub(super) fn same_place(&self, other: &Endpoint) -> bool {
        match (self, other) {
            (
                Endpoint::Registry {
                    registry: a,
                    repository: ra,
                },
                Endpoint::Registry {
                    registry: b,
                    repository: rb,
                },
            ) => a.host() == b.host() && ra == rb,
            (Endpoint::Layout(a), Endpoint::Layout(b)) => a.path() == b.path(),
            _ => false,
        }
    }

    /// This endpoint, reading manifests through a copy's cache and counting its `GET`s
    /// (a layout reads files: nothing to count).
    pub(super) fn reading_through(&self, reads: Reads) -> Endpoint {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => Endpoint::Registry {
                registry: registry.reading_through(reads),
                repository: repository.clone(),
            },
            Endpoint::Layout(l) => Endpoint::Layout(l.clone()),
        }
    }

    /// What a manifest `HEAD` says (digest, media type, size) without reading the manifest;
    /// `None` when absent. A layout answers from its files.
    pub(super) async fn head(
        &self,
        reference: &TagOrDigest,
    ) -> Result<Option<ManifestHead>, TransferError> {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => registry.head_manifest(repository, reference).await,
            Endpoint::Layout(l) => match l.get_manifest(reference).await {
                Ok(m) => Ok(Some(ManifestHead {
                    size: Some(m.bytes.len() as u64),
                    media_type: Some(m.media_type),
                    digest: Some(m.digest),
                })),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Before this source is read, `places` (the copy's registry targets) are asked whether
    /// they hold what is wanted, where the source counts pulls.
    pub(super) fn ask_first(&self, places: &[&Endpoint]) {
        let Endpoint::Registry { registry, .. } = self else {
            return;
        };
        let targets: Vec<(Registry, Repository)> = places
            .iter()
            .filter_map(|p| match p {
                Endpoint::Registry {
                    registry,
                    repository,
                } => Some((registry.clone(), repository.clone())),
                Endpoint::Layout(_) => None,
            })
            .collect();
        // A layout target cannot be read through a registry handle: the source is read.
        if targets.len() == places.len() {
            registry.read_targets_first(targets);
        }
    }

    /// Some target lacks `digest`: reading it asks the source without asking them.
    pub(super) fn missing_at_targets(&self, digest: &Digest) {
        if let Endpoint::Registry { registry, .. } = self {
            registry.missing_at_targets(digest);
        }
    }

    /// `digest` can be read from `place` (which holds it) instead of this source.
    pub(super) fn read_elsewhere(&self, digest: &Digest, place: &Endpoint) {
        if let (
            Endpoint::Registry { registry, .. },
            Endpoint::Registry {
                registry: holder,
                repository,
            },
        ) = (self, place)
        {
            registry.read_elsewhere(digest, holder, repository);
        }
    }

    /// Whether reading `digest` costs the source nothing: the copy's cache has it, or a
    /// target that holds it will be read instead.
    pub(super) fn has_read(&self, digest: &Digest) -> bool {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => registry.has_read(repository, digest),
            Endpoint::Layout(_) => true,
        }
    }

    pub(super) async fn get_manifest(
        &self,
        reference: &TagOrDigest,
    ) -> Result<Manifest, TransferError> {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => registry.get_manifest(repository, reference).await,
            Endpoint::Layout(l) => l.get_manifest(reference).await,
        }
    }

    /// The manifest `digest` names.
    pub(super) async fn get_by_digest(&self, digest: &Digest) -> Result<Manifest, TransferError> {
        self.get_manifest(&TagOrDigest::Digest(digest.clone()))
            .await
    }

    /// Stores `manifest` under `tag` (a registry: one `PUT` that stores it and moves the
    /// tag; a layout: the blob and the named `index.json` entry).
    pub(super) async fn put_tagged(
        &self,
        tag: &Tag,
        manifest: &Manifest,
    ) -> Result<(), TransferError> {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => registry
                .push_manifest(repository, &TagOrDigest::Tag(tag.clone()), manifest)
                .await
                .map(drop),
            Endpoint::Layout(l) => l.put_manifest(manifest, Some(tag)).await,
        }
    }

    /// The digest a tag (or digest) resolves to, `None` when absent.
    pub(super) async fn resolve(
        &self,
        reference: &TagOrDigest,
    ) -> Result<Option<Digest>, TransferError> {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => match registry.head_manifest(repository, reference).await? {
                None => Ok(None),
                Some(head) => match head.digest {
                    Some(d) => Ok(Some(d)),
                    // A registry that sends no Docker-Content-Digest: read the manifest.
                    None => Ok(Some(
                        registry.get_manifest(repository, reference).await?.digest,
                    )),
                },
            },
            Endpoint::Layout(l) => match l.get_manifest(reference).await {
                Ok(m) => Ok(Some(m.digest)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    pub(super) async fn get_blob(
        &self,
        desc: &Descriptor,
        verify: bool,
    ) -> Result<BlobStream, TransferError> {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => {
                registry
                    .get_blob(repository, &desc.digest, Some(desc.size), verify)
                    .await
            }
            Endpoint::Layout(l) => l.get_blob(&desc.digest, Some(desc.size)).await,
        }
    }

    pub(super) async fn referrers(
        &self,
        digest: &Digest,
    ) -> Result<Vec<Descriptor>, TransferError> {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => Ok(registry
                .referrers(repository, digest, None)
                .await?
                .descriptors),
            Endpoint::Layout(l) => l.referrers(digest).await,
        }
    }
}

/// What to copy from.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where.
    pub endpoint: Endpoint,
    /// A tag or a digest.
    pub reference: TagOrDigest,
}

/// What to copy to: an endpoint and a tag, or no tag (pushed by digest only).
#[derive(Debug, Clone)]
pub struct Target {
    /// Where.
    pub endpoint: Endpoint,
    /// The tag to set, or `None` for an untagged copy.
    pub tag: Option<Tag>,
}

impl Target {
    /// `host/repo:tag`, `host/repo@digest` or `oci:path:tag`.
    pub fn describe(&self, digest: &Digest) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.endpoint.describe()),
            None => format!("{}@{digest}", self.endpoint.describe()),
        }
    }
}
