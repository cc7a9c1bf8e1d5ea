//! Blobs: each moved once per target repository, mounted where it can be, streamed from
//! the source into the target otherwise, largest first.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use acr_import_reference::{Digest, Repository};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::limiter::{Admission, Slot, Turn, Turns};
use super::{BlobAction, BlobCell, BlobEntry, Copier, CopyReport, Endpoint, Progress};
use crate::layout::OciLayout;
use crate::manifest::Descriptor;
use crate::{Registry, RetryPolicy, TransferError, UploadStart};

impl Copier {
    /// Moves every blob to every place: to the first place of each registry first, so the
    /// others mount from it.
    pub(super) async fn copy_blobs(
        &self,
        src: &Endpoint,
        blobs: &[Descriptor],
        places: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        let mut rounds: Vec<Vec<&Endpoint>> = Vec::new();
        let mut seen_hosts: HashSet<String> = HashSet::new();
        let (mut first, mut rest) = (Vec::new(), Vec::new());
        for p in places {
            if seen_hosts.insert(p.limiter_key()) {
                first.push(*p);
            } else {
                rest.push(*p);
            }
        }
        rounds.push(first);
        if !rest.is_empty() {
            rounds.push(rest);
        }
        for round in rounds {
            let mut jobs: Vec<(&Descriptor, &Endpoint)> = blobs
                .iter()
                .flat_map(|b| round.iter().map(move |p| (b, *p)))
                .collect();
            // Largest first: the big uploads finish (and the target syncs them to disk) while
            // small ones still stream, instead of all finishing together at the end.
            jobs.sort_by_key(|j| std::cmp::Reverse(j.0.size));
            // And in that order they take their slots, whichever upload session opens first.
            let mut turns: HashMap<String, Arc<Turns>> = HashMap::new();
            let entries: Vec<BlobEntry> = stream::iter(jobs.into_iter().map(|(b, p)| {
                let turn = turns.entry(p.limiter_key()).or_default().by_size(b.size);
                self.transfer_blob(src, b, p, turn)
            }))
            // Four times the slots: blobs waiting for a slot have their upload session
            // open already, and an upload whose bytes are all sent gives its slot to
            // the next blob while the target commits it (syncs it to disk, links it).
            .buffer_unordered(self.options.jobs.max(1) * 4)
            .try_collect()
            .await?;
            report.blobs.extend(entries);
        }
        Ok(())
    }

    async fn transfer_blob(
        &self,
        src: &Endpoint,
        desc: &Descriptor,
        target: &Endpoint,
        turn: Turn,
    ) -> Result<BlobEntry, TransferError> {
        let started = Instant::now();
        let mut entry = BlobEntry {
            digest: desc.digest.to_string(),
            size: desc.size,
            media_type: desc.media_type.clone(),
            target: target.describe(),
            action: BlobAction::Skipped,
            mounted_from: None,
            millis: 0,
            retries: 0,
        };
        let done = match target {
            Endpoint::Layout(layout) => {
                self.blob_to_layout(src, desc, layout, &target.limiter_key(), &mut entry)
                    .await?
            }
            Endpoint::Registry {
                registry,
                repository,
            } => {
                self.blob_to_registry(src, desc, registry, repository, turn, &mut entry)
                    .await?
            }
        };
        if done {
            self.emit(Progress::BlobDone {
                digest: entry.digest.clone(),
                action: entry.action,
            });
        }
        entry.millis = started.elapsed().as_millis() as u64;
        Ok(entry)
    }

    /// A blob into an OCI layout (hashed on the way in). Returns whether progress should
    /// report it done.
    async fn blob_to_layout(
        &self,
        src: &Endpoint,
        desc: &Descriptor,
        layout: &OciLayout,
        limiter_key: &str,
        entry: &mut BlobEntry,
    ) -> Result<bool, TransferError> {
        if layout.blob_size(&desc.digest).await?.is_some() {
            entry.action = BlobAction::Skipped;
            return Ok(true);
        }
        if self.options.dry_run {
            entry.action = BlobAction::WouldCopy;
            return Ok(true);
        }
        self.emit(Progress::BlobStarted {
            digest: entry.digest.clone(),
            size: desc.size,
        });
        let limiter = self.limiter(limiter_key);
        let _slot = limiter.acquire().await;
        // A layout is local: the source registry's retries are the ones that matter.
        let policy = src.retry_policy().unwrap_or_default();
        let mut attempt = 0;
        loop {
            let (stream, failure) = self.source_stream(src, desc, false, None).await?;
            match layout.put_blob(&desc.digest, Some(desc.size), stream).await {
                Ok(()) => break,
                Err(e) => {
                    let e = failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                        .unwrap_or(e);
                    self.retry_blob(e, policy, &mut attempt, entry).await?;
                }
            }
        }
        entry.action = BlobAction::Copied;
        Ok(true)
    }

    /// After a failed blob transfer: the error back when it is not worth another attempt (or
    /// the retries of `policy` are spent); otherwise counts and reports the retry, and waits
    /// the policy's backoff.
    async fn retry_blob(
        &self,
        e: TransferError,
        policy: RetryPolicy,
        attempt: &mut u32,
        entry: &mut BlobEntry,
    ) -> Result<(), TransferError> {
        if !blob_retryable(&e) || *attempt >= policy.max_retries {
            return Err(e.retried_more(*attempt));
        }
        *attempt += 1;
        entry.retries += 1;
        self.emit(Progress::BlobRetried {
            digest: entry.digest.clone(),
            error: e.to_string(),
        });
        tokio::time::sleep(policy.delay(*attempt, None)).await;
        Ok(())
    }

    /// A blob into a registry repository: skipped when this run put it there, mounted when
    /// it can be, streamed otherwise. Returns whether progress should report it done.
    ///
    /// Copies running at once take turns per place: the one that puts the blob into a
    /// repository holds that repository's cell meanwhile (others wait, then skip it), and the
    /// one that uploads it to a registry from the source holds the registry's cell (others
    /// wait, then mount from where it went). Cells are taken in that order, never the other.
    async fn blob_to_registry(
        &self,
        src: &Endpoint,
        desc: &Descriptor,
        registry: &Registry,
        repository: &Repository,
        mut turn: Turn,
        entry: &mut BlobEntry,
    ) -> Result<bool, TransferError> {
        let host = registry.host().to_owned();
        if self.options.dry_run {
            return self
                .blob_dry_run(src, desc, registry, repository, entry)
                .await;
        }
        let placed = self.placed_cell(&host, repository, &desc.digest);
        let mut here = lock_or_yield(&placed, &mut turn).await;
        if *here {
            entry.action = BlobAction::Skipped;
            return Ok(false);
        }
        // Mount from the source repository (same registry), from where this run put the
        // blob, or from the target repository itself: a blob it already holds answers 201 at
        // once, a missing one opens the upload session.
        let same_registry = match src {
            Endpoint::Registry {
                registry: s,
                repository: r,
            } if s.host() == host => Some(r.clone()),
            _ => None,
        };
        let holder = self.holder_cell(&host, &desc.digest);
        let mut uploading = None;
        let from = match same_registry {
            Some(r) => r,
            None => {
                let held = lock_or_yield(&holder, &mut turn).await;
                match held.clone() {
                    Some(r) => r,
                    None => {
                        uploading = Some(held);
                        repository.clone()
                    }
                }
            }
        };
        let mut admission = Admission {
            limiter: self.limiter(&host),
            turn,
        };
        let policy = registry.retry_policy();
        let mut attempt = 0;
        loop {
            match self
                .push_one(src, desc, registry, repository, &from, &mut admission)
                .await
            {
                Ok(action) => {
                    admission.limiter.succeeded();
                    entry.action = action;
                    if action == BlobAction::Mounted {
                        entry.mounted_from = Some(from.to_string());
                    }
                    break;
                }
                Err(e) => {
                    // A retry goes without waiting for its turn again; those after it do not
                    // wait for it either.
                    admission.turn.done();
                    if matches!(e.status(), Some(429 | 503)) {
                        admission.limiter.back_off();
                    }
                    self.retry_blob(e, policy, &mut attempt, entry).await?;
                }
            }
        }
        *here = true;
        match uploading {
            Some(mut held) => *held = Some(repository.clone()),
            None => {
                if let Ok(mut held) = holder.try_lock()
                    && held.is_none()
                {
                    *held = Some(repository.clone());
                }
            }
        }
        Ok(true)
    }

    /// What [`Copier::blob_to_registry`] would do.
    async fn blob_dry_run(
        &self,
        src: &Endpoint,
        desc: &Descriptor,
        registry: &Registry,
        repository: &Repository,
        entry: &mut BlobEntry,
    ) -> Result<bool, TransferError> {
        let from = match src {
            Endpoint::Registry {
                registry: s,
                repository: r,
            } if s.host() == registry.host() => Some(r.clone()),
            _ => None,
        };
        entry.action = if registry
            .head_blob(repository, &desc.digest)
            .await?
            .is_some()
        {
            BlobAction::Skipped
        } else if let Some(from) = from {
            entry.mounted_from = Some(from.to_string());
            BlobAction::WouldMount
        } else {
            BlobAction::WouldCopy
        };
        Ok(false)
    }

    fn placed_cell(&self, host: &str, repository: &Repository, digest: &Digest) -> BlobCell<bool> {
        self.shared
            .placed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((host.to_owned(), repository.clone(), digest.clone()))
            .or_default()
            .clone()
    }

    fn holder_cell(&self, host: &str, digest: &Digest) -> BlobCell<Option<Repository>> {
        self.shared
            .holders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((host.to_owned(), digest.clone()))
            .or_default()
            .clone()
    }

    /// One attempt: mount-or-start, then stream the source into the session. The `POST`
    /// goes without a slot (sessions open ahead of their turn); the slot is taken once the
    /// session is open and every larger blob has taken its own (the blob's turn), and held
    /// until the last byte is handed to the upload, not while the target commits the blob:
    /// a registry that syncs each blob to disk before answering then keeps receiving other
    /// blobs meanwhile.
    async fn push_one(
        &self,
        src: &Endpoint,
        desc: &Descriptor,
        registry: &Registry,
        repository: &Repository,
        from: &Repository,
        admission: &mut Admission,
    ) -> Result<BlobAction, TransferError> {
        match registry
            .start_upload(repository, Some((&desc.digest, from)))
            .await?
        {
            UploadStart::Mounted => Ok(if from == repository {
                BlobAction::Skipped
            } else {
                BlobAction::Mounted
            }),
            UploadStart::Session(session) => {
                // A blob weighs its size, up to half the budget: two big blobs stream at once
                // however big, smaller ones fill what the budget leaves once their turn comes.
                let weight = desc.size.min(self.options.bytes_in_flight / 2);
                let slot = admission.slot(weight).await;
                self.emit(Progress::BlobStarted {
                    digest: desc.digest.to_string(),
                    size: desc.size,
                });
                let (stream, failure) = match self
                    .source_stream(src, desc, self.options.verify, Some(slot))
                    .await
                {
                    Ok(s) => s,
                    Err(e) => {
                        registry.cancel_upload(&session).await;
                        return Err(e);
                    }
                };
                match registry
                    .put_blob(session, &desc.digest, desc.size, stream)
                    .await
                {
                    Ok(()) => Ok(BlobAction::Copied),
                    // A failure of the source side explains the failed upload better.
                    Err(e) => Err(failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                        .unwrap_or(e)),
                }
            }
        }
    }

    /// The source blob as a stream that reports progress and keeps its own error, so that a
    /// failed upload can say what really went wrong. `permit` is released once the stream has
    /// yielded the blob's last byte (or failed).
    async fn source_stream(
        &self,
        src: &Endpoint,
        desc: &Descriptor,
        verify: bool,
        mut permit: Option<Slot>,
    ) -> Result<
        (
            impl futures_util::Stream<Item = Result<Bytes, TransferError>> + Send + Unpin + 'static,
            Arc<Mutex<Option<TransferError>>>,
        ),
        TransferError,
    > {
        let blob = src.get_blob(desc, verify).await?;
        let failure: Arc<Mutex<Option<TransferError>>> = Arc::new(Mutex::new(None));
        let slot = failure.clone();
        let progress = self.options.progress.clone();
        let digest = desc.digest.to_string();
        let (size, mut sent) = (desc.size, 0u64);
        let stream = blob.map(move |item| match item {
            Ok(bytes) => {
                sent += bytes.len() as u64;
                if sent >= size {
                    permit.take();
                }
                if let Some(sink) = &progress {
                    sink.event(Progress::BlobBytes {
                        digest: digest.clone(),
                        bytes: bytes.len() as u64,
                    });
                }
                Ok(bytes)
            }
            Err(e) => {
                permit.take();
                let shown = TransferError::Connection {
                    url: "the source".to_owned(),
                    message: e.to_string(),
                    retries: 0,
                    source: None,
                };
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Err(shown)
            }
        });
        Ok((stream, failure))
    }
}

/// Locks `cell`; when another copy holds it, gives up `turn` first, so that this copy's
/// smaller blobs do not wait for a blob another copy is moving.
async fn lock_or_yield<T>(cell: &BlobCell<T>, turn: &mut Turn) -> tokio::sync::OwnedMutexGuard<T> {
    match cell.clone().try_lock_owned() {
        Ok(guard) => guard,
        Err(_) => {
            turn.done();
            cell.clone().lock_owned().await
        }
    }
}

/// A blob transfer worth another attempt: transient trouble, or content the target found not
/// to match its digest (corrupted on the way).
fn blob_retryable(e: &TransferError) -> bool {
    // A refused upload is sent again from a fresh read: the content was damaged on the way
    // (DIGEST_INVALID, SIZE_INVALID), or the refusal itself arrived damaged (a 400 whose
    // error body cannot be read). As often as the transport retries a request.
    let code = e.details().and_then(|d| d.code());
    e.is_retryable()
        || matches!(code, Some("DIGEST_INVALID" | "SIZE_INVALID"))
        || (e.status() == Some(400) && code.is_none())
}
