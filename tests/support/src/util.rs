//! Small helpers shared by the other modules: hex, digests, a seeded PRNG,
//! RFC 3339 formatting, form/query decoding, loopback checks and one-shot HTTP/1.1 requests.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

/// Lower-case hex encoding of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// The OCI digest of `bytes`: `"sha256:<64 lower-case hex digits>"`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// A tiny deterministic PRNG (SplitMix64). Same seed, same sequence; good
/// enough for choosing which requests get a fault, never for cryptography.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float uniformly distributed in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A value uniformly distributed in `[0, bound)` (`0` when `bound == 0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }
}

/// `n` bytes from the OS RNG, hex encoded.
pub(crate) fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom as _;
    let mut buf = vec![0u8; n];
    // SystemRandom only fails if the OS has no randomness at all.
    let _ = ring::rand::SystemRandom::new().fill(&mut buf);
    hex(&buf)
}

/// A random GUID-shaped identifier (`8-4-4-4-12` hex digits), as Azure's ids look.
pub fn random_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Formats a Unix timestamp (seconds) as RFC 3339 UTC, e.g. `2024-05-01T12:00:00Z`; a value
/// outside the years 9999 BC to 9999 AD is clamped to them.
pub fn rfc3339(unix_secs: i64) -> String {
    let secs = unix_secs.clamp(
        jiff::Timestamp::MIN.as_second(),
        jiff::Timestamp::MAX.as_second(),
    );
    jiff::Timestamp::from_second(secs)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
pub(crate) fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hi = (bytes[i + 1] as char).to_digit(16);
                let lo = (bytes[i + 2] as char).to_digit(16);
                match (hi, lo) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `a=1&b=2&b=3` into ordered pairs, decoding each side.
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(pair), String::new()),
        })
        .collect()
}

/// Percent-encodes a query/form component (unreserved characters pass through).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends `req` to `upstream` over a fresh HTTP/1.1 connection (its `Host` header as given).
pub(crate) async fn send_to<B>(
    upstream: SocketAddr,
    connect_timeout: Duration,
    req: Request<B>,
) -> anyhow::Result<Response<Incoming>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(upstream))
        .await
        .map_err(|_| anyhow::anyhow!("upstream {upstream}: connect timeout"))??;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender.send_request(req).await?)
}

/// Fails unless `addr` is a loopback address: these helpers never talk to
/// anything else.
pub(crate) fn ensure_loopback(addr: SocketAddr) -> anyhow::Result<()> {
    let ok = match addr.ip() {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback(),
    };
    anyhow::ensure!(ok, "refusing to target non-loopback address {addr}");
    Ok(())
}

/// Parses `http://HOST:PORT[/...]` where HOST is a loopback IP or `localhost`.
pub(crate) fn parse_loopback_url(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("only http:// URLs are supported, got {url:?}"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.replace("localhost", "127.0.0.1");
    let addr: SocketAddr = authority
        .parse()
        .map_err(|e| anyhow::anyhow!("cannot parse {authority:?} in {url:?} as IP:PORT: {e}"))?;
    ensure_loopback(addr)?;
    Ok(addr)
}

/// Sends `request` over a fresh HTTP/1.1 connection to `addr` and reads the whole response.
/// The request's URI is sent as written (a path, for an origin server).
pub(crate) async fn send_http1(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<Response<Bytes>> {
    let (parts, body) = send_to(addr, Duration::from_secs(10), request)
        .await?
        .into_parts();
    Ok(Response::from_parts(
        parts,
        body.collect().await?.to_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn form_round_trip() {
        let s = "repository:a/b:pull,push registry:catalog:*";
        assert_eq!(form_decode(&form_encode(s)), s);
        assert_eq!(form_decode("a+b%2Fc%"), "a b/c%");
        assert_eq!(
            parse_form("scope=x&scope=y&flag"),
            vec![
                ("scope".into(), "x".into()),
                ("scope".into(), "y".into()),
                ("flag".into(), String::new())
            ]
        );
    }

    #[test]
    fn prng_is_deterministic() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let f = a.next_f64();
        assert!((0.0..1.0).contains(&f));
    }

    #[test]
    fn loopback_urls() {
        assert!(parse_loopback_url("http://127.0.0.1:5000/v2/").is_ok());
        assert!(parse_loopback_url("http://localhost:80").is_ok());
        assert!(parse_loopback_url("http://[::1]:80").is_ok());
        assert!(parse_loopback_url("http://10.0.0.1:80").is_err());
    }
}
