//! The ACR data plane: the metadata listing, and forwarding to the registry behind.

use super::*;

use super::acr::*;

/// Which listing of ACR's metadata API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listing {
    /// `/_manifests`: one object per tagged manifest.
    Manifests,
    /// `/_tags`: one object per tag (`{name, digest, createdTime, lastUpdateTime,
    /// changeableAttributes}`, as in the data-plane specification's `GetTagList` example),
    /// in tag order.
    Tags,
}

impl Listing {
    fn key(self) -> &'static str {
        match self {
            Listing::Manifests => "manifests",
            Listing::Tags => "tags",
        }
    }

    /// The field `last=` names.
    fn last_field(self) -> &'static str {
        match self {
            Listing::Manifests => "digest",
            Listing::Tags => "name",
        }
    }
}

/// `GET /acr/v1/{repo}/_manifests[?n=&orderby=timeasc|timedesc&last=]`, ACR's manifest
/// metadata listing, in the documented shape (`{registry, imageName, manifests: [{digest,
/// imageSize, createdTime, lastUpdateTime, mediaType, tags, changeableAttributes}]}`, `Link`
/// for the next page), and `GET /acr/v1/{repo}/_tags[?n=&last=]`, its tag listing (`{registry,
/// imageName, tags: [{name, digest, …}]}`). Both need a token granting `metadata_read` on the
/// repository; the data comes from the registry behind (its tags and manifest heads),
/// timestamps from when this listing first saw each digest.
pub(super) async fn acr_metadata(
    state: &AcrState,
    req: &Request<Incoming>,
    repo: &str,
    listing: Listing,
) -> Response<Full<Bytes>> {
    let challenge = |error: Option<&str>| {
        let mut value = format!(
            "Bearer realm=\"http://{ls}/oauth2/token\",service=\"{ls}\",scope=\"repository:{repo}:metadata_read\"",
            ls = state.login_server
        );
        if let Some(e) = error {
            value.push_str(&format!(",error=\"{e}\""));
        }
        let mut r = acr_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    };
    let Some(token) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return challenge(None);
    };
    let Ok(claims) = state.issuer.verify(token) else {
        return challenge(Some("invalid_token"));
    };
    let allowed = claims["access"].as_array().is_some_and(|list| {
        list.iter().any(|a| {
            a["type"] == "repository"
                && a["name"] == repo
                && a["actions"]
                    .as_array()
                    .is_some_and(|x| x.iter().any(|v| v == "metadata_read" || v == "*"))
        })
    });
    if !allowed {
        return challenge(Some("insufficient_scope"));
    }
    let query: HashMap<String, String> = parse_form(req.uri().query().unwrap_or_default())
        .into_iter()
        .collect();
    let n: usize = query
        .get("n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let orderby = query.get("orderby").cloned().unwrap_or_default();
    match metadata_rows(state, repo).await {
        Err(response) => response,
        Ok(mut rows) => {
            rows.sort_by_key(|r| r.0);
            if listing == Listing::Tags {
                rows = tag_rows(rows);
            }
            if orderby == "timedesc" {
                rows.reverse();
            }
            let start = query
                .get("last")
                .and_then(|last| {
                    rows.iter()
                        .position(|r| r.1[listing.last_field()] == last.as_str())
                })
                .map_or(0, |i| i + 1);
            let page: Vec<Value> = rows
                .iter()
                .skip(start)
                .take(n)
                .map(|r| r.1.clone())
                .collect();
            let mut response = json_response(
                StatusCode::OK,
                &json!({"registry": state.login_server, "imageName": repo, listing.key(): page}),
            );
            if start + n < rows.len()
                && let Some(last) = page.last().and_then(|p| p[listing.last_field()].as_str())
            {
                let mut link = format!("</acr/v1/{repo}/_{}?last={last}&n={n}", listing.key());
                if !orderby.is_empty() {
                    link.push_str(&format!("&orderby={orderby}"));
                }
                link.push_str(">; rel=\"next\"");
                if let Ok(v) = http::HeaderValue::from_str(&link) {
                    response.headers_mut().insert(header::LINK, v);
                }
            }
            response
        }
    }
}

/// The manifest rows as tag rows, in tag order.
fn tag_rows(manifests: Vec<MetadataRow>) -> Vec<MetadataRow> {
    let mut tags: Vec<(String, Value)> = manifests
        .iter()
        .flat_map(|(_, m)| {
            m["tags"].as_array().into_iter().flatten().filter_map(|t| {
                let name = t.as_str()?.to_owned();
                let row = json!({"name": name, "digest": m["digest"], "createdTime": m["createdTime"],
                    "lastUpdateTime": m["lastUpdateTime"], "changeableAttributes": m["changeableAttributes"]});
                Some((name, row))
            })
        })
        .collect();
    tags.sort_by(|a, b| a.0.cmp(&b.0));
    tags.into_iter()
        .enumerate()
        .map(|(i, (_, row))| ((0, i as u64), row))
        .collect()
}

/// One row of the metadata listing with its order key (first seen, then sequence).
pub(super) type MetadataRow = ((i64, u64), Value);

/// The metadata objects of every tagged manifest of `repo`.
pub(super) async fn metadata_rows(
    state: &AcrState,
    repo: &str,
) -> Result<Vec<MetadataRow>, Response<Full<Bytes>>> {
    let fail = |e: anyhow::Error| acr_error(StatusCode::BAD_GATEWAY, "UPSTREAM", &format!("{e:#}"));
    let token = state
        .issuer
        .sign(
            "acr-metadata",
            &[Access::repository(repo, &["pull"])],
            Duration::from_secs(60),
        )
        .map_err(fail)?;
    let tags = backend(
        state.upstream,
        Method::GET,
        &format!("/v2/{repo}/tags/list"),
        &token,
    )
    .await
    .map_err(fail)?;
    if tags.status() == StatusCode::NOT_FOUND {
        return Err(acr_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        ));
    }
    let list: Value = serde_json::from_slice(tags.body()).unwrap_or_default();
    let mut by_digest: Vec<(String, Value)> = Vec::new();
    for tag in list["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
    {
        let head = backend(
            state.upstream,
            Method::HEAD,
            &format!("/v2/{repo}/manifests/{tag}"),
            &token,
        )
        .await
        .map_err(fail)?;
        let h = |name: &str| {
            head.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let digest = h("docker-content-digest");
        if digest.is_empty() {
            continue;
        }
        match by_digest.iter_mut().find(|(d, _)| *d == digest) {
            Some((_, row)) => {
                if let Some(t) = row["tags"].as_array_mut() {
                    t.push(json!(tag));
                }
            }
            None => by_digest.push((
                digest.clone(),
                json!({"digest": digest, "imageSize": h("content-length").parse::<u64>().unwrap_or(0),
                    "mediaType": h("content-type"), "tags": [tag],
                    "changeableAttributes": {"deleteEnabled": true, "writeEnabled": true, "readEnabled": true, "listEnabled": true}}),
            )),
        }
    }
    let mut seen = lock(&state.first_seen);
    let mut next = seen.len() as u64;
    Ok(by_digest
        .into_iter()
        .map(|(digest, mut row)| {
            let key = *seen.entry(digest).or_insert_with(|| {
                next += 1;
                (unix_now(), next)
            });
            let when = format!(
                "{}.{:07}Z",
                crate::util::rfc3339(key.0).trim_end_matches('Z'),
                key.1
            );
            row["createdTime"] = json!(when);
            row["lastUpdateTime"] = json!(when);
            (key, row)
        })
        .collect())
}

/// One request to the registry behind, with a token this emulator signed; its whole response.
pub(super) async fn backend(
    upstream: SocketAddr,
    method: Method,
    path: &str,
    token: &str,
) -> anyhow::Result<Response<Bytes>> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, upstream.to_string())
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(
            header::ACCEPT,
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
             application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .body(Full::new(Bytes::new()))?;
    crate::util::send_http1(upstream, request).await
}

pub(super) async fn forward(upstream: SocketAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match try_forward(upstream, req).await {
        Ok(r) => r,
        Err(e) => acr_error(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM",
            &format!("the registry behind the emulator failed: {e}"),
        ),
    }
}

pub(super) async fn try_forward(
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut outgoing = Request::from_parts(parts, Full::new(body));
    // Keep the Host the client used (the registry builds no absolute URLs: relative_urls).
    *outgoing.uri_mut() = outgoing
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .parse()?;
    let (mut parts, body) = crate::util::send_http1(upstream, outgoing)
        .await?
        .into_parts();
    // The body is sent whole: its length replaces any chunked framing.
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(header::CONNECTION);
    Ok(Response::from_parts(parts, Full::new(body)))
}
