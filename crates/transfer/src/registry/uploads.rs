//! Uploads: sessions, cross-repository mounts, monolithic and chunked pushes.

use acr_import_auth::{Scope, ScopeSet};
use acr_import_reference::{Digest, Repository};
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use url::Url;

use super::{OCTET_STREAM, Registry, UploadSession, UploadStart, header_str, range_end};
use crate::error::{Operation, RequestContext, TransferError, redact_url};
use crate::transport::{Body, Req, Resp, drain};

impl Registry {
    /// Starts an upload, or mounts `digest` from `mount_from` (a repository of this registry)
    /// in one request: `201` means mounted, `202` an upload session to send bytes to.
    pub async fn start_upload(
        &self,
        repository: &Repository,
        mount: Option<(&Digest, &Repository)>,
    ) -> Result<UploadStart, TransferError> {
        let ctx = self.ctx(
            Operation::StartUpload,
            Some(repository),
            mount.map(|(d, _)| d.as_str()),
        );
        let mut url = self
            .v2_url(repository.as_str(), &["blobs", "uploads", ""])
            .await?;
        let mut scopes = ScopeSet::new().with(Scope::push(repository.as_str()));
        if let Some((digest, from)) = mount {
            url.query_pairs_mut()
                .append_pair("mount", digest.as_str())
                .append_pair("from", from.as_str());
            scopes.insert(Scope::pull(from.as_str()));
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
                    repository: repository.clone(),
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
        let scopes = ScopeSet::new().with(Scope::push(session.repository.as_str()));
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
        let scopes = ScopeSet::new().with(Scope::push(session.repository.as_str()));
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
        let scopes = ScopeSet::new().with(Scope::push(session.repository.as_str()));
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
        let scopes = ScopeSet::new().with(Scope::push(session.repository.as_str()));
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
        repository: &Repository,
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
}
