//! A token issuer (ES256 JWTs that distribution 2.8 accepts) and a token
//! server implementing the distribution token-auth endpoint.
//!
//! The token format follows distribution's `docs/spec/auth/jwt.md`: the JOSE
//! header carries `x5c` with the DER of a self-signed certificate that is also
//! the registry's `rootcertbundle`; the claim set has `iss`, `sub`, `aud`
//! (a single string — distribution 2.8 does not accept an array), `exp`,
//! `nbf`, `iat`, `jti` and `access`.
//!
//! The server implements `GET /token` (docs/spec/auth/token.md) and
//! `POST /token` (docs/spec/auth/oauth.md) with a table of users and
//! per-user grants; the issued access is the intersection of what was asked
//! for and what the user may do, like real token services.

use std::collections::HashMap;
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
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::util::{hex, parse_form, rfc3339, unix_now};

/// How long before `iat` the `nbf` claim is placed, to absorb clock skew.
const NBF_SLACK_SECS: i64 = 5;

/// Locks a mutex, ignoring poisoning (a panicking test must not cascade).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One entry of a token's `access` claim, also the parsed form of a scope
/// string such as `repository:library/alpine:pull,push`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Access {
    /// Resource type, e.g. `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Resource name, e.g. `library/alpine` or `catalog`.
    pub name: String,
    /// Actions, e.g. `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

impl Access {
    /// A `repository` access entry.
    pub fn repository(name: &str, actions: &[&str]) -> Self {
        Self {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    /// The `registry:catalog:*` access entry.
    pub fn catalog() -> Self {
        Self {
            kind: "registry".into(),
            name: "catalog".into(),
            actions: vec!["*".into()],
        }
    }

    /// Parses one scope, `type[(class)]:name:action[,action...]`.
    ///
    /// The name may contain `/` and `:` (e.g. `localhost:5000/a`); the type
    /// ends at the first `:` and the actions start after the last one. A
    /// resource class such as `repository(plugin)` is dropped. Returns `None`
    /// for malformed input.
    pub fn parse_scope(scope: &str) -> Option<Self> {
        let scope = scope.trim();
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let kind = kind.split('(').next().unwrap_or(kind);
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        let actions: Vec<String> = actions
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        Some(Self {
            kind: kind.to_string(),
            name: name.to_string(),
            actions,
        })
    }

    /// Renders the entry as a scope string, `type:name:a,b`.
    pub fn to_scope(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

/// Parses a space-separated list of scopes (as in a `POST /token` form or a
/// `WWW-Authenticate` challenge), skipping malformed entries.
pub fn parse_scopes(scopes: &str) -> Vec<Access> {
    scopes
        .split_whitespace()
        .filter_map(Access::parse_scope)
        .collect()
}

/// What a user (or anonymous caller) may do on the resources matching a
/// pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Resource type the grant applies to (`repository`, `registry`).
    pub kind: String,
    /// `*` for every name, `prefix/*` for every name starting with `prefix/`,
    /// otherwise an exact name.
    pub pattern: String,
    /// Allowed actions; `*` allows every action.
    pub actions: Vec<String>,
}

impl Grant {
    /// A grant on repositories matching `pattern` (`*`, `team/*` or exact).
    pub fn repository(pattern: &str, actions: &[&str]) -> Self {
        Self {
            kind: "repository".into(),
            pattern: pattern.into(),
            actions: actions.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    /// Pull, push and delete on every repository.
    pub fn all_repositories() -> Self {
        Self::repository("*", &["pull", "push", "delete"])
    }

    /// Pull on every repository.
    pub fn pull_all() -> Self {
        Self::repository("*", &["pull"])
    }

    /// `registry:catalog:*`.
    pub fn catalog() -> Self {
        Self {
            kind: "registry".into(),
            pattern: "catalog".into(),
            actions: vec!["*".into()],
        }
    }

    fn matches(&self, kind: &str, name: &str) -> bool {
        if self.kind != kind {
            return false;
        }
        if self.pattern == "*" || self.pattern == name {
            return true;
        }
        match self.pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => false,
        }
    }
}

/// The access granted for `requested` under `grants`: for each requested
/// entry, the requested actions that some matching grant allows (`*` in a
/// grant allows everything). Entries with no allowed action are dropped.
pub fn intersect(requested: &[Access], grants: &[Grant]) -> Vec<Access> {
    let mut out: Vec<Access> = Vec::new();
    for req in requested {
        let allowed: Vec<&String> = grants
            .iter()
            .filter(|g| g.matches(&req.kind, &req.name))
            .flat_map(|g| g.actions.iter())
            .collect();
        let wildcard = allowed.iter().any(|a| a.as_str() == "*");
        let mut actions: Vec<String> = Vec::new();
        for a in &req.actions {
            if (wildcard || allowed.contains(&a)) && !actions.contains(a) {
                actions.push(a.clone());
            }
        }
        if actions.is_empty() {
            continue;
        }
        // Merge repeated requests for the same resource.
        if let Some(existing) = out
            .iter_mut()
            .find(|e| e.kind == req.kind && e.name == req.name)
        {
            for a in actions {
                if !existing.actions.contains(&a) {
                    existing.actions.push(a);
                }
            }
        } else {
            out.push(Access {
                kind: req.kind.clone(),
                name: req.name.clone(),
                actions,
            });
        }
    }
    out
}

struct IssuerInner {
    issuer: String,
    service: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    cert_der: Vec<u8>,
    cert_pem: String,
}

/// Signs ES256 JWTs that distribution 2.8 accepts.
///
/// Holds an ECDSA P-256 key and a self-signed certificate for it (made with
/// rcgen). The registry trusts the certificate through its `rootcertbundle`
/// (see [`TokenIssuer::root_cert_pem`]) and every token names it in `x5c`.
/// Cheap to clone (shared inside).
#[derive(Clone)]
pub struct TokenIssuer {
    inner: Arc<IssuerInner>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.inner.issuer)
            .field("service", &self.inner.service)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// A new key and certificate. `issuer` becomes the `iss` claim (and must
    /// equal the registry's `auth.token.issuer`); `service` becomes `aud`
    /// (and must equal `auth.token.service`).
    pub fn new(issuer: &str, service: &str) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("cannot generate an ECDSA P-256 key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| anyhow::anyhow!("cannot load the generated key: {e}"))?;
        let rc_key = rcgen::KeyPair::try_from(pkcs8.as_ref()).context("rcgen cannot load key")?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{issuer} token signer"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        let cert = params.self_signed(&rc_key).context("cannot self-sign")?;
        Ok(Self {
            inner: Arc::new(IssuerInner {
                issuer: issuer.to_string(),
                service: service.to_string(),
                key,
                rng,
                cert_der: cert.der().to_vec(),
                cert_pem: cert.pem(),
            }),
        })
    }

    /// The `iss` claim of every token.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The service name, used as the `aud` claim.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// PEM of the signing certificate: the registry's `rootcertbundle`.
    pub fn root_cert_pem(&self) -> &str {
        &self.inner.cert_pem
    }

    /// DER of the signing certificate (what `x5c` carries, base64).
    pub fn cert_der(&self) -> &[u8] {
        &self.inner.cert_der
    }

    /// The uncompressed P-256 public key (65 bytes, `04 || X || Y`).
    pub fn public_key(&self) -> &[u8] {
        self.inner.key.public_key().as_ref()
    }

    /// Writes [`Self::root_cert_pem`] to `path`.
    pub fn write_root_cert_bundle(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.root_cert_pem())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The standard claim set for `subject` (empty string for anonymous)
    /// with `access`, valid from now for `lifetime`. Modify it and pass it
    /// to [`Self::sign_claims`] for unusual tokens (expired, extra claims).
    pub fn claims(
        &self,
        subject: &str,
        access: &[Access],
        lifetime: Duration,
    ) -> serde_json::Value {
        let now = unix_now();
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        json!({
            "iss": self.inner.issuer,
            "sub": subject,
            "aud": self.inner.service,
            "exp": now.saturating_add(lifetime),
            "nbf": now - NBF_SLACK_SECS,
            "iat": now,
            "jti": self.random_hex(16),
            "access": access,
        })
    }

    /// Signs the standard claims (see [`Self::claims`]) as an ES256 JWT.
    pub fn sign(
        &self,
        subject: &str,
        access: &[Access],
        lifetime: Duration,
    ) -> anyhow::Result<String> {
        self.sign_claims(&self.claims(subject, access, lifetime))
    }

    /// Signs an arbitrary claim set as an ES256 JWT whose header is
    /// `{"typ":"JWT","alg":"ES256","x5c":[<base64 DER of the certificate>]}`.
    pub fn sign_claims(&self, claims: &serde_json::Value) -> anyhow::Result<String> {
        let header = json!({
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [STANDARD.encode(&self.inner.cert_der)],
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
        );
        let sig = self
            .inner
            .key
            .sign(&self.inner.rng, signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("ECDSA signing failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        ))
    }

    /// Checks a JWT's ES256 signature against this issuer's key and its
    /// `exp` (no leeway), returning the claims.
    pub fn verify(&self, token: &str) -> anyhow::Result<serde_json::Value> {
        let claims = self.verify_signature(token)?;
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .context("token has no numeric exp")?;
        anyhow::ensure!(exp >= unix_now(), "token expired at {exp}");
        Ok(claims)
    }

    /// Checks only the signature (not `exp`), returning the claims.
    pub fn verify_signature(&self, token: &str) -> anyhow::Result<serde_json::Value> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            anyhow::bail!("a JWT has three dot-separated parts");
        };
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .context("signature is not base64url")?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.public_key())
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| anyhow::anyhow!("bad token signature"))?;
        let claims = URL_SAFE_NO_PAD
            .decode(c)
            .context("claims are not base64url")?;
        Ok(serde_json::from_slice(&claims)?)
    }

    /// `n` random bytes, hex encoded (for `jti` and refresh tokens).
    pub fn random_hex(&self, n: usize) -> String {
        let mut buf = vec![0u8; n];
        // SystemRandom only fails if the OS has no randomness at all.
        self.inner.rng.fill(&mut buf).unwrap_or_default();
        hex(&buf)
    }
}

/// Decodes a JWT's claims without verifying anything (for assertions).
pub fn decode_claims_unverified(token: &str) -> anyhow::Result<serde_json::Value> {
    let claims = token.split('.').nth(1).context("not a JWT")?;
    let claims = URL_SAFE_NO_PAD
        .decode(claims)
        .context("claims are not base64url")?;
    Ok(serde_json::from_slice(&claims)?)
}

#[derive(Debug, Clone)]
struct User {
    password: String,
    grants: Vec<Grant>,
}

#[derive(Debug)]
struct Config {
    users: HashMap<String, User>,
    /// `None`: anonymous requests get 401.
    anonymous: Option<Vec<Grant>>,
    lifetime: Duration,
    expiry_skew_secs: i64,
    fail_next: Vec<(u16, String)>,
}

#[derive(Debug)]
struct State {
    issuer: TokenIssuer,
    config: Mutex<Config>,
    /// refresh token -> user name
    refresh_tokens: Mutex<HashMap<String, String>>,
    log: Mutex<Vec<TokenRequest>>,
}

/// One request the [`TokenServer`] handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST` (or whatever was sent).
    pub method: String,
    /// Request path, e.g. `/token`.
    pub path: String,
    /// Raw query string (without `?`), empty when absent.
    pub query: String,
    /// Decoded query and form parameters in order; `password` and
    /// `refresh_token` values are replaced by `<redacted>`.
    pub params: Vec<(String, String)>,
    /// Whether an `Authorization` header was present.
    pub had_authorization: bool,
    /// User named by `Authorization: Basic` or the `username` form field.
    pub username: Option<String>,
    /// `grant_type` (POST) — `None` for GET.
    pub grant_type: Option<String>,
    /// `service` parameter.
    pub service: Option<String>,
    /// `client_id` parameter.
    pub client_id: Option<String>,
    /// Whether a refresh token was asked for (`offline_token=true` or
    /// `access_type=offline`).
    pub offline: bool,
    /// Scopes asked for, parsed.
    pub requested: Vec<Access>,
    /// Access granted (empty when refused).
    pub granted: Vec<Access>,
    /// Response status.
    pub status: u16,
    /// The authenticated subject (`None` for anonymous or refused).
    pub subject: Option<String>,
}

/// Configures and starts a [`TokenServer`].
#[derive(Debug)]
pub struct TokenServerBuilder {
    issuer: Option<TokenIssuer>,
    issuer_name: String,
    service: String,
    users: HashMap<String, User>,
    anonymous: Option<Vec<Grant>>,
    lifetime: Duration,
}

impl Default for TokenServerBuilder {
    fn default() -> Self {
        Self {
            issuer: None,
            issuer_name: TokenServer::DEFAULT_ISSUER.into(),
            service: TokenServer::DEFAULT_SERVICE.into(),
            users: HashMap::new(),
            anonymous: Some(Vec::new()),
            lifetime: Duration::from_secs(300),
        }
    }
}

impl TokenServerBuilder {
    /// The service name (`aud`, registry `auth.token.service`). Ignored when
    /// [`Self::issuer`] supplies an issuer.
    pub fn service(mut self, service: &str) -> Self {
        self.service = service.into();
        self
    }

    /// The issuer name (`iss`, registry `auth.token.issuer`). Ignored when
    /// [`Self::issuer`] supplies an issuer.
    pub fn issuer_name(mut self, issuer: &str) -> Self {
        self.issuer_name = issuer.into();
        self
    }

    /// Sign with this issuer (its issuer name and service are used).
    pub fn issuer(mut self, issuer: TokenIssuer) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// Adds (or replaces) a user with a password and grants.
    pub fn user(
        mut self,
        name: &str,
        password: &str,
        grants: impl IntoIterator<Item = Grant>,
    ) -> Self {
        self.users.insert(
            name.into(),
            User {
                password: password.into(),
                grants: grants.into_iter().collect(),
            },
        );
        self
    }

    /// Adds the conventional test users: `alice`/`s3cret` with pull, push
    /// and delete on every repository plus the catalog, and
    /// `reader`/`r3ader` with pull on every repository.
    pub fn default_users(self) -> Self {
        self.user(
            TokenServer::ALICE.0,
            TokenServer::ALICE.1,
            [Grant::all_repositories(), Grant::catalog()],
        )
        .user(
            TokenServer::READER.0,
            TokenServer::READER.1,
            [Grant::pull_all()],
        )
    }

    /// What anonymous callers may do (default: nothing — they get a token
    /// with an empty `access`, as Docker Hub does).
    pub fn anonymous(mut self, grants: impl IntoIterator<Item = Grant>) -> Self {
        self.anonymous = Some(grants.into_iter().collect());
        self
    }

    /// Anonymous requests are refused with 401 instead of getting a token.
    pub fn deny_anonymous(mut self) -> Self {
        self.anonymous = None;
        self
    }

    /// Token lifetime (`expires_in` and `exp - iat`); default 300 s.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Binds 127.0.0.1:0 and starts serving.
    pub async fn start(self) -> anyhow::Result<TokenServer> {
        let issuer = match self.issuer {
            Some(i) => i,
            None => TokenIssuer::new(&self.issuer_name, &self.service)?,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            issuer,
            config: Mutex::new(Config {
                users: self.users,
                anonymous: self.anonymous,
                lifetime: self.lifetime,
                expiry_skew_secs: 0,
                fail_next: Vec::new(),
            }),
            refresh_tokens: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(TokenServer { addr, state, task })
    }
}

/// A distribution token-auth server on `127.0.0.1:<random port>`.
///
/// Serves `GET /token` and `POST /token`. Stops when dropped.
#[derive(Debug)]
pub struct TokenServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenServer {
    /// Default `iss`.
    pub const DEFAULT_ISSUER: &'static str = "acr-import-test-issuer";
    /// Default service name.
    pub const DEFAULT_SERVICE: &'static str = "acr-import-test-registry";
    /// The full-access user added by [`TokenServerBuilder::default_users`].
    pub const ALICE: (&'static str, &'static str) = ("alice", "s3cret");
    /// The pull-only user added by [`TokenServerBuilder::default_users`].
    pub const READER: (&'static str, &'static str) = ("reader", "r3ader");

    /// A builder with no users and anonymous callers getting empty tokens.
    pub fn builder() -> TokenServerBuilder {
        TokenServerBuilder::default()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The realm: `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The service name (`aud`).
    pub fn service(&self) -> &str {
        self.state.issuer.service()
    }

    /// The issuer that signs this server's tokens.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.state.issuer
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.state.config).lifetime = lifetime;
    }

    /// Shifts the `exp` claim of tokens issued from now on by `secs`
    /// (negative: earlier) while `expires_in` still reports the lifetime.
    /// Distribution 2.8 accepts tokens up to 60 s past `exp`, so a skew of
    /// `-(lifetime + 61)` seconds or more makes the registry reject tokens the
    /// client believes valid (e.g. lifetime 300 s, skew -420: `exp` is 120 s
    /// in the past).
    pub fn set_expiry_skew(&self, secs: i64) {
        lock(&self.state.config).expiry_skew_secs = secs;
    }

    /// Adds or replaces a user.
    pub fn set_user(&self, name: &str, password: &str, grants: impl IntoIterator<Item = Grant>) {
        lock(&self.state.config).users.insert(
            name.into(),
            User {
                password: password.into(),
                grants: grants.into_iter().collect(),
            },
        );
    }

    /// Removes a user (its refresh tokens stop working too).
    pub fn remove_user(&self, name: &str) {
        lock(&self.state.config).users.remove(name);
    }

    /// Sets anonymous access: `None` refuses anonymous requests with 401,
    /// `Some(grants)` issues tokens limited to `grants`.
    pub fn set_anonymous(&self, grants: Option<Vec<Grant>>) {
        lock(&self.state.config).anonymous = grants;
    }

    /// The next request is answered with `status` and this JSON/text body
    /// instead of being served (queue several by calling repeatedly).
    pub fn fail_next(&self, status: u16, body: &str) {
        lock(&self.state.config)
            .fail_next
            .push((status, body.into()));
    }

    /// Forgets every refresh token issued so far.
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.state.refresh_tokens).clear();
    }

    /// Refresh tokens currently valid.
    pub fn refresh_token_count(&self) -> usize {
        lock(&self.state.refresh_tokens).len()
    }

    /// Every request handled so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.state.log).clone()
    }

    /// How many requests were handled so far.
    pub fn request_count(&self) -> usize {
        lock(&self.state.log).len()
    }

    /// Clears the request log.
    pub fn clear_requests(&self) {
        lock(&self.state.log).clear();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_json(code: &str, message: &str) -> serde_json::Value {
    json!({
        "error": code,
        "error_description": message,
        "errors": [{"code": code.to_ascii_uppercase(), "message": message}],
    })
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };

    let mut params = parse_form(&query);
    if method == Method::POST {
        params.extend(parse_form(&String::from_utf8_lossy(&body)));
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut record = TokenRequest {
        method: method.to_string(),
        path: path.clone(),
        query,
        params: params
            .iter()
            .map(|(k, v)| {
                let v = if k == "password" || k == "refresh_token" {
                    "<redacted>".to_string()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect(),
        had_authorization: auth.is_some(),
        username: None,
        grant_type: if method == Method::POST {
            get("grant_type")
        } else {
            None
        },
        service: get("service"),
        client_id: get("client_id"),
        offline: get("offline_token").as_deref() == Some("true")
            || get("access_type").as_deref() == Some("offline"),
        requested: params
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| parse_scopes(v))
            .collect(),
        granted: Vec::new(),
        status: 0,
        subject: None,
    };
    let resp = serve(state, &method, &path, auth.as_deref(), &params, &mut record);
    record.status = resp.status().as_u16();
    lock(&state.log).push(record);
    resp
}

fn serve(
    state: &State,
    method: &Method,
    path: &str,
    auth: Option<&str>,
    params: &[(String, String)],
    record: &mut TokenRequest,
) -> Response<Full<Bytes>> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut cfg = lock(&state.config);
    if !cfg.fail_next.is_empty() {
        let (status, body) = cfg.fail_next.remove(0);
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return resp;
    }
    if path != "/token" {
        return json_response(
            StatusCode::NOT_FOUND,
            &error_json("not_found", "no such endpoint"),
        );
    }
    if method != Method::GET && method != Method::POST {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &error_json("unsupported", "use GET or POST"),
        );
    }
    match get("service") {
        Some(s) if s == state.issuer.service() => {}
        Some(s) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &error_json("invalid_request", &format!("unknown service {s:?}")),
            );
        }
        None if *method == Method::POST => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &error_json("invalid_request", "missing service"),
            );
        }
        None => {}
    }

    // Who is asking?
    let unauthorized =
        |msg: &str| json_response(StatusCode::UNAUTHORIZED, &error_json("unauthorized", msg));
    let check_password = |user: &str, pass: &str| -> Option<Vec<Grant>> {
        match cfg.users.get(user) {
            Some(u) if u.password == pass => Some(u.grants.clone()),
            _ => None,
        }
    };
    let mut subject: Option<String> = None;
    let grants: Vec<Grant>;
    if let Some(auth) = auth {
        let Some((user, pass)) = parse_basic(auth) else {
            return unauthorized("unsupported Authorization header");
        };
        record.username = Some(user.clone());
        grants = match check_password(&user, &pass) {
            Some(g) => g,
            None => return unauthorized("invalid username or password"),
        };
        subject = Some(user);
    } else if *method == Method::POST {
        match get("grant_type") {
            Some("password") => {
                let (Some(user), Some(pass)) = (get("username"), get("password")) else {
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        &error_json("invalid_request", "missing username or password"),
                    );
                };
                record.username = Some(user.to_string());
                grants = match check_password(user, pass) {
                    Some(g) => g,
                    None => return unauthorized("invalid username or password"),
                };
                subject = Some(user.to_string());
            }
            Some("refresh_token") => {
                let Some(rt) = get("refresh_token") else {
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        &error_json("invalid_request", "missing refresh_token"),
                    );
                };
                let owner = lock(&state.refresh_tokens).get(rt).cloned();
                let Some(user) = owner.filter(|u| cfg.users.contains_key(u)) else {
                    return unauthorized("invalid refresh token");
                };
                record.username = Some(user.clone());
                grants = cfg
                    .users
                    .get(&user)
                    .map(|u| u.grants.clone())
                    .unwrap_or_default();
                subject = Some(user);
            }
            other => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &error_json(
                        "unsupported_grant_type",
                        &format!("unsupported grant_type {other:?}"),
                    ),
                );
            }
        }
    } else {
        match &cfg.anonymous {
            Some(g) => grants = g.clone(),
            None => return unauthorized("anonymous access is not allowed"),
        }
    }

    let granted = intersect(&record.requested, &grants);
    let lifetime = cfg.lifetime;
    let skew = cfg.expiry_skew_secs;
    drop(cfg);

    let mut claims = state
        .issuer
        .claims(subject.as_deref().unwrap_or(""), &granted, lifetime);
    if let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_i64) {
        claims["exp"] = json!(exp.saturating_add(skew));
    }
    let iat = claims
        .get("iat")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or_else(unix_now);
    let token = match state.issuer.sign_claims(&claims) {
        Ok(t) => t,
        Err(e) => {
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &error_json("server_error", &e.to_string()),
            );
        }
    };
    let mut body = json!({
        "token": token,
        "access_token": token,
        "expires_in": lifetime.as_secs(),
        "issued_at": rfc3339(iat),
        "scope": granted.iter().map(Access::to_scope).collect::<Vec<_>>().join(" "),
    });
    if record.offline
        && let Some(user) = &subject
    {
        let rt = match get("refresh_token") {
            Some(existing) if record.grant_type.as_deref() == Some("refresh_token") => {
                existing.to_string()
            }
            _ => {
                let rt = state.issuer.random_hex(24);
                lock(&state.refresh_tokens).insert(rt.clone(), user.clone());
                rt
            }
        };
        body["refresh_token"] = json!(rt);
    }
    record.granted = granted;
    record.subject = subject;
    json_response(StatusCode::OK, &body)
}

/// Parses `Basic base64(user:pass)`.
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// `Basic base64(user:pass)` — an `Authorization` header value.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_parsing() {
        assert_eq!(
            Access::parse_scope("repository:library/alpine:pull,push"),
            Some(Access::repository("library/alpine", &["pull", "push"]))
        );
        assert_eq!(
            Access::parse_scope("repository:localhost:5000/a/b:pull"),
            Some(Access::repository("localhost:5000/a/b", &["pull"]))
        );
        assert_eq!(
            Access::parse_scope("repository(plugin):x:pull"),
            Some(Access::repository("x", &["pull"]))
        );
        assert_eq!(
            Access::parse_scope("registry:catalog:*"),
            Some(Access::catalog())
        );
        assert_eq!(Access::parse_scope("garbage"), None);
        assert_eq!(Access::parse_scope("repository::pull"), None);
        assert_eq!(
            parse_scopes(" repository:a:pull  bad registry:catalog:* ").len(),
            2
        );
    }

    #[test]
    fn intersection() {
        let grants = [
            Grant::repository("team/*", &["pull", "push"]),
            Grant::repository("exact", &["pull"]),
        ];
        let req = [
            Access::repository("team/x", &["pull", "push", "delete"]),
            Access::repository("exact", &["pull", "push"]),
            Access::repository("other", &["pull"]),
            Access::catalog(),
        ];
        assert_eq!(
            intersect(&req, &grants),
            vec![
                Access::repository("team/x", &["pull", "push"]),
                Access::repository("exact", &["pull"]),
            ]
        );
        assert_eq!(
            intersect(&req[..1], &[Grant::repository("*", &["*"])]),
            vec![Access::repository("team/x", &["pull", "push", "delete"])]
        );
    }

    #[test]
    fn sign_and_verify() {
        let issuer = TokenIssuer::new("iss", "svc").expect("issuer");
        let token = issuer
            .sign(
                "alice",
                &[Access::repository("a", &["pull"])],
                Duration::from_secs(60),
            )
            .expect("sign");
        let claims = issuer.verify(&token).expect("verify");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["aud"], "svc");
        assert_eq!(claims["access"][0]["name"], "a");
        let mut tampered = token.clone();
        tampered.push('A');
        assert!(issuer.verify(&tampered).is_err());
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().expect("header"))
            .expect("b64");
        let header: serde_json::Value = serde_json::from_slice(&header).expect("json");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(
            STANDARD
                .decode(header["x5c"][0].as_str().expect("x5c"))
                .expect("der"),
            issuer.cert_der()
        );
    }

    #[test]
    fn basic_round_trip() {
        assert_eq!(
            parse_basic(&basic_auth("u", "p:w")),
            Some(("u".into(), "p:w".into()))
        );
    }
}
