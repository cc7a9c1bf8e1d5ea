//! Response bodies: capped reads, and blob streams that verify and resume.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use acr_import_reference::{Digest, DigestAlgorithm, Repository};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::Digest as _;
use url::Url;

use crate::TransferError;
use crate::error::redact_url;
use crate::registry::Registry;

/// Reads a whole body, failing when it grows past `limit` or stalls for `idle`.
pub(crate) async fn read_capped(
    mut body: Incoming,
    limit: u64,
    idle: Duration,
    url: &Url,
) -> Result<Bytes, TransferError> {
    let mut out = BytesMut::new();
    loop {
        let frame = tokio::time::timeout(idle, body.frame())
            .await
            .map_err(|_| TransferError::Timeout {
                url: redact_url(url),
                timeout: idle,
            })?;
        match frame {
            None => return Ok(out.freeze()),
            Some(Err(e)) => {
                return Err(TransferError::Connection {
                    url: redact_url(url),
                    message: format!("the response body broke off: {e}"),
                    retries: 0,
                    source: Some(Box::new(e)),
                });
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() as u64 + data.len() as u64 > limit {
                        return Err(TransferError::SizeMismatch {
                            what: format!("response from {}", redact_url(url)),
                            expected: limit,
                            actual: out.len() as u64 + data.len() as u64,
                        });
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

/// A running hash in the digest's own algorithm.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        let hex = match self {
            Hasher::Sha256(h) => hex(&h.finalize()),
            Hasher::Sha512(h) => hex(&h.finalize()),
        };
        let algorithm = if hex.len() == 128 {
            DigestAlgorithm::Sha512
        } else {
            DigestAlgorithm::Sha256
        };
        Digest::new(algorithm, &hex).expect("a hash is valid lowercase hex of its length")
    }
}

/// The digest of `data` in `algorithm`.
pub fn digest_of(algorithm: DigestAlgorithm, data: &[u8]) -> Digest {
    let mut h = Hasher::new(algorithm);
    h.update(data);
    h.finish()
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// How many times a blob download is resumed after the connection broke.
const MAX_RESUMES: u32 = 5;

/// A blob download: a stream of `Bytes` that checks length and digest as it goes and fails
/// at the end on a mismatch, and resumes with a `Range` request when the connection breaks.
///
/// Memory stays flat: nothing is buffered beyond one frame.
pub struct BlobStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, TransferError>> + Send>>,
    size: Option<u64>,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl BlobStream {
    /// The size the registry announced (`Content-Length`), when it did.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Wraps any stream of bytes (an OCI layout file, a test source) as a blob stream.
    pub fn from_stream(
        stream: impl Stream<Item = Result<Bytes, TransferError>> + Send + 'static,
        size: Option<u64>,
    ) -> Self {
        Self {
            inner: Box::pin(stream),
            size,
        }
    }

    pub(crate) fn new(state: BlobState, size: Option<u64>) -> Self {
        let stream = futures_util::stream::unfold(state, |mut st| async move {
            let item = st.next().await?;
            Some((item, st))
        });
        Self {
            inner: Box::pin(stream),
            size,
        }
    }

    /// Reads the whole blob into memory (for configs and small blobs only).
    pub async fn collect(mut self, limit: u64) -> Result<Bytes, TransferError> {
        use futures_util::StreamExt;
        let mut out = BytesMut::new();
        while let Some(chunk) = self.next().await {
            let chunk = chunk?;
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(TransferError::SizeMismatch {
                    what: "blob read into memory".to_owned(),
                    expected: limit,
                    actual: out.len() as u64 + chunk.len() as u64,
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, TransferError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

pub(crate) struct BlobState {
    pub registry: Registry,
    pub repository: Repository,
    pub digest: Digest,
    pub expected_size: Option<u64>,
    pub body: Incoming,
    pub url: Url,
    pub hasher: Option<Hasher>,
    pub received: u64,
    /// Bytes to drop from the body: the server ignored a `Range` request and started over.
    pub skip: u64,
    pub resumes: u32,
    pub done: bool,
    pub idle: Duration,
}

impl BlobState {
    fn what(&self) -> String {
        format!("blob {} of {}", self.digest, self.repository)
    }

    async fn next(&mut self) -> Option<Result<Bytes, TransferError>> {
        loop {
            if self.done {
                return None;
            }
            let frame = tokio::time::timeout(self.idle, self.body.frame()).await;
            let broken = match frame {
                Ok(Some(Ok(frame))) => {
                    let Ok(mut data) = frame.into_data() else {
                        continue;
                    };
                    if self.skip > 0 {
                        let n = (self.skip as usize).min(data.len());
                        self.skip -= n as u64;
                        data = data.slice(n..);
                        if data.is_empty() {
                            continue;
                        }
                    }
                    self.received += data.len() as u64;
                    if let Some(expected) = self.expected_size
                        && self.received > expected
                    {
                        self.done = true;
                        return Some(Err(TransferError::SizeMismatch {
                            what: self.what(),
                            expected,
                            actual: self.received,
                        }));
                    }
                    if let Some(h) = &mut self.hasher {
                        h.update(&data);
                    }
                    // With the size known, the last chunk is held until the digest checks out:
                    // an upload fed by this stream never receives a corrupted blob complete.
                    if self.expected_size == Some(self.received) {
                        self.done = true;
                        if let Err(e) = self.finish() {
                            return Some(Err(e));
                        }
                    }
                    return Some(Ok(data));
                }
                Ok(None) => {
                    self.done = true;
                    return self.finish().err().map(Err);
                }
                Ok(Some(Err(e))) => {
                    format!("the connection broke after {} bytes: {e}", self.received)
                }
                Err(_) => format!("no data for {:?} after {} bytes", self.idle, self.received),
            };
            if self.resumes >= MAX_RESUMES {
                self.done = true;
                return Some(Err(TransferError::Connection {
                    url: redact_url(&self.url),
                    message: format!("{broken}; gave up after {MAX_RESUMES} resumes"),
                    retries: self.resumes,
                    source: None,
                }));
            }
            self.resumes += 1;
            tracing::debug!(blob = %self.digest, offset = self.received, "resuming a broken download");
            match self
                .registry
                .open_blob_at(&self.repository, &self.digest, self.received)
                .await
            {
                Ok((body, skip, url)) => {
                    self.body = body;
                    self.skip = skip;
                    self.url = url;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }

    fn finish(&mut self) -> Result<(), TransferError> {
        check_received(
            &self.what(),
            self.expected_size,
            self.received,
            self.hasher.take(),
            &self.digest,
        )
    }
}

/// The end of a blob read: `received` bytes must be the `expected` size (when known), and
/// the running `hasher`'s digest (when one ran) must be `digest`.
pub(crate) fn check_received(
    what: &str,
    expected: Option<u64>,
    received: u64,
    hasher: Option<Hasher>,
    digest: &Digest,
) -> Result<(), TransferError> {
    if let Some(expected) = expected
        && received != expected
    {
        return Err(TransferError::SizeMismatch {
            what: what.to_owned(),
            expected,
            actual: received,
        });
    }
    if let Some(h) = hasher {
        let actual = h.finish();
        if actual != *digest {
            return Err(TransferError::DigestMismatch {
                what: what.to_owned(),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
    }
    Ok(())
}
