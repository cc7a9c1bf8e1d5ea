//! Registries as they really are: a proxy in front of a real distribution registry that
//! gives it the documented manners of one of the big public registries ([`Kind`]).
//!
//! Each manner is written from the registry's public documentation or from known client
//! issues (cited where it is implemented, in [`manners`]), never from what acr-import does:
//!
//! | kind | auth | manners |
//! |---|---|---|
//! | [`Kind::DockerHub`] | token realm on another host, `service=registry.docker.io`, anonymous tokens | pull accounting (manifest `GET`s count, `HEAD`s are free), `ratelimit-*` headers, `429 TOOMANYREQUESTS`; blobs `307` to a CDN origin |
//! | [`Kind::Ghcr`] | token realm on the same host (`/token`), anonymous tokens | `Docker-Content-Digest` on `HEAD`; no referrers API |
//! | [`Kind::Mcr`] | none: no challenge at all | read-only (`405 UNSUPPORTED`); blobs `307` to a data endpoint |
//! | [`Kind::Ecr`] | Basic only (no token realm) | no cross-repository mount (`202` and a session); no `Docker-Content-Digest` on manifest `GET`; blobs `307` to S3 |
//! | [`Kind::Quay`] | token realm on the same host (`/v2/auth`) | schema 1 manifests on old tags; no referrers API |
//! | [`Kind::Acr`] | `/oauth2/exchange`, `/oauth2/token` (the [`AcrEmulator`]) | the referrers API (with `OCI-Subject`); mounts answered `201` |
//!
//! The CDN origin blobs are redirected to listens on a port of its own (another origin) and
//! records every request, refusing one that carries `Authorization` as S3 does.

mod cdn;
mod manners;
mod referrers;

pub use manners::DOCKER_HUB_429;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::azure::{AadEmulator, AcrEmulator};
use crate::proxy::{RecordedRequest, strip_hop_by_hop};
use crate::registry::{Registry, TokenAuthSettings};
use crate::serve::{ServerTask, serve_http1};
use crate::token::{Grant, TokenIssuer, TokenServer, basic_auth, decode_claims_unverified};
use crate::util::send_to;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The registries a [`Personality`] can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Docker Hub (`registry-1.docker.io`).
    DockerHub,
    /// GitHub Container Registry (`ghcr.io`).
    Ghcr,
    /// Microsoft Artifact Registry (`mcr.microsoft.com`).
    Mcr,
    /// Amazon Elastic Container Registry (`<account>.dkr.ecr.<region>.amazonaws.com`).
    Ecr,
    /// Quay (`quay.io`).
    Quay,
    /// Azure Container Registry (`<name>.azurecr.io`).
    Acr,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::DockerHub,
        Kind::Ghcr,
        Kind::Mcr,
        Kind::Ecr,
        Kind::Quay,
        Kind::Acr,
    ];

    /// The short name (`dockerhub`, `ghcr`, `mcr`, `ecr`, `quay`, `acr`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::DockerHub => "dockerhub",
            Kind::Ghcr => "ghcr",
            Kind::Mcr => "mcr",
            Kind::Ecr => "ecr",
            Kind::Quay => "quay",
            Kind::Acr => "acr",
        }
    }

    /// The registry's name for people.
    pub fn title(self) -> &'static str {
        match self {
            Kind::DockerHub => "Docker Hub",
            Kind::Ghcr => "GitHub Container Registry",
            Kind::Mcr => "Microsoft Artifact Registry",
            Kind::Ecr => "Amazon ECR",
            Kind::Quay => "Quay",
            Kind::Acr => "Azure Container Registry",
        }
    }

    /// Whether the registry takes pushes (MCR is read-only to the public).
    pub fn takes_pushes(self) -> bool {
        self != Kind::Mcr
    }

    /// The user a publisher (or a user with a token) signs in as, and the password or token:
    /// `None` for MCR, which has no accounts for the public.
    pub fn credentials(self) -> Option<(&'static str, &'static str)> {
        match self {
            // A personal access token is the password, the account name the username.
            Kind::DockerHub => Some(("hubuser", "dckr_pat_personality")),
            Kind::Ghcr => Some(("ghuser", "ghp_personality")),
            Kind::Mcr => None,
            // `aws ecr get-login-password` gives a password for the user `AWS`.
            Kind::Ecr => Some(("AWS", "ecr-login-password")),
            Kind::Quay => Some(("quayorg+robot", "robot-token")),
            Kind::Acr => Some(("acradmin", "acr-admin-password")),
        }
    }

    fn token_service(self) -> &'static str {
        match self {
            Kind::DockerHub => "registry.docker.io",
            Kind::Ghcr => "ghcr.io",
            Kind::Quay => "quay.io",
            _ => "",
        }
    }
}

impl FromStr for Kind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .with_context(|| {
                format!(
                    "no registry personality `{s}` (known: {})",
                    Kind::ALL.map(Kind::name).join(", ")
                )
            })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A pull budget: `limit` manifest `GET`s per rolling `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullBudget {
    /// Pulls per window.
    pub limit: u64,
    /// The window.
    pub window: Duration,
}

/// Configures and starts a [`Personality`].
#[derive(Debug, Clone)]
pub struct PersonalityBuilder {
    kind: Kind,
    anonymous_budget: Option<PullBudget>,
    user_budget: Option<PullBudget>,
    retry_after: bool,
    schema1_tags: Vec<(String, String)>,
}

impl PersonalityBuilder {
    /// Docker Hub: the pulls an anonymous client (all of loopback is one IP address) may
    /// make. Default: 100 per 6 h, the documented unauthenticated limit.
    pub fn anonymous_budget(mut self, limit: u64, window: Duration) -> Self {
        self.anonymous_budget = Some(PullBudget { limit, window });
        self
    }

    /// Docker Hub: the pulls a signed-in user may make. Default: unlimited (a paid plan:
    /// then no `ratelimit` headers are sent, as documented).
    pub fn user_budget(mut self, limit: u64, window: Duration) -> Self {
        self.user_budget = Some(PullBudget { limit, window });
        self
    }

    /// Docker Hub: also send `Retry-After` (seconds until the oldest pull leaves the window)
    /// on `429`. Default: off — Docker documents only the `ratelimit` headers.
    pub fn retry_after(mut self, on: bool) -> Self {
        self.retry_after = on;
        self
    }

    /// Quay: serve `repository:tag` as a schema 1 manifest, as old tags still are.
    pub fn schema1_tag(mut self, repository: &str, tag: &str) -> Self {
        self.schema1_tags
            .push((repository.to_owned(), tag.to_owned()));
        self
    }

    /// Starts the registry behind (and its token service), the CDN origin where the kind
    /// has one, and the personality itself.
    pub async fn start(self) -> anyhow::Result<Personality> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let kind = self.kind;
        let (upstream, backend) = Backend::start(kind, addr)
            .await
            .with_context(|| format!("starting the registry behind the {kind} personality"))?;
        let cdn_listener = match kind {
            Kind::DockerHub | Kind::Mcr | Kind::Ecr => {
                Some(TcpListener::bind("127.0.0.1:0").await?)
            }
            _ => None,
        };
        let cdn_addr = match &cdn_listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let budgets = match kind {
            Kind::DockerHub => Budgets {
                anonymous: Some(self.anonymous_budget.unwrap_or(PullBudget {
                    limit: 100,
                    window: Duration::from_secs(6 * 3600),
                })),
                user: self.user_budget,
            },
            _ => Budgets::default(),
        };
        let state = Arc::new(State {
            kind,
            addr,
            upstream,
            token_server: backend.tokens.as_ref().map(TokenServer::addr),
            upstream_auth: backend.upstream_auth(),
            budgets,
            retry_after: self.retry_after,
            schema1_tags: self.schema1_tags.into_iter().collect(),
            pulls: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            cdn: cdn_addr.map(cdn::Cdn::new),
            referrers: Mutex::new(HashMap::new()),
        });
        let mut tasks = vec![ServerTask::spawn(serve_http1(listener, None, {
            let state = state.clone();
            move |req| {
                let state = state.clone();
                async move { handle(&state, req).await }
            }
        }))];
        if let Some(l) = cdn_listener {
            tasks.push(ServerTask::spawn(serve_http1(l, None, {
                let state = state.clone();
                move |req| {
                    let state = state.clone();
                    async move { cdn::handle(&state, req).await }
                }
            })));
        }
        Ok(Personality {
            state,
            _tasks: tasks,
            _backend: backend,
        })
    }
}

/// What runs behind a personality: the real registry and its token service, or the ACR
/// emulator (with its Azure AD).
struct Backend {
    registry: Option<Registry>,
    tokens: Option<TokenServer>,
    acr: Option<(AadEmulator, AcrEmulator)>,
    basic: Option<String>,
}

impl Backend {
    async fn start(kind: Kind, addr: SocketAddr) -> anyhow::Result<(SocketAddr, Backend)> {
        let mut backend = Backend {
            registry: None,
            tokens: None,
            acr: None,
            basic: None,
        };
        let upstream = match kind {
            Kind::DockerHub | Kind::Ghcr | Kind::Quay => {
                let (user, password) = kind.credentials().unwrap_or_default();
                let tokens = TokenServer::builder()
                    .service(kind.token_service())
                    .user(
                        user,
                        password,
                        [Grant::all_repositories(), Grant::catalog()],
                    )
                    // Public repositories: anonymous clients get tokens that pull.
                    .anonymous([Grant::pull_all()])
                    .start()
                    .await?;
                let mut settings = TokenAuthSettings::from(&tokens);
                settings.realm = match kind {
                    // auth.docker.io: another host than the registry.
                    Kind::DockerHub => tokens.realm(),
                    // ghcr.io/token and quay.io/v2/auth: the registry's own host.
                    Kind::Ghcr => format!("http://{addr}/token"),
                    _ => format!("http://{addr}/v2/auth"),
                };
                let registry = Registry::builder().token_auth(settings).start().await?;
                let upstream = registry.addr();
                backend.registry = Some(registry);
                backend.tokens = Some(tokens);
                upstream
            }
            Kind::Ecr => {
                let (user, password) = kind.credentials().unwrap_or_default();
                let registry = Registry::builder()
                    .htpasswd(&[(user, password)])
                    .start()
                    .await?;
                backend.basic = Some(basic_auth(user, password));
                let upstream = registry.addr();
                backend.registry = Some(registry);
                upstream
            }
            Kind::Mcr => {
                let registry = Registry::start().await?;
                let upstream = registry.addr();
                backend.registry = Some(registry);
                upstream
            }
            Kind::Acr => {
                let tenant = "00000000-0000-0000-0000-00000000acr0";
                let aad = AadEmulator::builder().tenant(tenant).start().await?;
                let (user, password) = kind.credentials().unwrap_or_default();
                let acr = AcrEmulator::builder(&aad, tenant)
                    .admin_user(user, password)
                    .start()
                    .await?;
                let upstream = acr.addr();
                backend.acr = Some((aad, acr));
                upstream
            }
        };
        Ok((upstream, backend))
    }

    fn upstream_auth(&self) -> UpstreamAuth {
        match (&self.tokens, &self.basic) {
            (Some(t), _) => UpstreamAuth::Token(t.issuer().clone()),
            (None, Some(b)) => UpstreamAuth::Basic(b.clone()),
            (None, None) => UpstreamAuth::None,
        }
    }
}

/// How the personality itself reads from the registry behind (the CDN origin's fetches).
enum UpstreamAuth {
    None,
    Basic(String),
    Token(TokenIssuer),
}

impl UpstreamAuth {
    fn header(&self, repository: &str) -> Option<String> {
        match self {
            UpstreamAuth::None => None,
            UpstreamAuth::Basic(b) => Some(b.clone()),
            UpstreamAuth::Token(issuer) => issuer
                .sign(
                    "personality-cdn",
                    &[crate::token::Access::repository(repository, &["pull"])],
                    Duration::from_secs(60),
                )
                .ok()
                .map(|t| format!("Bearer {t}")),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Budgets {
    anonymous: Option<PullBudget>,
    user: Option<PullBudget>,
}

struct State {
    kind: Kind,
    addr: SocketAddr,
    upstream: SocketAddr,
    token_server: Option<SocketAddr>,
    upstream_auth: UpstreamAuth,
    budgets: Budgets,
    retry_after: bool,
    schema1_tags: HashSet<(String, String)>,
    /// Counted pulls by identity (`""`: anonymous), oldest first.
    pulls: Mutex<HashMap<String, VecDeque<Instant>>>,
    log: Mutex<Vec<RecordedRequest>>,
    cdn: Option<cdn::Cdn>,
    /// ACR: the referrers of each (repository, subject digest), as pushed through here.
    referrers: Mutex<HashMap<(String, String), Vec<serde_json::Value>>>,
}

/// A registry personality on `127.0.0.1:<port>` (see the module docs). Stops on drop, with
/// everything it started.
pub struct Personality {
    state: Arc<State>,
    _tasks: Vec<ServerTask>,
    _backend: Backend,
}

impl fmt::Debug for Personality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Personality")
            .field("kind", &self.state.kind)
            .field("addr", &self.state.addr)
            .finish_non_exhaustive()
    }
}

impl Personality {
    /// A builder for `kind`, with that registry's documented defaults.
    pub fn builder(kind: Kind) -> PersonalityBuilder {
        PersonalityBuilder {
            kind,
            anonymous_budget: None,
            user_budget: None,
            retry_after: false,
            schema1_tags: Vec::new(),
        }
    }

    /// Starts `kind` with its defaults.
    pub async fn start(kind: Kind) -> anyhow::Result<Self> {
        Self::builder(kind).start().await
    }

    /// Which registry this plays.
    pub fn kind(&self) -> Kind {
        self.state.kind
    }

    /// `127.0.0.1:PORT`: the registry host clients use.
    pub fn host(&self) -> String {
        self.state.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.state.addr)
    }

    /// Where a publisher pushes content for this registry to serve: the personality itself,
    /// or the registry behind it for MCR (which takes no pushes from the public).
    pub fn publish_url(&self) -> String {
        match self.state.kind {
            Kind::Mcr => format!("http://{}", self.state.upstream),
            _ => self.url(),
        }
    }

    /// A seeding client of [`Personality::publish_url`], signed in with the kind's account
    /// (Basic, or a token from the registry's token service) where it has one.
    pub fn seeder(&self) -> anyhow::Result<crate::seed::Seeder> {
        let seeder = crate::seed::Seeder::new(&self.publish_url())?;
        Ok(match self.state.kind.credentials() {
            Some((user, password)) => seeder.basic(user, password),
            None => seeder,
        })
    }

    /// The CDN origin's `http://127.0.0.1:PORT`, for kinds that redirect blobs.
    pub fn cdn_url(&self) -> Option<String> {
        self.state
            .cdn
            .as_ref()
            .map(|c| format!("http://{}", c.addr))
    }

    /// Every request the CDN origin received.
    pub fn cdn_requests(&self) -> Vec<RecordedRequest> {
        self.state
            .cdn
            .as_ref()
            .map(|c| lock(&c.log).clone())
            .unwrap_or_default()
    }

    /// Whether any request to the CDN origin carried an `Authorization` header.
    pub fn cdn_saw_authorization(&self) -> bool {
        self.cdn_requests()
            .iter()
            .any(RecordedRequest::has_authorization)
    }

    /// Every request the personality received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.log).clone()
    }

    /// Clears the request logs (the personality's and the CDN's); counted pulls stay.
    pub fn clear_requests(&self) {
        lock(&self.state.log).clear();
        if let Some(c) = &self.state.cdn {
            lock(&c.log).clear();
        }
    }

    /// Manifest `GET`s received (whatever their answer).
    pub fn manifest_gets(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "GET" && manners::is_manifest_path(&r.path))
            .count()
    }

    /// Docker Hub: pulls counted against the anonymous budget since the last
    /// [`Self::refill`].
    pub fn anonymous_pulls(&self) -> usize {
        self.pulls_of("")
    }

    /// Docker Hub: pulls counted for `identity` (`""`: anonymous).
    pub fn pulls_of(&self, identity: &str) -> usize {
        lock(&self.state.pulls)
            .get(identity)
            .map_or(0, VecDeque::len)
    }

    /// Docker Hub: counts `n` anonymous pulls now, as other clients behind the same address
    /// (a NAT, a CI runner) would.
    pub fn spend_anonymous(&self, n: usize) {
        let now = Instant::now();
        lock(&self.state.pulls)
            .entry(String::new())
            .or_default()
            .extend(std::iter::repeat_n(now, n));
    }

    /// Docker Hub: forgets every counted pull, as if the window had passed.
    pub fn refill(&self) {
        lock(&self.state.pulls).clear();
    }
}

/// Who a request comes as: `""` for anonymous, else the user its token or Basic
/// credentials name.
fn identity(req: &Request<Incoming>) -> String {
    let Some(value) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return String::new();
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return decode_claims_unverified(token)
            .ok()
            .and_then(|c| c.get("sub").and_then(|s| s.as_str()).map(str::to_owned))
            .unwrap_or_default();
    }
    if let Some(b64) = value.strip_prefix("Basic ") {
        use base64::Engine as _;
        return base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|d| d.split_once(':').map(|(u, _)| u.to_owned()))
            .unwrap_or_default();
    }
    String::new()
}

/// A request as the log keeps it (status and forwarding filled in later).
fn record(req: &Request<Incoming>) -> RecordedRequest {
    RecordedRequest {
        index: 0,
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        status: None,
        request_body_bytes: 0,
        response_body_bytes: 0,
        fault: None,
        forwarded: false,
        completed: true,
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let mut record = record(&req);
    let (response, forwarded) = manners::respond(state, req).await;
    record.status = Some(response.status().as_u16());
    record.forwarded = forwarded;
    let mut log = lock(&state.log);
    record.index = log.len();
    log.push(record);
    response
}

/// Forwards `req` to `to` as it is (its `Host` kept, so the registry's `Location` headers
/// point back at the personality).
async fn forward<B>(to: SocketAddr, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let req = Request::from_parts(parts, body);
    match send_to(to, Duration::from_secs(5), req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
        }
        Err(e) => full(
            StatusCode::BAD_GATEWAY,
            "text/plain",
            Bytes::from(format!("personality: upstream {to} failed: {e:#}\n")),
        ),
    }
}

/// A complete response.
fn full(status: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// A distribution error envelope.
fn registry_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    full(
        status,
        "application/json",
        Bytes::from(
            serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string(),
        ),
    )
}
