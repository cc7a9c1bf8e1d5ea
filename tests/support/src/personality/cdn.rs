//! The CDN origin blobs are redirected to: another origin (its own port) that serves a blob
//! only on a URL the registry signed, and takes no credentials.
//!
//! A signed URL carries its own authorization. Object stores refuse a request that carries
//! an `Authorization` header as well: S3 answers `400 InvalidArgument` "Only one auth
//! mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string
//! parameter or the Authorization header should be specified" (renovatebot/renovate#3877,
//! open-policy-agent/opa#6580 for ECR's blob redirects, oras-project/oras-java#334). This
//! origin does the same for every kind, and records every request, so a test can tell
//! whether a registry credential ever left for another host.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;

use super::{Body, Kind, State, forward, full, lock};
use crate::proxy::RecordedRequest;
use crate::util::random_hex;

/// The origin's address, the URLs it signed and what it received.
pub(super) struct Cdn {
    pub(super) addr: SocketAddr,
    /// Signature → (repository, digest).
    signed: Mutex<HashMap<String, (String, String)>>,
    pub(super) log: Mutex<Vec<RecordedRequest>>,
}

impl Cdn {
    pub(super) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            signed: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
        }
    }

    /// A signed URL for `digest` of `repository`, in the kind's own shape.
    pub(super) fn sign(&self, kind: Kind, repository: &str, digest: &str) -> String {
        let signature = random_hex(16);
        lock(&self.signed).insert(
            signature.clone(),
            (repository.to_owned(), digest.to_owned()),
        );
        let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
        let base = format!("http://{}", self.addr);
        match kind {
            // production.cloudflare.docker.com/registry-v2/docker/registry/v2/blobs/sha256/…/data?verify=…
            Kind::DockerHub => format!(
                "{base}/registry-v2/docker/registry/v2/blobs/sha256/{}/{hex}/data?verify={signature}",
                hex.get(..2).unwrap_or(hex)
            ),
            // An S3 pre-signed URL.
            Kind::Ecr => format!(
                "{base}/ecr-layers/{hex}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Signature={signature}"
            ),
            _ => format!("{base}/blobs/{hex}?sig={signature}"),
        }
    }
}

/// Serves a signed blob URL: refused with `Authorization` (as S3), with a signature it did
/// not make, or otherwise streamed from the registry behind (`Range` honoured).
pub(super) async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let Some(cdn) = &state.cdn else {
        return full(StatusCode::NOT_FOUND, "text/plain", Bytes::new());
    };
    let mut record = super::record(&req);
    let response = serve(state, cdn, req).await;
    record.status = Some(response.status().as_u16());
    let mut log = lock(&cdn.log);
    record.index = log.len();
    log.push(record);
    response
}

async fn serve(state: &State, cdn: &Cdn, req: Request<Incoming>) -> Response<Body> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return s3_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        );
    }
    let signature = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|p| {
            ["verify=", "X-Amz-Signature=", "sig="]
                .iter()
                .find_map(|k| p.strip_prefix(k))
                .map(str::to_owned)
        });
    let target = signature.and_then(|s| lock(&cdn.signed).get(&s).cloned());
    let Some((repository, digest)) = target else {
        return s3_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Request has expired or the signature does not match",
        );
    };
    let mut fetch = Request::builder()
        .method(req.method().clone())
        .uri(format!("/v2/{repository}/blobs/{digest}"))
        .header(header::HOST, state.upstream.to_string());
    if let Some(range) = req.headers().get(header::RANGE) {
        fetch = fetch.header(header::RANGE, range);
    }
    if let Some(auth) = state.upstream_auth.header(&repository)
        && let Ok(v) = HeaderValue::from_str(&auth)
    {
        fetch = fetch.header(header::AUTHORIZATION, v);
    }
    let Ok(fetch) = fetch.body(Empty::<Bytes>::new().map_err(|never| match never {})) else {
        return full(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            Bytes::new(),
        );
    };
    let mut resp = forward(state.upstream, fetch).await;
    // The origin speaks for itself: no registry headers.
    resp.headers_mut().remove("docker-distribution-api-version");
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

/// An S3 error document.
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    full(
        status,
        "application/xml",
        Bytes::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        )),
    )
}
