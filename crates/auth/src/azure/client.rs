//! `azure_core`'s HTTP client trait over our [`HttpExchange`], so that Azure AD traffic uses the
//! TLS settings, CA bundle and proxy of registry traffic.

use std::fmt;
use std::sync::Arc;

use azure_core::error::{Error, ErrorKind};
use azure_core::http::headers::Headers;
use azure_core::http::{
    AsyncRawResponse, Body, ClientOptions, FixedRetryOptions, HttpClient, Request, RetryOptions,
    StatusCode, Transport,
};
use bytes::Bytes;

use crate::exchange::HttpExchange;

/// An [`azure_core::http::HttpClient`] that sends every request through an [`HttpExchange`].
///
/// With `azure_core`'s default features off a credential built without a transport panics,
/// so every `azure_identity` credential this crate builds gets one of these through
/// [`AzureHttpClient::client_options`]. Streaming request bodies are refused (token requests
/// are small forms); redirects are not followed (the exchange does not follow them).
#[derive(Clone)]
pub struct AzureHttpClient {
    http: Arc<dyn HttpExchange>,
}

impl fmt::Debug for AzureHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureHttpClient").finish_non_exhaustive()
    }
}

impl AzureHttpClient {
    /// A client over `http`.
    pub fn new(http: Arc<dyn HttpExchange>) -> Self {
        Self { http }
    }

    /// `ClientOptions` with this client as transport and `retries` retries (0: none; otherwise
    /// a fixed 200 ms delay between tries, at most 10 s in all). Every other option is left at
    /// its default (`..Default::default()`), so new fields of later releases keep working.
    pub fn client_options(&self, retries: u32) -> ClientOptions {
        let retry = if retries == 0 {
            RetryOptions::none()
        } else {
            RetryOptions::fixed(FixedRetryOptions {
                max_retries: retries,
                delay: azure_core::time::Duration::milliseconds(200),
                max_total_elapsed: azure_core::time::Duration::seconds(10),
            })
        };
        ClientOptions {
            transport: Some(Transport::new(Arc::new(self.clone()))),
            retry,
            ..Default::default()
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for AzureHttpClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let body = match request.body() {
            Body::Bytes(bytes) => Bytes::copy_from_slice(bytes),
            _ => {
                return Err(Error::with_message(
                    ErrorKind::Other,
                    "streaming request bodies are not supported by the Azure AD transport",
                ));
            }
        };
        let mut builder = http::Request::builder()
            .method(request.method().as_ref())
            .uri(request.url().as_str());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let outgoing = builder.body(body).map_err(|e| {
            Error::with_message(ErrorKind::Other, format!("cannot build the request: {e}"))
        })?;
        let response = self
            .http
            .exchange(outgoing)
            .await
            .map_err(|e| Error::with_message(ErrorKind::Io, e.to_string()))?;
        let (parts, body) = response.into_parts();
        let mut headers = Headers::new();
        for (name, value) in &parts.headers {
            if let Ok(value) = value.to_str() {
                headers.insert(name.as_str().to_owned(), value.to_owned());
            }
        }
        Ok(AsyncRawResponse::from_bytes(
            StatusCode::from(parts.status.as_u16()),
            headers,
            azure_core::Bytes::copy_from_slice(&body),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::ExchangeError;
    use azure_core::http::{Method, Url};
    use std::sync::Mutex;

    struct Echo(Mutex<Vec<http::Request<Bytes>>>);

    #[async_trait::async_trait]
    impl HttpExchange for Echo {
        async fn exchange(
            &self,
            request: http::Request<Bytes>,
        ) -> Result<http::Response<Bytes>, ExchangeError> {
            self.0.lock().unwrap().push(request);
            Ok(http::Response::builder()
                .status(201)
                .header("x-ms-test", "yes")
                .body(Bytes::from_static(b"{\"ok\":true}"))
                .unwrap())
        }
    }

    struct Fails;

    #[async_trait::async_trait]
    impl HttpExchange for Fails {
        async fn exchange(
            &self,
            _: http::Request<Bytes>,
        ) -> Result<http::Response<Bytes>, ExchangeError> {
            Err(ExchangeError::new("connection refused"))
        }
    }

    #[tokio::test]
    async fn requests_and_responses_are_carried_over() {
        let echo = Arc::new(Echo(Mutex::new(Vec::new())));
        let client = AzureHttpClient::new(echo.clone());
        let mut req = Request::new(
            Url::parse("https://login.example/t/oauth2/v2.0/token").unwrap(),
            Method::Post,
        );
        req.insert_header("content-type", "application/x-www-form-urlencoded");
        req.set_body("a=b");
        let resp = client.execute_request(&req).await.unwrap();
        assert_eq!(u16::from(resp.status()), 201);
        let sent = echo.0.lock().unwrap().pop().unwrap();
        assert_eq!(sent.method(), http::Method::POST);
        assert_eq!(sent.uri(), "https://login.example/t/oauth2/v2.0/token");
        assert_eq!(sent.body().as_ref(), b"a=b");
        assert_eq!(
            sent.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        let body = resp.try_into_raw_response().await.unwrap();
        assert_eq!(body.body().as_ref(), b"{\"ok\":true}");
        assert_eq!(format!("{client:?}"), "AzureHttpClient { .. }");
    }

    #[tokio::test]
    async fn exchange_failures_are_io_errors() {
        let client = AzureHttpClient::new(Arc::new(Fails));
        let req = Request::new(Url::parse("https://x.example/").unwrap(), Method::Get);
        let err = client.execute_request(&req).await.unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Io);
        assert!(err.to_string().contains("connection refused"));
    }
}
