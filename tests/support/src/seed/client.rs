//! [`Seeder`]: the seeding client. Plain HTTP/1.1 to loopback registries, written from the
//! distribution spec and the token authentication spec, sharing nothing with the project's
//! client.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::Value;

use super::Manifest;
use crate::util::{form_encode, parse_loopback_url, send_http1, sha256_digest};

/// A client that pushes to a loopback registry over plain HTTP/1.1: anonymously, or with
/// Basic credentials, sent as they are or exchanged for a bearer token where the registry
/// answers `401` with a `Bearer` challenge (the distribution token flow, a `GET` on the
/// realm). Independent of the project's client.
#[derive(Clone)]
pub struct Seeder {
    addr: SocketAddr,
    host: String,
    basic: Option<String>,
    /// The last bearer token the registry's token service issued, tried first.
    bearer: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for Seeder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seeder")
            .field("host", &self.host)
            .field("credentials", &self.basic.is_some())
            .finish_non_exhaustive()
    }
}

impl Seeder {
    /// A client of the registry at `host` (`127.0.0.1:port`, or `http://127.0.0.1:port`);
    /// fails for anything but a loopback address.
    pub fn new(host: &str) -> anyhow::Result<Self> {
        let host = host.trim_start_matches("http://").trim_end_matches('/');
        Ok(Self {
            addr: parse_loopback_url(&format!("http://{host}"))?,
            host: host.to_owned(),
            basic: None,
            bearer: Arc::default(),
        })
    }

    /// The same client with Basic credentials: sent to a registry that takes them (an
    /// htpasswd registry), or to the realm of a `Bearer` challenge for a token.
    pub fn basic(mut self, username: &str, password: &str) -> Self {
        self.basic = Some(crate::basic_auth(username, password));
        self
    }

    /// The registry's `host:port`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends a request, answering a `Bearer` challenge once with a token from its realm.
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Response<Bytes>> {
        let bearer = self
            .bearer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let first = bearer.map(|t| format!("Bearer {t}")).or(self.basic.clone());
        let request = |authorization: Option<String>| {
            let mut request = Request::builder()
                .method(method.clone())
                .uri(path_and_query)
                .header(header::HOST, &self.host);
            if let Some(a) = authorization {
                request = request.header(header::AUTHORIZATION, a);
            }
            if let Some(t) = content_type {
                request = request.header(header::CONTENT_TYPE, t);
            }
            request.body(Full::new(body.clone()))
        };
        let r = send_http1(self.addr, request(first)?).await?;
        let Some(challenge) = (r.status() == StatusCode::UNAUTHORIZED)
            .then(|| r.headers().get(header::WWW_AUTHENTICATE))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(BearerChallenge::parse)
        else {
            return Ok(r);
        };
        let token = self
            .token(&challenge)
            .await
            .with_context(|| format!("{method} {path_and_query}: a token for {challenge:?}"))?;
        *self.bearer.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        send_http1(self.addr, request(Some(format!("Bearer {token}")))?).await
    }

    /// A token from the challenge's realm (`GET realm?service=…&scope=…`, with the Basic
    /// credentials if any).
    async fn token(&self, challenge: &BearerChallenge) -> anyhow::Result<String> {
        let addr = parse_loopback_url(&challenge.realm)?;
        let after_scheme = challenge.realm.trim_start_matches("http://");
        let (authority, path) = match after_scheme.find('/') {
            Some(i) => after_scheme.split_at(i),
            None => (after_scheme, "/"),
        };
        let mut query = Vec::new();
        if let Some(service) = &challenge.service {
            query.push(format!("service={}", form_encode(service)));
        }
        if let Some(scope) = &challenge.scope {
            query.push(format!("scope={}", form_encode(scope)));
        }
        let mut request = Request::builder()
            .uri(format!("{path}?{}", query.join("&")))
            .header(header::HOST, authority);
        if let Some(b) = &self.basic {
            request = request.header(header::AUTHORIZATION, b);
        }
        let r = send_http1(addr, request.body(Full::new(Bytes::new()))?).await?;
        expect(&r, StatusCode::OK, "GET", &challenge.realm)?;
        let body: Value = serde_json::from_slice(r.body())?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .context("the token response has neither token nor access_token")
    }

    /// Whether `repo` holds the blob `digest` (`HEAD`).
    pub async fn has_blob(&self, repo: &str, digest: &str) -> anyhow::Result<bool> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let r = self.send(Method::HEAD, &path, None, Bytes::new()).await?;
        match r.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => anyhow::bail!("HEAD {path}: {s}"),
        }
    }

    /// Pushes `bytes` as a blob of `repo` in one piece (`POST`, then `PUT ?digest=`).
    pub async fn push_blob(&self, repo: &str, bytes: Bytes) -> anyhow::Result<()> {
        let path = format!("/v2/{repo}/blobs/uploads/");
        let r = self.send(Method::POST, &path, None, Bytes::new()).await?;
        expect(&r, StatusCode::ACCEPTED, "POST", &path)?;
        let location = r
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .context("the upload session has no Location")?;
        // distribution answers with an absolute URL built from the Host header.
        let location = location
            .strip_prefix("http://")
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or(location);
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={}", sha256_digest(&bytes));
        let r = self
            .send(Method::PUT, &put, Some("application/octet-stream"), bytes)
            .await?;
        expect(&r, StatusCode::CREATED, "PUT", &path)
    }

    /// Pushes `m` under `reference` (a tag, or its digest).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        m: &Manifest,
    ) -> anyhow::Result<()> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = self
            .send(Method::PUT, &path, Some(&m.media_type), m.bytes.clone())
            .await?;
        expect(&r, StatusCode::CREATED, "PUT", &path)
    }
}

fn expect(r: &Response<Bytes>, status: StatusCode, method: &str, path: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        r.status() == status,
        "{method} {path}: {} {}",
        r.status(),
        String::from_utf8_lossy(r.body())
    );
    Ok(())
}

/// A `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` challenge.
#[derive(Debug, PartialEq, Eq)]
struct BearerChallenge {
    realm: String,
    service: Option<String>,
    scope: Option<String>,
}

impl BearerChallenge {
    /// The challenge in `value`, if it is a `Bearer` one with a realm. Values are quoted
    /// strings (a scope holds commas) or tokens.
    fn parse(value: &str) -> Option<Self> {
        let (scheme, mut rest) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            let Some((name, after)) = rest.split_once('=') else {
                break;
            };
            let (val, after) = match after.strip_prefix('"') {
                Some(quoted) => {
                    let end = quoted.find('"')?;
                    (&quoted[..end], &quoted[end + 1..])
                }
                None => after.split_at(after.find(',').unwrap_or(after.len())),
            };
            params.push((name.trim().to_ascii_lowercase(), val.to_owned()));
            rest = after;
        }
        let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        Some(Self {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::BearerChallenge;

    #[test]
    fn bearer_challenges() {
        let c = BearerChallenge::parse(
            r#"Bearer realm="http://127.0.0.1:1/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.realm, "http://127.0.0.1:1/token");
        assert_eq!(c.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(c.scope.as_deref(), Some("repository:a/b:pull,push"));
        let bare = BearerChallenge::parse("bearer realm=http://h/t, service=s").unwrap();
        assert_eq!(bare.realm, "http://h/t");
        assert_eq!(bare.service.as_deref(), Some("s"));
        assert_eq!(bare.scope, None);
        assert_eq!(BearerChallenge::parse(r#"Basic realm="x""#), None);
        assert_eq!(BearerChallenge::parse(r#"Bearer service="x""#), None);
    }
}
