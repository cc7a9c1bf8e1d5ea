//! A local Azure emulator: Azure AD (Entra ID) token endpoints and an Azure Container Registry
//! login server in front of a real distribution registry.
//!
//! Both follow the documented contracts strictly and decide nothing for the client: a request
//! that Azure would refuse is refused, with Azure's error shape.
//!
//! # [`AadEmulator`]
//!
//! HTTPS on `127.0.0.1:0` with a test CA made by rcgen ([`AadEmulator::ca_pem`],
//! [`AadEmulator::write_ca_file`]; the leaf certificate names `127.0.0.1` and `localhost`).
//!
//! `POST /{tenant}/oauth2/v2.0/token`, form-encoded, `grant_type=client_credentials`,
//! `client_id`, `scope` (exactly one, ending with `/.default`, whose resource is one of
//! [`ARM_AUDIENCE`], [`ARM_AUDIENCE_LEGACY`] or [`ACR_AUDIENCE`]) and one client credential:
//!
//! - `client_secret` for applications registered with [`AadEmulatorBuilder::client_secret`];
//! - `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` (RFC 7523,
//!   the value Azure AD and azure_identity use) with `client_assertion`:
//!   - for [`AadEmulatorBuilder::client_certificate`] applications, an RS256 JWT whose header
//!     names the registered certificate (`x5t` = base64url SHA-1 of its DER, or `x5t#S256`;
//!     at least one, and each present must match), signed by the certificate's key, with
//!     `aud` = this token endpoint's URL, `iss` = `sub` = the client ID, `exp` in the future,
//!     `nbf` not in the future (5 minutes of skew), and a `jti`;
//!   - for [`AadEmulatorBuilder::federated`] applications (workload identity), the assertion
//!     is compared verbatim with the registered federated token: the emulator plays the role
//!     of the external issuer whose token Azure AD would validate.
//!
//! Errors are Azure AD's JSON (`{"error":"invalid_client","error_description":"AADSTS7000215:
//! …","error_codes":[7000215],…}`): unknown tenant (400 `invalid_request`, AADSTS90002),
//! unknown client or client of another tenant (400 `unauthorized_client`, AADSTS700016), wrong
//! secret (401 `invalid_client`, AADSTS7000215), bad assertion (401 `invalid_client`,
//! AADSTS700027 / AADSTS700024 / AADSTS70021), scope without `/.default` (400 `invalid_scope`,
//! AADSTS1002012), unknown resource (400 `invalid_resource`, AADSTS500011).
//!
//! Access tokens are ES256 JWTs signed by a key of the emulator's own
//! ([`AadEmulator::verify_access_token`]) with `aud` (the resource, e.g.
//! `https://management.azure.com`), `iss`, `tid`, `oid`, `sub`, `appid`, `azp`, `iat`, `nbf`,
//! `exp`; the response carries `token_type`, `expires_in` and `ext_expires_in`.
//! [`AadEmulator::set_token_lifetime`] makes later tokens short-lived or already expired.
//!
//! azure_identity 1.0 requests nothing else from the authority (no OpenID discovery, no
//! instance discovery: its credentials post straight to the token endpoint), so nothing else
//! is served: any other path is a 404.
//!
//! The App Service managed-identity endpoint ([`AadEmulatorBuilder::managed_identity`]) is
//! plain http on its own port ([`AadEmulator::identity_endpoint`]): `GET /msi/token?
//! api-version=2019-08-01&resource=<resource>[&client_id=…]` with `X-IDENTITY-HEADER`, answered
//! `{"access_token","expires_on":"<epoch seconds>","resource","token_type":"Bearer",
//! "client_id"}`.
//!
//! # [`AcrEmulator`]
//!
//! One loopback port is the login server `127.0.0.1:<port>`: `/oauth2/exchange` and
//! `/oauth2/token` are its token service; everything else is forwarded to a real distribution
//! registry started with token auth (realm `http://127.0.0.1:<port>/oauth2/token`, service =
//! the login server, issuer [`ACR_ISSUER`]) that verifies the tokens this service signs.
//!
//! - `POST /oauth2/exchange` (form `grant_type=access_token`, `service`, optional `tenant`,
//!   `access_token`): the Azure AD token must verify against the [`AadEmulator`]'s key, be
//!   unexpired, have an ARM audience (unless [`AcrEmulatorBuilder::authentication_as_arm`] is
//!   off) or the ACR audience, and `tid` = the registry's tenant; its `oid` must hold a role
//!   ([`AcrRole`]). Answer: `{"refresh_token": <JWT, grant_type "refresh_token", exp>}`.
//!   Refusals are 401 with `{"errors":[{"code":"UNAUTHORIZED","message":…}]}`.
//! - `/oauth2/token`: `POST` with `grant_type=refresh_token` (an exchanged refresh token) or
//!   `grant_type=password` (`username`, `password`), or `GET` with `Authorization: Basic`.
//!   Usernames: a service principal's appId with its client secret (its tenant must be the
//!   registry's), the admin user, a repository-scoped token with its scope map, or the null GUID
//!   with a refresh token as password. Access granted = requested ∩ allowed; the response is
//!   `{"access_token": <JWT>}` with no `expires_in` (as ACR); claims `iss` = [`ACR_ISSUER`],
//!   `aud` = login server, `sub`, `tenant`, `grant_type`, `access`, `exp`. Wrong credentials:
//!   401.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::registry::{Registry, TokenAuthSettings};
use crate::token::{Access, Grant, TokenIssuer, intersect, parse_scopes};
use crate::util::{parse_form, plain_accept_loop, random_hex, unix_now};

/// The Azure Resource Manager audience.
pub const ARM_AUDIENCE: &str = "https://management.azure.com";
/// The older ARM audience, still accepted by ACR.
pub const ARM_AUDIENCE_LEGACY: &str = "https://management.core.windows.net";
/// The Azure Container Registry audience.
pub const ACR_AUDIENCE: &str = "https://containerregistry.azure.net";
/// The `iss` of ACR's tokens (and the registry's `auth.token.issuer`).
pub const ACR_ISSUER: &str = "Azure Container Registry";
/// The client assertion type of RFC 7523, as Azure AD requires it.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The username ACR reads as "the password is a refresh token".
pub const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// Allowed clock skew for assertion `nbf`.
const SKEW_SECS: i64 = 300;

const TEST_RSA_KEY_1: &str = include_str!("testdata/client-rsa-key-1.pem");
const TEST_RSA_KEY_2: &str = include_str!("testdata/client-rsa-key-2.pem");

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A random GUID-shaped identifier.
fn guid() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// A CA and a server certificate for `127.0.0.1` / `localhost` signed by it.
struct TestTls {
    ca_pem: String,
    config: Arc<rustls::ServerConfig>,
}

fn test_tls() -> anyhow::Result<TestTls> {
    let ca_key = rcgen::KeyPair::generate().context("CA key")?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "acr-import test CA (Azure emulator)",
    );
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).context("CA cert")?;

    let leaf_key = rcgen::KeyPair::generate().context("leaf key")?;
    let mut leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
    leaf_params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse()?));
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &ca).context("leaf cert")?;

    let chain = vec![leaf.der().clone(), ca.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TestTls {
        ca_pem: ca.pem(),
        config: Arc::new(config),
    })
}

// ---------------------------------------------------------------------------------------------
// Client certificates for tests
// ---------------------------------------------------------------------------------------------

/// A self-signed client certificate with an RSA key, as a service principal would register.
///
/// ring cannot generate RSA keys, so two fixed throw-away test keys are used
/// (`src/testdata/`); the certificate is made fresh each time.
#[derive(Clone)]
pub struct TestClientCertificate {
    cert_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

impl fmt::Debug for TestClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClientCertificate")
            .field("x5t", &self.thumbprint_sha1())
            .finish_non_exhaustive()
    }
}

impl TestClientCertificate {
    /// A certificate for `common_name` with the first test key.
    pub fn generate(common_name: &str) -> anyhow::Result<Self> {
        Self::with_key(common_name, TEST_RSA_KEY_1)
    }

    /// A certificate with the second test key (to present a key other than the registered
    /// one).
    pub fn generate_with_other_key(common_name: &str) -> anyhow::Result<Self> {
        Self::with_key(common_name, TEST_RSA_KEY_2)
    }

    fn with_key(common_name: &str, key_pem: &str) -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(key_pem, &rcgen::PKCS_RSA_SHA256)
            .context("loading the test RSA key")?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&key).context("self-signing")?;
        Ok(Self {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key_pem.to_string(),
        })
    }

    /// DER of the certificate (what [`AadEmulatorBuilder::client_certificate`] registers).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificate then the private key, PEM (what `AZURE_CLIENT_CERTIFICATE_PATH` names).
    pub fn pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }

    /// Writes [`Self::pem`] to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.pem()).with_context(|| format!("writing {}", path.display()))
    }

    /// base64url SHA-1 of the DER (`x5t`).
    pub fn thumbprint_sha1(&self) -> String {
        URL_SAFE_NO_PAD.encode(
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.cert_der).as_ref(),
        )
    }
}

/// One DER TLV: tag, contents, rest.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The RSAPublicKey (PKCS#1 DER) inside an X.509 certificate, if its key is RSA.
fn rsa_public_key_of(cert_der: &[u8]) -> Option<Vec<u8>> {
    const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (0x30, cert, _) = der_next(cert_der)? else {
        return None;
    };
    let (0x30, tbs, _) = der_next(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after) = der_next(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = der_next(rest)?.2;
    }
    let (0x30, spki, _) = der_next(rest)? else {
        return None;
    };
    let (0x30, alg, after) = der_next(spki)? else {
        return None;
    };
    let (0x06, oid, _) = der_next(alg)? else {
        return None;
    };
    if oid != RSA_OID {
        return None;
    }
    let (0x03, bits, _) = der_next(after)? else {
        return None;
    };
    let (&unused, key) = bits.split_first()?;
    (unused == 0).then(|| key.to_vec())
}

// ---------------------------------------------------------------------------------------------
// Azure AD
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
enum AppCredential {
    Secret(String),
    Certificate(Vec<u8>),
    Federated(String),
}

#[derive(Clone)]
struct App {
    tenant: String,
    client_id: String,
    object_id: String,
    credential: AppCredential,
}

#[derive(Clone)]
struct ManagedIdentity {
    tenant: String,
    client_id: String,
    object_id: String,
    header: String,
}

/// One request the [`AadEmulator`] handled. Never holds a secret or assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AadRequest {
    /// HTTP method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// `token` (the v2 token endpoint), `managed_identity` or `other`.
    pub endpoint: String,
    /// `client_id` (form or query).
    pub client_id: Option<String>,
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `scope` (token endpoint) or `resource` (managed identity).
    pub scope: Option<String>,
    /// `client_secret`, `client_assertion`, `identity_header` or `none`.
    pub credential_kind: String,
    /// Response status.
    pub status: u16,
    /// The `error` code, when refused.
    pub error: Option<String>,
}

struct AadState {
    signer: TokenIssuer,
    authority: Mutex<String>,
    tenants: BTreeSet<String>,
    apps: Vec<App>,
    managed_identity: Option<ManagedIdentity>,
    lifetime_secs: Mutex<i64>,
    log: Mutex<Vec<AadRequest>>,
}

impl AadState {
    fn object_id(&self, client_id: &str) -> Option<String> {
        self.apps
            .iter()
            .find(|a| a.client_id == client_id)
            .map(|a| a.object_id.clone())
            .or_else(|| {
                self.managed_identity
                    .as_ref()
                    .filter(|m| m.client_id == client_id)
                    .map(|m| m.object_id.clone())
            })
    }

    /// Signs an access token for a principal.
    fn issue(
        &self,
        tenant: &str,
        client_id: &str,
        object_id: &str,
        resource: &str,
        lifetime: i64,
    ) -> anyhow::Result<String> {
        let now = unix_now();
        let authority = lock(&self.authority).clone();
        self.signer.sign_claims(&json!({
            "aud": resource,
            "iss": format!("{authority}/{tenant}/v2.0"),
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
            "tid": tenant,
            "oid": object_id,
            "sub": object_id,
            "appid": client_id,
            "azp": client_id,
            "idtyp": "app",
            "ver": "2.0",
            "jti": random_hex(12),
        }))
    }
}

/// Configures and starts an [`AadEmulator`].
#[derive(Default)]
pub struct AadEmulatorBuilder {
    tenants: BTreeSet<String>,
    apps: Vec<App>,
    managed_identity: Option<ManagedIdentity>,
    lifetime_secs: Option<i64>,
}

impl fmt::Debug for AadEmulatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AadEmulatorBuilder")
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl AadEmulatorBuilder {
    /// A known tenant with no application (so requests to it are not "tenant not found").
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenants.insert(tenant.to_string());
        self
    }

    fn app(mut self, tenant: &str, client_id: &str, credential: AppCredential) -> Self {
        self.tenants.insert(tenant.to_string());
        self.apps.push(App {
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            object_id: guid(),
            credential,
        });
        self
    }

    /// A service principal with a client secret.
    pub fn client_secret(self, tenant: &str, client_id: &str, secret: &str) -> Self {
        self.app(tenant, client_id, AppCredential::Secret(secret.to_string()))
    }

    /// A service principal with a registered certificate (DER).
    pub fn client_certificate(self, tenant: &str, client_id: &str, cert_der: &[u8]) -> Self {
        self.app(
            tenant,
            client_id,
            AppCredential::Certificate(cert_der.to_vec()),
        )
    }

    /// An application with a federated credential: the assertion must equal `federated_token`.
    pub fn federated(self, tenant: &str, client_id: &str, federated_token: &str) -> Self {
        self.app(
            tenant,
            client_id,
            AppCredential::Federated(federated_token.to_string()),
        )
    }

    /// Enables the App Service managed-identity endpoint for one identity.
    pub fn managed_identity(
        mut self,
        tenant: &str,
        client_id: &str,
        identity_header: &str,
    ) -> Self {
        self.tenants.insert(tenant.to_string());
        self.managed_identity = Some(ManagedIdentity {
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            object_id: guid(),
            header: identity_header.to_string(),
        });
        self
    }

    /// Lifetime of issued tokens in seconds (negative: already expired). Default 3600.
    pub fn token_lifetime(mut self, secs: i64) -> Self {
        self.lifetime_secs = Some(secs);
        self
    }

    /// Binds the ports and starts serving.
    pub async fn start(self) -> anyhow::Result<AadEmulator> {
        let tls = test_tls()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(AadState {
            signer: TokenIssuer::new("aad-emulator", "aad")?,
            authority: Mutex::new(format!("https://{addr}")),
            tenants: self.tenants,
            apps: self.apps,
            managed_identity: self.managed_identity,
            lifetime_secs: Mutex::new(self.lifetime_secs.unwrap_or(3600)),
            log: Mutex::new(Vec::new()),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
        let mut tasks = vec![tokio::spawn(aad_accept_loop(
            listener,
            acceptor,
            state.clone(),
        ))];
        let mut mi_addr = None;
        if state.managed_identity.is_some() {
            let mi_listener = TcpListener::bind("127.0.0.1:0").await?;
            mi_addr = Some(mi_listener.local_addr()?);
            tasks.push(tokio::spawn(plain_accept_loop(mi_listener, {
                let state = state.clone();
                move |req| {
                    let state = state.clone();
                    async move { aad_handle(&state, req).await }
                }
            })));
        }
        Ok(AadEmulator {
            addr,
            mi_addr,
            tls: tls.config.clone(),
            ca_pem: tls.ca_pem,
            state,
            tasks,
        })
    }
}

/// An Azure AD emulator on loopback (see the module docs). Stops on drop.
pub struct AadEmulator {
    addr: SocketAddr,
    mi_addr: Option<SocketAddr>,
    ca_pem: String,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<AadState>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for AadEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AadEmulator")
            .field("addr", &self.addr)
            .field("mi_addr", &self.mi_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for AadEmulator {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl AadEmulator {
    /// A builder with no tenant and no application.
    pub fn builder() -> AadEmulatorBuilder {
        AadEmulatorBuilder::default()
    }

    /// `https://127.0.0.1:PORT`: what `AZURE_AUTHORITY_HOST` must be.
    pub fn authority_host(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The HTTPS address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token endpoint of `tenant`.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.authority_host())
    }

    /// PEM of the test CA that signed the HTTPS certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes [`Self::ca_pem`] to `path`.
    pub fn write_ca_file(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, &self.ca_pem).with_context(|| format!("writing {}", path.display()))
    }

    /// A TLS server configuration with a certificate for `127.0.0.1` / `localhost` signed by the
    /// test CA ([`Self::ca_pem`]), for other emulators (e.g. of Azure Resource Manager) that
    /// clients trusting this CA must reach over HTTPS.
    pub fn tls_server_config(&self) -> Arc<rustls::ServerConfig> {
        self.tls.clone()
    }

    /// A handle that verifies this emulator's access tokens (signature and `exp`) from other
    /// tasks, for emulators of resource servers.
    pub fn token_verifier(&self) -> AadTokenVerifier {
        AadTokenVerifier {
            state: self.state.clone(),
        }
    }

    /// `http://127.0.0.1:PORT/msi/token`: what `IDENTITY_ENDPOINT` must be (when a managed
    /// identity is configured).
    pub fn identity_endpoint(&self) -> Option<String> {
        self.mi_addr.map(|a| format!("http://{a}/msi/token"))
    }

    /// The object ID (`oid`) of a registered client or managed identity.
    pub fn object_id(&self, client_id: &str) -> Option<String> {
        self.state.object_id(client_id)
    }

    /// Checks an access token's signature and `exp`, returning its claims.
    pub fn verify_access_token(&self, token: &str) -> anyhow::Result<Value> {
        self.state.signer.verify(token)
    }

    /// Signs an access token for a registered client directly (what `az account
    /// get-access-token` would print for that principal), valid `lifetime_secs`.
    pub fn issue_token(
        &self,
        client_id: &str,
        resource: &str,
        lifetime_secs: i64,
    ) -> anyhow::Result<String> {
        let (tenant, object_id) = self
            .state
            .apps
            .iter()
            .find(|a| a.client_id == client_id)
            .map(|a| (a.tenant.clone(), a.object_id.clone()))
            .context("unknown client")?;
        self.state
            .issue(&tenant, client_id, &object_id, resource, lifetime_secs)
    }

    /// Lifetime of tokens issued from now on, in seconds (negative: already expired).
    pub fn set_token_lifetime(&self, secs: i64) {
        *lock(&self.state.lifetime_secs) = secs;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<AadRequest> {
        lock(&self.state.log).clone()
    }

    /// How many tokens were issued (token endpoint and managed identity).
    pub fn tokens_issued(&self) -> usize {
        lock(&self.state.log)
            .iter()
            .filter(|r| r.status == 200)
            .count()
    }

    fn state(&self) -> Arc<AadState> {
        self.state.clone()
    }
}

/// Verifies the access tokens of an [`AadEmulator`] ([`AadEmulator::token_verifier`]).
#[derive(Clone)]
pub struct AadTokenVerifier {
    state: Arc<AadState>,
}

impl fmt::Debug for AadTokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AadTokenVerifier").finish_non_exhaustive()
    }
}

impl AadTokenVerifier {
    /// Checks a token's signature and `exp`, returning its claims.
    pub fn verify(&self, token: &str) -> anyhow::Result<Value> {
        self.state.signer.verify(token)
    }

    /// The object ID (`oid`) of a registered client or managed identity.
    pub fn object_id(&self, client_id: &str) -> Option<String> {
        self.state.object_id(client_id)
    }
}

async fn aad_accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<AadState>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        conns.spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(aad_handle(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// An Azure AD error: status, `error`, AADSTS code and description.
struct AadError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl AadError {
    fn new(status: StatusCode, error: &'static str, code: u32, description: String) -> Self {
        Self {
            status,
            error,
            code,
            description,
        }
    }

    fn response(&self) -> Response<Full<Bytes>> {
        json_response(
            self.status,
            &json!({
                "error": self.error,
                "error_description": format!("AADSTS{}: {}", self.code, self.description),
                "error_codes": [self.code],
                "timestamp": crate::util::rfc3339(unix_now()),
                "trace_id": guid(),
                "correlation_id": guid(),
                "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
            }),
        )
    }
}

fn allowed_resource(resource: &str) -> bool {
    let r = resource.trim_end_matches('/');
    [ARM_AUDIENCE, ARM_AUDIENCE_LEGACY, ACR_AUDIENCE].contains(&r)
}

async fn aad_handle(state: &AadState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let identity_header = req
        .headers()
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut params = parse_form(&query);
    if method == Method::POST {
        params.extend(parse_form(&String::from_utf8_lossy(&body)));
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut record = AadRequest {
        method: method.to_string(),
        path: path.clone(),
        endpoint: "other".into(),
        client_id: get("client_id"),
        grant_type: get("grant_type"),
        scope: get("scope").or_else(|| get("resource")),
        credential_kind: if get("client_secret").is_some() {
            "client_secret".into()
        } else if get("client_assertion").is_some() {
            "client_assertion".into()
        } else if identity_header.is_some() {
            "identity_header".into()
        } else {
            "none".into()
        },
        status: 0,
        error: None,
    };
    let result = if path == "/msi/token" {
        record.endpoint = "managed_identity".into();
        managed_identity_token(state, &method, &params, identity_header.as_deref())
    } else if let Some(tenant) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/oauth2/v2.0/token"))
        .filter(|t| !t.contains('/'))
    {
        record.endpoint = "token".into();
        if method != Method::POST {
            Err(AadError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests.".into(),
            ))
        } else if !content_type.starts_with("application/x-www-form-urlencoded") {
            Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must be application/x-www-form-urlencoded.".into(),
            ))
        } else {
            v2_token(state, tenant, &params)
        }
    } else {
        Err(AadError::new(
            StatusCode::NOT_FOUND,
            "invalid_request",
            90000,
            format!("The emulator serves no endpoint at {path}."),
        ))
    };
    let response = match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => {
            record.error = Some(e.error.to_string());
            e.response()
        }
    };
    record.status = response.status().as_u16();
    lock(&state.log).push(record);
    response
}

fn v2_token(
    state: &AadState,
    tenant: &str,
    params: &[(String, String)],
) -> Result<Value, AadError> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let bad = |error, code, description: String| {
        Err(AadError::new(
            StatusCode::BAD_REQUEST,
            error,
            code,
            description,
        ))
    };
    let unauthorized = |code, description: String| {
        Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            code,
            description,
        ))
    };
    if !state.tenants.contains(tenant) {
        return bad(
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID."
            ),
        );
    }
    match get("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return bad(
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            );
        }
        None => {
            return bad(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.".into(),
            );
        }
    }
    let Some(client_id) = get("client_id") else {
        return bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.".into(),
        );
    };
    let Some(app) = state
        .apps
        .iter()
        .find(|a| a.client_id == client_id && a.tenant == tenant)
    else {
        return bad(
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    let Some(scope) = get("scope") else {
        return bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.".into(),
        );
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let [scope] = scopes.as_slice() else {
        return bad(
            "invalid_scope",
            1002012,
            format!("The provided value for scope {scope} is not valid: give exactly one scope."),
        );
    };
    let Some(resource) = scope.strip_suffix("/.default") else {
        return bad(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must \
                 have a scope value with /.default suffixed to the resource identifier \
                 (application ID URI)."
            ),
        );
    };
    if !allowed_resource(resource) {
        return bad(
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}."
            ),
        );
    }

    let secret = get("client_secret");
    let assertion = get("client_assertion");
    match (&app.credential, secret, assertion) {
        (_, Some(_), Some(_)) => {
            return bad(
                "invalid_request",
                50027,
                "Give either client_secret or client_assertion, not both.".into(),
            );
        }
        (_, None, None) => {
            return unauthorized(
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or \
                 'client_secret'."
                    .into(),
            );
        }
        (AppCredential::Secret(expected), Some(given), None) => {
            if given != expected {
                return unauthorized(
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the \
                         request is the client secret value, not the client secret ID, for a \
                         secret added to app '{client_id}'."
                    ),
                );
            }
        }
        (AppCredential::Secret(_), None, Some(_)) => {
            return unauthorized(
                700027,
                format!(
                    "Client assertion failed signature validation: app '{client_id}' has no certificate or federated credential."
                ),
            );
        }
        (AppCredential::Certificate(_) | AppCredential::Federated(_), Some(_), None) => {
            return unauthorized(
                7000215,
                format!("Invalid client secret provided: app '{client_id}' has no client secret."),
            );
        }
        (cred, None, Some(assertion)) => {
            if get("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
                return bad(
                    "invalid_request",
                    50027,
                    format!("client_assertion_type must be {CLIENT_ASSERTION_TYPE}."),
                );
            }
            let authority = lock(&state.authority).clone();
            let audience = format!("{authority}/{tenant}/oauth2/v2.0/token");
            let checked = match cred {
                AppCredential::Certificate(der) => {
                    verify_client_assertion(assertion, der, client_id, &audience)
                }
                AppCredential::Federated(expected) => {
                    if assertion == expected {
                        Ok(())
                    } else {
                        Err((
                            70021,
                            "No matching federated identity record found for presented assertion."
                                .to_string(),
                        ))
                    }
                }
                AppCredential::Secret(_) => Err((700027, "no certificate".to_string())),
            };
            if let Err((code, description)) = checked {
                return unauthorized(code, description);
            }
        }
    }

    let lifetime = *lock(&state.lifetime_secs);
    let token = state
        .issue(tenant, client_id, &app.object_id, resource, lifetime)
        .map_err(|e| {
            AadError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                50000,
                e.to_string(),
            )
        })?;
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }))
}

/// Checks a certificate client assertion; `Err((AADSTS code, description))`.
fn verify_client_assertion(
    assertion: &str,
    cert_der: &[u8],
    client_id: &str,
    audience: &str,
) -> Result<(), (u32, String)> {
    let fail = |code: u32, msg: &str| Err((code, format!("Client assertion {msg}")));
    let mut parts = assertion.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return fail(50012, "is not a JWT.");
    };
    let decode = |p: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
    };
    let (Some(header), Some(claims)) = (decode(h), decode(c)) else {
        return fail(50012, "is not a JWT.");
    };
    if header["alg"] != "RS256" {
        return fail(
            700027,
            "failed signature validation. [Reason - the algorithm must be RS256.]",
        );
    }
    let sha1 = URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der).as_ref());
    let sha256 =
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, cert_der).as_ref());
    let x5t = header.get("x5t").and_then(Value::as_str);
    let x5t256 = header.get("x5t#S256").and_then(Value::as_str);
    if (x5t.is_none() && x5t256.is_none())
        || x5t.is_some_and(|t| t != sha1)
        || x5t256.is_some_and(|t| t != sha256)
    {
        return fail(
            700027,
            "failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: see x5t]",
        );
    }
    let Some(public_key) = rsa_public_key_of(cert_der) else {
        return fail(700027, "failed: the registered certificate has no RSA key.");
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(s) else {
        return fail(700027, "failed signature validation.");
    };
    if ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &public_key,
    )
    .verify(format!("{h}.{c}").as_bytes(), &signature)
    .is_err()
    {
        return fail(700027, "failed signature validation.");
    }
    if claims["aud"] != audience {
        return fail(
            700212,
            &format!(
                "audience claim must be {audience}, found {}.",
                claims["aud"]
            ),
        );
    }
    if claims["iss"] != client_id || claims["sub"] != client_id {
        return fail(700023, "iss and sub claims must both be the client ID.");
    }
    let now = unix_now();
    let exp = claims["exp"].as_i64();
    let nbf = claims["nbf"].as_i64();
    match (exp, nbf) {
        (Some(exp), _) if exp <= now => {
            return fail(700024, "is not within its valid time range (expired).");
        }
        (_, Some(nbf)) if nbf > now + SKEW_SECS => {
            return fail(
                700024,
                "is not within its valid time range (not yet valid).",
            );
        }
        (None, _) => return fail(700024, "has no exp claim."),
        _ => {}
    }
    if claims.get("jti").and_then(Value::as_str).is_none() {
        return fail(700023, "has no jti claim.");
    }
    Ok(())
}

fn managed_identity_token(
    state: &AadState,
    method: &Method,
    params: &[(String, String)],
    header_value: Option<&str>,
) -> Result<Value, AadError> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(mi) = &state.managed_identity else {
        return Err(AadError::new(
            StatusCode::NOT_FOUND,
            "invalid_request",
            0,
            "no managed identity".into(),
        ));
    };
    let bad = |status, msg: &str| Err(AadError::new(status, "invalid_request", 0, msg.to_string()));
    if *method != Method::GET {
        return bad(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    if header_value != Some(mi.header.as_str()) {
        return bad(
            StatusCode::UNAUTHORIZED,
            "The X-IDENTITY-HEADER header is missing or wrong.",
        );
    }
    if get("api-version") != Some("2019-08-01") {
        return bad(StatusCode::BAD_REQUEST, "api-version must be 2019-08-01.");
    }
    let Some(resource) = get("resource") else {
        return bad(StatusCode::BAD_REQUEST, "resource is required.");
    };
    if !allowed_resource(resource) {
        return bad(
            StatusCode::BAD_REQUEST,
            "The resource is not a known audience.",
        );
    }
    if let Some(client_id) = get("client_id")
        && client_id != mi.client_id
    {
        return bad(
            StatusCode::BAD_REQUEST,
            "No managed identity with this client_id is assigned to this resource.",
        );
    }
    let lifetime = *lock(&state.lifetime_secs);
    let token = state
        .issue(&mi.tenant, &mi.client_id, &mi.object_id, resource, lifetime)
        .map_err(|e| {
            AadError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                0,
                e.to_string(),
            )
        })?;
    Ok(json!({
        "access_token": token,
        "expires_on": (unix_now() + lifetime).to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": mi.client_id,
    }))
}

// ---------------------------------------------------------------------------------------------
// ACR
// ---------------------------------------------------------------------------------------------

/// A role of an Azure AD principal on the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcrRole {
    /// AcrPull: `pull`, `metadata_read`, the catalog.
    Pull,
    /// AcrPush: AcrPull plus `push`, `metadata_write`.
    Push,
    /// Owner / Contributor: everything, `delete` included.
    Owner,
}

impl AcrRole {
    fn grants(self) -> Vec<Grant> {
        let actions: &[&str] = match self {
            AcrRole::Pull => &["pull", "metadata_read"],
            AcrRole::Push => &["pull", "push", "metadata_read", "metadata_write"],
            AcrRole::Owner => &["pull", "push", "delete", "metadata_read", "metadata_write"],
        };
        vec![Grant::repository("*", actions), Grant::catalog()]
    }
}

/// Maps ACR scope-map actions (`content/read`…) to token actions (`pull`…).
fn scope_map_action(action: &str) -> Option<&'static str> {
    Some(match action {
        "content/read" => "pull",
        "content/write" => "push",
        "content/delete" => "delete",
        "metadata/read" => "metadata_read",
        "metadata/write" => "metadata_write",
        _ => return None,
    })
}

#[derive(Clone)]
struct RepoToken {
    password: String,
    grants: Vec<Grant>,
}

/// One request the [`AcrEmulator`] handled. Never holds a secret or token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcrRequest {
    /// HTTP method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// `grant_type` of token-service requests.
    pub grant_type: Option<String>,
    /// `service` of token-service requests.
    pub service: Option<String>,
    /// The username (Basic or password grant).
    pub username: Option<String>,
    /// Scopes asked for.
    pub requested: Vec<Access>,
    /// Access granted.
    pub granted: Vec<Access>,
    /// Who the token service took the caller for.
    pub subject: Option<String>,
    /// Response status.
    pub status: u16,
    /// Why it was refused.
    pub error: Option<String>,
}

struct AcrState {
    login_server: String,
    tenant: String,
    aad: Arc<AadState>,
    issuer: TokenIssuer,
    roles: Mutex<HashMap<String, AcrRole>>,
    admin: Option<(String, String)>,
    tokens: HashMap<String, RepoToken>,
    arm_audience: bool,
    anonymous_pull: bool,
    refresh_lifetime: Mutex<Duration>,
    access_lifetime: Duration,
    upstream: SocketAddr,
    log: Mutex<Vec<AcrRequest>>,
    /// When the metadata listing first saw each digest (its `createdTime`/`lastUpdateTime`),
    /// with a sequence number that keeps the order stable within a second.
    first_seen: Mutex<HashMap<String, (i64, u64)>>,
    /// The data plane refuses every client, as a registry firewall does to an IP it does
    /// not allow.
    firewall: Mutex<bool>,
}

/// Configures and starts an [`AcrEmulator`].
pub struct AcrEmulatorBuilder {
    aad: Arc<AadState>,
    tenant: String,
    roles: HashMap<String, AcrRole>,
    admin: Option<(String, String)>,
    tokens: HashMap<String, RepoToken>,
    arm_audience: bool,
    anonymous_pull: bool,
    refresh_lifetime: Duration,
    access_lifetime: Duration,
}

impl fmt::Debug for AcrEmulatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcrEmulatorBuilder")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl AcrEmulatorBuilder {
    /// Gives a principal (a registered client ID or managed identity's client ID, or an object
    /// ID) a role.
    pub fn role(mut self, principal: &str, role: AcrRole) -> Self {
        let oid = self
            .aad
            .object_id(principal)
            .unwrap_or_else(|| principal.to_string());
        self.roles.insert(oid, role);
        self
    }

    /// Enables the admin user.
    pub fn admin_user(mut self, username: &str, password: &str) -> Self {
        self.admin = Some((username.to_string(), password.to_string()));
        self
    }

    /// A repository-scoped token: `scope_map` lists repositories and ACR scope-map actions
    /// (`content/read`, `content/write`, `content/delete`, `metadata/read`, `metadata/write`).
    pub fn repository_token(
        mut self,
        name: &str,
        password: &str,
        scope_map: &[(&str, &[&str])],
    ) -> Self {
        let grants = scope_map
            .iter()
            .map(|(repo, actions)| {
                let actions: Vec<&str> =
                    actions.iter().filter_map(|a| scope_map_action(a)).collect();
                Grant::repository(repo, &actions)
            })
            .collect();
        self.tokens.insert(
            name.to_string(),
            RepoToken {
                password: password.to_string(),
                grants,
            },
        );
        self
    }

    /// Whether ARM-audience Azure AD tokens are accepted at the exchange (default: yes).
    pub fn authentication_as_arm(mut self, enabled: bool) -> Self {
        self.arm_audience = enabled;
        self
    }

    /// Whether anonymous pulls are allowed (default: no).
    pub fn anonymous_pull(mut self, enabled: bool) -> Self {
        self.anonymous_pull = enabled;
        self
    }

    /// Lifetime of exchanged refresh tokens (default 3 h).
    pub fn refresh_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.refresh_lifetime = lifetime;
        self
    }

    /// Lifetime of access tokens (default 75 min).
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_lifetime = lifetime;
        self
    }

    /// Binds the login server's port, starts the registry behind it, and serves.
    pub async fn start(self) -> anyhow::Result<AcrEmulator> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let login_server = addr.to_string();
        let issuer = TokenIssuer::new(ACR_ISSUER, &login_server)?;
        let registry = Registry::builder()
            .token_auth(TokenAuthSettings {
                realm: format!("http://{login_server}/oauth2/token"),
                service: login_server.clone(),
                issuer: ACR_ISSUER.to_string(),
                root_cert_pem: issuer.root_cert_pem().to_string(),
            })
            .relative_urls(true)
            .start()
            .await
            .context("starting the registry behind the ACR emulator")?;
        let state = Arc::new(AcrState {
            login_server: login_server.clone(),
            tenant: self.tenant,
            aad: self.aad,
            issuer,
            roles: Mutex::new(self.roles),
            admin: self.admin,
            tokens: self.tokens,
            arm_audience: self.arm_audience,
            anonymous_pull: self.anonymous_pull,
            refresh_lifetime: Mutex::new(self.refresh_lifetime),
            access_lifetime: self.access_lifetime,
            upstream: registry.addr(),
            log: Mutex::new(Vec::new()),
            first_seen: Mutex::new(HashMap::new()),
            firewall: Mutex::new(false),
        });
        let task = tokio::spawn(plain_accept_loop(listener, {
            let state = state.clone();
            move |req| {
                let state = state.clone();
                async move { acr_handle(&state, req).await }
            }
        }));
        Ok(AcrEmulator {
            addr,
            registry,
            state,
            task,
        })
    }
}

/// An ACR login server on loopback (see the module docs). Stops on drop (the registry too).
pub struct AcrEmulator {
    addr: SocketAddr,
    registry: Registry,
    state: Arc<AcrState>,
    task: JoinHandle<()>,
}

impl fmt::Debug for AcrEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcrEmulator")
            .field("login_server", &self.state.login_server)
            .field("tenant", &self.state.tenant)
            .finish_non_exhaustive()
    }
}

impl Drop for AcrEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AcrEmulator {
    /// A builder for a registry of `tenant`, trusting tokens of `aad`.
    pub fn builder(aad: &AadEmulator, tenant: &str) -> AcrEmulatorBuilder {
        AcrEmulatorBuilder {
            aad: aad.state(),
            tenant: tenant.to_string(),
            roles: HashMap::new(),
            admin: None,
            tokens: HashMap::new(),
            arm_audience: true,
            anonymous_pull: false,
            refresh_lifetime: Duration::from_secs(3 * 3600),
            access_lifetime: Duration::from_secs(4500),
        }
    }

    /// `127.0.0.1:PORT`, the login server name (and token service).
    pub fn login_server(&self) -> String {
        self.state.login_server.clone()
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The registry behind the login server.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The signer of ACR's tokens.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.state.issuer
    }

    /// With `deny`, every data-plane request (not `/oauth2/*`) is refused with ACR's
    /// firewall answer: `403 DENIED`, "client with IP … is not allowed access".
    pub fn set_firewall(&self, deny: bool) {
        *lock(&self.state.firewall) = deny;
    }

    /// Changes a principal's role (`None` removes it).
    pub fn set_role(&self, principal: &str, role: Option<AcrRole>) {
        let oid = self
            .state
            .aad
            .object_id(principal)
            .unwrap_or_else(|| principal.to_string());
        let mut roles = lock(&self.state.roles);
        match role {
            Some(r) => roles.insert(oid, r),
            None => roles.remove(&oid),
        };
    }

    /// Lifetime of refresh tokens exchanged from now on.
    pub fn set_refresh_token_lifetime(&self, lifetime: Duration) {
        *lock(&self.state.refresh_lifetime) = lifetime;
    }

    /// An ACR refresh token for a principal (client ID or object ID), as the exchange would
    /// issue it.
    pub fn issue_refresh_token(&self, principal: &str) -> anyhow::Result<String> {
        let oid = self
            .state
            .aad
            .object_id(principal)
            .unwrap_or_else(|| principal.to_string());
        refresh_token_for(&self.state, &oid)
    }

    /// Every request so far (token service and forwarded ones).
    pub fn requests(&self) -> Vec<AcrRequest> {
        lock(&self.state.log).clone()
    }

    /// Requests whose path is `path`.
    pub fn count(&self, path: &str) -> usize {
        lock(&self.state.log)
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

fn refresh_token_for(state: &AcrState, object_id: &str) -> anyhow::Result<String> {
    let lifetime = *lock(&state.refresh_lifetime);
    let mut claims = state.issuer.claims(object_id, &[], lifetime);
    claims["grant_type"] = json!("refresh_token");
    claims["tenant"] = json!(state.tenant);
    claims["permissions"] = json!({"actions": ["read", "write"], "notActions": []});
    if let Some(obj) = claims.as_object_mut() {
        obj.remove("access");
    }
    state.issuer.sign_claims(&claims)
}

fn acr_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({"errors": [{"code": code, "message": message, "detail": null}]}),
    )
}

async fn acr_handle(state: &AcrState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    if *lock(&state.firewall) && !path.starts_with("/oauth2/") {
        // ACR's answer to a client outside its network rules, before any credential check.
        return acr_error(
            StatusCode::FORBIDDEN,
            "DENIED",
            "client with IP '127.0.0.1' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.",
        );
    }
    if let Some(repo) = path
        .strip_prefix("/acr/v1/")
        .and_then(|p| p.strip_suffix("/_manifests"))
    {
        let response = acr_metadata(state, &req, repo).await;
        lock(&state.log).push(AcrRequest {
            method: req.method().to_string(),
            path: path.clone(),
            grant_type: None,
            service: None,
            username: None,
            requested: Vec::new(),
            granted: Vec::new(),
            subject: None,
            status: response.status().as_u16(),
            error: None,
        });
        return response;
    }
    if path != "/oauth2/exchange" && path != "/oauth2/token" {
        let method = req.method().to_string();
        let response = forward(state.upstream, req).await;
        lock(&state.log).push(AcrRequest {
            method,
            path,
            grant_type: None,
            service: None,
            username: None,
            requested: Vec::new(),
            granted: Vec::new(),
            subject: None,
            status: response.status().as_u16(),
            error: None,
        });
        return response;
    }
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or_default().to_string();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut params = parse_form(&query);
    if method == Method::POST {
        params.extend(parse_form(&String::from_utf8_lossy(&body)));
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut record = AcrRequest {
        method: method.to_string(),
        path: path.clone(),
        grant_type: get("grant_type"),
        service: get("service"),
        username: get("username"),
        requested: params
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| parse_scopes(v))
            .collect(),
        granted: Vec::new(),
        subject: None,
        status: 0,
        error: None,
    };
    let result = if path == "/oauth2/exchange" {
        exchange(state, &method, &params, &mut record)
    } else {
        token(state, &method, auth.as_deref(), &params, &mut record)
    };
    let response = match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err((status, code, message)) => {
            record.error = Some(message.clone());
            acr_error(status, code, &message)
        }
    };
    record.status = response.status().as_u16();
    lock(&state.log).push(record);
    response
}

type AcrResult = Result<Value, (StatusCode, &'static str, String)>;

fn unauthorized(message: String) -> (StatusCode, &'static str, String) {
    (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
}

fn exchange(
    state: &AcrState,
    method: &Method,
    params: &[(String, String)],
    record: &mut AcrRequest,
) -> AcrResult {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if *method != Method::POST {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "use POST".into(),
        ));
    }
    match get("grant_type") {
        Some("access_token") => {}
        other => {
            return Err((
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED_GRANT_TYPE",
                format!("grant type {other:?} is not supported: use access_token"),
            ));
        }
    }
    if get("service") != Some(state.login_server.as_str()) {
        return Err((
            StatusCode::BAD_REQUEST,
            "INVALID_SERVICE",
            format!("service must be {}", state.login_server),
        ));
    }
    let Some(token) = get("access_token") else {
        return Err((
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "access_token is required".into(),
        ));
    };
    let claims = state
        .aad
        .signer
        .verify_signature(token)
        .map_err(|_| unauthorized("the Azure AD token's signature is invalid".into()))?;
    if claims["exp"].as_i64().is_none_or(|exp| exp <= unix_now()) {
        return Err(unauthorized("the Azure AD token has expired".into()));
    }
    let aud = claims["aud"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('/');
    let arm = aud == ARM_AUDIENCE || aud == ARM_AUDIENCE_LEGACY;
    if !(aud == ACR_AUDIENCE || (arm && state.arm_audience)) {
        return Err(unauthorized(format!(
            "the Azure AD token's audience {aud} is not accepted by this registry{}",
            if arm {
                " (authentication as ARM is disabled: use https://containerregistry.azure.net)"
            } else {
                ""
            }
        )));
    }
    let tid = claims["tid"].as_str().unwrap_or_default();
    if tid != state.tenant {
        return Err(unauthorized(format!(
            "the Azure AD token is from tenant {tid}, not the registry's tenant"
        )));
    }
    if let Some(t) = get("tenant")
        && t != state.tenant
    {
        return Err(unauthorized(format!(
            "tenant {t} is not the registry's tenant"
        )));
    }
    let oid = claims["oid"].as_str().unwrap_or_default().to_string();
    record.subject = Some(oid.clone());
    if !lock(&state.roles).contains_key(&oid) {
        return Err(unauthorized(format!(
            "the principal {oid} has no role assignment on registry {}",
            state.login_server
        )));
    }
    let refresh = refresh_token_for(state, &oid)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()))?;
    Ok(json!({ "refresh_token": refresh }))
}

/// Who is asking, and what they may do.
struct Caller {
    subject: String,
    grants: Vec<Grant>,
    grant_type: &'static str,
}

fn caller_from_password(state: &AcrState, user: &str, pass: &str) -> Result<Caller, String> {
    if user == NULL_GUID {
        return caller_from_refresh(state, pass);
    }
    if let Some((admin, password)) = &state.admin
        && admin == user
    {
        return if password == pass {
            Ok(Caller {
                subject: user.to_string(),
                grants: AcrRole::Owner.grants(),
                grant_type: "password",
            })
        } else {
            Err("invalid username or password".into())
        };
    }
    if let Some(token) = state.tokens.get(user) {
        return if token.password == pass {
            Ok(Caller {
                subject: user.to_string(),
                grants: token.grants.clone(),
                grant_type: "password",
            })
        } else {
            Err("invalid username or password".into())
        };
    }
    let app = state.aad.apps.iter().find(|a| {
        a.client_id == user && matches!(&a.credential, AppCredential::Secret(s) if s == pass)
    });
    let Some(app) = app else {
        return Err("invalid username or password".into());
    };
    if app.tenant != state.tenant {
        return Err(format!(
            "service principal {user} is from another tenant than the registry"
        ));
    }
    let role = lock(&state.roles).get(&app.object_id).copied();
    let Some(role) = role else {
        return Err(format!(
            "service principal {user} has no role assignment on the registry"
        ));
    };
    Ok(Caller {
        subject: app.object_id.clone(),
        grants: role.grants(),
        grant_type: "password",
    })
}

fn caller_from_refresh(state: &AcrState, refresh: &str) -> Result<Caller, String> {
    let claims = state
        .issuer
        .verify(refresh)
        .map_err(|_| "invalid or expired refresh token".to_string())?;
    if claims["grant_type"] != "refresh_token" || claims["aud"] != state.login_server.as_str() {
        return Err("the token is not a refresh token of this registry".into());
    }
    let oid = claims["sub"].as_str().unwrap_or_default().to_string();
    let role = lock(&state.roles).get(&oid).copied();
    let Some(role) = role else {
        return Err(format!("the principal {oid} has no role assignment"));
    };
    Ok(Caller {
        subject: oid,
        grants: role.grants(),
        grant_type: "refresh_token",
    })
}

fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn token(
    state: &AcrState,
    method: &Method,
    auth: Option<&str>,
    params: &[(String, String)],
    record: &mut AcrRequest,
) -> AcrResult {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("service") {
        Some(s) if s == state.login_server => {}
        other => {
            return Err((
                StatusCode::BAD_REQUEST,
                "INVALID_SERVICE",
                format!("service {other:?} is not {}", state.login_server),
            ));
        }
    }
    let caller = if *method == Method::GET {
        match auth {
            Some(a) => {
                let (user, pass) = parse_basic(a)
                    .ok_or_else(|| unauthorized("use Basic authentication".into()))?;
                record.username = Some(user.clone());
                caller_from_password(state, &user, &pass).map_err(unauthorized)?
            }
            None if state.anonymous_pull => Caller {
                subject: String::new(),
                grants: vec![Grant::pull_all()],
                grant_type: "anonymous",
            },
            None => return Err(unauthorized("authentication required".into())),
        }
    } else if *method == Method::POST {
        match get("grant_type") {
            Some("refresh_token") => {
                let refresh = get("refresh_token").ok_or_else(|| {
                    (
                        StatusCode::BAD_REQUEST,
                        "INVALID_REQUEST",
                        "refresh_token is required".to_string(),
                    )
                })?;
                caller_from_refresh(state, refresh).map_err(unauthorized)?
            }
            Some("password") => {
                let (Some(user), Some(pass)) = (get("username"), get("password")) else {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        "INVALID_REQUEST",
                        "username and password are required".into(),
                    ));
                };
                caller_from_password(state, user, pass).map_err(unauthorized)?
            }
            other => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "UNSUPPORTED_GRANT_TYPE",
                    format!("grant type {other:?} is not supported"),
                ));
            }
        }
    } else {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "use GET or POST".into(),
        ));
    };
    let granted = intersect(&record.requested, &caller.grants);
    let mut claims = state
        .issuer
        .claims(&caller.subject, &granted, state.access_lifetime);
    claims["tenant"] = json!(state.tenant);
    claims["grant_type"] = json!(caller.grant_type);
    let token = state
        .issuer
        .sign_claims(&claims)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()))?;
    record.subject = Some(caller.subject);
    record.granted = granted;
    Ok(json!({ "access_token": token }))
}

/// Sends a request to the registry and returns its whole response.
/// `GET /acr/v1/{repo}/_manifests[?n=&orderby=timeasc|timedesc&last=]`, ACR's manifest
/// metadata listing, in the documented shape (`{registry, imageName, manifests: [{digest,
/// imageSize, createdTime, lastUpdateTime, mediaType, tags, changeableAttributes}]}`, `Link`
/// for the next page). It needs a token granting `metadata_read` on the repository; the data
/// comes from the registry behind (its tags and manifest heads), timestamps from when this
/// listing first saw each digest.
async fn acr_metadata(
    state: &AcrState,
    req: &Request<Incoming>,
    repo: &str,
) -> Response<Full<Bytes>> {
    let challenge = |error: Option<&str>| {
        let mut value = format!(
            "Bearer realm=\"http://{ls}/oauth2/token\",service=\"{ls}\",scope=\"repository:{repo}:metadata_read\"",
            ls = state.login_server
        );
        if let Some(e) = error {
            value.push_str(&format!(",error=\"{e}\""));
        }
        let mut r = acr_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    };
    let Some(token) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return challenge(None);
    };
    let Ok(claims) = state.issuer.verify(token) else {
        return challenge(Some("invalid_token"));
    };
    let allowed = claims["access"].as_array().is_some_and(|list| {
        list.iter().any(|a| {
            a["type"] == "repository"
                && a["name"] == repo
                && a["actions"]
                    .as_array()
                    .is_some_and(|x| x.iter().any(|v| v == "metadata_read" || v == "*"))
        })
    });
    if !allowed {
        return challenge(Some("insufficient_scope"));
    }
    let query: HashMap<String, String> = parse_form(req.uri().query().unwrap_or_default())
        .into_iter()
        .collect();
    let n: usize = query
        .get("n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let orderby = query.get("orderby").cloned().unwrap_or_default();
    match metadata_rows(state, repo).await {
        Err(response) => response,
        Ok(mut rows) => {
            rows.sort_by_key(|r| r.0);
            if orderby == "timedesc" {
                rows.reverse();
            }
            let start = query
                .get("last")
                .and_then(|last| rows.iter().position(|r| r.1["digest"] == last.as_str()))
                .map_or(0, |i| i + 1);
            let page: Vec<Value> = rows
                .iter()
                .skip(start)
                .take(n)
                .map(|r| r.1.clone())
                .collect();
            let mut response = json_response(
                StatusCode::OK,
                &json!({"registry": state.login_server, "imageName": repo, "manifests": page}),
            );
            if start + n < rows.len()
                && let Some(last) = page.last().and_then(|p| p["digest"].as_str())
            {
                let mut link = format!("</acr/v1/{repo}/_manifests?last={last}&n={n}");
                if !orderby.is_empty() {
                    link.push_str(&format!("&orderby={orderby}"));
                }
                link.push_str(">; rel=\"next\"");
                if let Ok(v) = http::HeaderValue::from_str(&link) {
                    response.headers_mut().insert(header::LINK, v);
                }
            }
            response
        }
    }
}

/// One row of the metadata listing with its order key (first seen, then sequence).
type MetadataRow = ((i64, u64), Value);

/// The metadata objects of every tagged manifest of `repo`.
async fn metadata_rows(
    state: &AcrState,
    repo: &str,
) -> Result<Vec<MetadataRow>, Response<Full<Bytes>>> {
    let fail = |e: anyhow::Error| acr_error(StatusCode::BAD_GATEWAY, "UPSTREAM", &format!("{e:#}"));
    let token = state
        .issuer
        .sign(
            "acr-metadata",
            &[Access::repository(repo, &["pull"])],
            Duration::from_secs(60),
        )
        .map_err(fail)?;
    let tags = backend(
        state.upstream,
        Method::GET,
        &format!("/v2/{repo}/tags/list"),
        &token,
    )
    .await
    .map_err(fail)?;
    if tags.status() == StatusCode::NOT_FOUND {
        return Err(acr_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        ));
    }
    let list: Value = serde_json::from_slice(tags.body()).unwrap_or_default();
    let mut by_digest: Vec<(String, Value)> = Vec::new();
    for tag in list["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
    {
        let head = backend(
            state.upstream,
            Method::HEAD,
            &format!("/v2/{repo}/manifests/{tag}"),
            &token,
        )
        .await
        .map_err(fail)?;
        let h = |name: &str| {
            head.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let digest = h("docker-content-digest");
        if digest.is_empty() {
            continue;
        }
        match by_digest.iter_mut().find(|(d, _)| *d == digest) {
            Some((_, row)) => {
                if let Some(t) = row["tags"].as_array_mut() {
                    t.push(json!(tag));
                }
            }
            None => by_digest.push((
                digest.clone(),
                json!({"digest": digest, "imageSize": h("content-length").parse::<u64>().unwrap_or(0),
                    "mediaType": h("content-type"), "tags": [tag],
                    "changeableAttributes": {"deleteEnabled": true, "writeEnabled": true, "readEnabled": true, "listEnabled": true}}),
            )),
        }
    }
    let mut seen = lock(&state.first_seen);
    let mut next = seen.len() as u64;
    Ok(by_digest
        .into_iter()
        .map(|(digest, mut row)| {
            let key = *seen.entry(digest).or_insert_with(|| {
                next += 1;
                (unix_now(), next)
            });
            let when = format!(
                "{}.{:07}Z",
                crate::util::rfc3339(key.0).trim_end_matches('Z'),
                key.1
            );
            row["createdTime"] = json!(when);
            row["lastUpdateTime"] = json!(when);
            (key, row)
        })
        .collect())
}

/// One request to the registry behind, with a token this emulator signed.
async fn backend(
    upstream: SocketAddr,
    method: Method,
    path: &str,
    token: &str,
) -> anyhow::Result<Response<Bytes>> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, upstream.to_string())
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(
            header::ACCEPT,
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
             application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(
        parts,
        body.collect().await?.to_bytes(),
    ))
}

async fn forward(upstream: SocketAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match try_forward(upstream, req).await {
        Ok(r) => r,
        Err(e) => acr_error(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM",
            &format!("the registry behind the emulator failed: {e}"),
        ),
    }
}

async fn try_forward(
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut outgoing = Request::from_parts(parts, Full::new(body));
    // Keep the Host the client used (the registry builds no absolute URLs: relative_urls).
    *outgoing.uri_mut() = outgoing
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .parse()?;
    let response = sender.send_request(outgoing).await?;
    let (mut parts, body) = response.into_parts();
    // The body is sent whole: its length replaces any chunked framing.
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(header::CONNECTION);
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_key_is_found_in_a_certificate() {
        let cert = TestClientCertificate::generate("test-app").expect("cert");
        let key = rsa_public_key_of(cert.cert_der()).expect("rsa key");
        // RSAPublicKey ::= SEQUENCE { modulus, exponent }
        assert_eq!(key[0], 0x30);
        assert!(key.len() > 256);
        let other = TestClientCertificate::generate_with_other_key("x").expect("cert");
        assert_ne!(rsa_public_key_of(other.cert_der()).expect("rsa"), key);
        let ec_issuer = TokenIssuer::new("a", "b").expect("issuer");
        assert!(rsa_public_key_of(ec_issuer.cert_der()).is_none());
        assert!(rsa_public_key_of(b"\x30\x03\x02\x01").is_none());
    }

    #[test]
    fn scope_map_actions() {
        assert_eq!(scope_map_action("content/read"), Some("pull"));
        assert_eq!(scope_map_action("content/write"), Some("push"));
        assert_eq!(scope_map_action("bogus"), None);
    }
}
