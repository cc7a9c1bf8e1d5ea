//! Listings: tags, the catalog, referrers, registry-specific JSON, and the `/v2/` ping.

use acr_import_auth::{Scope, ScopeSet};
use acr_import_reference::{Digest, Repository, TagOrDigest};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use url::Url;

use super::{PingInfo, Referrers, ReferrersSource, Registry, TagsPage, header_str};
use crate::body::read_capped;
use crate::error::{Operation, RequestContext, TransferError, redact_url};
use crate::manifest::{MAX_MANIFEST_BYTES, ManifestContent, OCI_INDEX};
use crate::transport::{Req, Resp, drain, same_origin};

impl Registry {
    /// Every tag of a repository, following `Link` pagination; `page_size` sets `n`.
    pub async fn list_tags(
        &self,
        repository: &Repository,
        page_size: Option<usize>,
    ) -> Result<Vec<String>, TransferError> {
        self.again(|| self.list_tags_once(repository, page_size))
            .await
    }

    /// The first page of a repository's tags, at most `page_size` of them, and whether the
    /// registry has more (a `Link` to a next page). One request: what a copy reads to see
    /// every tag of a small repository without paging through a large one.
    pub async fn tags_page(
        &self,
        repository: &Repository,
        page_size: usize,
    ) -> Result<TagsPage, TransferError> {
        self.again(|| self.tags_page_once(repository, page_size))
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
        repository: &Repository,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers, TransferError> {
        self.again(|| self.referrers_once(repository, digest, artifact_type))
            .await
    }

    /// Sends a `GET` to a registry-specific endpoint (ACR's `/acr/v1/…`): `segments` under the
    /// registry's root (each escaped as one path segment), `query` pairs, the given scopes.
    /// Returns the JSON body and the next page, when a `Link` names one: the same endpoint on
    /// this registry (a `Link` to anywhere else is [`TransferError::Refused`]); fetch it with
    /// [`Registry::get_json_page`].
    pub async fn get_json(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        scopes: ScopeSet,
    ) -> Result<(Bytes, Option<Url>), TransferError> {
        let mut url = self.url(segments.iter().copied()).await?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.get_json_page(&url, scopes).await
    }

    /// Fetches a page [`Registry::get_json`] named as the next one (any other URL of this
    /// registry works too; a URL of another origin is [`TransferError::Refused`]).
    pub async fn get_json_page(
        &self,
        url: &Url,
        scopes: ScopeSet,
    ) -> Result<(Bytes, Option<Url>), TransferError> {
        let origin = self.url([]).await?;
        if !same_origin(url, &origin) {
            return Err(TransferError::Refused {
                url: redact_url(url),
                reason: format!("it is not on the registry {}", self.host),
            });
        }
        self.again(|| self.get_json_once(url, scopes.clone())).await
    }

    /// `GET /v2/`: is this a registry, and may we talk to it.
    pub async fn ping(&self) -> Result<PingInfo, TransferError> {
        let ctx = self.ctx(Operation::Ping, None, None);
        let url = self.url(["v2", ""]).await?;
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

    async fn list_tags_once(
        &self,
        repository: &Repository,
        page_size: Option<usize>,
    ) -> Result<Vec<String>, TransferError> {
        let ctx = self.ctx(Operation::ListTags, Some(repository), None);
        let scopes = ScopeSet::new().with(Scope::pull(repository.as_str()));
        let url = self.v2_url(repository.as_str(), &["tags", "list"]).await?;
        self.paginate(ctx, url, scopes, page_size, "tags").await
    }

    async fn tags_page_once(
        &self,
        repository: &Repository,
        page_size: usize,
    ) -> Result<TagsPage, TransferError> {
        let ctx = self.ctx(Operation::ListTags, Some(repository), None);
        let scopes = ScopeSet::new().with(Scope::pull(repository.as_str()));
        let mut url = self.v2_url(repository.as_str(), &["tags", "list"]).await?;
        url.query_pairs_mut()
            .append_pair("n", &page_size.to_string());
        let (body, next) = self.get_page(&ctx, &url, &scopes).await?;
        Ok(TagsPage {
            tags: page_items(&ctx, &body, "tags")?,
            more: next.is_some(),
        })
    }

    async fn catalog_once(&self, page_size: Option<usize>) -> Result<Vec<String>, TransferError> {
        let ctx = self.ctx(Operation::Catalog, None, None);
        let scopes =
            ScopeSet::new().with(Scope::parse("registry:catalog:*").expect("a valid scope"));
        let url = self.url(["v2", "_catalog"]).await?;
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
            let (body, next) = self.get_page(&ctx, &url, &scopes).await?;
            items.extend(page_items(&ctx, &body, field)?);
            match next {
                Some(n) => url = n,
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
        repository: &Repository,
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
        repository: &Repository,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Referrers>, TransferError> {
        let ctx = self.ctx(
            Operation::Referrers,
            Some(repository),
            Some(digest.as_str()),
        );
        let scopes = ScopeSet::new().with(Scope::pull(repository.as_str()));
        let mut url = self
            .v2_url(repository.as_str(), &["referrers", digest.as_str()])
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
            let content = ManifestContent::parse(&body)
                .map_err(|e| TransferError::manifest(ctx.clone(), e))?;
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
        repository: &Repository,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers, TransferError> {
        let tag = digest.referrers_tag();
        // A `HEAD` first: it costs no pull where pulls are counted, and most subjects have
        // no referrers. A fallback index that exists is read by digest, so a copy reads it
        // once however often it asks. The once-variant: `referrers` already retries the
        // whole lookup.
        let tag = TagOrDigest::from(tag);
        let found = match self.head_manifest(repository, &tag).await? {
            None => Err(None),
            Some(head) => {
                let reference = head.digest.map_or_else(|| tag.clone(), TagOrDigest::from);
                self.read_manifest(repository, &reference, false)
                    .await
                    .map_err(Some)
            }
        };
        match found {
            Ok(index) => {
                let content = index.parse().map_err(|e| {
                    let mut context = ctx.clone();
                    context.reference = Some(tag.to_string());
                    TransferError::manifest(context, e)
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
            Err(None) => Ok(Referrers {
                descriptors: Vec::new(),
                source: ReferrersSource::TagSchema,
                fallback_index: None,
            }),
            // Deleted between the `HEAD` and the `GET`.
            Err(Some(e)) if e.is_not_found() => Ok(Referrers {
                descriptors: Vec::new(),
                source: ReferrersSource::TagSchema,
                fallback_index: None,
            }),
            Err(Some(e)) => Err(e),
        }
    }

    /// One `GET` of [`Registry::get_json_page`].
    async fn get_json_once(
        &self,
        url: &Url,
        scopes: ScopeSet,
    ) -> Result<(Bytes, Option<Url>), TransferError> {
        let ctx = self.ctx(Operation::Other, None, None);
        self.get_page(&ctx, url, &scopes).await
    }

    /// One page of a listing: its body (at most 16 MiB) and the next page it links to.
    async fn get_page(
        &self,
        ctx: &RequestContext,
        url: &Url,
        scopes: &ScopeSet,
    ) -> Result<(Bytes, Option<Url>), TransferError> {
        let resp = self
            .send(Req::new(
                ctx.clone(),
                Method::GET,
                url.clone(),
                scopes.clone(),
            ))
            .await?;
        if resp.response.status() != StatusCode::OK {
            return Err(self.fail(ctx, resp, scopes).await);
        }
        let next = next_page(&resp)?;
        let body = read_capped(
            resp.response.into_body(),
            16 << 20,
            self.transport.inner.idle_timeout,
            &resp.url,
        )
        .await?;
        Ok((body, next))
    }
}

/// The string list `field` of a listing's page (none when the field is missing or null).
fn page_items(
    ctx: &RequestContext,
    body: &[u8],
    field: &str,
) -> Result<Vec<String>, TransferError> {
    let page: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| TransferError::Protocol {
            context: ctx.clone(),
            reason: format!("invalid {field} page: {e}"),
        })?;
    match page.get(field) {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(list)) => Ok(list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()),
        Some(_) => Err(TransferError::Protocol {
            context: ctx.clone(),
            reason: format!("`{field}` is not a list"),
        }),
    }
}

/// The next page a listing's answer links to: its `Link: <…>; rel="next"`, resolved against
/// the page's URL. A next page is the same endpoint on the same origin with other query
/// parameters; a `Link` elsewhere (another host, a userinfo trick such as `<@host/x>`, another
/// path) is refused, never followed.
fn next_page(resp: &Resp) -> Result<Option<Url>, TransferError> {
    let Some(target) = header_str(&resp.response, "link").and_then(|l| next_link(&l)) else {
        return Ok(None);
    };
    next_page_of(&resp.url, &target).map(Some)
}

fn next_page_of(page: &Url, target: &str) -> Result<Url, TransferError> {
    let refused = |url: String| TransferError::Refused {
        url,
        reason: format!(
            "the pagination Link leads away from {} (another host or another listing)",
            redact_url(page)
        ),
    };
    let next = page.join(target).map_err(|_| refused(target.to_owned()))?;
    if !same_origin(&next, page) || next.path() != page.path() {
        return Err(refused(redact_url(&next)));
    }
    Ok(next)
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
    use super::{next_link, next_page_of};

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

    #[test]
    fn next_pages_stay_on_their_endpoint() {
        let page = url::Url::parse("https://r.example:5000/acr/v1/app/_manifests?n=100").unwrap();
        for ok in [
            "/acr/v1/app/_manifests?last=sha256:a&n=100",
            "?last=b",
            "https://R.example:5000/acr/v1/app/_manifests?last=c",
        ] {
            let next = next_page_of(&page, ok).unwrap();
            assert_eq!(next.host_str(), Some("r.example"), "{ok}");
        }
        for refused in [
            "@evil.example/x",
            "//evil.example/acr/v1/app/_manifests",
            "https://evil.example/acr/v1/app/_manifests",
            "http://r.example:5000/acr/v1/app/_manifests",
            "https://r.example:5001/acr/v1/app/_manifests",
            "/acr/v1/other/_manifests",
            "../other/_manifests",
            "http://[",
        ] {
            assert!(next_page_of(&page, refused).is_err(), "{refused}");
        }
    }
}
