//! Manifests: fetched as exact bytes and checked, looked up with `HEAD`, pushed, deleted.

use acr_import_auth::{Scope, ScopeSet};
use acr_import_reference::{Digest, Repository, TagOrDigest};
use http::{HeaderValue, Method, StatusCode, header};

use super::{ManifestHead, PushedManifest, Registry, content_length, header_str};
use crate::body::{digest_of, read_capped};
use crate::error::{Operation, RequestContext, TransferError};
use crate::manifest::{
    ACCEPT_MANIFESTS, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, MAX_MANIFEST_BYTES, Manifest,
    ManifestContent, ManifestError, OCI_INDEX,
};
use crate::transport::{Body, Req, drain};

impl Registry {
    /// Fetches a manifest by tag or digest, as exact bytes, refusing anything that does not
    /// check out: more than 4 MiB, schema 1, invalid JSON, a body whose `mediaType`
    /// contradicts its `Content-Type`, bytes that do not hash to the digest asked for or to
    /// the `Docker-Content-Digest` the registry announced. A corrupted or broken transfer is
    /// fetched again before the error is final.
    ///
    /// ```no_run
    /// use acr_import_reference::{Repository, Tag, TagOrDigest};
    /// use acr_import_transfer::Transport;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let transport = Transport::builder().build()?;
    /// let registry = transport.registry("registry.example")?;
    /// let repository: Repository = "samples/app".parse()?;
    /// let tag: Tag = "1.0".parse()?;
    /// let manifest = registry
    ///     .get_manifest(&repository, &TagOrDigest::from(tag))
    ///     .await?;
    /// // The same manifest again, pinned by the digest its bytes hash to.
    /// let pinned = TagOrDigest::from(manifest.digest.clone());
    /// assert_eq!(registry.get_manifest(&repository, &pinned).await?, manifest);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_manifest(
        &self,
        repository: &Repository,
        reference: &TagOrDigest,
    ) -> Result<Manifest, TransferError> {
        self.read_manifest(repository, reference, true).await
    }

    /// [`Self::get_manifest`], through the copy's manifest cache when this handle reads for
    /// one: a digest already read is not fetched again, and a manifest read by tag is kept
    /// under its digest. `again`: retry a corrupted or broken transfer (else the caller
    /// retries the whole operation).
    pub(super) async fn read_manifest(
        &self,
        repository: &Repository,
        reference: &TagOrDigest,
        again: bool,
    ) -> Result<Manifest, TransferError> {
        let fetch = || async {
            if again {
                self.again(|| self.get_manifest_once(repository, reference))
                    .await
            } else {
                self.get_manifest_once(repository, reference).await
            }
        };
        let Some(reads) = &self.reads else {
            return fetch().await;
        };
        match reference {
            TagOrDigest::Digest(digest) => {
                // A target that holds the digest serves the same bytes without a pull; where
                // the source counts pulls, the targets are asked (`HEAD`) before it is.
                let counts_pulls = self.transport.rate_limit_status(&self.host).is_some();
                let fetch = || async {
                    let held = if counts_pulls {
                        reads.holder(digest).await
                    } else {
                        reads.held_at(digest)
                    };
                    if let Some((registry, repo)) = held
                        && let Ok(m) = registry
                            .again(|| registry.get_manifest_once(&repo, reference))
                            .await
                    {
                        return Ok(m);
                    }
                    fetch().await
                };
                reads
                    .cache
                    .get_or_fetch(&self.host, repository, digest, fetch)
                    .await
            }
            TagOrDigest::Tag(_) => {
                let manifest = fetch().await?;
                reads.cache.insert(&self.host, repository, &manifest);
                Ok(manifest)
            }
        }
    }

    /// Fetches a manifest by tag or digest, as exact bytes, refusing anything that does not
    /// check out: more than 4 MiB, schema 1, invalid JSON, a body whose `mediaType`
    /// contradicts its `Content-Type`, bytes that do not hash to the digest asked for or to
    /// the `Docker-Content-Digest` the registry announced.
    pub(super) async fn get_manifest_once(
        &self,
        repository: &Repository,
        reference: &TagOrDigest,
    ) -> Result<Manifest, TransferError> {
        let ctx = self.manifest_ctx(Operation::GetManifest, repository, reference);
        let url = self.manifest_url(repository, reference).await?;
        let scopes = ScopeSet::new().with(Scope::pull(repository.as_str()));
        let mut req = Req::new(ctx.clone(), Method::GET, url, scopes.clone());
        req.headers
            .insert(header::ACCEPT, HeaderValue::from_static(ACCEPT_MANIFESTS));
        req.tally = self.reads.as_ref().map(|r| r.pulls.clone());
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
        let content =
            ManifestContent::parse(&bytes).map_err(|e| TransferError::manifest(ctx.clone(), e))?;
        let media_type = resolve_media_type(&ctx, &content_type, &content)?;
        let algorithm = match reference {
            TagOrDigest::Digest(d) => d.algorithm(),
            TagOrDigest::Tag(_) => announced
                .as_deref()
                .and_then(|a| a.parse::<Digest>().ok())
                .map(|d| d.algorithm())
                .unwrap_or(acr_import_reference::DigestAlgorithm::Sha256),
        };
        let digest = digest_of(algorithm, &bytes);
        if let TagOrDigest::Digest(d) = reference
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
        repository: &Repository,
        reference: &TagOrDigest,
    ) -> Result<Option<ManifestHead>, TransferError> {
        let ctx = self.manifest_ctx(Operation::GetManifest, repository, reference);
        let url = self.manifest_url(repository, reference).await?;
        let scopes = ScopeSet::new().with(Scope::pull(repository.as_str()));
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
        repository: &Repository,
        reference: &TagOrDigest,
        manifest: &Manifest,
    ) -> Result<Digest, TransferError> {
        self.push_manifest(repository, reference, manifest)
            .await
            .map(|p| p.digest)
    }

    /// [`Registry::put_manifest`], also telling whether the registry processed a `subject`
    /// (the `OCI-Subject` header of OCI 1.1 registries; without it, referrers must be
    /// recorded in the tag-schema fallback index).
    ///
    /// A `400 MANIFEST_BLOB_UNKNOWN` naming blobs or manifests that the repository does hold
    /// (each checked with `HEAD`) is sent again, with the transport's retry backoff. A
    /// registry can say so while another client writes the same blob into the repository:
    /// distribution's filesystem storage rewrites the blob's link file in place, and a
    /// manifest check that reads it half-written finds no blob (distribution/distribution
    /// issue 4489; moby/moby issue 22854 for parallel pushes). A blob the registry really
    /// lacks fails at once.
    pub async fn push_manifest(
        &self,
        repository: &Repository,
        reference: &TagOrDigest,
        manifest: &Manifest,
    ) -> Result<PushedManifest, TransferError> {
        let policy = self.transport.inner.retry;
        let mut attempt = 0;
        loop {
            let error = match self
                .push_manifest_once(repository, reference, manifest)
                .await
            {
                Err(e) if attempt < policy.max_retries => e,
                done => return done,
            };
            let named = unknown_blobs(&error);
            if named.is_empty() || !self.holds_all(repository, &named).await {
                return Err(error);
            }
            attempt += 1;
            tracing::debug!(%error, attempt, "the registry lost blobs it holds; pushing the manifest again");
            tokio::time::sleep(policy.delay(attempt, None)).await;
        }
    }

    /// Whether the repository holds each of `digests`, as a blob or as a manifest. A check
    /// that fails counts as not held.
    async fn holds_all(&self, repository: &Repository, digests: &[Digest]) -> bool {
        for digest in digests {
            let blob = matches!(self.head_blob(repository, digest).await, Ok(Some(_)));
            if !blob
                && !matches!(
                    self.head_manifest(repository, &digest.clone().into()).await,
                    Ok(Some(_))
                )
            {
                return false;
            }
        }
        true
    }

    async fn push_manifest_once(
        &self,
        repository: &Repository,
        reference: &TagOrDigest,
        manifest: &Manifest,
    ) -> Result<PushedManifest, TransferError> {
        let ctx = self.manifest_ctx(Operation::PutManifest, repository, reference);
        if let TagOrDigest::Digest(d) = reference
            && *d != manifest.digest
        {
            return Err(TransferError::DigestMismatch {
                what: format!("manifest pushed as {repository}@{d}"),
                expected: d.to_string(),
                actual: manifest.digest.to_string(),
            });
        }
        let url = self.manifest_url(repository, reference).await?;
        let scopes = ScopeSet::new().with(Scope::push(repository.as_str()));
        let mut req = Req::new(ctx.clone(), Method::PUT, url, scopes.clone());
        req.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&manifest.media_type).map_err(|_| {
                TransferError::manifest(
                    ctx.clone(),
                    ManifestError::InvalidMediaType(manifest.media_type.clone()),
                )
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
        repository: &Repository,
        digest: &Digest,
    ) -> Result<(), TransferError> {
        let ctx = self.ctx(
            Operation::DeleteManifest,
            Some(repository),
            Some(digest.as_str()),
        );
        let url = self
            .v2_url(repository.as_str(), &["manifests", digest.as_str()])
            .await?;
        let scopes = ScopeSet::new().with(Scope::repository(repository.as_str(), ["delete"]));
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

    fn manifest_ctx(
        &self,
        operation: Operation,
        repository: &Repository,
        reference: &TagOrDigest,
    ) -> RequestContext {
        self.ctx(operation, Some(repository), Some(reference.as_str()))
    }

    /// `/v2/<repository>/manifests/<reference>`.
    async fn manifest_url(
        &self,
        repository: &Repository,
        reference: &TagOrDigest,
    ) -> Result<url::Url, TransferError> {
        self.v2_url(repository.as_str(), &["manifests", reference.as_str()])
            .await
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
        (Some(body), false) if body != content_type => Err(TransferError::manifest(
            ctx.clone(),
            ManifestError::MediaTypeMismatch {
                declared_by: "served as",
                declared: content_type.to_owned(),
                body: body.clone(),
            },
        )),
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

/// The digests a `400 MANIFEST_BLOB_UNKNOWN` answer names: distribution writes each in the
/// entry's `detail`, as the digest or as an object with a `digest` member.
fn unknown_blobs(error: &TransferError) -> Vec<Digest> {
    let Some(details) = error.details().filter(|d| d.status == 400) else {
        return Vec::new();
    };
    details
        .errors
        .iter()
        .filter(|e| e.code == "MANIFEST_BLOB_UNKNOWN")
        .filter_map(|e| e.detail.as_deref())
        .filter_map(|detail| {
            detail.parse().ok().or_else(|| {
                serde_json::from_str::<serde_json::Value>(detail)
                    .ok()?
                    .get("digest")?
                    .as_str()?
                    .parse()
                    .ok()
            })
        })
        .collect()
}
