//! The registry operations of the OCI distribution API.

use std::time::Duration;

use acr_import_auth::{Scope, ScopeSet};
use acr_import_reference::{Digest, Tag};
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use url::Url;

use crate::body::{BlobState, BlobStream, Hasher, digest_of, read_capped};
use crate::error::{Operation, RequestContext, TransferError, redact_url};
use crate::manifest::{
    ACCEPT_MANIFESTS, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, Descriptor, MAX_MANIFEST_BYTES,
    Manifest, ManifestContent, OCI_INDEX,
};
use crate::transport::{Body, Req, Resp, Transport, drain};

/// Blobs above this size are uploaded in chunks by [`Registry::push_blob`] (default 64 MiB).
pub const DEFAULT_CHUNK_SIZE: u64 = 64 * 1024 * 1024;

/// A handle on one registry, cheap to clone. Every method is one operation of the
/// distribution API with typed errors.
#[derive(Clone, Debug)]
pub struct Registry {
    transport: Transport,
    /// `host[:port]`, Docker Hub mapped to its API host.
    host: String,
    scheme: Option<&'static str>,
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
    repository: String,
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
        let host = match host.as_str() {
            "docker.io" | "index.docker.io" | "registry.hub.docker.com" => {
                "registry-1.docker.io".to_owned()
            }
            _ => host,
        };
        let r = Self {
            transport,
            host,
            scheme,
        };
        if let Some(s) = scheme {
            r.transport.check_url(&r.url_with(s, "/v2/")?)?;
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

    fn url_with(&self, scheme: &str, path: &str) -> Result<Url, TransferError> {
        Url::parse(&format!("{scheme}://{}{path}", self.host)).map_err(|e| {
            TransferError::Config(format!("`{}` is not a usable host: {e}", self.host))
        })
    }

    fn split_host(&self) -> (String, Option<u16>) {
        let url = Url::parse(&format!("http://{}/", self.host)).ok();
        (
            url.as_ref()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default(),
            url.and_then(|u| u.port()),
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
        let probe = self.url_with(first, "/v2/")?;
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
            Err(TransferError::Connection { .. } | TransferError::Timeout { .. }) => other,
            Err(e) => return Err(e),
        };
        self.transport.remember_scheme(&self.host, scheme);
        Ok(scheme)
    }

    async fn url(&self, path: &str) -> Result<Url, TransferError> {
        let scheme = self.scheme().await?;
        self.url_with(scheme, path)
    }

    fn ctx(
        &self,
        operation: Operation,
        repository: Option<&str>,
        reference: Option<&str>,
    ) -> RequestContext {
        RequestContext {
            operation,
            registry: self.host.clone(),
            repository: repository.map(str::to_owned),
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
        let origin = self.url("/").await?;
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
        let origin = self.url_with("http", "/")?;
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

    /// Fetches a manifest by tag or digest, as exact bytes, refusing anything that does not
    /// check out: more than 4 MiB, schema 1, invalid JSON, a body whose `mediaType`
    /// contradicts its `Content-Type`, bytes that do not hash to the digest asked for or to
    /// the `Docker-Content-Digest` the registry announced. A corrupted or broken transfer is
    /// fetched again before the error is final.
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Manifest, TransferError> {
        self.again(|| self.get_manifest_once(repository, reference))
            .await
    }

    /// Every tag of a repository, following `Link` pagination; `page_size` sets `n`.
    pub async fn list_tags(
        &self,
        repository: &str,
        page_size: Option<usize>,
    ) -> Result<Vec<String>, TransferError> {
        self.again(|| self.list_tags_once(repository, page_size))
            .await
    }

    /// Every repository of the registry (`/v2/_catalog`), following pagination.
    pub async fn catalog(&self, page_size: Option<usize>) -> Result<Vec<String>, TransferError> {
        self.again(|| self.catalog_once(page_size)).await
    }

    /// The manifests whose `subject` is `digest`: through the OCI 1.1 referrers API, or the
    /// `<alg>-<hex>` tag schema when the registry has no such API (answers 404).
    pub async fn referrers(
        &self,
        repository: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers, TransferError> {
        self.again(|| self.referrers_once(repository, digest, artifact_type))
            .await
    }

    /// Sends a `GET` to a registry-specific path (ACR's `/acr/v1/…`) with the given scopes
    /// and returns the JSON body and the `Link` to the next page, if any.
    pub async fn get_json(
        &self,
        path_and_query: &str,
        scopes: ScopeSet,
    ) -> Result<(Bytes, Option<String>), TransferError> {
        self.again(|| self.get_json_once(path_and_query, scopes.clone()))
            .await
    }

    /// `GET /v2/`: is this a registry, and may we talk to it.
    pub async fn ping(&self) -> Result<PingInfo, TransferError> {
        let ctx = self.ctx(Operation::Ping, None, None);
        let url = self.url("/v2/").await?;
        let scopes = ScopeSet::new();
        let resp = self
            .send(Req::new(ctx.clone(), Method::GET, url, scopes.clone()))
            .await?;
        if resp.response.status() == StatusCode::OK {
            let api_version = header_str(&resp.response, "docker-distribution-api-version");
            drain(resp.response).await;
            return Ok(PingInfo {
                api_version,
                scheme: self.scheme().await?,
            });
        }
        Err(self.fail(&ctx, resp, &scopes).await)
    }

    /// Fetches a manifest by tag or digest, as exact bytes, refusing anything that does not
    /// check out: more than 4 MiB, schema 1, invalid JSON, a body whose `mediaType`
    /// contradicts its `Content-Type`, bytes that do not hash to the digest asked for or to
    /// the `Docker-Content-Digest` the registry announced.
    async fn get_manifest_once(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Manifest, TransferError> {
        let ctx = self.ctx(Operation::GetManifest, Some(repository), Some(reference));
        let wanted = parse_manifest_reference(&ctx, reference)?;
        let url = self
            .url(&format!("/v2/{repository}/manifests/{reference}"))
            .await?;
        let scopes = ScopeSet::new().with(Scope::pull(repository));
        let mut req = Req::new(ctx.clone(), Method::GET, url, scopes.clone());
        req.headers
            .insert(header::ACCEPT, HeaderValue::from_static(ACCEPT_MANIFESTS));
        let resp = self.send(req).await?;
        if resp.response.status() != StatusCode::OK {
            return Err(self.fail(&ctx, resp, &scopes).await);
        }
        let too_large = || TransferError::ManifestTooLarge {
            context: ctx.clone(),
            limit: MAX_MANIFEST_BYTES,
        };
        if content_length(&resp.response).is_some_and(|n| n > MAX_MANIFEST_BYTES) {
            return Err(too_large());
        }
        let content_type = header_str(&resp.response, "content-type")
            .map(|c| c.split(';').next().unwrap_or_default().trim().to_owned())
            .unwrap_or_default();
        let announced = header_str(&resp.response, "docker-content-digest");
        let bytes = match read_capped(
            resp.response.into_body(),
            MAX_MANIFEST_BYTES,
            self.transport.inner.idle_timeout,
            &resp.url,
        )
        .await
        {
            Err(TransferError::SizeMismatch { .. }) => return Err(too_large()),
            other => other?,
        };
        if content_type == DOCKER_SCHEMA1 || content_type == DOCKER_SCHEMA1_SIGNED {
            return Err(TransferError::Schema1(ctx));
        }
        let content = ManifestContent::parse(&bytes).map_err(|reason| {
            if reason == "schema 1" {
                TransferError::Schema1(ctx.clone())
            } else {
                TransferError::InvalidManifest {
                    context: ctx.clone(),
                    reason,
                }
            }
        })?;
        let media_type = resolve_media_type(&ctx, &content_type, &content)?;
        let algorithm = match &wanted {
            ManifestRef::Digest(d) => d.algorithm(),
            ManifestRef::Tag(_) => announced
                .as_deref()
                .and_then(|a| a.parse::<Digest>().ok())
                .map(|d| d.algorithm())
                .unwrap_or(acr_import_reference::DigestAlgorithm::Sha256),
        };
        let digest = digest_of(algorithm, &bytes);
        if let ManifestRef::Digest(d) = &wanted
            && *d != digest
        {
            return Err(TransferError::DigestMismatch {
                what: format!("manifest {repository}@{d}"),
                expected: d.to_string(),
                actual: digest.to_string(),
            });
        }
        if let Some(a) = announced {
            let claimed: Digest = a.parse().map_err(|e| TransferError::Protocol {
                context: ctx.clone(),
                reason: format!("invalid Docker-Content-Digest `{a}`: {e}"),
            })?;
            let actual = if claimed.algorithm() == digest.algorithm() {
                digest.clone()
            } else {
                digest_of(claimed.algorithm(), &bytes)
            };
            if claimed != actual {
                return Err(TransferError::DigestMismatch {
                    what: format!(
                        "manifest {repository}:{reference} (the registry's Docker-Content-Digest header)"
                    ),
                    expected: claimed.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// `HEAD` of a manifest: `None` when it does not exist.
    pub async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>, TransferError> {
        let ctx = self.ctx(Operation::GetManifest, Some(repository), Some(reference));
        parse_manifest_reference(&ctx, reference)?;
        let url = self
            .url(&format!("/v2/{repository}/manifests/{reference}"))
            .await?;
        let scopes = ScopeSet::new().with(Scope::pull(repository));
        let mut req = Req::new(ctx.clone(), Method::HEAD, url, scopes.clone());
        req.headers
            .insert(header::ACCEPT, HeaderValue::from_static(ACCEPT_MANIFESTS));
        let resp = self.send(req).await?;
        match resp.response.status() {
            StatusCode::OK => Ok(Some(ManifestHead {
                digest: header_str(&resp.response, "docker-content-digest")
                    .and_then(|d| d.parse().ok()),
                media_type: header_str(&resp.response, "content-type")
                    .map(|c| c.split(';').next().unwrap_or_default().trim().to_owned()),
                size: content_length(&resp.response),
            })),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.fail(&ctx, resp, &scopes).await),
        }
    }

    /// Pushes a manifest's exact bytes under a tag or its digest. Returns the digest the
    /// registry stored, which must be the manifest's own.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        manifest: &Manifest,
    ) -> Result<Digest, TransferError> {
        self.push_manifest(repository, reference, manifest)
            .await
            .map(|p| p.digest)
    }

    /// [`Registry::put_manifest`], also telling whether the registry processed a `subject`
    /// (the `OCI-Subject` header of OCI 1.1 registries; without it, referrers must be
    /// recorded in the tag-schema fallback index).
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        manifest: &Manifest,
    ) -> Result<PushedManifest, TransferError> {
        let ctx = self.ctx(Operation::PutManifest, Some(repository), Some(reference));
        if let ManifestRef::Digest(d) = parse_manifest_reference(&ctx, reference)?
            && d != manifest.digest
        {
            return Err(TransferError::DigestMismatch {
                what: format!("manifest pushed as {repository}@{d}"),
                expected: d.to_string(),
                actual: manifest.digest.to_string(),
            });
        }
        let url = self
            .url(&format!("/v2/{repository}/manifests/{reference}"))
            .await?;
        let scopes = ScopeSet::new().with(Scope::push(repository));
        let mut req = Req::new(ctx.clone(), Method::PUT, url, scopes.clone());
        req.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&manifest.media_type).map_err(|_| {
                TransferError::InvalidManifest {
                    context: ctx.clone(),
                    reason: format!(
                        "media type `{}` is not a valid header value",
                        manifest.media_type
                    ),
                }
            })?,
        );
        req.body = Body::Bytes(manifest.bytes.clone());
        let resp = self.send(req).await?;
        if resp.response.status() != StatusCode::CREATED {
            return Err(self.fail(&ctx, resp, &scopes).await);
        }
        if let Some(stored) = header_str(&resp.response, "docker-content-digest")
            .and_then(|d| d.parse::<Digest>().ok())
            && stored.algorithm() == manifest.digest.algorithm()
            && stored != manifest.digest
        {
            return Err(TransferError::DigestMismatch {
                what: format!("manifest stored at {repository}:{reference}"),
                expected: manifest.digest.to_string(),
                actual: stored.to_string(),
            });
        }
        let oci_subject = header_str(&resp.response, "oci-subject").and_then(|d| d.parse().ok());
        drain(resp.response).await;
        Ok(PushedManifest {
            digest: manifest.digest.clone(),
            oci_subject,
        })
    }

    /// Deletes a manifest by digest.
    pub async fn delete_manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<(), TransferError> {
        let ctx = self.ctx(
            Operation::DeleteManifest,
            Some(repository),
            Some(digest.as_str()),
        );
        let url = self
            .url(&format!("/v2/{repository}/manifests/{digest}"))
            .await?;
        let scopes = ScopeSet::new().with(Scope::repository(repository, ["delete"]));
        let resp = self
            .send(Req::new(ctx.clone(), Method::DELETE, url, scopes.clone()))
            .await?;
        if resp.response.status() == StatusCode::ACCEPTED
            || resp.response.status() == StatusCode::OK
        {
            drain(resp.response).await;
            return Ok(());
        }
        Err(self.fail(&ctx, resp, &scopes).await)
    }

    /// `HEAD` of a blob: its size, or `None` when the repository does not hold it.
    pub async fn head_blob(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, TransferError> {
        let ctx = self.ctx(Operation::HeadBlob, Some(repository), Some(digest.as_str()));
        let url = self
            .url(&format!("/v2/{repository}/blobs/{digest}"))
            .await?;
        let scopes = ScopeSet::new().with(Scope::pull(repository));
        let mut req = Req::new(ctx.clone(), Method::HEAD, url, scopes.clone());
        req.follow_redirects = true;
        let resp = self.send(req).await?;
        match resp.response.status() {
            StatusCode::OK => Ok(Some(content_length(&resp.response).unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.fail(&ctx, resp, &scopes).await),
        }
    }

    /// Downloads a blob as a verified stream (see [`BlobStream`]). `expected_size` is the
    /// descriptor's size: more or fewer bytes is an error. With `verify` off, the caller
    /// takes on checking the digest (a registry target does, on `PUT ?digest=`).
    pub async fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
        expected_size: Option<u64>,
        verify: bool,
    ) -> Result<BlobStream, TransferError> {
        let (body, _skip, url, announced) = self.open_blob(repository, digest, 0).await?;
        if let (Some(expected), Some(announced)) = (expected_size, announced)
            && expected != announced
        {
            return Err(TransferError::SizeMismatch {
                what: format!("blob {digest} of {repository} (Content-Length)"),
                expected,
                actual: announced,
            });
        }
        let state = BlobState {
            registry: self.clone(),
            repository: repository.to_owned(),
            digest: digest.clone(),
            expected_size,
            body,
            url,
            hasher: verify.then(|| Hasher::new(digest.algorithm())),
            received: 0,
            skip: 0,
            resumes: 0,
            done: false,
            idle: self.transport.inner.idle_timeout,
        };
        Ok(BlobStream::new(state, expected_size.or(announced)))
    }

    pub(crate) async fn open_blob_at(
        &self,
        repository: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<(Incoming, u64, Url), TransferError> {
        self.open_blob(repository, digest, offset)
            .await
            .map(|(b, s, u, _)| (b, s, u))
    }

    /// `GET` of a blob from `offset`: the body, how many leading bytes to drop (a server
    /// that ignored `Range`), the final URL, and the announced length of the whole blob.
    async fn open_blob(
        &self,
        repository: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<(Incoming, u64, Url, Option<u64>), TransferError> {
        let ctx = self.ctx(Operation::GetBlob, Some(repository), Some(digest.as_str()));
        let url = self
            .url(&format!("/v2/{repository}/blobs/{digest}"))
            .await?;
        let scopes = ScopeSet::new().with(Scope::pull(repository));
        let mut req = Req::new(ctx.clone(), Method::GET, url, scopes.clone());
        req.follow_redirects = true;
        if offset > 0 {
            req.headers.insert(
                header::RANGE,
                HeaderValue::from_str(&format!("bytes={offset}-"))
                    .expect("a range is a valid header"),
            );
        }
        let resp = self.send(req).await?;
        let length = content_length(&resp.response);
        match resp.response.status() {
            StatusCode::OK => Ok((resp.response.into_body(), offset, resp.url, length)),
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                let start = header_str(&resp.response, "content-range").and_then(|r| {
                    r.strip_prefix("bytes ")
                        .and_then(|r| r.split('-').next())
                        .and_then(|s| s.parse::<u64>().ok())
                });
                match start {
                    Some(s) if s == offset => Ok((
                        resp.response.into_body(),
                        0,
                        resp.url,
                        length.map(|l| l + offset),
                    )),
                    _ => Err(TransferError::Protocol {
                        context: ctx,
                        reason: format!(
                            "asked for bytes from {offset}, got Content-Range {start:?}"
                        ),
                    }),
                }
            }
            _ => Err(self.fail(&ctx, resp, &scopes).await),
        }
    }

    /// Starts an upload, or mounts `digest` from `mount_from` (a repository of this registry)
    /// in one request: `201` means mounted, `202` an upload session to send bytes to.
    pub async fn start_upload(
        &self,
        repository: &str,
        mount: Option<(&Digest, &str)>,
    ) -> Result<UploadStart, TransferError> {
        let ctx = self.ctx(
            Operation::StartUpload,
            Some(repository),
            mount.map(|(d, _)| d.as_str()),
        );
        let mut url = self
            .url(&format!("/v2/{repository}/blobs/uploads/"))
            .await?;
        let mut scopes = ScopeSet::new().with(Scope::push(repository));
        if let Some((digest, from)) = mount {
            url.query_pairs_mut()
                .append_pair("mount", digest.as_str())
                .append_pair("from", from);
            scopes.insert(Scope::pull(from));
        }
        let mut req = Req::new(ctx.clone(), Method::POST, url, scopes.clone());
        // Starting a session twice leaves an orphan session at worst: safe to retry.
        req.idempotent = true;
        let resp = self.send(req).await?;
        match resp.response.status() {
            StatusCode::CREATED if mount.is_some() => {
                drain(resp.response).await;
                Ok(UploadStart::Mounted)
            }
            StatusCode::ACCEPTED => {
                let location = self.location(&ctx, &resp)?;
                drain(resp.response).await;
                Ok(UploadStart::Session(UploadSession {
                    location,
                    repository: repository.to_owned(),
                    offset: 0,
                }))
            }
            _ => Err(self.fail(&ctx, resp, &scopes).await),
        }
    }

    fn location(&self, ctx: &RequestContext, resp: &Resp) -> Result<Url, TransferError> {
        let value =
            header_str(&resp.response, "location").ok_or_else(|| TransferError::Protocol {
                context: ctx.clone(),
                reason: "no Location header on an upload response".to_owned(),
            })?;
        let url = resp.url.join(&value).map_err(|e| TransferError::Protocol {
            context: ctx.clone(),
            reason: format!("invalid upload Location: {e}"),
        })?;
        self.transport.check_url(&url)?;
        if resp.url.scheme() == "https" && url.scheme() == "http" {
            return Err(TransferError::Refused {
                url: redact_url(&url),
                reason: "an upload Location that downgrades https to plain http".to_owned(),
            });
        }
        Ok(url)
    }

    /// Completes a session with the whole blob in one `PUT ?digest=` (the registry verifies
    /// the digest and refuses a mismatch). `data` may be a stream; then the request is sent
    /// once and a failure is the caller's to retry from a new session.
    pub async fn put_blob<S>(
        &self,
        session: UploadSession,
        digest: &Digest,
        size: u64,
        data: S,
    ) -> Result<(), TransferError>
    where
        S: Stream<Item = Result<Bytes, TransferError>> + Send + 'static,
    {
        let body = StreamBody::new(
            data.map_ok(Frame::data)
                .map_err(|e| Box::new(e) as crate::connect::BoxError),
        );
        self.finish(
            session,
            digest,
            Some(size),
            Body::Stream(Some(BodyExt::boxed_unsync(body))),
        )
        .await
    }

    /// Completes a session with bytes in memory (retried on transient failures).
    pub async fn put_blob_bytes(
        &self,
        session: UploadSession,
        digest: &Digest,
        data: Bytes,
    ) -> Result<(), TransferError> {
        let size = data.len() as u64;
        self.finish(session, digest, Some(size), Body::Bytes(data))
            .await
    }

    async fn finish(
        &self,
        session: UploadSession,
        digest: &Digest,
        size: Option<u64>,
        body: Body,
    ) -> Result<(), TransferError> {
        let ctx = self.ctx(
            Operation::Upload,
            Some(&session.repository),
            Some(digest.as_str()),
        );
        let mut url = session.location.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let scopes = ScopeSet::new().with(Scope::push(&session.repository));
        let mut req = Req::new(ctx.clone(), Method::PUT, url, scopes.clone());
        req.headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
        if let Some(n) = size {
            req.headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        req.body = body;
        let resp = match self.send(req).await {
            Ok(r) => r,
            Err(e) => {
                self.cancel_upload(&session).await;
                return Err(e);
            }
        };
        if resp.response.status() == StatusCode::CREATED {
            drain(resp.response).await;
            return Ok(());
        }
        let err = self.fail(&ctx, resp, &scopes).await;
        self.cancel_upload(&session).await;
        Err(err)
    }

    /// Sends one chunk (`PATCH` with `Content-Range`); the session moves on to the new
    /// `Location` and offset the registry reports.
    pub async fn upload_chunk(
        &self,
        session: UploadSession,
        data: Bytes,
    ) -> Result<UploadSession, TransferError> {
        let ctx = self.ctx(Operation::Upload, Some(&session.repository), None);
        let scopes = ScopeSet::new().with(Scope::push(&session.repository));
        let end = session.offset + data.len() as u64;
        let mut req = Req::new(
            ctx.clone(),
            Method::PATCH,
            session.location.clone(),
            scopes.clone(),
        );
        req.headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
        req.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(data.len() as u64));
        if !data.is_empty() {
            req.headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("{}-{}", session.offset, end - 1))
                    .expect("a range is a valid header"),
            );
        }
        req.body = Body::Bytes(data);
        let resp = self.send(req).await?;
        if resp.response.status() != StatusCode::ACCEPTED {
            return Err(self.fail(&ctx, resp, &scopes).await);
        }
        let location = self.location(&ctx, &resp)?;
        let offset = range_end(&resp.response).map_or(end, |e| e + 1);
        drain(resp.response).await;
        Ok(UploadSession {
            location,
            repository: session.repository,
            offset,
        })
    }

    /// Asks the registry how much of a session it holds (`GET` on the session: `204` with
    /// `Range: 0-<last>`), to resume a broken chunked upload.
    pub async fn upload_status(
        &self,
        session: &UploadSession,
    ) -> Result<UploadSession, TransferError> {
        let ctx = self.ctx(Operation::Upload, Some(&session.repository), None);
        let scopes = ScopeSet::new().with(Scope::push(&session.repository));
        let resp = self
            .send(Req::new(
                ctx.clone(),
                Method::GET,
                session.location.clone(),
                scopes.clone(),
            ))
            .await?;
        if resp.response.status() != StatusCode::NO_CONTENT {
            return Err(self.fail(&ctx, resp, &scopes).await);
        }
        let location = self
            .location(&ctx, &resp)
            .unwrap_or_else(|_| session.location.clone());
        let offset = range_end(&resp.response).map_or(0, |e| e + 1);
        drain(resp.response).await;
        Ok(UploadSession {
            location,
            repository: session.repository.clone(),
            offset,
        })
    }

    /// Cancels a session (best effort: a failure here changes nothing for the caller).
    pub async fn cancel_upload(&self, session: &UploadSession) {
        let ctx = self.ctx(Operation::Delete, Some(&session.repository), None);
        let scopes = ScopeSet::new().with(Scope::push(&session.repository));
        let mut req = Req::new(ctx, Method::DELETE, session.location.clone(), scopes);
        req.idempotent = false;
        if let Ok(resp) = self.send(req).await {
            drain(resp.response).await;
        }
    }

    /// Uploads a blob held in memory: one `PUT` up to `chunk_size`, `PATCH` chunks above it,
    /// resuming from the registry's reported offset when a chunk fails.
    pub async fn push_blob(
        &self,
        repository: &str,
        digest: &Digest,
        data: Bytes,
        chunk_size: u64,
    ) -> Result<(), TransferError> {
        let UploadStart::Session(mut session) = self.start_upload(repository, None).await? else {
            return Ok(());
        };
        if (data.len() as u64) <= chunk_size {
            return self.put_blob_bytes(session, digest, data).await;
        }
        let mut failures = 0;
        while session.offset < data.len() as u64 {
            let start = session.offset as usize;
            let end = (start + chunk_size as usize).min(data.len());
            match self
                .upload_chunk(session.clone(), data.slice(start..end))
                .await
            {
                Ok(next) => session = next,
                Err(e) if e.is_retryable() && failures < 3 => {
                    failures += 1;
                    // Ask where the session stands; a registry may have applied the chunk and
                    // moved the session on (its old Location then answers 404): start over.
                    session = match self.upload_status(&session).await {
                        Ok(s) => s,
                        Err(_) => match self.start_upload(repository, None).await? {
                            UploadStart::Session(fresh) => fresh,
                            UploadStart::Mounted => return Ok(()),
                        },
                    };
                }
                Err(e) => {
                    self.cancel_upload(&session).await;
                    return Err(e);
                }
            }
        }
        self.finish(session, digest, Some(0), Body::Empty).await
    }

    async fn list_tags_once(
        &self,
        repository: &str,
        page_size: Option<usize>,
    ) -> Result<Vec<String>, TransferError> {
        let ctx = self.ctx(Operation::ListTags, Some(repository), None);
        let scopes = ScopeSet::new().with(Scope::pull(repository));
        let url = self.url(&format!("/v2/{repository}/tags/list")).await?;
        self.paginate(ctx, url, scopes, page_size, "tags").await
    }

    async fn catalog_once(&self, page_size: Option<usize>) -> Result<Vec<String>, TransferError> {
        let ctx = self.ctx(Operation::Catalog, None, None);
        let scopes =
            ScopeSet::new().with(Scope::parse("registry:catalog:*").expect("a valid scope"));
        let url = self.url("/v2/_catalog").await?;
        self.paginate(ctx, url, scopes, page_size, "repositories")
            .await
    }

    /// Collects the string list `field` of every page, following `Link: <…>; rel="next"`
    /// (the tags list and the catalog paginate the same way).
    async fn paginate(
        &self,
        ctx: RequestContext,
        mut url: Url,
        scopes: ScopeSet,
        page_size: Option<usize>,
        field: &str,
    ) -> Result<Vec<String>, TransferError> {
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        let mut items = Vec::new();
        for _ in 0..10_000 {
            let resp = self
                .send(Req::new(
                    ctx.clone(),
                    Method::GET,
                    url.clone(),
                    scopes.clone(),
                ))
                .await?;
            if resp.response.status() != StatusCode::OK {
                return Err(self.fail(&ctx, resp, &scopes).await);
            }
            let next = header_str(&resp.response, "link").and_then(|l| next_link(&l));
            let body = read_capped(
                resp.response.into_body(),
                16 << 20,
                self.transport.inner.idle_timeout,
                &resp.url,
            )
            .await?;
            let page: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| TransferError::Protocol {
                    context: ctx.clone(),
                    reason: format!("invalid {field} page: {e}"),
                })?;
            match page.get(field) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::Array(list)) => {
                    items.extend(list.iter().filter_map(|v| v.as_str().map(str::to_owned)))
                }
                Some(_) => {
                    return Err(TransferError::Protocol {
                        context: ctx,
                        reason: format!("`{field}` is not a list"),
                    });
                }
            }
            match next {
                Some(n) => {
                    url = resp.url.join(&n).map_err(|e| TransferError::Protocol {
                        context: ctx.clone(),
                        reason: format!("invalid Link header: {e}"),
                    })?
                }
                None => return Ok(items),
            }
        }
        Err(TransferError::Protocol {
            context: ctx,
            reason: format!("more than 10000 pages of {field}"),
        })
    }

    /// The manifests whose `subject` is `digest`: through the OCI 1.1 referrers API, or the
    /// `<alg>-<hex>` tag schema when the registry has no such API (answers 404).
    async fn referrers_once(
        &self,
        repository: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers, TransferError> {
        let ctx = self.ctx(
            Operation::Referrers,
            Some(repository),
            Some(digest.as_str()),
        );
        match self.transport.referrers_api(&self.host) {
            Some(false) => {
                self.referrers_by_tag(&ctx, repository, digest, artifact_type)
                    .await
            }
            Some(true) => match self
                .referrers_by_api(repository, digest, artifact_type)
                .await?
            {
                Some(r) => Ok(r),
                None => {
                    self.referrers_by_tag(&ctx, repository, digest, artifact_type)
                        .await
                }
            },
            // Not known yet: ask the API and the tag schema at once, so a registry without the
            // API costs no extra round trip.
            None => {
                let (api, tag) = tokio::join!(
                    self.referrers_by_api(repository, digest, artifact_type),
                    self.referrers_by_tag(&ctx, repository, digest, artifact_type)
                );
                match api? {
                    Some(r) => Ok(r),
                    None => tag,
                }
            }
        }
    }

    /// The referrers API: `Ok(None)` when the registry answered 404 (no API, or no such
    /// repository), so the tag schema must be asked.
    async fn referrers_by_api(
        &self,
        repository: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Referrers>, TransferError> {
        let ctx = self.ctx(
            Operation::Referrers,
            Some(repository),
            Some(digest.as_str()),
        );
        let scopes = ScopeSet::new().with(Scope::pull(repository));
        let mut url = self
            .url(&format!("/v2/{repository}/referrers/{digest}"))
            .await?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let mut req = Req::new(ctx.clone(), Method::GET, url, scopes.clone());
        req.headers
            .insert(header::ACCEPT, HeaderValue::from_static(OCI_INDEX));
        let resp = self.send(req).await?;
        let status = resp.response.status();
        let is_index =
            header_str(&resp.response, "content-type").is_some_and(|c| c.starts_with(OCI_INDEX));
        if status == StatusCode::OK && is_index {
            let filtered = header_str(&resp.response, "oci-filters-applied")
                .is_some_and(|f| f.contains("artifactType"));
            let body = read_capped(
                resp.response.into_body(),
                MAX_MANIFEST_BYTES,
                self.transport.inner.idle_timeout,
                &resp.url,
            )
            .await?;
            let content =
                ManifestContent::parse(&body).map_err(|reason| TransferError::InvalidManifest {
                    context: ctx.clone(),
                    reason: format!("referrers response: {reason}"),
                })?;
            let mut descriptors = content.manifests;
            if let (Some(t), false) = (artifact_type, filtered) {
                descriptors.retain(|d| d.artifact_type.as_deref() == Some(t));
            }
            self.transport.remember_referrers_api(&self.host, true);
            return Ok(Some(Referrers {
                descriptors,
                source: ReferrersSource::Api,
                fallback_index: None,
            }));
        }
        if status != StatusCode::NOT_FOUND && status != StatusCode::OK {
            return Err(self.fail(&ctx, resp, &scopes).await);
        }
        // A registry without the API answers 404 for the unknown route; one with it answers
        // NAME_UNKNOWN only for a missing repository, which says nothing about the API.
        let body = read_capped(
            resp.response.into_body(),
            64 * 1024,
            self.transport.inner.idle_timeout,
            &resp.url,
        )
        .await
        .unwrap_or_default();
        let name_unknown = crate::error::parse_error_envelope(&body)
            .iter()
            .any(|e| e.code == "NAME_UNKNOWN");
        if !name_unknown {
            self.transport.remember_referrers_api(&self.host, false);
        }
        Ok(None)
    }

    async fn referrers_by_tag(
        &self,
        ctx: &RequestContext,
        repository: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers, TransferError> {
        let tag = digest.referrers_tag();
        // The once-variant: `referrers` already retries the whole lookup.
        match self.get_manifest_once(repository, tag.as_str()).await {
            Ok(index) => {
                let content = index
                    .parse()
                    .map_err(|reason| TransferError::InvalidManifest {
                        context: ctx.clone(),
                        reason: format!("referrers tag {tag}: {reason}"),
                    })?;
                let mut descriptors = content.manifests;
                if let Some(t) = artifact_type {
                    descriptors.retain(|d| d.artifact_type.as_deref() == Some(t));
                }
                Ok(Referrers {
                    descriptors,
                    source: ReferrersSource::TagSchema,
                    fallback_index: Some(index),
                })
            }
            Err(e) if e.is_not_found() => Ok(Referrers {
                descriptors: Vec::new(),
                source: ReferrersSource::TagSchema,
                fallback_index: None,
            }),
            Err(e) => Err(e),
        }
    }

    /// Sends a `GET` to a registry-specific path (ACR's `/acr/v1/…`) with the given scopes
    /// and returns the JSON body and the `Link` to the next page, if any.
    async fn get_json_once(
        &self,
        path_and_query: &str,
        scopes: ScopeSet,
    ) -> Result<(Bytes, Option<String>), TransferError> {
        let ctx = self.ctx(Operation::Other, None, None);
        let url = self.url(path_and_query).await?;
        let resp = self
            .send(Req::new(ctx.clone(), Method::GET, url, scopes.clone()))
            .await?;
        if resp.response.status() != StatusCode::OK {
            return Err(self.fail(&ctx, resp, &scopes).await);
        }
        let next = header_str(&resp.response, "link").and_then(|l| next_link(&l));
        let body = read_capped(
            resp.response.into_body(),
            16 << 20,
            self.transport.inner.idle_timeout,
            &resp.url,
        )
        .await?;
        Ok((body, next))
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

enum ManifestRef {
    Tag(#[allow(dead_code)] Tag),
    Digest(Digest),
}

fn parse_manifest_reference(
    ctx: &RequestContext,
    reference: &str,
) -> Result<ManifestRef, TransferError> {
    let invalid = |e: acr_import_reference::ReferenceError| TransferError::Protocol {
        context: ctx.clone(),
        reason: format!("`{reference}` is neither a tag nor a digest: {e}"),
    };
    if reference.contains(':') {
        reference.parse().map(ManifestRef::Digest).map_err(invalid)
    } else {
        reference.parse().map(ManifestRef::Tag).map_err(invalid)
    }
}

/// The media type to push a manifest with: the `Content-Type` it was served with, which must
/// agree with the body's own `mediaType` when the body has one.
fn resolve_media_type(
    ctx: &RequestContext,
    content_type: &str,
    content: &ManifestContent,
) -> Result<String, TransferError> {
    let generic = content_type.is_empty()
        || content_type == "application/json"
        || content_type == "text/plain"
        || content_type == "application/octet-stream";
    match (&content.media_type, generic) {
        (Some(body), true) => Ok(body.clone()),
        (Some(body), false) if body != content_type => Err(TransferError::InvalidManifest {
            context: ctx.clone(),
            reason: format!("served as `{content_type}` but its mediaType field says `{body}`"),
        }),
        (None, true) => {
            // No media type anywhere: an OCI manifest or index by shape.
            if !content.manifests.is_empty() {
                Ok(OCI_INDEX.to_owned())
            } else {
                Ok(crate::manifest::OCI_MANIFEST.to_owned())
            }
        }
        _ => Ok(content_type.to_owned()),
    }
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

/// The `rel="next"` target of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        is_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", <https://x/next>; rel="next""#).as_deref(),
            Some("https://x/next")
        );
        assert_eq!(next_link(r#"<https://x/prev>; rel="prev""#), None);
    }
}
