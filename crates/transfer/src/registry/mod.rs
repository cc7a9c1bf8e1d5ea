//! The registry operations of the OCI distribution API: a [`Registry`] handle with its
//! scheme and send path here, the operations by kind in the submodules.

mod blobs;
pub(crate) mod cache;
mod listing;
mod manifests;
mod uploads;

use std::time::Duration;

use acr_import_auth::ScopeSet;
use acr_import_reference::{Digest, Repository};
use http::{Method, StatusCode, header};
use hyper::body::Incoming;
use url::Url;

use crate::error::{Operation, RequestContext, TransferError};
use crate::manifest::{Descriptor, Manifest};
use crate::transport::{Req, Resp, Transport, drain};

/// Blobs above this size are uploaded in chunks by [`Registry::push_blob`] (default 64 MiB).
pub const DEFAULT_CHUNK_SIZE: u64 = 64 * 1024 * 1024;

/// A handle on one registry, cheap to clone. Every method is one operation of the
/// distribution API with typed errors.
#[derive(Clone, Debug)]
pub struct Registry {
    transport: Transport,
    /// `host[:port]`, Docker Hub mapped to its API host.
    host: String,
    /// `https://host[:port]/`: every URL of this registry is built from it, by path segments.
    base: Url,
    scheme: Option<&'static str>,
    /// A copy's source reads manifests through its copier's cache, counting its `GET`s.
    reads: Option<cache::Reads>,
}

/// What `GET /v2/` told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingInfo {
    /// `Docker-Distribution-API-Version`, when sent (`registry/2.0`).
    pub api_version: Option<String>,
    /// The scheme that worked (`https`, or `http` on loopback/insecure hosts).
    pub scheme: &'static str,
}

/// What a manifest `HEAD` told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Docker-Content-Digest`, when the registry sent it.
    pub digest: Option<Digest>,
    /// The media type.
    pub media_type: Option<String>,
    /// `Content-Length`.
    pub size: Option<u64>,
}

/// An upload session on the registry.
#[derive(Debug, Clone)]
pub struct UploadSession {
    location: Url,
    repository: Repository,
    offset: u64,
}

impl UploadSession {
    /// Bytes the registry has accepted so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// The result of starting an upload.
#[derive(Debug)]
pub enum UploadStart {
    /// A cross-repository mount succeeded: the blob is there, no bytes to send.
    Mounted,
    /// An upload session to send the bytes to.
    Session(UploadSession),
}

/// What a manifest push told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    /// The digest stored.
    pub digest: Digest,
    /// The `OCI-Subject` the registry answered with: it indexed the manifest's `subject`.
    pub oci_subject: Option<Digest>,
}

/// How referrers were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersSource {
    /// The OCI 1.1 referrers API.
    Api,
    /// The `<alg>-<hex>` tag schema, on a registry without the API.
    TagSchema,
}

/// The manifests that name a manifest as their `subject`.
#[derive(Debug, Clone)]
pub struct Referrers {
    /// Their descriptors.
    pub descriptors: Vec<Descriptor>,
    /// How they were found.
    pub source: ReferrersSource,
    /// On the tag schema: the fallback index itself, if the tag existed (needed to update it).
    pub fallback_index: Option<Manifest>,
}

/// One page of a repository's tags ([`Registry::tags_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagsPage {
    /// The tags of this page, as the registry listed them.
    pub tags: Vec<String>,
    /// Whether the registry has more tags than this page (it sent a `Link` to the next).
    pub more: bool,
}

/// The `Content-Type` of blob uploads.
const OCTET_STREAM: &str = "application/octet-stream";

impl Registry {
    pub(crate) fn new(transport: Transport, registry: &str) -> Result<Self, TransferError> {
        let (scheme, rest) = if let Some(r) = registry.strip_prefix("https://") {
            (Some("https"), r)
        } else if let Some(r) = registry.strip_prefix("http://") {
            (Some("http"), r)
        } else {
            (None, registry)
        };
        let host = rest.trim_end_matches('/').to_ascii_lowercase();
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err(TransferError::Config(format!(
                "`{registry}` is not a registry host (expected host[:port])"
            )));
        }
        let host = acr_import_reference::docker_hub::api_host(&host).to_owned();
        let base = acr_import_auth::host_url("https", &host).map_err(|reason| {
            TransferError::Config(format!(
                "`{registry}` is not a usable registry host: {reason}"
            ))
        })?;
        let r = Self {
            transport,
            host,
            base,
            scheme,
            reads: None,
        };
        if let Some(s) = scheme {
            r.transport.check_url(&r.url_with(s, ["v2", ""]))?;
        }
        Ok(r)
    }

    /// The registry host as addressed (`host[:port]`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The transport this handle uses.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Whether this registry was seen to serve the OCI referrers API (`None`: not asked yet;
    /// [`Registry::referrers`] asks, and falls back to the referrers tag when it does not).
    pub fn serves_referrers_api(&self) -> Option<bool> {
        self.transport.referrers_api(&self.host)
    }

    /// Whether `digest` of `repository` was read through this handle's cache (reading it
    /// again sends nothing).
    pub(crate) fn has_read(&self, repository: &Repository, digest: &Digest) -> bool {
        self.reads.as_ref().is_some_and(|r| {
            r.cache.contains(&self.host, repository, digest) || r.held_at(digest).is_some()
        })
    }

    /// `digest` can be read from `repository` of `holder` instead (a copy's target holds it).
    pub(crate) fn read_elsewhere(
        &self,
        digest: &Digest,
        holder: &Registry,
        repository: &Repository,
    ) {
        if let Some(r) = &self.reads {
            r.hold(digest, holder, repository);
        }
    }

    /// A copy's targets, asked before this source whether they hold a digest (when the
    /// source counts pulls).
    pub(crate) fn read_targets_first(&self, targets: Vec<(Registry, Repository)>) {
        if let Some(r) = &self.reads {
            r.set_targets(targets);
        }
    }

    /// Some target of the copy lacks `digest`.
    pub(crate) fn missing_at_targets(&self, digest: &Digest) {
        if let Some(r) = &self.reads {
            r.missing(digest);
        }
    }

    /// This handle, reading manifests through `reads` (a copy's source).
    pub(crate) fn reading_through(&self, reads: cache::Reads) -> Self {
        Self {
            reads: Some(reads),
            ..self.clone()
        }
    }

    /// The URL of `segments` under the registry's root over `scheme` (each segment escaped,
    /// `.` and `..` dropped; an empty last segment gives a trailing `/`).
    fn url_with<'a>(&self, scheme: &str, segments: impl IntoIterator<Item = &'a str>) -> Url {
        let mut url = self.base.clone();
        // Both are special schemes: switching between them cannot fail.
        let _ = url.set_scheme(scheme);
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear().extend(segments);
        }
        url
    }

    fn split_host(&self) -> (String, Option<u16>) {
        (
            self.base.host_str().unwrap_or_default().to_owned(),
            self.base.port(),
        )
    }

    /// The scheme to use: fixed by the caller, learned before, or https — except that a
    /// loopback or insecure host that does not speak TLS falls back to plain http.
    ///
    /// Loopback registries almost always speak plain http, so an unknown loopback host is
    /// tentatively http: [`Self::send`] lets the first request that can be sent twice serve
    /// as the probe, and settles the scheme from its answer (no separate `GET /v2/`).
    async fn scheme(&self) -> Result<&'static str, TransferError> {
        if let Some(s) = self
            .scheme
            .or_else(|| self.transport.known_scheme(&self.host))
        {
            return Ok(s);
        }
        let (host, port) = self.split_host();
        if !self.transport.may_use_http(&host, port) {
            self.transport.remember_scheme(&self.host, "https");
            return Ok("https");
        }
        if acr_import_auth::is_loopback_host(&host) {
            return Ok("http");
        }
        self.probe().await
    }

    /// Whether the scheme of this host is still a guess (loopback, not yet confirmed).
    fn scheme_tentative(&self) -> bool {
        self.scheme.is_none() && self.transport.known_scheme(&self.host).is_none()
    }

    /// Settles the scheme of a loopback or insecure host with a `GET /v2/`: a TLS server
    /// answers plain http with 400 or closes the connection. Loopback hosts are asked over
    /// http first, a host named insecure over https first.
    async fn probe(&self) -> Result<&'static str, TransferError> {
        let (host, _) = self.split_host();
        let first = if acr_import_auth::is_loopback_host(&host) {
            "http"
        } else {
            "https"
        };
        let probe = self.url_with(first, ["v2", ""]);
        let ctx = self.ctx(Operation::Ping, None, None);
        let mut req = Req::new(ctx, Method::GET, probe.clone(), ScopeSet::new());
        req.idempotent = false;
        let other = if first == "http" { "https" } else { "http" };
        let scheme = match self.transport.send(req, &probe).await {
            Ok(resp) if first == "http" && resp.response.status() == StatusCode::BAD_REQUEST => {
                drain(resp.response).await;
                other
            }
            Ok(resp) => {
                drain(resp.response).await;
                first
            }
            // No answer over this scheme; `Unreachable` (nothing listens, no such name) is
            // no better over the other.
            Err(TransferError::Connection { .. } | TransferError::Timeout { .. }) => other,
            Err(e) => return Err(e),
        };
        self.transport.remember_scheme(&self.host, scheme);
        Ok(scheme)
    }

    /// The URL of `segments` under the registry's root, over the scheme in use.
    async fn url<'a>(
        &self,
        segments: impl IntoIterator<Item = &'a str>,
    ) -> Result<Url, TransferError> {
        let scheme = self.scheme().await?;
        Ok(self.url_with(scheme, segments))
    }

    /// `/v2/<repository>/<tail…>`: the repository's components are path segments.
    async fn v2_url(&self, repository: &str, tail: &[&str]) -> Result<Url, TransferError> {
        self.url(
            std::iter::once("v2")
                .chain(repository.split('/'))
                .chain(tail.iter().copied()),
        )
        .await
    }

    fn ctx(
        &self,
        operation: Operation,
        repository: Option<&Repository>,
        reference: Option<&str>,
    ) -> RequestContext {
        RequestContext {
            operation,
            registry: self.host.clone(),
            repository: repository.map(Repository::to_string),
            reference: reference.map(str::to_owned),
        }
    }

    async fn send(&self, mut req: Req) -> Result<Resp, TransferError> {
        if self.scheme_tentative() && req.url.scheme() == "http" {
            if let Some(resp) = self.send_as_probe(req.try_clone()).await? {
                return Ok(resp);
            }
            // The scheme is settled now; the request goes again the usual way.
            let scheme = self.scheme().await?;
            if scheme != "http" {
                req.url.set_scheme(scheme).map_err(|()| {
                    TransferError::Config(format!(
                        "`{}` cannot be addressed over {scheme}",
                        self.host
                    ))
                })?;
            }
        }
        let origin = self.url([]).await?;
        self.transport.send(req, &origin).await
    }

    /// Sends a copy of a request to a loopback host whose scheme is still a guess (http),
    /// once and without retries, as the probe. `Some`: the answer, final. `None`: the scheme
    /// is settled (by this answer, or by [`Self::probe`] when it was a TLS server's 400, a
    /// broken connection, or there was no copy: a body that cannot be sent twice) and the
    /// request must go again.
    async fn send_as_probe(&self, copy: Option<Req>) -> Result<Option<Resp>, TransferError> {
        let Some(mut first) = copy else {
            self.probe().await?;
            return Ok(None);
        };
        first.idempotent = false;
        let origin = self.url_with("http", []);
        match self.transport.send(first, &origin).await {
            Ok(resp) if resp.response.status() != StatusCode::BAD_REQUEST => {
                self.transport.remember_scheme(&self.host, "http");
                let status = resp.response.status();
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                    // Transient: sent again, with the usual retries.
                    drain(resp.response).await;
                    return Ok(None);
                }
                Ok(Some(resp))
            }
            // A TLS server's answer to plain http, or a real 400.
            Ok(resp) if self.probe().await? == "http" => Ok(Some(resp)),
            Ok(resp) => {
                drain(resp.response).await;
                Ok(None)
            }
            Err(TransferError::Connection { .. } | TransferError::Timeout { .. }) => {
                self.probe().await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn fail(&self, ctx: &RequestContext, resp: Resp, scopes: &ScopeSet) -> TransferError {
        self.transport.status_error(ctx, resp, scopes).await
    }

    /// Runs a whole operation again (with the transport's backoff) when it failed in a way a
    /// retry can cure: a body that broke off or stalled, bytes corrupted in transit.
    async fn again<T, F, Fut>(&self, mut op: F) -> Result<T, TransferError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, TransferError>>,
    {
        let policy = self.transport.inner.retry;
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if attempt < policy.max_retries && recoverable(&e) => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "retrying the operation");
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                }
                other => return other,
            }
        }
    }

    /// The transport's retry policy: how often an operation on this registry is tried again.
    pub fn retry_policy(&self) -> crate::RetryPolicy {
        self.transport.inner.retry
    }

    /// The transport's idle timeout, for callers that stream.
    pub fn idle_timeout(&self) -> Duration {
        self.transport.inner.idle_timeout
    }
}

/// Failures a second attempt can cure: connection trouble, stalls, server errors, and bytes
/// that arrived corrupted (a digest or size that does not match, JSON that does not parse).
fn recoverable(e: &TransferError) -> bool {
    e.is_retryable() || matches!(e, TransferError::InvalidManifest { .. })
}

fn header_str(resp: &http::Response<Incoming>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn content_length(resp: &http::Response<Incoming>) -> Option<u64> {
    resp.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The last byte offset of a `Range: 0-<last>` header.
fn range_end(resp: &http::Response<Incoming>) -> Option<u64> {
    header_str(resp, "range")?
        .rsplit('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_are_built_from_segments() {
        let transport = Transport::builder().proxy_from_env(false).build().unwrap();
        let reg = Registry::new(transport.clone(), "https://r.example:5000").unwrap();
        let url = reg
            .v2_url("team/app", &["manifests", "v1?x#y"])
            .await
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://r.example:5000/v2/team/app/manifests/v1%3Fx%23y"
        );
        let url = reg.v2_url("../../x", &["blobs", "uploads", ""]).await;
        assert_eq!(
            url.unwrap().as_str(),
            "https://r.example:5000/v2/x/blobs/uploads/"
        );
        // A page of another registry is refused before anything is sent.
        let elsewhere = Url::parse("https://evil.example/acr/v1/x").unwrap();
        let err = reg
            .get_json_page(&elsewhere, ScopeSet::new())
            .await
            .unwrap_err();
        assert!(matches!(err, TransferError::Refused { .. }), "{err}");
        for bad in ["https://user@r.example", "http://a:b", "r.example/path"] {
            assert!(Registry::new(transport.clone(), bad).is_err(), "{bad}");
        }
    }
}
