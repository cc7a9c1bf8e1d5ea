//! The one HTTP capability this crate needs, supplied by whoever owns the connection stack.

use bytes::Bytes;

/// Sends one request and returns the whole response.
///
/// The auth crate speaks to token services (registry realms, ACR's `/oauth2/*`, Azure AD)
/// through this trait so that it owns no connection stack of its own: `acr-import-transfer`
/// implements it over its hyper client, so token traffic shares the TLS settings, the CA bundle
/// and the proxy of registry traffic. Implementations must not follow redirects, must enforce
/// TLS verification, and must cap the response body (1 MiB is plenty for a token).
#[async_trait::async_trait]
pub trait HttpExchange: Send + Sync {
    /// Sends `request` and reads the response body to the end.
    async fn exchange(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, ExchangeError>;
}

/// A failure to get any HTTP response at all (connection, TLS, timeout, body too large).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExchangeError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ExchangeError {
    /// An error with a message that must contain no secret.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error with its cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Whether `host` (a URL host, without port) is a loopback address or `localhost`, where
/// plain HTTP is acceptable.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.3.2.1",
            "localhost",
            "LOCALHOST",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "10.0.0.1",
            "localhost.evil.com",
            "example.com",
            "[::2]",
            "0.0.0.0",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
