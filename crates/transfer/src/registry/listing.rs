//! Listings: tags, the catalog, referrers, registry-specific JSON, and the `/v2/` ping.

use acr_import_auth::{Scope, ScopeSet};
use acr_import_reference::Digest;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use url::Url;

use super::{PingInfo, Referrers, ReferrersSource, Registry, TagsPage, header_str};
use crate::body::read_capped;
use crate::error::{Operation, RequestContext, TransferError};
use crate::manifest::{MAX_MANIFEST_BYTES, ManifestContent, OCI_INDEX};
use crate::transport::{Req, drain};

impl Registry {
    /// Every tag of a repository, following `Link` pagination; `page_size` sets `n`.
    pub async fn list_tags(
        &self,
        repository: &str,
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
        repository: &str,
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

    async fn tags_page_once(
        &self,
        repository: &str,
        page_size: usize,
    ) -> Result<TagsPage, TransferError> {
        let ctx = self.ctx(Operation::ListTags, Some(repository), None);
        let scopes = ScopeSet::new().with(Scope::pull(repository));
        let mut url = self.url(&format!("/v2/{repository}/tags/list")).await?;
        url.query_pairs_mut()
            .append_pair("n", &page_size.to_string());
        let (tags, next) = self.page(&ctx, url, &scopes, "tags").await?;
        Ok(TagsPage {
            more: next.is_some(),
            tags,
        })
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
            let (page, next) = self.page(&ctx, url, &scopes, field).await?;
            items.extend(page);
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

    /// One page of a paginated string list: its items and the URL of the next page.
    async fn page(
        &self,
        ctx: &RequestContext,
        url: Url,
        scopes: &ScopeSet,
        field: &str,
    ) -> Result<(Vec<String>, Option<Url>), TransferError> {
        let (body, next, url) = self.get_page(ctx, url, scopes).await?;
        let page: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| TransferError::Protocol {
                context: ctx.clone(),
                reason: format!("invalid {field} page: {e}"),
            })?;
        let items = match page.get(field) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(_) => {
                return Err(TransferError::Protocol {
                    context: ctx.clone(),
                    reason: format!("`{field}` is not a list"),
                });
            }
        };
        let next = match next {
            Some(n) => Some(url.join(&n).map_err(|e| TransferError::Protocol {
                context: ctx.clone(),
                reason: format!("invalid Link header: {e}"),
            })?),
            None => None,
        };
        Ok((items, next))
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
        let (body, next, _) = self.get_page(&ctx, url, &scopes).await?;
        Ok((body, next))
    }

    /// `GET` of one page of a listing: its body (up to 16 MiB), the `rel="next"` target of
    /// its `Link` header, and the URL that answered (relative links resolve against it).
    async fn get_page(
        &self,
        ctx: &RequestContext,
        url: Url,
        scopes: &ScopeSet,
    ) -> Result<(Bytes, Option<String>, Url), TransferError> {
        let resp = self
            .send(Req::new(ctx.clone(), Method::GET, url, scopes.clone()))
            .await?;
        if resp.response.status() != StatusCode::OK {
            return Err(self.fail(ctx, resp, scopes).await);
        }
        let next = header_str(&resp.response, "link").and_then(|l| next_link(&l));
        let body = read_capped(
            resp.response.into_body(),
            16 << 20,
            self.transport.inner.idle_timeout,
            &resp.url,
        )
        .await?;
        Ok((body, next, resp.url))
    }
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
