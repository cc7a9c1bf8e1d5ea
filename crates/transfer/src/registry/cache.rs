//! Manifests read once: a cache by (registry, repository, digest) that a copier shares
//! between the copies of a batch, and the count of manifest `GET`s its source sends.
//!
//! A manifest is content-addressed, so the bytes fetched once under a digest are the bytes
//! every later read of that digest in the same repository would get. Registries that count
//! pulls (Docker Hub counts every manifest `GET`) are spared the repeats: two tags of one
//! image, the children shared by two indexes, a referrers index asked for twice. Concurrent
//! reads of one digest wait for a single `GET`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use acr_import_reference::{Digest, Repository};
use tokio::sync::OnceCell;

use crate::TransferError;
use crate::manifest::Manifest;

type Key = (String, Repository, Digest);

/// Manifests by (registry host, repository, digest), up to a byte budget.
#[derive(Debug)]
pub(crate) struct ManifestCache {
    entries: Mutex<HashMap<Key, Arc<OnceCell<Manifest>>>>,
    bytes: AtomicU64,
    limit: u64,
}

impl Default for ManifestCache {
    fn default() -> Self {
        Self::with_limit(Self::DEFAULT_LIMIT)
    }
}

impl ManifestCache {
    /// Bytes of manifests kept at most (64 MiB: a mirror of thousands of images); beyond it,
    /// new manifests are fetched without being kept.
    pub(crate) const DEFAULT_LIMIT: u64 = 64 << 20;

    pub(crate) fn with_limit(limit: u64) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            bytes: AtomicU64::new(0),
            limit,
        }
    }

    fn cell(&self, key: Key) -> Option<Arc<OnceCell<Manifest>>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cell) = entries.get(&key) {
            return Some(cell.clone());
        }
        if self.bytes.load(Ordering::Relaxed) >= self.limit {
            return None;
        }
        Some(entries.entry(key).or_default().clone())
    }

    /// The manifest under `digest`, fetched by `fetch` unless it is here (or being fetched:
    /// then this waits for that fetch). A failed fetch is not kept.
    pub(crate) async fn get_or_fetch<F, Fut>(
        &self,
        host: &str,
        repository: &Repository,
        digest: &Digest,
        fetch: F,
    ) -> Result<Manifest, TransferError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Manifest, TransferError>>,
    {
        let key = (host.to_owned(), repository.clone(), digest.clone());
        let Some(cell) = self.cell(key) else {
            return fetch().await;
        };
        let mut fetched = false;
        let manifest = cell
            .get_or_try_init(|| {
                fetched = true;
                fetch()
            })
            .await?
            .clone();
        if fetched {
            self.bytes
                .fetch_add(manifest.bytes.len() as u64, Ordering::Relaxed);
        }
        Ok(manifest)
    }

    /// Whether the manifest is here.
    pub(crate) fn contains(&self, host: &str, repository: &Repository, digest: &Digest) -> bool {
        let key = (host.to_owned(), repository.clone(), digest.clone());
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .is_some_and(|c| c.initialized())
    }

    /// Keeps a manifest read by tag, for later reads by its digest.
    pub(crate) fn insert(&self, host: &str, repository: &Repository, manifest: &Manifest) {
        let key = (host.to_owned(), repository.clone(), manifest.digest.clone());
        if let Some(cell) = self.cell(key)
            && cell.set(manifest.clone()).is_ok()
        {
            self.bytes
                .fetch_add(manifest.bytes.len() as u64, Ordering::Relaxed);
        }
    }
}

/// A copy's target repositories, and the digests some of them lack.
#[derive(Debug, Default)]
struct Targets {
    places: Vec<(crate::Registry, Repository)>,
    missing: std::collections::HashSet<Digest>,
}

/// How a registry handle reads manifests for a copy's source: through the copier's cache,
/// counting the `GET`s it sends, and from a target that holds a digest already (its bytes
/// are the same; reading them there costs the source no pull).
#[derive(Debug, Clone)]
pub(crate) struct Reads {
    pub(crate) cache: Arc<ManifestCache>,
    pub(crate) pulls: Arc<AtomicU64>,
    /// Digests a target holds: where to read them instead of the source.
    pub(crate) elsewhere: Arc<Mutex<HashMap<Digest, (crate::Registry, Repository)>>>,
    /// The copy's targets (registry repositories), asked whether they hold a digest before
    /// the source is, where the source counts pulls; and the digests found missing there.
    targets: Arc<Mutex<Targets>>,
}

impl Reads {
    /// Reads through `cache`, counting into `pulls`.
    pub(crate) fn new(cache: Arc<ManifestCache>, pulls: Arc<AtomicU64>) -> Self {
        Self {
            cache,
            pulls,
            elsewhere: Arc::default(),
            targets: Arc::default(),
        }
    }

    /// The copy's targets, to be asked before the source.
    pub(crate) fn set_targets(&self, targets: Vec<(crate::Registry, Repository)>) {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .places = targets;
    }

    /// Some target lacks `digest`: the source must be read.
    pub(crate) fn missing(&self, digest: &Digest) {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .missing
            .insert(digest.clone());
    }

    /// Where to read `digest` instead of the source: a target known to hold it, or — asked
    /// now with a `HEAD` each (free where pulls are counted) — every target holding it.
    pub(crate) async fn holder(&self, digest: &Digest) -> Option<(crate::Registry, Repository)> {
        if let Some(h) = self.held_at(digest) {
            return Some(h);
        }
        let targets = {
            let t = self.targets.lock().unwrap_or_else(|e| e.into_inner());
            if t.places.is_empty() || t.missing.contains(digest) {
                return None;
            }
            t.places.clone()
        };
        for (registry, repo) in &targets {
            let found = registry.head_manifest(repo, &digest.clone().into()).await;
            if !matches!(&found, Ok(Some(h)) if h.digest.as_ref() == Some(digest)) {
                self.missing(digest);
                return None;
            }
        }
        let (registry, repo) = targets.into_iter().next()?;
        self.hold(digest, &registry, &repo);
        Some((registry, repo))
    }

    /// Where `digest` can be read instead of the source, if a target holds it.
    pub(crate) fn held_at(&self, digest: &Digest) -> Option<(crate::Registry, Repository)> {
        self.elsewhere
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned()
    }

    /// `repository` of `registry` holds `digest`.
    pub(crate) fn hold(
        &self,
        digest: &Digest,
        registry: &crate::Registry,
        repository: &Repository,
    ) {
        self.elsewhere
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.clone(), (registry.clone(), repository.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn repo(s: &str) -> Repository {
        s.parse().unwrap()
    }

    fn manifest(text: &'static str) -> Manifest {
        let bytes = Bytes::from_static(text.as_bytes());
        Manifest {
            digest: crate::digest_of(acr_import_reference::DigestAlgorithm::Sha256, &bytes),
            bytes,
            media_type: crate::manifest::OCI_MANIFEST.to_owned(),
        }
    }

    #[tokio::test]
    async fn one_fetch_per_digest_and_repository() {
        let cache = ManifestCache::default();
        let r = repo("r");
        let m = manifest("{}");
        let fetches = AtomicU64::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(m.clone())
        };
        let (a, b) = tokio::join!(
            cache.get_or_fetch("h", &r, &m.digest, fetch),
            cache.get_or_fetch("h", &r, &m.digest, fetch)
        );
        assert_eq!(a.unwrap(), m);
        assert_eq!(b.unwrap(), m);
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "concurrent reads share one fetch"
        );
        cache
            .get_or_fetch("h", &repo("other"), &m.digest, fetch)
            .await
            .unwrap();
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "another repository is asked"
        );
    }

    #[tokio::test]
    async fn failures_are_not_kept_and_the_budget_bounds_the_cache() {
        let cache = ManifestCache::with_limit(2);
        let r = repo("r");
        let m = manifest("{\"a\":1}");
        let failed = cache
            .get_or_fetch("h", &r, &m.digest, || async {
                Err(TransferError::Config("broken".into()))
            })
            .await;
        assert!(failed.is_err());
        let fetches = AtomicU64::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(m.clone())
        };
        cache.get_or_fetch("h", &r, &m.digest, fetch).await.unwrap();
        cache.get_or_fetch("h", &r, &m.digest, fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        let n = manifest("{\"b\":2}");
        cache.insert("h", &r, &n);
        let fetched_n = AtomicU64::new(0);
        cache
            .get_or_fetch("h", &r, &n.digest, || async {
                fetched_n.fetch_add(1, Ordering::SeqCst);
                Ok(n.clone())
            })
            .await
            .unwrap();
        assert_eq!(
            fetched_n.load(Ordering::SeqCst),
            1,
            "past its budget the cache keeps nothing new"
        );
    }
}
