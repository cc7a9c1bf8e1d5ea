//! Self-tests of the test-support crate against the real distribution registry.

mod proxy;
mod registry;
mod seed;
mod token;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use acr_import_testsupport::sha256_digest;

/// A response read completely (or up to a transport error).
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    /// Set when the body ended in a transport error (connection cut).
    pub(crate) body_error: Option<String>,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Splits `http://host:port/path?q` into (`host:port`, `/path?q`).
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

/// One request over a fresh HTTP/1.1 connection. Errors only if no
/// response head arrives; body errors land in `Resp::body_error`.
pub(crate) async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> anyhow::Result<Resp> {
    let (host, path) = split_url(url);
    let stream = TcpStream::connect(&host).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes())?)
        .uri(path)
        .header("Host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(body.into()))?)
        .await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut incoming = resp.into_body();
    let mut body = Vec::new();
    let mut body_error = None;
    while let Some(frame) = incoming.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    body.extend_from_slice(d);
                }
            }
            Err(e) => {
                body_error = Some(e.to_string());
                break;
            }
        }
    }
    Ok(Resp {
        status,
        headers,
        body,
        body_error,
    })
}

/// `GET url`, with `Authorization: authorization` when given.
pub(crate) async fn get(url: &str, authorization: Option<&str>) -> anyhow::Result<Resp> {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    send("GET", url, &headers, Bytes::new()).await
}

/// `Bearer <token>`.
pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Resolves a `Location` header against `base` (`http://host:port`).
pub(crate) fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}

/// Monolithic blob upload: POST then PUT `<location>&digest=`. Returns the
/// upload `Location` (for inspection).
pub(crate) async fn push_blob(
    base: &str,
    repo: &str,
    data: &[u8],
    auth: Option<&str>,
) -> anyhow::Result<String> {
    let mut h: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = auth {
        h.push(("Authorization", a));
    }
    let r = send(
        "POST",
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        &h,
        Bytes::new(),
    )
    .await?;
    anyhow::ensure!(
        r.status == 202,
        "POST upload: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    let location = r.header("location").expect("Location").to_string();
    let digest = sha256_digest(data);
    let sep = if location.contains('?') { '&' } else { '?' };
    let put_url = format!("{}{sep}digest={digest}", resolve(base, &location));
    let mut h2 = h.clone();
    h2.push(("Content-Type", "application/octet-stream"));
    let r = send("PUT", &put_url, &h2, Bytes::copy_from_slice(data)).await?;
    anyhow::ensure!(
        r.status == 201,
        "PUT blob: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    Ok(location)
}

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub(crate) fn test_blob(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}
