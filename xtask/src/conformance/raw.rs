//! Plain HTTP requests for the parts of the distribution spec our typed API does not expose
//! (a `Range` read, a one-request upload, an out-of-order chunk, a tag delete, a blob delete,
//! the raw `Link` header of a tag list, the referrers endpoint's own answer).
//!
//! They still go through our stack: the transport's connections ([`Transport::exchange`]:
//! same TLS settings, CA bundle and proxy) and our [`Authenticator`] with the same
//! credentials, answering `401` challenges the way the transport does.

use std::sync::Arc;

use acr_import_auth::{Authenticator, CredentialProvider, HttpExchange, ScopeSet};
use acr_import_transfer::Transport;
use bytes::Bytes;
use http::{HeaderMap, Method, header};

/// A response, read whole (the exchange caps bodies at 1 MiB: enough for what is asked here).
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error codes of the distribution error envelope, if the body is one.
    pub fn codes(&self) -> Vec<String> {
        #[derive(serde::Deserialize)]
        struct Envelope {
            #[serde(default)]
            errors: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            #[serde(default)]
            code: String,
        }
        serde_json::from_slice::<Envelope>(&self.body)
            .map(|e| e.errors.into_iter().map(|e| e.code).collect())
            .unwrap_or_default()
    }

    /// `HTTP 404 (NAME_UNKNOWN)`, for messages.
    pub fn describe(&self) -> String {
        let codes = self.codes();
        if codes.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!("HTTP {} ({})", self.status, codes.join(", "))
        }
    }
}

/// Raw requests to one registry.
pub struct Raw {
    exchange: Arc<dyn HttpExchange>,
    auth: Authenticator,
    /// `host[:port]`, as the transport keys registries.
    host: String,
    /// `scheme://host[:port]`.
    base: String,
}

impl Raw {
    pub fn new(
        transport: &Transport,
        credentials: Arc<dyn CredentialProvider>,
        host: &str,
        scheme: &str,
        insecure_hosts: &[String],
    ) -> Self {
        let exchange = transport.exchange();
        let auth = Authenticator::new(exchange.clone(), credentials)
            .with_insecure_hosts(insecure_hosts.iter().cloned());
        Self {
            exchange,
            auth,
            host: host.to_owned(),
            base: format!("{scheme}://{host}"),
        }
    }

    /// Sends `method` to `target` (a path on the registry, or an absolute URL such as an
    /// upload `Location`), authenticating for `scopes`; follows up to five redirects of a
    /// `GET`/`HEAD` (to blob storage, without credentials off the registry's origin).
    pub async fn send(
        &self,
        method: Method,
        target: &str,
        headers: &[(header::HeaderName, String)],
        body: Bytes,
        scopes: &ScopeSet,
    ) -> anyhow::Result<RawResponse> {
        let mut url = if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else {
            format!("{}{target}", self.base)
        };
        let mut authorization = self.auth.authorization(&self.host, scopes).await?;
        let mut reauthenticated = false;
        let mut redirects = 0;
        loop {
            let same_origin = url == self.base || url.starts_with(&format!("{}/", self.base));
            let mut builder = http::Request::builder()
                .method(method.clone())
                .uri(url.as_str());
            for (k, v) in headers {
                builder = builder.header(k, v);
            }
            if same_origin && let Some(a) = &authorization {
                builder = builder.header(header::AUTHORIZATION, a.header_value().clone());
            }
            let request = builder.body(body.clone())?;
            let response = self
                .exchange
                .exchange(request)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let status = response.status();
            if status == http::StatusCode::UNAUTHORIZED && same_origin && !reauthenticated {
                let answer = self
                    .auth
                    .respond_to(&self.host, response.headers(), scopes)
                    .await?;
                if answer.is_some() {
                    authorization = answer;
                    reauthenticated = true;
                    continue;
                }
            }
            if status.is_redirection()
                && (method == Method::GET || method == Method::HEAD)
                && redirects < 5
                && let Some(location) = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
            {
                let next = url::Url::parse(&url)?.join(location)?;
                url = next.to_string();
                redirects += 1;
                continue;
            }
            let (parts, body) = response.into_parts();
            return Ok(RawResponse {
                status: status.as_u16(),
                headers: parts.headers,
                body,
            });
        }
    }
}
