//! ACR's metadata API (`/acr/v1/…`): the manifests of a repository with their tags and
//! timestamps, as `az acr manifest list-metadata` (formerly `repository show-manifests`)
//! shows them, and its tags with their digests (what a mirror compares in one request).

use acr_import_auth::{Scope, ScopeSet};
use acr_import_reference::Digest;
use acr_import_transfer::{Registry, TransferError};

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
/// `repository:{repo}:metadata_read`), following `Link` pagination, at most `top`. Each
/// entry is the service's own object (`digest`, `tags`, `lastUpdateTime`, `imageSize`, …).
/// `Ok(None)`: the registry has no such API (it is not an ACR), so the caller lists through
/// the OCI API instead.
pub async fn list_manifests(
    registry: &Registry,
    repository: &str,
    order: Option<ManifestOrder>,
    top: Option<usize>,
) -> Result<Option<Vec<serde_json::Value>>, TransferError> {
    let mut path = format!("/acr/v1/{repository}/_manifests?n=100");
    if let Some(o) = order {
        path.push_str(&format!("&orderby={}", o.query()));
    }
    list(registry, repository, path, "manifests", top).await
}

/// The tags of `repository` with the digest each names, in one request per 1000 tags, through
/// `GET /acr/v1/{repo}/_tags` (scope `repository:{repo}:metadata_read`). `Ok(None)`: the
/// registry has no such API (it is not an ACR); a repository it does not know is an error
/// whose [`TransferError::is_not_found`] holds.
pub async fn list_tags(
    registry: &Registry,
    repository: &str,
) -> Result<Option<Vec<(String, Digest)>>, TransferError> {
    let path = format!("/acr/v1/{repository}/_tags?n=1000");
    let Some(rows) = list(registry, repository, path, "tags", None).await? else {
        return Ok(None);
    };
    rows.iter()
        .map(|row| {
            let name = row["name"].as_str();
            let digest = row["digest"].as_str().and_then(|d| d.parse().ok());
            match (name, digest) {
                (Some(n), Some(d)) => Ok((n.to_owned(), d)),
                _ => Err(protocol(
                    registry,
                    repository,
                    format!("a tag of the listing has no name or digest: {row}"),
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn protocol(registry: &Registry, repository: &str, reason: String) -> TransferError {
    TransferError::Protocol {
        context: acr_import_transfer::RequestContext {
            operation: acr_import_transfer::Operation::Other,
            registry: registry.host().to_owned(),
            repository: Some(repository.to_owned()),
            reference: None,
        },
        reason,
    }
}

/// The `field` lists of every page from `path` on, following `Link`, at most `top`.
async fn list(
    registry: &Registry,
    repository: &str,
    mut path: String,
    field: &str,
    top: Option<usize>,
) -> Result<Option<Vec<serde_json::Value>>, TransferError> {
    let scopes = ScopeSet::new().with(Scope::repository(repository, ["metadata_read"]));
    let limit = top.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let (body, next) = match registry.get_json(&path, scopes.clone()).await {
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
        out.extend(page[field].as_array().into_iter().flatten().cloned());
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
        match next {
            Some(n) => path = n,
            None => break,
        }
    }
    Ok(Some(out))
}

/// az's default shape of a metadata object: `{digest, tags, timestamp}` (`timestamp` is the
/// service's `lastUpdateTime`; missing values become `""` and `[]`).
pub fn summary(entry: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "digest": entry["digest"].as_str().unwrap_or_default(),
        "tags": entry["tags"].as_array().cloned().unwrap_or_default(),
        "timestamp": entry["lastUpdateTime"].as_str().unwrap_or_default(),
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
        let s = summary(
            &serde_json::json!({"digest": "sha256:a", "lastUpdateTime": "2018-09-06T06:17:20.9983915Z", "imageSize": 1}),
        );
        assert_eq!(
            s,
            serde_json::json!({"digest": "sha256:a", "tags": [], "timestamp": "2018-09-06T06:17:20.9983915Z"})
        );
    }
}
