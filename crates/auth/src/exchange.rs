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

/// `scheme://host[:port]/` for a registry or login server given as `host[:port]` (an IPv6
/// address in brackets): the origin every URL of that server is built from, by path
/// segments. Anything else is refused with the reason: userinfo (`user@host`), a path, a
/// query, a port that is not a number.
pub fn host_url(scheme: &str, host: &str) -> Result<url::Url, String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') || name.ends_with(']') => (name, Some(port)),
        Some(_) if host.starts_with('[') && host.ends_with(']') => (host, None),
        Some(_) => return Err("an IPv6 address must be written in brackets".to_owned()),
        None => (host, None),
    };
    let port = port
        .map(|p| p.parse::<u16>().map_err(|_| format!("`{p}` is not a port")))
        .transpose()?;
    if scheme != "https" && scheme != "http" {
        return Err(format!("`{scheme}` is not http or https"));
    }
    let mut url = url::Url::parse("https://localhost/").expect("a valid URL");
    // Between the two special schemes a switch cannot fail.
    let _ = url.set_scheme(scheme);
    url.set_host(Some(name)).map_err(|e| e.to_string())?;
    url.set_port(port)
        .map_err(|()| "a port needs a host".to_owned())?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::{host_url, is_loopback_host};

    #[test]
    fn hosts_become_origins_or_are_refused() {
        for (host, origin) in [
            ("127.0.0.1:5000", "https://127.0.0.1:5000/"),
            ("registry.example", "https://registry.example/"),
            ("[::1]:5000", "https://[::1]:5000/"),
            ("[::1]", "https://[::1]/"),
        ] {
            assert_eq!(host_url("https", host).unwrap().as_str(), origin, "{host}");
        }
        for bad in [
            "a@b", "a:b", "::1", "a:99999", "a?b", "a#b", "a b", "a:", "a/b",
        ] {
            assert!(host_url("https", bad).is_err(), "{bad}");
        }
        assert_eq!(host_url("http", "h:80").unwrap().as_str(), "http://h/");
        assert!(host_url("ftp", "h").is_err());
    }

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
