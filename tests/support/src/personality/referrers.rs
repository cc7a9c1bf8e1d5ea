//! ACR's referrers API, which the registry behind (distribution 2.8) lacks: ACR serves
//! `GET /v2/<name>/referrers/<digest>` (OCI distribution spec 1.1, "Listing Referrers";
//! learn.microsoft.com, "Push and pull supply chain artifacts using Azure Registry") and
//! answers a manifest push that has a `subject` with `OCI-Subject`.
//!
//! The index is kept from the pushes that pass through the personality: a manifest with a
//! `subject` is listed under it with its media type, digest, size, `artifactType` (or its
//! config's media type, as the spec says) and annotations.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::{Body, State, forward, full, lock};
use crate::util::sha256_digest;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A manifest push: forwarded; when stored and it has a `subject`, recorded as a referrer
/// and answered with `OCI-Subject`.
pub(super) async fn put(state: &State, req: Request<Incoming>, name: &str) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let Ok(collected) = body.collect().await else {
        return full(StatusCode::BAD_REQUEST, "text/plain", Bytes::new());
    };
    let bytes = collected.to_bytes();
    let media_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let req = Request::from_parts(parts, Full::new(bytes.clone()));
    let mut resp = forward(state.upstream, req).await;
    if resp.status() != StatusCode::CREATED {
        return resp;
    }
    let Ok(manifest) = serde_json::from_slice::<Value>(&bytes) else {
        return resp;
    };
    let Some(subject) = manifest
        .pointer("/subject/digest")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return resp;
    };
    let mut descriptor = json!({
        "mediaType": manifest.get("mediaType").and_then(Value::as_str).unwrap_or(&media_type),
        "digest": sha256_digest(&bytes),
        "size": bytes.len(),
    });
    if let Some(t) = manifest
        .get("artifactType")
        .or_else(|| manifest.pointer("/config/mediaType"))
    {
        descriptor["artifactType"] = t.clone();
    }
    if let Some(a) = manifest.get("annotations") {
        descriptor["annotations"] = a.clone();
    }
    let mut index = lock(&state.referrers);
    let list = index.entry((name.to_owned(), subject.clone())).or_default();
    if !list.iter().any(|d| d["digest"] == descriptor["digest"]) {
        list.push(descriptor);
    }
    if let Ok(v) = HeaderValue::from_str(&subject) {
        resp.headers_mut().insert("oci-subject", v);
    }
    resp
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=…]`: the client's right to read the
/// repository is checked by the registry behind (a `HEAD` of the subject with the client's
/// credentials: a challenge is passed on); then the index, filtered when asked
/// (`OCI-Filters-Applied: artifactType`). A subject without referrers, or not there at all,
/// has an empty index.
pub(super) async fn answer(
    state: &State,
    req: Request<Incoming>,
    name: &str,
    digest: &str,
) -> Response<Body> {
    let mut check = Request::builder()
        .method(Method::HEAD)
        .uri(format!("/v2/{name}/manifests/{digest}"));
    for (k, v) in req.headers() {
        check = check.header(k, v);
    }
    let Ok(check) = check.body(Empty::<Bytes>::new().map_err(|never| match never {})) else {
        return full(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            Bytes::new(),
        );
    };
    let checked = forward(state.upstream, check).await;
    if checked.status() == StatusCode::UNAUTHORIZED || checked.status() == StatusCode::FORBIDDEN {
        return checked;
    }
    let wanted = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|p| p.strip_prefix("artifactType="))
            .map(crate::util::form_decode)
    });
    let mut manifests = lock(&state.referrers)
        .get(&(name.to_owned(), digest.to_owned()))
        .cloned()
        .unwrap_or_default();
    if let Some(t) = &wanted {
        manifests.retain(|d| d["artifactType"].as_str() == Some(t.as_str()));
    }
    let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    let mut resp = full(StatusCode::OK, OCI_INDEX, Bytes::from(body.to_string()));
    if wanted.is_some() {
        resp.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    resp
}
