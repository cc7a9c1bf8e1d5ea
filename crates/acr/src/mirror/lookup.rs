//! The look-ups a mirror plan makes: tag listings and manifest `HEAD`s, many in flight per
//! registry but never more than a bound, and ACR's tag listing with digests where the
//! registry serves it (one request instead of a `HEAD` per tag).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use acr_import_reference::{Digest, Repository, TagOrDigest};
use acr_import_transfer::{ManifestHead, Registry, TransferError};
use tokio::sync::{OnceCell, Semaphore};

use crate::metadata;

/// Tag → digest, as a registry lists them.
pub(crate) type TagDigests = HashMap<String, Digest>;

/// A value computed once per key, whoever asks first; the others wait for it.
type Once<K, V> = Mutex<HashMap<K, Arc<OnceCell<V>>>>;

fn once<K: std::hash::Hash + Eq, V>(map: &Once<K, V>, key: K) -> Arc<OnceCell<V>> {
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default()
        .clone()
}

/// Look-ups for one plan, bounded per registry host.
#[derive(Debug)]
pub(crate) struct Lookups {
    per_host: usize,
    permits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Whether a host serves ACR's `/acr/v1/{repo}/_tags`: decided by the first listing there.
    acr_listing: Once<String, bool>,
    /// (host, repository) → its tags and digests, listed once.
    listings: Once<(String, Repository), Option<TagDigests>>,
    /// Hosts whose referrers support was asked once.
    referrers_probe: Once<String, ()>,
}

impl Lookups {
    /// At most `per_host` look-ups in flight to each registry.
    pub(crate) fn new(per_host: usize) -> Self {
        Self {
            per_host: per_host.max(1),
            permits: Mutex::new(HashMap::new()),
            acr_listing: Mutex::new(HashMap::new()),
            listings: Mutex::new(HashMap::new()),
            referrers_probe: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `request` once one of the look-up slots of `registry`'s host is free.
    async fn bounded<T>(&self, registry: &Registry, request: impl Future<Output = T>) -> T {
        let sem = self.semaphore(registry.host());
        let _permit = sem.acquire().await;
        request.await
    }

    fn semaphore(&self, host: &str) -> Arc<Semaphore> {
        self.permits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
            .clone()
    }

    /// Every tag of `repository` (`tags/list`, all pages).
    pub(crate) async fn tags(
        &self,
        registry: &Registry,
        repository: &Repository,
    ) -> Result<Vec<String>, TransferError> {
        self.bounded(registry, registry.list_tags(repository, None))
            .await
    }

    /// The manifest `reference` names, `None` when there is none.
    pub(crate) async fn head(
        &self,
        registry: &Registry,
        repository: &Repository,
        reference: &TagOrDigest,
    ) -> Result<Option<ManifestHead>, TransferError> {
        self.bounded(registry, registry.head_manifest(repository, reference))
            .await
    }

    /// Every tag of `repository` with its digest, when the registry lists them in one request
    /// (ACR); `Ok(None)` when it does not (then ask tag by tag). A repository the registry
    /// does not have lists no tags. The first listing on a host tells whether it serves the
    /// API (the others wait for that answer); each repository is listed once.
    pub(crate) async fn digests(
        &self,
        registry: &Registry,
        repository: &Repository,
    ) -> Result<Option<TagDigests>, TransferError> {
        let host = registry.host().to_owned();
        let listing = once(&self.listings, (host.clone(), repository.clone()));
        let listed = listing
            .get_or_try_init(|| async {
                let serves = once(&self.acr_listing, host);
                let mut first = None;
                let serves = serves
                    .get_or_try_init(|| async {
                        let listed = self.acr_tags(registry, repository).await?;
                        let serves = listed.is_some();
                        first = Some(listed);
                        Ok::<bool, TransferError>(serves)
                    })
                    .await?;
                let listed = match first {
                    Some(listed) => listed,
                    None if *serves => self.acr_tags(registry, repository).await?,
                    None => None,
                };
                Ok::<_, TransferError>(listed.map(|rows| rows.into_iter().collect()))
            })
            .await?;
        Ok(listed.clone())
    }

    /// Whether the manifest `digest` has referrers (signatures, SBOMs, attestations). A
    /// registry without the referrers API keeps them under tags named after the digest
    /// (`sha256-<hex>`, and cosign's `sha256-<hex>.sig`, `.att`, `.sbom`): when the caller
    /// has the repository's tag list, that answers without a request. Otherwise the
    /// registry is asked (the first question on a host also tells whether it serves the API).
    pub(crate) async fn has_referrers(
        &self,
        registry: &Registry,
        repository: &Repository,
        digest: &Digest,
        listed: Option<&[String]>,
    ) -> Result<bool, TransferError> {
        let by_tag = |tags: &[String]| {
            let prefix = digest.referrers_tag().to_string();
            tags.iter().any(|t| t.starts_with(&prefix))
        };
        if let (Some(tags), Some(false)) = (listed, registry.serves_referrers_api()) {
            return Ok(by_tag(tags));
        }
        let probe = once(&self.referrers_probe, registry.host().to_owned());
        let mut answer = None;
        probe
            .get_or_try_init(|| async {
                answer = Some(self.ask_referrers(registry, repository, digest).await?);
                Ok::<(), TransferError>(())
            })
            .await?;
        if let Some(a) = answer {
            return Ok(a);
        }
        match (listed, registry.serves_referrers_api()) {
            (Some(tags), Some(false)) => Ok(by_tag(tags)),
            _ => self.ask_referrers(registry, repository, digest).await,
        }
    }

    async fn ask_referrers(
        &self,
        registry: &Registry,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<bool, TransferError> {
        let found = self
            .bounded(registry, registry.referrers(repository, digest, None))
            .await?;
        Ok(!found.descriptors.is_empty())
    }

    /// One `/_tags` listing: `Some(empty)` for a repository the registry does not know.
    async fn acr_tags(
        &self,
        registry: &Registry,
        repository: &Repository,
    ) -> Result<Option<Vec<(String, Digest)>>, TransferError> {
        match self
            .bounded(registry, metadata::list_tags(registry, repository))
            .await
        {
            Err(e) if e.is_not_found() => Ok(Some(Vec::new())),
            other => other,
        }
    }
}
