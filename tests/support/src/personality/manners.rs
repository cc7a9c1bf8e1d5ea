//! Each registry's manners, as its documentation and its users' issues describe them.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;

use super::{Body, Kind, PullBudget, State, forward, full, identity, lock, registry_error};
use crate::util::sha256_digest;

/// Docker's documented answer to a pull over the limit ("When you issue a pull and you are
/// over the limit, Docker Hub returns a 429 response code with the following body when the
/// manifest is requested", docs.docker.com/docker-hub/usage/pulls/), in the registry's error
/// envelope as clients print it (`toomanyrequests: You have reached your pull rate limit…`,
/// e.g. ScribeMD/docker-cache#829, docker/hub-feedback#2429).
pub const DOCKER_HUB_429: &str = "You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limits";

/// What a request asks for under `/v2/<name>/`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    Manifest { name: String, reference: String },
    Blob { name: String, digest: String },
    Upload { name: String },
    Referrers { name: String, digest: String },
    Other,
}

impl Route {
    pub(super) fn parse(path: &str) -> Self {
        let Some(rest) = path.strip_prefix("/v2/") else {
            return Route::Other;
        };
        if let Some((name, _)) = rest.split_once("/blobs/uploads") {
            return Route::Upload {
                name: name.to_owned(),
            };
        }
        for (marker, make) in [("/manifests/", 0), ("/blobs/", 1), ("/referrers/", 2)] {
            if let Some((name, reference)) = rest.rsplit_once(marker)
                && !name.is_empty()
                && !reference.is_empty()
                && !reference.contains('/')
            {
                let (name, reference) = (name.to_owned(), reference.to_owned());
                return match make {
                    0 => Route::Manifest { name, reference },
                    1 => Route::Blob {
                        name,
                        digest: reference,
                    },
                    _ => Route::Referrers {
                        name,
                        digest: reference,
                    },
                };
            }
        }
        Route::Other
    }
}

/// Whether `path` (with its query) names a manifest.
pub(crate) fn is_manifest_path(path: &str) -> bool {
    matches!(
        Route::parse(path.split('?').next().unwrap_or(path)),
        Route::Manifest { .. }
    )
}

/// The personality's answer to one request, and whether it went to the registry behind.
pub(super) async fn respond(state: &State, req: Request<Incoming>) -> (Response<Body>, bool) {
    let path = req.uri().path().to_owned();
    if let Some(tokens) = state.token_server
        && same_host_realm(state.kind, &path)
    {
        return (forward(tokens, with_path(req, "/token")).await, true);
    }
    let route = Route::parse(&path);
    let method = req.method().clone();
    // mcr.microsoft.com is where Microsoft publishes; the public only reads from it
    // (microsoft/containerregistry, docs/mcr-endpoints-guidance.md). A registry answers
    // what it does not support with 405 UNSUPPORTED (OCI distribution spec, error codes).
    if state.kind == Kind::Mcr && method != Method::GET && method != Method::HEAD {
        return (
            registry_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "mcr.microsoft.com is read-only: content is published by Microsoft",
            ),
            false,
        );
    }
    let authorized = req.headers().contains_key(header::AUTHORIZATION);
    match &route {
        Route::Manifest { name, reference }
            if state.kind == Kind::Quay
                && authorized
                && (method == Method::GET || method == Method::HEAD)
                && state
                    .schema1_tags
                    .contains(&(name.clone(), reference.clone())) =>
        {
            return (schema1(name, reference, method == Method::HEAD), false);
        }
        Route::Manifest { .. } if state.kind == Kind::DockerHub => {
            return docker_hub_manifest(state, req).await;
        }
        Route::Blob { name, digest } if method == Method::GET && state.cdn.is_some() => {
            return redirect_blob(state, req, name, digest).await;
        }
        Route::Upload { .. } if state.kind == Kind::Ecr && method == Method::POST => {
            return (forward(state.upstream, without_mount(req)).await, true);
        }
        Route::Manifest { .. } if state.kind == Kind::Ecr && method == Method::GET => {
            let mut resp = forward(state.upstream, req).await;
            // ECR sends no Docker-Content-Digest on manifest GETs (aws/containers-roadmap
            // #1931; distribution/distribution#3792; ChangemakerStudios/Docker.Registry.DotNet
            // #34: "performing a HEAD request to manifest endpoint did return the
            // Docker-Content-Digest header but not with a GET request").
            resp.headers_mut().remove("docker-content-digest");
            return (resp, true);
        }
        Route::Referrers { name, digest } if state.kind == Kind::Acr => {
            return (
                super::referrers::answer(state, req, name, digest).await,
                true,
            );
        }
        Route::Manifest { name, .. } if state.kind == Kind::Acr && method == Method::PUT => {
            return (super::referrers::put(state, req, name).await, true);
        }
        _ => {}
    }
    (forward(state.upstream, req).await, true)
}

/// GHCR's realm is `https://ghcr.io/token` and Quay's `https://quay.io/v2/auth`, on the
/// registry's own host (quay/quay-docs#11 shows the Quay flow; GHCR's challenge names
/// `realm="https://ghcr.io/token",service="ghcr.io"`).
fn same_host_realm(kind: Kind, path: &str) -> bool {
    matches!(
        (kind, path),
        (Kind::Ghcr, "/token") | (Kind::Quay, "/v2/auth")
    )
}

/// `req` with its path replaced (the query kept).
fn with_path(req: Request<Incoming>, path: &str) -> Request<Incoming> {
    let (mut parts, body) = req.into_parts();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    if let Ok(uri) = format!("{path}{query}").parse::<Uri>() {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

/// ECR mounts nothing across repositories: "For an unreferenced-but-present blob, ECR
/// returns `202 Accepted` (falling back to a fresh upload session) instead of `201
/// Created`" (aws/containers-roadmap#2860; ECR Public: #1459), which is what a registry
/// without mounts does (OCI distribution spec: "if a registry does not support
/// cross-repository mounting, it SHOULD return a 202"). The registry behind is asked for a
/// plain upload session.
fn without_mount(req: Request<Incoming>) -> Request<Incoming> {
    let (mut parts, body) = req.into_parts();
    let kept: Vec<&str> = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("mount=") && !p.starts_with("from="))
        .collect();
    let path = parts.uri.path().to_owned();
    let uri = if kept.is_empty() {
        path
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    if let Ok(uri) = uri.parse::<Uri>() {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

/// Docker Hub's pull accounting ("Get the headers that contain your limits. These headers
/// are returned on both GET and HEAD requests. Using GET emulates a real pull and counts
/// towards the limit. Using HEAD won't", docs.docker.com/docker-hub/usage/pulls/): every
/// manifest `GET` answered is a pull of the identity that sent it (anonymous clients share
/// their IP address's budget: all of loopback is one), counted over a rolling window; a
/// `GET` over the budget is answered `429` with Docker's message. `HEAD`s always answer,
/// `ratelimit-remaining: 0` included (docker/getting-started#101 shows such a `HEAD`). A
/// request without a token is left to the registry, whose challenge comes first. Pulls of
/// unlimited accounts are counted too (for tests to see), never refused.
async fn docker_hub_manifest(state: &State, req: Request<Incoming>) -> (Response<Body>, bool) {
    let who = identity(&req);
    let budget = if who.is_empty() {
        state.budgets.anonymous
    } else {
        state.budgets.user
    };
    if !req.headers().contains_key(header::AUTHORIZATION) {
        return (forward(state.upstream, req).await, true);
    }
    let is_get = req.method() == Method::GET;
    // A GET takes its pull before it is forwarded (concurrent GETs cannot all slip through
    // the last one), and gives it back unless the manifest is served.
    let taken = if is_get {
        take_pull(state, &who, budget)
    } else {
        Ok(None)
    };
    let taken = match taken {
        Ok(t) => t,
        Err(oldest) => {
            let mut resp = registry_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                DOCKER_HUB_429,
            );
            if let (true, Some(budget), Some(oldest)) = (state.retry_after, budget, oldest) {
                let left = budget.window.saturating_sub(oldest.elapsed()).as_secs() + 1;
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(left));
            }
            if let Some(budget) = budget {
                rate_headers(&mut resp, budget, 0);
            }
            return (resp, false);
        }
    };
    let mut resp = forward(state.upstream, req).await;
    if let Some(at) = taken
        && resp.status() != StatusCode::OK
    {
        let mut pulls = lock(&state.pulls);
        if let Some(list) = pulls.get_mut(&who)
            && let Some(i) = list.iter().position(|t| *t == at)
        {
            list.remove(i);
        }
    }
    // An unlimited account sees no `ratelimit` headers ("If you don't see any ratelimit
    // header, … the user you are pulling as is part of a paid Docker plan").
    if let Some(budget) = budget {
        let left = remaining(state, &who, budget).0;
        rate_headers(&mut resp, budget, left);
    }
    (resp, true)
}

/// Counts a pull of `who` now, when the budget allows: `Ok(when)` (the pull's time), or
/// `Err(oldest counted pull)` when the budget is spent.
fn take_pull(
    state: &State,
    who: &str,
    budget: Option<PullBudget>,
) -> Result<Option<Instant>, Option<Instant>> {
    let mut pulls = lock(&state.pulls);
    let list = pulls.entry(who.to_owned()).or_default();
    if let Some(budget) = budget {
        prune(list, budget);
        if list.len() as u64 >= budget.limit {
            return Err(list.front().copied());
        }
    }
    let now = Instant::now();
    list.push_back(now);
    Ok(Some(now))
}

fn prune(list: &mut VecDeque<Instant>, budget: PullBudget) {
    while list.front().is_some_and(|t| t.elapsed() >= budget.window) {
        list.pop_front();
    }
}

/// Pulls left for `who` in the window.
fn remaining(state: &State, who: &str, budget: PullBudget) -> (u64, Option<Instant>) {
    let mut pulls = lock(&state.pulls);
    let list: &mut VecDeque<Instant> = pulls.entry(who.to_owned()).or_default();
    prune(list, budget);
    (
        budget.limit.saturating_sub(list.len() as u64),
        list.front().copied(),
    )
}

/// `ratelimit-limit: 100;w=21600`, `ratelimit-remaining: 20;w=21600`,
/// `docker-ratelimit-source: <address>` (docs.docker.com/docker-hub/usage/pulls/).
fn rate_headers(resp: &mut Response<Body>, budget: PullBudget, remaining: u64) {
    let w = budget.window.as_secs();
    let h = resp.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", format!("{};w={w}", budget.limit)),
        ("ratelimit-remaining", format!("{remaining};w={w}")),
        ("docker-ratelimit-source", "127.0.0.1".to_owned()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

/// Registries that serve blobs from a CDN or object storage answer a blob `GET` with `307`
/// to a signed URL on another host once the client is known to be allowed: Docker Hub to
/// `production.cloudflare.docker.com`, MCR to `*.data.mcr.microsoft.com`
/// (microsoft/containerregistry, client-firewall-rules.md), ECR to S3 pre-signed URLs
/// (open-policy-agent/opa#6580). The registry behind is asked first, with the client's
/// credentials, whether the blob is there and may be read; a refusal is passed on.
async fn redirect_blob(
    state: &State,
    req: Request<Incoming>,
    name: &str,
    digest: &str,
) -> (Response<Body>, bool) {
    let Some(cdn) = &state.cdn else {
        return (forward(state.upstream, req).await, true);
    };
    let mut check = Request::builder()
        .method(Method::HEAD)
        .uri(req.uri().clone());
    for (k, v) in req.headers() {
        check = check.header(k, v);
    }
    let Ok(check) = check.body(Empty::<Bytes>::new().map_err(|never| match never {})) else {
        return (
            full(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                Bytes::new(),
            ),
            false,
        );
    };
    let answer = forward(state.upstream, check).await;
    if answer.status() != StatusCode::OK {
        return (answer, true);
    }
    let location = cdn.sign(state.kind, name, digest);
    let mut resp = full(StatusCode::TEMPORARY_REDIRECT, "text/html", Bytes::new());
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    (resp, true)
}

/// An old tag as Quay still serves it: a signed Docker schema 1 manifest
/// (`application/vnd.docker.distribution.manifest.v1+prettyjws`; quay/quay-docs#11 shows
/// quay.io answering `"schemaVersion": 1` for an old tag, testcontainers/moby-ryuk#9 images
/// pushed before Quay took schema 2 in 2020, containerd/containerd#6884).
fn schema1(name: &str, tag: &str, head: bool) -> Response<Body> {
    let body = serde_json::json!({
        "schemaVersion": 1,
        "name": name,
        "tag": tag,
        "architecture": "amd64",
        "fsLayers": [{"blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"}],
        "history": [{"v1Compatibility": "{\"id\":\"e45a5af57b00862e5ef5782a9925979a02ba2b12dff832fd0991335f4a11e5c5\",\"created\":\"2016-01-01T00:00:00Z\"}"}],
        "signatures": [{
            "header": {"jwk": {"crv": "P-256", "kty": "EC", "x": "AA", "y": "AA"}, "alg": "ES256"},
            "signature": "AAAA",
            "protected": "eyJmb3JtYXRMZW5ndGgiOjEsImZvcm1hdFRhaWwiOiJmUSJ9"
        }]
    });
    let bytes = Bytes::from(serde_json::to_vec_pretty(&body).unwrap_or_default());
    let digest = sha256_digest(&bytes);
    let len = bytes.len();
    let mut resp = full(
        StatusCode::OK,
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        if head { Bytes::new() } else { bytes },
    );
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&digest) {
        h.insert("docker-content-digest", v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            Route::parse("/v2/library/alpine/manifests/3.20"),
            Route::Manifest {
                name: "library/alpine".into(),
                reference: "3.20".into()
            }
        );
        assert_eq!(
            Route::parse("/v2/a/b/blobs/sha256:00"),
            Route::Blob {
                name: "a/b".into(),
                digest: "sha256:00".into()
            }
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/"),
            Route::Upload { name: "a".into() }
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/uuid"),
            Route::Upload { name: "a".into() }
        );
        assert_eq!(
            Route::parse("/v2/a/referrers/sha256:00"),
            Route::Referrers {
                name: "a".into(),
                digest: "sha256:00".into()
            }
        );
        assert_eq!(Route::parse("/v2/"), Route::Other);
        assert_eq!(Route::parse("/v2/a/tags/list"), Route::Other);
        assert!(is_manifest_path("/v2/a/manifests/v1?x=1"));
        assert!(!is_manifest_path("/v2/a/blobs/sha256:00"));
    }
}
