//! Azure AD → ACR: the `/oauth2/exchange` call and the credential provider around it.
//!
//! ACR does not take Azure AD tokens at its token endpoint. The client first trades one at
//! `POST https://<login server>/oauth2/exchange` (form `grant_type=access_token`,
//! `service=<login server>`, `tenant=<tenant id>`, `access_token=<Azure AD token>`) for an ACR
//! refresh token (`{"refresh_token": "<JWT>"}`), then uses that refresh token at
//! `/oauth2/token` like any Docker identity token. [`AcrTokenExchange`] does the first step
//! and caches the refresh token per login server until shortly before its `exp`;
//! [`AzureAdProvider`] hands it out as [`Credential::RefreshToken`] so that the
//! [`Authenticator`](crate::Authenticator) does the second.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use bytes::Bytes;

use super::aad::{AadCredentialChain, AadExplanation};
use super::audience::AcrAudience;
use super::env::{ACR_IMPORT_LOGIN_SERVER_SUFFIX, AzureEnvironment};
use crate::credential::{Credential, CredentialProvider, registry_key};
use crate::exchange::{HttpExchange, is_loopback_host};
use crate::{AuthError, Secret};

/// The login-server suffixes of the public, China and US Government clouds.
pub const DEFAULT_ACR_SUFFIXES: [&str; 3] = [".azurecr.io", ".azurecr.cn", ".azurecr.us"];

/// Refresh tokens without a readable `exp` are reused this long.
const DEFAULT_REFRESH_TOKEN_REUSE: Duration = Duration::from_secs(300);
/// The longest safety margin before a refresh token's `exp`.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// How much of an exchange error body goes into a message.
const DETAIL_CHARS: usize = 200;

/// Which registries are ACR login servers: hosts ending with one of the suffixes
/// (case-insensitive, port ignored), or listed explicitly (`host[:port]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcrLoginServers {
    suffixes: Vec<String>,
    hosts: Vec<String>,
}

impl Default for AcrLoginServers {
    fn default() -> Self {
        Self {
            suffixes: DEFAULT_ACR_SUFFIXES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            hosts: Vec::new(),
        }
    }
}

impl AcrLoginServers {
    /// The default suffixes ([`DEFAULT_ACR_SUFFIXES`]), no explicit host.
    pub fn new() -> Self {
        Self::default()
    }

    /// The defaults plus the suffix of `ACR_IMPORT_LOGIN_SERVER_SUFFIX`, when set.
    pub fn from_env(env: &AzureEnvironment) -> Self {
        let servers = Self::new();
        match env.var(ACR_IMPORT_LOGIN_SERVER_SUFFIX) {
            Some(suffix) => servers.with_suffix(suffix),
            None => servers,
        }
    }

    /// Adds a suffix (a leading `.` is added when missing).
    pub fn with_suffix(mut self, suffix: &str) -> Self {
        let suffix = suffix.trim().to_ascii_lowercase();
        let suffix = if suffix.starts_with('.') {
            suffix
        } else {
            format!(".{suffix}")
        };
        if suffix.len() > 1 && !self.suffixes.contains(&suffix) {
            self.suffixes.push(suffix);
        }
        self
    }

    /// Adds one login server by name (`myregistry.example:5000`, `127.0.0.1:PORT`).
    pub fn with_host(mut self, host: &str) -> Self {
        let host = registry_key(host);
        if !self.hosts.contains(&host) {
            self.hosts.push(host);
        }
        self
    }

    /// Whether `registry` (`host[:port]`) is an ACR login server.
    pub fn matches(&self, registry: &str) -> bool {
        let key = registry_key(registry);
        if self.hosts.contains(&key) {
            return true;
        }
        let host = host_of(&key);
        self.suffixes
            .iter()
            .any(|s| host.ends_with(s.as_str()) && host.len() > s.len())
    }
}

struct CachedRefresh {
    token: Secret,
    use_until: Instant,
}

/// Trades Azure AD tokens for ACR refresh tokens, cached per login server.
pub struct AcrTokenExchange {
    http: Arc<dyn HttpExchange>,
    credential: Arc<dyn TokenCredential>,
    via: String,
    tenant_id: Option<String>,
    audience: AcrAudience,
    loopback_http: bool,
    /// What each registry's ARM properties say about ARM-audience tokens.
    arm_accepted: std::sync::Mutex<HashMap<String, bool>>,
    cache: tokio::sync::Mutex<HashMap<String, CachedRefresh>>,
}

impl fmt::Debug for AcrTokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcrTokenExchange")
            .field("via", &self.via)
            .field("tenant_id", &self.tenant_id)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl AcrTokenExchange {
    /// Exchanges tokens of `credential` (named `via` in messages), sending requests through
    /// `http`. Audience: [`AcrAudience::Auto`]; tenant: the `tid` claim of each Azure AD token.
    pub fn new(
        http: Arc<dyn HttpExchange>,
        credential: Arc<dyn TokenCredential>,
        via: impl Into<String>,
    ) -> Self {
        Self {
            http,
            credential,
            via: via.into(),
            tenant_id: None,
            audience: AcrAudience::default(),
            loopback_http: true,
            arm_accepted: std::sync::Mutex::new(HashMap::new()),
            cache: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The audience of the Azure AD token. Default: [`AcrAudience::Auto`].
    pub fn with_audience(mut self, audience: AcrAudience) -> Self {
        self.audience = audience;
        self
    }

    /// The audience asked for.
    pub fn audience(&self) -> AcrAudience {
        self.audience
    }

    /// Records whether `login_server` accepts ARM-audience tokens (its
    /// `policies.azureADAuthenticationAsArmPolicy.status`): with [`AcrAudience::Auto`], the ARM
    /// audience is tried after the ACR one only where this said `true`.
    pub fn set_arm_audience_accepted(&self, login_server: &str, accepted: bool) {
        self.arm_accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(registry_key(login_server), accepted);
    }

    fn arm_accepted(&self, key: &str) -> Option<bool> {
        self.arm_accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    /// The `tenant` sent to ACR. Default: the `tid` claim of the Azure AD token.
    pub fn with_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// Whether a loopback login server (`127.0.0.1:PORT`, `localhost:PORT`) is reached over
    /// plain http (an emulator, a tunnel to a test registry). Default: yes. Every other login
    /// server is always reached over https.
    pub fn with_loopback_http(mut self, yes: bool) -> Self {
        self.loopback_http = yes;
        self
    }

    /// The `/oauth2/exchange` URL of `login_server` (`host[:port]`); an error for anything
    /// that is not a host (userinfo, a path…).
    pub fn exchange_url(&self, login_server: &str) -> Result<url::Url, AuthError> {
        let key = registry_key(login_server);
        let scheme = if self.loopback_http && is_loopback_host(host_of(&key)) {
            "http"
        } else {
            "https"
        };
        let mut url = crate::host_url(scheme, &key).map_err(|reason| AuthError::AzureConfig {
            reason: format!("`{login_server}` is not a login server: {reason}"),
        })?;
        url.path_segments_mut()
            .expect("http(s) URLs have a path")
            .extend(["oauth2", "exchange"]);
        Ok(url)
    }

    /// Forgets the cached refresh token of `login_server` (the registry refused it).
    pub async fn invalidate(&self, login_server: &str) {
        self.cache.lock().await.remove(&registry_key(login_server));
    }

    /// An ACR refresh token for `login_server`: the cached one while it is fresh, otherwise a
    /// new Azure AD token exchanged at `/oauth2/exchange` — for the ACR audience first, then
    /// (with [`AcrAudience::Auto`]) for the registry's ARM audience when it is known to accept
    /// it. A failure reports the first audience's error.
    pub async fn refresh_token(&self, login_server: &str) -> Result<Secret, AuthError> {
        let key = registry_key(login_server);
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.get(&key)
            && Instant::now() < cached.use_until
        {
            return Ok(cached.token.clone());
        }
        let scopes = self.audience.scopes_for(&key, self.arm_accepted(&key));
        let mut first_error = None;
        for scope in &scopes {
            match self.exchange_for(&key, scope).await {
                Ok(token) => {
                    let use_until = reuse_until(token.expose());
                    cache.insert(
                        key,
                        CachedRefresh {
                            token: token.clone(),
                            use_until,
                        },
                    );
                    return Ok(token);
                }
                Err(e) => {
                    tracing::debug!(registry = %key, scope, "ACR token exchange failed: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| AuthError::AzureConfig {
            reason: "no Azure AD audience to ask for".to_owned(),
        }))
    }

    /// One exchange: an Azure AD token for `scope`, traded at `/oauth2/exchange`.
    async fn exchange_for(&self, key: &str, scope: &str) -> Result<Secret, AuthError> {
        let aad = self
            .credential
            .get_token(&[scope], None)
            .await
            .map_err(|e| AuthError::AzureToken {
                via: self.via.clone(),
                reason: scrub(&e.to_string()),
            })?;
        let aad_token = Secret::new(aad.token.secret());
        let tenant = self
            .tenant_id
            .clone()
            .or_else(|| jwt_claim_str(aad_token.expose(), "tid"));
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "access_token");
            form.append_pair("service", key);
            if let Some(t) = &tenant {
                form.append_pair("tenant", t);
            }
            form.append_pair("access_token", aad_token.expose());
            Secret::new(form.finish())
        };
        let request = http::Request::post(self.exchange_url(key)?.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Bytes::copy_from_slice(body.expose().as_bytes()))
            .map_err(|e| AuthError::InvalidCredential {
                reason: format!("cannot build the ACR exchange request: {e}"),
            })?;
        let response = self.http.exchange(request).await?;
        let status = response.status();
        if status != http::StatusCode::OK {
            return Err(AuthError::AcrAccessDenied {
                registry: key.to_owned(),
                status: status.as_u16(),
                detail: format!("{} (token audience {scope})", error_detail(response.body())),
            });
        }
        let invalid = |reason: &str| AuthError::AcrInvalidExchangeResponse {
            registry: key.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed: serde_json::Value =
            serde_json::from_slice(response.body()).map_err(|_| invalid("not JSON"))?;
        let token = parsed
            .get("refresh_token")
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("no refresh_token in it"))?;
        Ok(Secret::new(token))
    }
}

/// Azure AD for ACR login servers: a [`CredentialProvider`] that answers
/// [`Credential::RefreshToken`] (an exchanged ACR refresh token) for the registries of its
/// [`AcrLoginServers`] and [`Credential::Anonymous`] for every other registry, or when no
/// Azure AD credential is configured.
pub struct AzureAdProvider {
    exchange: Option<AcrTokenExchange>,
    servers: AcrLoginServers,
    aad: Option<AadExplanation>,
}

impl fmt::Debug for AzureAdProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureAdProvider")
            .field("exchange", &self.exchange)
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

impl AzureAdProvider {
    /// A provider around an exchange.
    pub fn new(exchange: AcrTokenExchange, servers: AcrLoginServers) -> Self {
        Self {
            exchange: Some(exchange),
            servers,
            aad: None,
        }
    }

    /// A provider for the credential `chain` chose (none: the provider gives nothing), with
    /// the chain's tenant and `audience`.
    pub fn from_chain(
        chain: &AadCredentialChain,
        http: Arc<dyn HttpExchange>,
        servers: AcrLoginServers,
        audience: AcrAudience,
    ) -> Self {
        let exchange = chain.credential().map(|credential| {
            let via = chain
                .explanation()
                .chosen
                .as_ref()
                .map_or_else(String::new, |(source, detail)| {
                    format!("{source}, {detail}")
                });
            let exchange = AcrTokenExchange::new(http, credential, via).with_audience(audience);
            match chain.tenant_id() {
                Some(t) => exchange.with_tenant(t),
                None => exchange,
            }
        });
        Self {
            exchange,
            servers,
            aad: Some(chain.explanation().clone()),
        }
    }

    /// Whether `registry` is one of the login servers.
    pub fn is_login_server(&self, registry: &str) -> bool {
        self.servers.matches(registry)
    }

    /// Whether an Azure AD credential is configured.
    pub fn is_configured(&self) -> bool {
        self.exchange.is_some()
    }

    /// The exchange, when a credential is configured.
    pub fn exchange(&self) -> Option<&AcrTokenExchange> {
        self.exchange.as_ref()
    }

    /// The chain's explanation, when the provider was built from one.
    pub fn aad_explanation(&self) -> Option<&AadExplanation> {
        self.aad.as_ref()
    }

    /// What the provider would use, for explanations (`Azure AD (client secret …) → ACR
    /// token exchange`).
    pub fn describe(&self) -> String {
        match &self.exchange {
            Some(e) => format!(
                "Azure AD ({}, {}) exchanged for an ACR refresh token",
                e.via,
                e.audience.describe()
            ),
            None => "Azure AD (no credential configured)".to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl CredentialProvider for AzureAdProvider {
    async fn credential(&self, registry: &str) -> Result<Credential, AuthError> {
        match &self.exchange {
            Some(exchange) if self.servers.matches(registry) => exchange
                .refresh_token(registry)
                .await
                .map(Credential::RefreshToken),
            _ => Ok(Credential::Anonymous),
        }
    }
}

/// The host of a `host[:port]` key (IPv6 brackets kept).
fn host_of(key: &str) -> &str {
    if key.starts_with('[') {
        return key.split_once(']').map_or(key, |(h, _)| &h[1..]);
    }
    key.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(key, |(h, _)| h)
}

/// A string claim of a JWT (`tid`, `oid`…), read without verifying it; `None` for anything
/// that is not a JWT or lacks the claim.
pub fn jwt_claim_str(token: &str, claim: &str) -> Option<String> {
    jwt_claims(token)?.get(claim)?.as_str().map(str::to_owned)
}

fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    crate::jwt::payload(token)
}

/// When a refresh token should be exchanged again: before its `exp` by a fifth of its
/// remaining life, at most [`MAX_REFRESH_MARGIN`]; never later than
/// [`MAX_TOKEN_LIFETIME`](crate::token::MAX_TOKEN_LIFETIME) from now.
fn reuse_until(token: &str) -> Instant {
    let now = Instant::now();
    let exp = jwt_claims(token).and_then(|c| c.get("exp").and_then(serde_json::Value::as_i64));
    let Some(exp) = exp else {
        return now + DEFAULT_REFRESH_TOKEN_REUSE;
    };
    let left = crate::jwt::time_until(exp, crate::token::MAX_TOKEN_LIFETIME);
    let margin = (left / 5).min(MAX_REFRESH_MARGIN);
    now + left.saturating_sub(margin)
}

/// ACR's error message (`{"errors":[{"message":…}]}`, or the raw body), cut short and with
/// anything that looks like a token removed.
fn error_detail(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.pointer("/errors/0/message")
                .or_else(|| v.get("error_description"))
                .or_else(|| v.get("message"))
                .or_else(|| v.get("error"))
        })
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let message = scrub(&message);
    let mut out: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(DETAIL_CHARS)
        .collect();
    if message.chars().count() > DETAIL_CHARS {
        out.push('…');
    }
    if out.trim().is_empty() {
        "no reason given".to_owned()
    } else {
        out
    }
}

/// Replaces JWT-looking words (`eyJ…`) by `[token]`.
fn scrub(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains("eyJ") && word.len() > 20 {
                "[token]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::fake::FakeCredential;
    use crate::exchange::ExchangeError;
    use azure_core::time::OffsetDateTime;
    use base64::Engine as _;
    use std::sync::Mutex;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn jwt(claims: serde_json::Value) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.c2ln",
            e.encode(r#"{"alg":"ES256"}"#),
            e.encode(claims.to_string())
        )
    }

    fn unix_now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// Azure AD tokens whose `aud` is the scope's resource.
    fn fixed_aad() -> Arc<FakeCredential> {
        Arc::new(FakeCredential::new(|scope, _| {
            let aud = scope.trim_end_matches("/.default");
            (
                jwt(serde_json::json!({"tid": "tenant-x", "aud": aud, "exp": unix_now() + 3600})),
                OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            )
        }))
    }

    /// A login server's `/oauth2/exchange`: answers `status`/`body`, except that tokens of an
    /// audience in `refused` get a 401.
    struct Acr {
        requests: Mutex<Vec<http::Request<Bytes>>>,
        status: u16,
        body: String,
        refused: Vec<&'static str>,
    }

    #[async_trait::async_trait]
    impl HttpExchange for Acr {
        async fn exchange(
            &self,
            request: http::Request<Bytes>,
        ) -> Result<http::Response<Bytes>, ExchangeError> {
            let form: HashMap<String, String> = url::form_urlencoded::parse(request.body())
                .into_owned()
                .collect();
            let aud = form
                .get("access_token")
                .and_then(|t| jwt_claim_str(t, "aud"))
                .unwrap_or_default();
            self.requests.lock().unwrap().push(request);
            let (status, body) = if self.refused.contains(&aud.as_str()) {
                (
                    401,
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"audience refused"}]}"#
                        .to_owned(),
                )
            } else {
                (self.status, self.body.clone())
            };
            Ok(http::Response::builder()
                .status(status)
                .body(Bytes::from(body))
                .unwrap())
        }
    }

    fn setup(status: u16, body: String) -> (Arc<Acr>, Arc<FakeCredential>, AcrTokenExchange) {
        setup_refusing(status, body, Vec::new())
    }

    fn setup_refusing(
        status: u16,
        body: String,
        refused: Vec<&'static str>,
    ) -> (Arc<Acr>, Arc<FakeCredential>, AcrTokenExchange) {
        let acr = Arc::new(Acr {
            requests: Mutex::new(Vec::new()),
            status,
            body,
            refused,
        });
        let aad = fixed_aad();
        let exchange = AcrTokenExchange::new(acr.clone(), aad.clone(), "test credential");
        (acr, aad, exchange)
    }

    #[test]
    fn login_servers() {
        let s = AcrLoginServers::new()
            .with_suffix("azurecr.example")
            .with_host("127.0.0.1:5000");
        for yes in [
            "myreg.azurecr.io",
            "MyReg.AzureCR.io:443",
            "a.azurecr.cn",
            "b.azurecr.us",
            "c.azurecr.example",
            "127.0.0.1:5000",
        ] {
            assert!(s.matches(yes), "{yes}");
        }
        for no in [
            "azurecr.io",
            ".azurecr.io",
            "docker.io",
            "myreg.azurecr.io.evil.com",
            "127.0.0.1:5001",
            "ghcr.io",
        ] {
            assert!(!s.matches(no), "{no}");
        }
        let env = AzureEnvironment::from_vars([(ACR_IMPORT_LOGIN_SERVER_SUFFIX, ".cr.private")]);
        assert!(AcrLoginServers::from_env(&env).matches("x.cr.private"));
    }

    #[test]
    fn exchange_urls() {
        let (_, _, e) = setup(200, String::new());
        let url = |e: &AcrTokenExchange, ls: &str| e.exchange_url(ls).unwrap().to_string();
        assert_eq!(
            url(&e, "MyReg.azurecr.io"),
            "https://myreg.azurecr.io/oauth2/exchange"
        );
        assert_eq!(
            url(&e, "127.0.0.1:5000"),
            "http://127.0.0.1:5000/oauth2/exchange"
        );
        // A login server is a host: userinfo cannot send the exchange elsewhere.
        assert!(e.exchange_url("evil.example@myreg.azurecr.io").is_err());
        let e = e.with_loopback_http(false);
        assert_eq!(
            url(&e, "localhost:5000"),
            "https://localhost:5000/oauth2/exchange"
        );
    }

    #[tokio::test]
    async fn exchanges_once_and_caches() {
        let refresh = jwt(serde_json::json!({"exp": unix_now() + 10800}));
        let (acr, aad, exchange) = setup(200, format!(r#"{{"refresh_token":"{refresh}"}}"#));
        let t1 = exchange.refresh_token("myreg.azurecr.io").await.unwrap();
        let t2 = exchange.refresh_token("MYREG.azurecr.io").await.unwrap();
        assert_eq!(t1.expose(), refresh);
        assert_eq!(t2.expose(), refresh);
        assert_eq!(aad.count(), 1);
        let requests = std::mem::take(&mut *acr.requests.lock().unwrap());
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.uri(), "https://myreg.azurecr.io/oauth2/exchange");
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(r.body()).into_owned().collect();
        assert_eq!(form["grant_type"], "access_token");
        assert_eq!(form["service"], "myreg.azurecr.io");
        assert_eq!(form["tenant"], "tenant-x");
        assert!(form["access_token"].starts_with("eyJ"));
        exchange.invalidate("myreg.azurecr.io").await;
        exchange.refresh_token("myreg.azurecr.io").await.unwrap();
        assert_eq!(acr.requests.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_acr_audience_first_and_arm_only_where_accepted() {
        use crate::azure::{ACR_SCOPE, ARM_SCOPE};
        let refresh = jwt(serde_json::json!({"exp": unix_now() + 10800}));
        let ok = format!(r#"{{"refresh_token":"{refresh}"}}"#);
        // Every cloud asks for the ACR audience.
        for ls in ["r.azurecr.io", "r.azurecr.cn", "r.azurecr.us"] {
            let (_, aad, exchange) = setup(200, ok.clone());
            exchange.refresh_token(ls).await.unwrap();
            assert_eq!(aad.scopes(), [ACR_SCOPE], "{ls}");
        }
        // A registry that refuses the ACR audience: no fallback unless it accepts ARM tokens.
        let refuse_acr = vec!["https://containerregistry.azure.net"];
        let (acr, aad, exchange) = setup_refusing(200, ok.clone(), refuse_acr.clone());
        let err = exchange.refresh_token("r.azurecr.cn").await.unwrap_err();
        assert!(
            err.to_string()
                .contains("token audience https://containerregistry.azure.net"),
            "{err}"
        );
        assert_eq!(aad.scopes(), [ACR_SCOPE]);
        exchange.set_arm_audience_accepted("r.azurecr.cn", true);
        exchange.refresh_token("r.azurecr.cn").await.unwrap();
        assert_eq!(
            aad.scopes(),
            [
                ACR_SCOPE,
                ACR_SCOPE,
                "https://management.chinacloudapi.cn/.default"
            ]
        );
        assert_eq!(acr.requests.lock().unwrap().len(), 3);
        // Asked for explicitly, ARM only (of the registry's cloud).
        let (_, aad, exchange) = setup(200, ok.clone());
        let exchange = exchange.with_audience(AcrAudience::Arm);
        exchange.refresh_token("r.azurecr.io").await.unwrap();
        assert_eq!(aad.scopes(), [ARM_SCOPE]);
        // A registry refusing ARM tokens (authentication as ARM disabled) takes the default.
        let (_, _, exchange) =
            setup_refusing(200, ok.clone(), vec!["https://management.azure.com"]);
        exchange.set_arm_audience_accepted("r.azurecr.io", false);
        exchange.refresh_token("r.azurecr.io").await.unwrap();
    }

    #[tokio::test]
    async fn short_lived_refresh_tokens_are_exchanged_again() {
        let refresh = jwt(serde_json::json!({"exp": unix_now()}));
        let (acr, _, exchange) = setup(200, format!(r#"{{"refresh_token":"{refresh}"}}"#));
        exchange.refresh_token("r.azurecr.io").await.unwrap();
        exchange.refresh_token("r.azurecr.io").await.unwrap();
        assert_eq!(acr.requests.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn denial_is_a_clear_error_without_tokens() {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"tenant mismatch for eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ4In0.sig"}]}"#;
        let (_, _, exchange) = setup(401, body.to_owned());
        let err = exchange.refresh_token("r.azurecr.io").await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "Access to registry 'r.azurecr.io' was denied (HTTP 401): tenant mismatch"
            ),
            "{text}"
        );
        assert!(text.contains("az login"), "{text}");
        assert!(!text.contains("eyJ"), "{text}");
    }

    #[tokio::test]
    async fn malformed_exchange_responses() {
        for body in ["<html>", "{}", r#"{"refresh_token":""}"#] {
            let (_, _, exchange) = setup(200, body.to_owned());
            let err = exchange.refresh_token("r.azurecr.io").await.unwrap_err();
            assert!(
                matches!(err, AuthError::AcrInvalidExchangeResponse { .. }),
                "{err:?}"
            );
        }
    }

    #[tokio::test]
    async fn provider_applies_to_login_servers_only() {
        let refresh = jwt(serde_json::json!({"exp": unix_now() + 3600}));
        let (_, _, exchange) = setup(200, format!(r#"{{"refresh_token":"{refresh}"}}"#));
        let provider = AzureAdProvider::new(exchange, AcrLoginServers::new());
        assert!(matches!(
            provider.credential("docker.io").await.unwrap(),
            Credential::Anonymous
        ));
        assert!(matches!(
            provider.credential("r.azurecr.io").await.unwrap(),
            Credential::RefreshToken(_)
        ));
        let shown = format!("{provider:?} {}", provider.describe());
        assert!(!shown.contains(&refresh), "{shown}");
        assert!(shown.contains("test credential"), "{shown}");
    }

    #[test]
    fn hosts_of_keys() {
        assert_eq!(host_of("a.b:443"), "a.b");
        assert_eq!(host_of("a.b"), "a.b");
        assert_eq!(host_of("[::1]:80"), "::1");
    }
}
