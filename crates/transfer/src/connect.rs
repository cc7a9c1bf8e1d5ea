//! The connection layer: one pooled hyper client with rustls, proxies and loopback rules.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
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
    /// Whether `host` (no port) or `host:port` was named.
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

/// Verifies certificates with webpki, except for hosts named insecure. The trusted roots
/// are loaded on the first certificate to verify: reading the platform's store costs more
/// than a whole copy between plain-http loopback registries, which never need it.
struct Verifier {
    roots: std::sync::OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
    /// The bundles the user named, read when the transport was built.
    named: RootCertStore,
    /// `SSL_CERT_FILE`, read with the platform's store on first use.
    environment: Option<PathBuf>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    insecure: InsecureHosts,
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
        let name = match server_name {
            ServerName::DnsName(d) => d.as_ref().to_owned(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            _ => String::new(),
        };
        if !name.is_empty() && self.insecure.contains(&name, None) {
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

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

/// The client TLS configuration. Bundles the user named are read now, so a bad one fails at
/// once with its name; the platform's roots and the `environment`'s bundle
/// (`SSL_CERT_FILE`) load on first use.
pub(crate) fn tls_config(
    named: &[PathBuf],
    environment: Option<PathBuf>,
    insecure: &InsecureHosts,
) -> Result<rustls::ClientConfig, TransferError> {
    let mut named_roots = RootCertStore::empty();
    for path in named {
        add_pem_file(&mut named_roots, path)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Verifier {
        roots: std::sync::OnceLock::new(),
        named: named_roots,
        environment,
        provider: provider.clone(),
        insecure: insecure.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransferError::Config(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
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
