//! ACR's metadata API (`/acr/v1/…`): the manifests of a repository with their tags and
//! timestamps, as `az acr manifest list-metadata` (formerly `repository show-manifests`)
//! shows them, and its tags with their digests (what a mirror compares in one request).

use acr_import_auth::{Scope, ScopeSet};
use acr_import_reference::{Digest, Repository};
use acr_import_transfer::{Registry, TransferError};
use serde::{Deserialize, Serialize};

/// One manifest as ACR's metadata API describes it. The fields read here are typed; the
/// service's others (`architecture`, `os`, `changeableAttributes`, …) are kept as they
/// came in `other`, so that the object serializes back as the service's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestMetadata {
    /// The manifest's digest.
    pub digest: String,
    /// Its tags (none: untagged).
    #[serde(default)]
    pub tags: Vec<String>,
    /// When it last changed (RFC 3339, as the service wrote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    /// The bytes it and its blobs take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u64>,
    /// Its media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The service's other fields.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestOrder {
    /// Oldest first.
    TimeAsc,
    /// Newest first.
    TimeDesc,
}

impl ManifestOrder {
    /// Reads az's `--orderby` values (`time_asc`, `time_desc`).
    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().replace('_', "").as_str() {
            "timeasc" => Some(Self::TimeAsc),
            "timedesc" => Some(Self::TimeDesc),
            _ => None,
        }
    }

    fn query(self) -> &'static str {
        match self {
            Self::TimeAsc => "timeasc",
            Self::TimeDesc => "timedesc",
        }
    }
}

/// Lists the manifests of `repository` through `GET /acr/v1/{repo}/_manifests` (scope
/// `repository:{repo}:metadata_read`), following `Link` pagination, at most `top`.
/// `Ok(None)`: the registry has no such API (it is not an ACR), so the caller lists through
/// the OCI API instead.
pub async fn list_manifests(
    registry: &Registry,
    repository: &Repository,
    order: Option<ManifestOrder>,
    top: Option<usize>,
) -> Result<Option<Vec<ManifestMetadata>>, TransferError> {
    let mut query = vec![("n", "100")];
    if let Some(o) = order {
        query.push(("orderby", o.query()));
    }
    list(registry, repository, "_manifests", &query, top).await
}

/// The tags of `repository` with the digest each names, in one request per 1000 tags, through
/// `GET /acr/v1/{repo}/_tags` (scope `repository:{repo}:metadata_read`). `Ok(None)`: the
/// registry has no such API (it is not an ACR); a repository it does not know is an error
/// whose [`TransferError::is_not_found`] holds.
pub async fn list_tags(
    registry: &Registry,
    repository: &Repository,
) -> Result<Option<Vec<(String, Digest)>>, TransferError> {
    /// One tag as the `_tags` listing describes it (the service's other fields unread).
    #[derive(Deserialize)]
    struct TagRow {
        name: String,
        digest: String,
    }
    let Some(rows) = list::<TagRow>(registry, repository, "_tags", &[("n", "1000")], None).await?
    else {
        return Ok(None);
    };
    rows.into_iter()
        .map(|row| match row.digest.parse() {
            Ok(d) => Ok((row.name, d)),
            Err(_) => Err(protocol(
                registry,
                repository,
                format!(
                    "tag {} of the listing names no digest: {}",
                    row.name, row.digest
                ),
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn protocol(registry: &Registry, repository: &Repository, reason: String) -> TransferError {
    TransferError::Protocol {
        context: acr_import_transfer::RequestContext {
            operation: acr_import_transfer::Operation::Other,
            registry: registry.host().to_owned(),
            repository: Some(repository.to_string()),
            reference: None,
        },
        reason,
    }
}

/// The lists under `kind` (`manifests` of `_manifests`, `tags` of `_tags`) of every page of
/// `/acr/v1/{repo}/{kind}`, following `Link`, at most `top`.
async fn list<T: serde::de::DeserializeOwned>(
    registry: &Registry,
    repository: &Repository,
    kind: &str,
    query: &[(&str, &str)],
    top: Option<usize>,
) -> Result<Option<Vec<T>>, TransferError> {
    let scopes = ScopeSet::new().with(Scope::repository(repository.as_str(), ["metadata_read"]));
    let segments: Vec<&str> = ["acr", "v1"]
        .into_iter()
        .chain(repository.components())
        .chain([kind])
        .collect();
    let field = kind.trim_start_matches('_');
    let limit = top.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    // The next page is one the registry linked to, checked by the transfer crate to be
    // this same endpoint on this registry.
    let mut next: Option<url::Url> = None;
    for _ in 0..10_000 {
        let page = match &next {
            None => registry.get_json(&segments, query, scopes.clone()).await,
            Some(url) => registry.get_json_page(url, scopes.clone()).await,
        };
        let (body, link) = match page {
            Ok(page) => page,
            Err(e) if e.is_not_found() && out.is_empty() => {
                // A repository the API does not know answers NAME_UNKNOWN; a registry without
                // the API answers a bare 404.
                let name_unknown = e.details().and_then(|d| d.code()) == Some("NAME_UNKNOWN");
                return if name_unknown { Err(e) } else { Ok(None) };
            }
            Err(e) => return Err(e),
        };
        let page: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            protocol(
                registry,
                repository,
                format!("the metadata listing is not JSON: {e}"),
            )
        })?;
        let rows: Vec<T> = match page.get(field) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(rows) => serde_json::from_value(rows.clone()).map_err(|e| {
                protocol(
                    registry,
                    repository,
                    format!("the metadata listing is not what ACR serves: {e}"),
                )
            })?,
        };
        out.extend(rows);
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
        match link {
            Some(url) => next = Some(url),
            None => break,
        }
    }
    Ok(Some(out))
}

/// az's default shape of a metadata object: `{digest, tags, timestamp}` (`timestamp` is the
/// service's `lastUpdateTime`; missing values become `""` and `[]`).
pub fn summary(entry: &ManifestMetadata) -> serde_json::Value {
    serde_json::json!({
        "digest": entry.digest,
        "tags": entry.tags,
        "timestamp": entry.last_update_time.as_deref().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_summaries() {
        assert_eq!(
            ManifestOrder::parse("time_desc"),
            Some(ManifestOrder::TimeDesc)
        );
        assert_eq!(
            ManifestOrder::parse("TimeAsc"),
            Some(ManifestOrder::TimeAsc)
        );
        assert_eq!(ManifestOrder::parse("size"), None);
        let service = serde_json::json!({"digest": "sha256:a", "lastUpdateTime": "2018-09-06T06:17:20.9983915Z",
            "imageSize": 1, "architecture": "amd64", "changeableAttributes": {"deleteEnabled": true}});
        let entry: ManifestMetadata = serde_json::from_value(service.clone()).unwrap();
        assert_eq!((entry.image_size, entry.tags.len()), (Some(1), 0));
        assert_eq!(
            summary(&entry),
            serde_json::json!({"digest": "sha256:a", "tags": [], "timestamp": "2018-09-06T06:17:20.9983915Z"})
        );
        // The service's object comes back whole (with the tags it did not list: none).
        let mut back = service;
        back["tags"] = serde_json::json!([]);
        assert_eq!(serde_json::to_value(&entry).unwrap(), back);
    }
}
