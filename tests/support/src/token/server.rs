//! The distribution token endpoint: `GET /token` and `POST /token`, users and their grants,
//! refresh tokens and a request log.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::serve::ServerTask;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;
use tokio::net::TcpListener;

use super::{Access, Grant, TokenIssuer, intersect};
use crate::FormRequest;
use crate::util::{rfc3339, unix_now};

/// Locks a mutex, ignoring poisoning (a panicking test must not cascade).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        let task = ServerTask::spawn(crate::serve_http1_with(
            listener,
            None,
            state.clone(),
            |state, req| async move { handle(&state, req).await },
        ));
        Ok(TokenServer {
            addr,
            state,
            _task: task,
        })
    }
}

/// A distribution token-auth server on `127.0.0.1:<random port>`.
///
/// Serves `GET /token` and `POST /token`. Stops when dropped.
#[derive(Debug)]
pub struct TokenServer {
    addr: SocketAddr,
    state: Arc<State>,
    _task: ServerTask,
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

/// A JSON response, as distribution's token servers send it.
fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    crate::serve::json_response(status, body, "application/json")
}

fn error_json(code: &str, message: &str) -> serde_json::Value {
    json!({
        "error": code,
        "error_description": message,
        "errors": [{"code": code.to_ascii_uppercase(), "message": message}],
    })
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let req = crate::FormRequest::read(req).await;
    let get = |k: &str| req.param(k).map(str::to_owned);
    let post = req.method == Method::POST;
    let mut record = TokenRequest {
        method: req.method.to_string(),
        path: req.path.clone(),
        query: req.query.clone(),
        params: req
            .params
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
        had_authorization: req.header(header::AUTHORIZATION).is_some(),
        username: None,
        grant_type: if post { get("grant_type") } else { None },
        service: get("service"),
        client_id: get("client_id"),
        offline: get("offline_token").as_deref() == Some("true")
            || get("access_type").as_deref() == Some("offline"),
        requested: req.scopes(),
        granted: Vec::new(),
        status: 0,
        subject: None,
    };
    let resp = serve(state, &req, &mut record);
    record.status = resp.status().as_u16();
    lock(&state.log).push(record);
    resp
}

/// A response that ends the request early.
type Refusal = Box<Response<Full<Bytes>>>;

fn refusal(status: StatusCode, code: &str, message: &str) -> Refusal {
    Box::new(json_response(status, &error_json(code, message)))
}

fn bad_request(code: &str, message: &str) -> Refusal {
    refusal(StatusCode::BAD_REQUEST, code, message)
}

fn unauthorized(message: &str) -> Refusal {
    refusal(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

fn serve(state: &State, req: &FormRequest, record: &mut TokenRequest) -> Response<Full<Bytes>> {
    let mut cfg = lock(&state.config);
    if let Err(refused) = check_request(state, &mut cfg, req) {
        return *refused;
    }
    let (subject, grants) = match authenticate(state, &cfg, req, record) {
        Ok(who) => who,
        Err(refused) => return *refused,
    };
    let granted = intersect(&record.requested, &grants);
    let (lifetime, skew) = (cfg.lifetime, cfg.expiry_skew_secs);
    drop(cfg);
    match issue(state, subject.as_deref(), &granted, lifetime, skew) {
        Ok(mut body) => {
            if record.offline
                && let Some(user) = &subject
            {
                body["refresh_token"] = json!(refresh_token(state, user, req, record));
            }
            record.granted = granted;
            record.subject = subject;
            json_response(StatusCode::OK, &body)
        }
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &error_json("server_error", &e.to_string()),
        ),
    }
}

/// Refuses a queued failure, another path or method, and another service.
fn check_request(state: &State, cfg: &mut Config, req: &FormRequest) -> Result<(), Refusal> {
    let method = &req.method;
    if !cfg.fail_next.is_empty() {
        let (status, body) = cfg.fail_next.remove(0);
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(Box::new(resp));
    }
    if req.path != "/token" {
        return Err(refusal(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
        ));
    }
    if method != Method::GET && method != Method::POST {
        return Err(refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "unsupported",
            "use GET or POST",
        ));
    }
    match req.param("service") {
        Some(s) if s == state.issuer.service() => Ok(()),
        Some(s) => Err(bad_request(
            "invalid_request",
            &format!("unknown service {s:?}"),
        )),
        None if *method == Method::POST => Err(bad_request("invalid_request", "missing service")),
        None => Ok(()),
    }
}

/// Who is asking and what they may do: a Basic user, a password or refresh-token grant
/// (`POST`), or an anonymous caller.
fn authenticate(
    state: &State,
    cfg: &Config,
    req: &FormRequest,
    record: &mut TokenRequest,
) -> Result<(Option<String>, Vec<Grant>), Refusal> {
    let mut password_user = |user: &str, pass: &str| {
        record.username = Some(user.to_owned());
        match cfg.users.get(user) {
            Some(u) if u.password == pass => Ok((Some(user.to_owned()), u.grants.clone())),
            _ => Err(unauthorized("invalid username or password")),
        }
    };
    if let Some(auth) = req.header(header::AUTHORIZATION) {
        let Some((user, pass)) = parse_basic(auth) else {
            return Err(unauthorized("unsupported Authorization header"));
        };
        return password_user(&user, &pass);
    }
    if req.method != Method::POST {
        return match &cfg.anonymous {
            Some(g) => Ok((None, g.clone())),
            None => Err(unauthorized("anonymous access is not allowed")),
        };
    }
    match req.param("grant_type") {
        Some("password") => match (req.param("username"), req.param("password")) {
            (Some(user), Some(pass)) => password_user(user, pass),
            _ => Err(bad_request(
                "invalid_request",
                "missing username or password",
            )),
        },
        Some("refresh_token") => {
            let Some(rt) = req.param("refresh_token") else {
                return Err(bad_request("invalid_request", "missing refresh_token"));
            };
            let owner = lock(&state.refresh_tokens).get(rt).cloned();
            let Some(user) = owner.filter(|u| cfg.users.contains_key(u)) else {
                return Err(unauthorized("invalid refresh token"));
            };
            record.username = Some(user.clone());
            let grants = cfg
                .users
                .get(&user)
                .map(|u| u.grants.clone())
                .unwrap_or_default();
            Ok((Some(user), grants))
        }
        other => Err(bad_request(
            "unsupported_grant_type",
            &format!("unsupported grant_type {other:?}"),
        )),
    }
}

/// The token response for `subject` (anonymous when `None`) with `granted`, its `exp` moved
/// by `skew` seconds.
fn issue(
    state: &State,
    subject: Option<&str>,
    granted: &[Access],
    lifetime: Duration,
    skew: i64,
) -> anyhow::Result<serde_json::Value> {
    let mut claims = state
        .issuer
        .claims(subject.unwrap_or(""), granted, lifetime);
    if let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_i64) {
        claims["exp"] = json!(exp.saturating_add(skew));
    }
    let iat = claims
        .get("iat")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or_else(unix_now);
    let token = state.issuer.sign_claims(&claims)?;
    Ok(json!({
        "token": token,
        "access_token": token,
        "expires_in": lifetime.as_secs(),
        "issued_at": rfc3339(iat),
        "scope": granted.iter().map(Access::to_scope).collect::<Vec<_>>().join(" "),
    }))
}

/// The refresh token to return to `user`: the one used, on a refresh, else a new one.
fn refresh_token(state: &State, user: &str, req: &FormRequest, record: &TokenRequest) -> String {
    match req.param("refresh_token") {
        Some(existing) if record.grant_type.as_deref() == Some("refresh_token") => {
            existing.to_owned()
        }
        _ => {
            let rt = state.issuer.random_hex(24);
            lock(&state.refresh_tokens).insert(rt.clone(), user.to_owned());
            rt
        }
    }
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
    fn basic_round_trip() {
        assert_eq!(
            parse_basic(&basic_auth("u", "p:w")),
            Some(("u".into(), "p:w".into()))
        );
    }
}
