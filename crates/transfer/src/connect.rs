//! The connection layer: one pooled hyper client with rustls, proxies and loopback rules, and
//! the TLS settings chosen per destination (`host:port`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;

use crate::TransferError;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Hosts the user named as insecure: plain http allowed, certificate not verified.
#[derive(Debug, Clone, Default)]
pub(crate) struct InsecureHosts(pub(crate) Vec<String>);

impl InsecureHosts {
    /// Whether `host` was named bare, or as `host:port` with this `port`.
    pub(crate) fn contains(&self, host: &str, port: Option<u16>) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.0.iter().any(|h| {
            let h = h.trim_start_matches('[').replace("]:", ":");
            let h = h.trim_end_matches(']');
            h == host || port.is_some_and(|p| h == format!("{host}:{p}"))
        })
    }

    pub(crate) fn names(&self) -> &[String] {
        &self.0
    }
}

/// The handshake-signature methods of a [`ServerCertVerifier`] holding a `provider`: the
/// provider's algorithms, whether or not the certificate itself is verified.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// Verifies certificates with webpki. The trusted roots are loaded on the first certificate
/// to verify: reading the platform's store costs more than a whole copy between plain-http
/// loopback registries, which never need it.
struct Verifier {
    roots: std::sync::OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
    /// The bundles the user named, read when the transport was built.
    named: RootCertStore,
    /// `SSL_CERT_FILE`, read with the platform's store on first use.
    environment: Option<PathBuf>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("named", &self.named.len())
            .field("environment", &self.environment)
            .field("roots_loaded", &self.roots.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    fn webpki(&self) -> Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.roots
            .get_or_init(|| {
                let roots = root_store(&self.named, self.environment.as_deref())
                    .map_err(|e| e.to_string())?;
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                    .build()
                    .map_err(|e| format!("cannot build the certificate verifier: {e}"))
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.webpki()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    handshake_signatures!();
}

/// Accepts any certificate: the verifier of hosts the user named insecure. The handshake's
/// signatures are still checked against the certificate presented.
#[derive(Debug)]
struct Unverified {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

/// The root store: the platform's certificates (or Mozilla's when the platform has none),
/// the bundles the user named (already read), and the `environment`'s bundle
/// (`SSL_CERT_FILE`).
fn root_store(
    named: &RootCertStore,
    environment: Option<&Path>,
) -> Result<RootCertStore, TransferError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    // SSL_CERT_FILE replaces the platform store inside rustls-native-certs; we want it to add
    // to it, so read the usual system bundles explicitly too.
    let ssl_cert_file = environment.is_some();
    if ssl_cert_file {
        for p in [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
        ] {
            if let Ok(iter) = CertificateDer::pem_file_iter(p) {
                roots.add_parsable_certificates(iter.flatten());
                break;
            }
        }
    }
    if added == 0 && !ssl_cert_file {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots.extend(named.roots.iter().cloned());
    if let Some(path) = environment {
        add_pem_file(&mut roots, path)?;
    }
    Ok(roots)
}

fn add_pem_file(roots: &mut RootCertStore, path: &Path) -> Result<(), TransferError> {
    let shown = path.display();
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| TransferError::Config(format!("cannot read CA file {shown}: {e}")))?;
    let mut count = 0;
    for cert in iter {
        let cert = cert
            .map_err(|e| TransferError::Config(format!("invalid PEM in CA file {shown}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| TransferError::Config(format!("unusable certificate in {shown}: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(TransferError::Config(format!(
            "CA file {shown} holds no PEM certificate"
        )));
    }
    Ok(())
}

/// The client TLS configurations: one that verifies certificates and one, for hosts named
/// insecure, that does not. Bundles the user named are read now, so a bad one fails at once
/// with its name; the platform's roots and the `environment`'s bundle (`SSL_CERT_FILE`) load
/// on first use.
pub(crate) fn tls_configs(
    named: &[PathBuf],
    environment: Option<PathBuf>,
) -> Result<TlsConfigs, TransferError> {
    let mut named_roots = RootCertStore::empty();
    for path in named {
        add_pem_file(&mut named_roots, path)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = |verifier: Arc<dyn ServerCertVerifier>| {
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth()
            })
            .map_err(|e| TransferError::Config(format!("TLS versions: {e}")))
    };
    Ok(TlsConfigs {
        verified: config(Arc::new(Verifier {
            roots: std::sync::OnceLock::new(),
            named: named_roots,
            environment,
            provider: provider.clone(),
        }))?,
        unverified: config(Arc::new(Unverified {
            provider: provider.clone(),
        }))?,
    })
}

/// See [`tls_configs`].
pub(crate) struct TlsConfigs {
    pub(crate) verified: rustls::ClientConfig,
    pub(crate) unverified: rustls::ClientConfig,
}

/// The https connector of a TLS configuration, over [`ProxyConnector`].
type Https = HttpsConnector<ProxyConnector>;

/// Connects with the TLS configuration the destination calls for. The choice is made here,
/// where the destination's host and port are both known (a certificate verifier sees only the
/// server name): a host named insecure bare, or as `host:port` with this port, is not
/// verified; every other host is.
#[derive(Clone)]
pub(crate) struct Connector {
    verified: Https,
    unverified: Https,
    insecure: InsecureHosts,
}

impl Connector {
    pub(crate) fn new(tls: TlsConfigs, tcp: ProxyConnector, insecure: InsecureHosts) -> Self {
        let https = |config: rustls::ClientConfig| {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .wrap_connector(tcp.clone())
        };
        Self {
            verified: https(tls.verified),
            unverified: https(tls.unverified),
            insecure,
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = <Https as tower_service::Service<Uri>>::Response;
    type Error = BoxError;
    type Future = <Https as tower_service::Service<Uri>>::Future;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both connectors wrap a `ProxyConnector`, which is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let port = dst.port_u16().or(match dst.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        let named = dst
            .host()
            .is_some_and(|host| self.insecure.contains(host, port));
        if named {
            self.unverified.call(dst)
        } else {
            self.verified.call(dst)
        }
    }
}

/// Connects directly or through the proxy the environment names (CONNECT tunnel), never
/// through a proxy for loopback destinations.
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    direct: HttpConnector,
    matcher: Arc<Matcher>,
    /// Loopback destinations never use an environment proxy.
    loopback_direct: bool,
}

impl ProxyConnector {
    pub(crate) fn new(connect_timeout: Duration, matcher: Matcher, loopback_direct: bool) -> Self {
        let mut direct = HttpConnector::new();
        direct.enforce_http(false);
        direct.set_connect_timeout(Some(connect_timeout));
        direct.set_nodelay(true);
        Self {
            direct,
            matcher: Arc::new(matcher),
            loopback_direct,
        }
    }
}

impl tower_service::Service<Uri> for ProxyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let loopback = dst.host().is_some_and(acr_import_auth::is_loopback_host);
        let intercept = if loopback && self.loopback_direct {
            None
        } else {
            self.matcher.intercept(&dst)
        };
        let mut direct = self.direct.clone();
        match intercept {
            None => Box::pin(async move { direct.call(dst).await.map_err(Into::into) }),
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), direct);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move { tunnel.call(dst).await.map_err(Into::into) })
            }
        }
    }
}
