//! The look-ups a mirror plan makes: tag listings and manifest `HEAD`s, many in flight per
//! registry but never more than a bound, and ACR's tag listing with digests where the
//! registry serves it (one request instead of a `HEAD` per tag).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use acr_import_reference::Digest;
use acr_import_transfer::{ManifestHead, Registry, TransferError};
use tokio::sync::{OnceCell, Semaphore};

use crate::metadata;

/// Look-ups for one plan, bounded per registry host.
#[derive(Debug)]
pub(crate) struct Lookups {
    per_host: usize,
    permits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Whether a host serves ACR's `/acr/v1/{repo}/_tags`: decided by the first listing there.
    acr_listing: Mutex<HashMap<String, Arc<OnceCell<bool>>>>,
}

impl Lookups {
    /// At most `per_host` look-ups in flight to each registry.
    pub(crate) fn new(per_host: usize) -> Self {
        Self {
            per_host: per_host.max(1),
            permits: Mutex::new(HashMap::new()),
            acr_listing: Mutex::new(HashMap::new()),
        }
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
        repository: &str,
    ) -> Result<Vec<String>, TransferError> {
        let sem = self.semaphore(registry.host());
        let _permit = sem.acquire().await;
        registry.list_tags(repository, None).await
    }

    /// The manifest `reference` names, `None` when there is none.
    pub(crate) async fn head(
        &self,
        registry: &Registry,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>, TransferError> {
        let sem = self.semaphore(registry.host());
        let _permit = sem.acquire().await;
        registry.head_manifest(repository, reference).await
    }

    /// Every tag of `repository` with its digest, when the registry lists them in one request
    /// (ACR); `Ok(None)` when it does not (then ask tag by tag). A repository the registry
    /// does not have lists no tags. The first listing on a host tells whether it serves the
    /// API; the others wait for that answer.
    pub(crate) async fn digests(
        &self,
        registry: &Registry,
        repository: &str,
    ) -> Result<Option<HashMap<String, Digest>>, TransferError> {
        let cell = self
            .acr_listing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(registry.host().to_owned())
            .or_default()
            .clone();
        let mut first = None;
        let serves = cell
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
        Ok(listed.map(|rows| rows.into_iter().collect()))
    }

    /// One `/_tags` listing: `Some(empty)` for a repository the registry does not know.
    async fn acr_tags(
        &self,
        registry: &Registry,
        repository: &str,
    ) -> Result<Option<Vec<(String, Digest)>>, TransferError> {
        let sem = self.semaphore(registry.host());
        let _permit = sem.acquire().await;
        match metadata::list_tags(registry, repository).await {
            Err(e) if e.is_not_found() => Ok(Some(Vec::new())),
            other => other,
        }
    }
}
