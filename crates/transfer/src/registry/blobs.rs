//! Blobs: `HEAD`, and downloads as verified streams that resume with `Range`.

use acr_import_auth::{Scope, ScopeSet};
use acr_import_reference::{Digest, Repository};
use http::{HeaderValue, Method, StatusCode, header};
use hyper::body::Incoming;
use url::Url;

use super::{Registry, content_length, header_str};
use crate::body::{BlobState, BlobStream, Hasher};
use crate::error::{Operation, RequestContext, TransferError};
use crate::transport::Req;

impl Registry {
    /// `HEAD` of a blob: its size, or `None` when the repository does not hold it.
    pub async fn head_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<Option<u64>, TransferError> {
        let (ctx, scopes, req) = self
            .blob_request(Operation::HeadBlob, Method::HEAD, repository, digest)
            .await?;
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
        repository: &Repository,
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
            repository: repository.clone(),
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
        repository: &Repository,
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
        repository: &Repository,
        digest: &Digest,
        offset: u64,
    ) -> Result<(Incoming, u64, Url, Option<u64>), TransferError> {
        let (ctx, scopes, mut req) = self
            .blob_request(Operation::GetBlob, Method::GET, repository, digest)
            .await?;
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

    /// A request for the blob `digest` of `repository` (redirects followed: blobs are often
    /// served from a CDN), with its context and scopes.
    async fn blob_request(
        &self,
        operation: Operation,
        method: Method,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<(RequestContext, ScopeSet, Req), TransferError> {
        let ctx = self.ctx(operation, Some(repository), Some(digest.as_str()));
        let url = self
            .v2_url(repository.as_str(), &["blobs", digest.as_str()])
            .await?;
        let scopes = ScopeSet::new().with(Scope::pull(repository.as_str()));
        let mut req = Req::new(ctx.clone(), method, url, scopes.clone());
        req.follow_redirects = true;
        Ok((ctx, scopes, req))
    }
}
