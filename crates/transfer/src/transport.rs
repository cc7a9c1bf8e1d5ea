//! The shared client: builder, per-request auth, retries, redirects, counters.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acr_import_auth::{
    Authenticator, Authorization, CredentialProvider, ExchangeError, HttpExchange, ScopeSet,
    StaticCredentials, is_loopback_host,
};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use url::Url;

use crate::body::read_capped;
use crate::connect::{BoxError, Connector, InsecureHosts, ProxyConnector, tls_configs};
use crate::error::{
    RequestContext, StatusDetails, TransferError, parse_error_envelope, redact_url,
    unreachable_reason,
};
use crate::ratelimit::{
    RateLimitPolicy, RateLimitStatus, RateLimitStop, RateLimits, Verdict, is_anonymous,
};
use crate::registry::Registry;
use crate::retry::{RetryPolicy, parse_retry_after};

/// The request body type of the shared client.
pub(crate) type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

type HyperClient = Client<Connector, RequestBody>;

/// How many redirects a blob fetch follows.
const MAX_REDIRECTS: usize = 5;
/// Cap on error bodies and token responses.
pub(crate) const SMALL_BODY_LIMIT: u64 = 1 << 20;

/// Builds a [`Transport`]. Every setting states its default.
pub struct TransportBuilder {
    credentials: Arc<dyn CredentialProvider>,
    #[allow(clippy::type_complexity)]
    credentials_from:
        Option<Box<dyn FnOnce(Arc<dyn HttpExchange>) -> Arc<dyn CredentialProvider> + Send>>,
    ca_files: Vec<PathBuf>,
    insecure_hosts: Vec<String>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    rate_limit: RateLimitPolicy,
    proxy_from_env: bool,
    proxy: Option<String>,
    max_idle_per_host: usize,
    max_requests_per_host: usize,
    user_agent: String,
}

impl Default for TransportBuilder {
    fn default() -> Self {
        Self {
            credentials: Arc::new(StaticCredentials::new()),
            credentials_from: None,
            ca_files: Vec::new(),
            insecure_hosts: Vec::new(),
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            rate_limit: RateLimitPolicy::default(),
            proxy_from_env: true,
            proxy: None,
            max_idle_per_host: 32,
            max_requests_per_host: 16,
            user_agent: format!("acr-import/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl TransportBuilder {
    /// Where credentials come from. Default: none (anonymous everywhere).
    pub fn credentials(mut self, provider: Arc<dyn CredentialProvider>) -> Self {
        self.credentials = provider;
        self
    }

    /// Where credentials come from, for providers that need HTTP themselves (Azure AD, the
    /// ACR token exchange): `make` receives this transport's [`HttpExchange`], so their
    /// traffic uses the same TLS settings, CA bundle and proxy. Replaces
    /// [`TransportBuilder::credentials`].
    pub fn credentials_from(
        mut self,
        make: impl FnOnce(Arc<dyn HttpExchange>) -> Arc<dyn CredentialProvider> + Send + 'static,
    ) -> Self {
        self.credentials_from = Some(Box::new(make));
        self
    }

    /// Adds a PEM CA bundle to the trusted roots (the platform's roots stay trusted).
    /// `SSL_CERT_FILE` is honoured the same way. Default: none.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Names a host (`host` or `host:port`) that may be reached over plain http and whose
    /// certificate is not verified. Loopback hosts may use plain http without this; no other
    /// host ever does. Default: none.
    pub fn insecure_host(mut self, host: impl Into<String>) -> Self {
        self.insecure_hosts.push(host.into().to_ascii_lowercase());
        self
    }

    /// Connect timeout. Default: 30 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest wait for response headers or for the next piece of a body; a long healthy
    /// download is never cut. Default: 120 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Retry policy for idempotent requests. Default: [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How rate limits are met: a `429` that resets later than
    /// [`RateLimitPolicy::longest_retry`] stops its registry for the rest of the process, or
    /// (with [`RateLimitPolicy::wait`]) makes its requests wait for the reset. Default:
    /// [`RateLimitPolicy::default`] (stop after 60 s).
    pub fn rate_limit(mut self, policy: RateLimitPolicy) -> Self {
        self.rate_limit = policy;
        self
    }

    /// Whether `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY` are honoured. Default: yes.
    pub fn proxy_from_env(mut self, yes: bool) -> Self {
        self.proxy_from_env = yes;
        self
    }

    /// Sends every request through this proxy (`http://[user:pass@]host:port`; https is
    /// tunnelled with `CONNECT`), loopback destinations included, instead of the proxy the
    /// environment names. Default: none (the environment decides; loopback goes direct).
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }

    /// Idle connections kept per host. Default: 32.
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.max_idle_per_host = n;
        self
    }

    /// Requests awaiting their answer at once to one `host:port` (at least 1); more wait
    /// their turn. With the copy engine's blob streams (`CopyOptions::jobs`, 8 by default)
    /// this bounds the connections a batch opens to a registry. Default: 16.
    pub fn max_requests_per_host(mut self, n: usize) -> Self {
        self.max_requests_per_host = n.max(1);
        self
    }

    /// Builds the transport; fails on an unreadable CA file given with
    /// [`Self::ca_file`]. The platform's roots (and `SSL_CERT_FILE`) load on the first TLS
    /// connection; a broken `SSL_CERT_FILE` fails that connection, naming the file.
    pub fn build(self) -> Result<Transport, TransferError> {
        let insecure = InsecureHosts(self.insecure_hosts);
        let tls = tls_configs(
            &self.ca_files,
            std::env::var_os("SSL_CERT_FILE").map(PathBuf::from),
        )?;
        let explicit = self.proxy.is_some();
        let matcher = match &self.proxy {
            Some(url) => Matcher::builder().all(url.clone()).build(),
            None if self.proxy_from_env => Matcher::from_env(),
            None => Matcher::builder().build(),
        };
        let connector = Connector::new(
            tls,
            ProxyConnector::new(self.connect_timeout, matcher, !explicit),
            insecure.clone(),
        );
        let client: HyperClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(self.max_idle_per_host)
            // Bounds the per-connection read buffer (hyper's default is ~400 KiB): with a dozen
            // blob streams in flight this keeps memory flat without costing throughput.
            .http1_max_buf_size(128 * 1024)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let exchange = Arc::new(TokenExchange {
            client: client.clone(),
            idle_timeout: self.idle_timeout,
            insecure: insecure.clone(),
            user_agent: self.user_agent.clone(),
        });
        let credentials = match self.credentials_from {
            Some(make) => make(exchange.clone()),
            None => self.credentials,
        };
        let auth = Authenticator::new(exchange, credentials)
            .with_insecure_hosts(insecure.names().iter().cloned());
        Ok(Transport {
            inner: Arc::new(Inner {
                client,
                auth,
                insecure,
                idle_timeout: self.idle_timeout,
                retry: self.retry,
                limits: RateLimits::new(self.rate_limit),
                user_agent: self.user_agent,
                schemes: Mutex::new(HashMap::new()),
                referrers_api: Mutex::new(HashMap::new()),
                stats: Mutex::new(BTreeMap::new()),
                answered: Mutex::new(HashSet::new()),
                last_retried: Mutex::new(None),
                in_flight: Mutex::new(HashMap::new()),
                max_requests_per_host: self.max_requests_per_host,
            }),
        })
    }
}

/// Requests sent to one host, by method, and the retries spent there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Requests by HTTP method.
    pub by_method: BTreeMap<String, u64>,
    /// Retries (each retried attempt counts once).
    pub retries: u64,
}

impl HostStats {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.by_method.values().sum()
    }
}

/// One HTTP client for every registry a process talks to: pooled connections per host,
/// HTTP/2 where ALPN offers it, rustls with the platform's roots, proxies from the
/// environment, and the credential chain. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("insecure_hosts", &self.inner.insecure.names())
            .field("idle_timeout", &self.inner.idle_timeout)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) client: HyperClient,
    pub(crate) auth: Authenticator,
    insecure: InsecureHosts,
    pub(crate) idle_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) limits: RateLimits,
    user_agent: String,
    schemes: Mutex<HashMap<String, &'static str>>,
    referrers_api: Mutex<HashMap<String, bool>>,
    stats: Mutex<BTreeMap<String, HostStats>>,
    /// Hosts (`host:port`) that have answered at least one request.
    answered: Mutex<HashSet<String>>,
    /// The last failure that was retried, for an error that ends the retrying from outside
    /// (a deadline).
    last_retried: Mutex<Option<String>>,
    /// Each `host:port`'s turns for requests in flight.
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
    max_requests_per_host: usize,
}

/// A request body that can or cannot be sent twice.
pub(crate) enum Body {
    Empty,
    Bytes(Bytes),
    /// Sent once; a retry is the caller's business.
    Stream(Option<RequestBody>),
}

impl Body {
    fn replayable(&self) -> bool {
        !matches!(self, Body::Stream(_))
    }

    fn take(&mut self) -> RequestBody {
        match self {
            Body::Empty => Empty::new().map_err(|never| match never {}).boxed_unsync(),
            Body::Bytes(b) => Full::new(b.clone())
                .map_err(|never| match never {})
                .boxed_unsync(),
            Body::Stream(s) => s
                .take()
                .unwrap_or_else(|| Empty::new().map_err(|never| match never {}).boxed_unsync()),
        }
    }
}

/// One logical request: the transport adds auth, retries and redirects.
pub(crate) struct Req {
    pub ctx: RequestContext,
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Body,
    pub scopes: ScopeSet,
    /// Safe to send again (idempotent with a replayable body).
    pub idempotent: bool,
    /// Follow 3xx (blob GET/HEAD: registries redirect to storage).
    pub follow_redirects: bool,
    /// Counts every attempt sent (the source manifest `GET`s of a copy: its pulls).
    pub tally: Option<Arc<AtomicU64>>,
}

impl Req {
    /// A copy to send again, when the body allows it.
    pub(crate) fn try_clone(&self) -> Option<Req> {
        let body = match &self.body {
            Body::Empty => Body::Empty,
            Body::Bytes(b) => Body::Bytes(b.clone()),
            Body::Stream(_) => return None,
        };
        Some(Req {
            ctx: self.ctx.clone(),
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body,
            scopes: self.scopes.clone(),
            idempotent: self.idempotent,
            follow_redirects: self.follow_redirects,
            tally: self.tally.clone(),
        })
    }

    pub(crate) fn new(ctx: RequestContext, method: Method, url: Url, scopes: ScopeSet) -> Self {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE
        );
        Self {
            ctx,
            method,
            url,
            headers: HeaderMap::new(),
            body: Body::Empty,
            scopes,
            idempotent,
            follow_redirects: false,
            tally: None,
        }
    }
}

/// A response and what was learned on the way (retries spent, the final URL).
pub(crate) struct Resp {
    pub response: Response<Incoming>,
    pub url: Url,
    pub retries: u32,
    pub authorization: Option<Authorization>,
}

impl Transport {
    /// A builder with every default.
    pub fn builder() -> TransportBuilder {
        TransportBuilder::default()
    }

    /// A handle on one registry: `host[:port]`, or `http://host:port` / `https://host` to fix
    /// the scheme. Plain http is allowed only for loopback hosts and hosts named insecure; a
    /// loopback or insecure host given without a scheme is tried over https first, then http.
    pub fn registry(&self, registry: &str) -> Result<Registry, TransferError> {
        Registry::new(self.clone(), registry)
    }

    /// Requests sent so far, per host (`host:port`).
    pub fn stats(&self) -> BTreeMap<String, HostStats> {
        self.inner
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The budget `registry` (`host[:port]`, as [`Registry::host`] names it) announced on its
    /// latest answer that carried `ratelimit-limit` and `ratelimit-remaining`.
    pub fn rate_limit_status(&self, registry: &str) -> Option<RateLimitStatus> {
        self.inner.limits.status(registry)
    }

    /// Whether this transport waits for rate limits to reset instead of failing.
    pub fn waits_for_rate_limits(&self) -> bool {
        self.inner.limits.policy.wait
    }

    /// When a plan needs `needed` requests of `registry` and its announced budget has fewer
    /// left: the stop that says so.
    pub(crate) fn shortfall(&self, registry: &str, needed: u64) -> Option<RateLimitStop> {
        self.inner.limits.shortfall(registry, needed)
    }

    /// An [`HttpExchange`] over this transport's connections, for token services.
    pub fn exchange(&self) -> Arc<dyn HttpExchange> {
        Arc::new(TokenExchange {
            client: self.inner.client.clone(),
            idle_timeout: self.inner.idle_timeout,
            insecure: self.inner.insecure.clone(),
            user_agent: self.inner.user_agent.clone(),
        })
    }

    pub(crate) fn may_use_http(&self, host: &str, port: Option<u16>) -> bool {
        is_loopback_host(host) || self.inner.insecure.contains(host, port)
    }

    pub(crate) fn known_scheme(&self, registry: &str) -> Option<&'static str> {
        self.inner
            .schemes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(registry)
            .copied()
    }

    pub(crate) fn remember_scheme(&self, registry: &str, scheme: &'static str) {
        self.inner
            .schemes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(registry.to_owned(), scheme);
    }

    /// Whether a registry was seen to serve the OCI referrers API (`None`: not asked yet).
    pub(crate) fn referrers_api(&self, registry: &str) -> Option<bool> {
        self.inner
            .referrers_api
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(registry)
            .copied()
    }

    pub(crate) fn remember_referrers_api(&self, registry: &str, supported: bool) {
        self.inner
            .referrers_api
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(registry.to_owned(), supported);
    }

    /// The last failure this transport retried (a connection error, a status it retries),
    /// without secrets: what a deadline that stops the retrying should name as the cause.
    pub fn last_retried_failure(&self) -> Option<String> {
        self.inner
            .last_retried
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn retried(&self, failure: String) {
        tracing::debug!("retrying: {failure}");
        *self
            .inner
            .last_retried
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(failure);
    }

    fn has_answered(&self, url: &Url) -> bool {
        self.inner
            .answered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&host_port(url))
    }

    pub(crate) fn count(&self, url: &Url, method: &Method, retry: bool) {
        let host = host_port(url);
        let mut stats = self.inner.stats.lock().unwrap_or_else(|e| e.into_inner());
        let entry = stats.entry(host).or_default();
        *entry.by_method.entry(method.to_string()).or_default() += 1;
        if retry {
            entry.retries += 1;
        }
    }

    /// One request, until its response's headers (or the idle timeout): at most
    /// [`TransportBuilder::max_requests_per_host`] at once to one `host:port`. A response
    /// body read after it (a blob streaming) is not counted here: the copy engine bounds those.
    async fn round_trip(
        &self,
        url: &Url,
        request: http::Request<RequestBody>,
    ) -> Result<
        Result<Response<Incoming>, hyper_util::client::legacy::Error>,
        tokio::time::error::Elapsed,
    > {
        let gate = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(host_port(url))
            .or_insert_with(|| Arc::new(Semaphore::new(self.inner.max_requests_per_host)))
            .clone();
        let started = tokio::time::Instant::now();
        // The semaphore is never closed, so acquiring fails never; the wait counts against
        // the idle timeout like the request itself.
        let _permit = tokio::time::timeout(self.inner.idle_timeout, gate.acquire_owned()).await?;
        let left = self.inner.idle_timeout.saturating_sub(started.elapsed());
        tokio::time::timeout(left, self.inner.client.request(request)).await
    }

    /// Sends one logical request: attaches credentials for the registry's own origin only,
    /// answers one `401` challenge, retries what is safe to retry, follows redirects when
    /// asked. Returns the final response whatever its status.
    pub(crate) async fn send(&self, mut req: Req, origin: &Url) -> Result<Resp, TransferError> {
        let registry = req.ctx.registry.clone();
        let mut authorization = self
            .inner
            .auth
            .authorization(&registry, &req.scopes)
            .await
            .map_err(|source| TransferError::Auth {
                registry: registry.clone(),
                source,
            })?;
        self.respect_stop(&mut req, authorization.as_ref()).await?;
        let mut url = req.url.clone();
        let mut method = req.method.clone();
        let mut retries = 0u32;
        let mut reauthenticated = false;
        let mut redirects = 0usize;
        loop {
            let same_origin = same_origin(&url, origin);
            // Credentials go to the registry's own origin only: never across a redirect.
            let credential = authorization.as_ref().filter(|_| same_origin);
            let request = self.build_request(&mut req, &method, &url, credential)?;
            self.count(&url, &method, retries > 0);
            if let Some(tally) = &req.tally {
                tally.fetch_add(1, Ordering::Relaxed);
            }
            let can_retry =
                req.idempotent && req.body.replayable() && retries < self.inner.retry.max_retries;
            let started = Instant::now();
            let sent = self.round_trip(&url, request).await;
            let shown = redact_url(&url);
            let response = match sent {
                Ok(Ok(r)) => r,
                Err(_) if can_retry => {
                    retries += 1;
                    self.retried(format!(
                        "{method} {shown}: no answer within {:?}",
                        self.inner.idle_timeout
                    ));
                    tokio::time::sleep(self.inner.retry.delay(retries, None)).await;
                    continue;
                }
                Err(_) => {
                    return Err(TransferError::Timeout {
                        url: shown,
                        timeout: self.inner.idle_timeout,
                    });
                }
                Ok(Err(e)) => {
                    tracing::debug!(target: "acr_import::http", "{method} {shown} → {} after {} ms", describe_client_error(&e), started.elapsed().as_millis());
                    self.connection_failed(&req, &url, e, can_retry, retries)?;
                    retries += 1;
                    tokio::time::sleep(self.inner.retry.delay(retries, None)).await;
                    continue;
                }
            };
            let status = response.status();
            tracing::debug!(target: "acr_import::http", "{method} {shown} → {} in {} ms", status.as_u16(), started.elapsed().as_millis());
            self.answered(&registry, &url, &response, same_origin, credential);
            if status == StatusCode::TOO_MANY_REQUESTS && same_origin {
                let anonymous = is_anonymous(credential);
                match self
                    .inner
                    .limits
                    .on_429(&registry, response.headers(), anonymous)
                {
                    Verdict::Retry => {}
                    Verdict::Stop(stop) => {
                        let auth = authorization.clone();
                        self.stop_registry(*stop, response, &url, &mut req, auth.as_ref())
                            .await?;
                        continue;
                    }
                }
            }
            if status == StatusCode::UNAUTHORIZED
                && same_origin
                && !reauthenticated
                && let Some(fresh) = self
                    .answer_challenge(&registry, &response, &req.scopes)
                    .await?
            {
                authorization = Some(fresh);
                reauthenticated = true;
                if req.body.replayable() {
                    drain(response).await;
                    continue;
                }
            }
            if req.follow_redirects && status.is_redirection() && status != StatusCode::NOT_MODIFIED
            {
                redirects += 1;
                url = self.redirect_target(&req.ctx, &url, &response, redirects)?;
                if status == StatusCode::SEE_OTHER {
                    method = Method::GET;
                }
                drain(response).await;
                continue;
            }
            let transient = status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error();
            if transient && can_retry {
                let after = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                retries += 1;
                self.retried(format!(
                    "{method} {shown} answered HTTP {}",
                    status.as_u16()
                ));
                drain(response).await;
                tokio::time::sleep(self.inner.retry.delay(retries, after)).await;
                continue;
            }
            return Ok(Resp {
                response,
                url,
                retries,
                authorization,
            });
        }
    }

    /// A request to `url` that got no response: the error to return, or `Ok` when it is
    /// retried (recorded as the last retried failure).
    fn connection_failed(
        &self,
        req: &Req,
        url: &Url,
        e: hyper_util::client::legacy::Error,
        can_retry: bool,
        retries: u32,
    ) -> Result<(), TransferError> {
        let message = describe_client_error(&e);
        let shown = redact_url(url);
        if let Some(reason) = unreachable_reason(&e, self.has_answered(url)) {
            return Err(TransferError::Unreachable {
                context: Box::new(req.ctx.clone()),
                url: shown,
                reason: reason.to_owned(),
                message,
                source: Some(Box::new(e)),
            });
        }
        if can_retry {
            self.retried(format!("cannot reach {shown}: {message}"));
            return Ok(());
        }
        Err(TransferError::Connection {
            url: shown,
            message,
            retries,
            source: Some(Box::new(e)),
        })
    }

    /// Records that `url`'s host answered, and, for the registry's own origin, the rate-limit
    /// headers of its answer to `credential` (what was sent, if anything).
    fn answered(
        &self,
        registry: &str,
        url: &Url,
        response: &Response<Incoming>,
        same_origin: bool,
        credential: Option<&Authorization>,
    ) {
        self.inner
            .answered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host_port(url));
        if same_origin {
            self.inner
                .limits
                .observe(registry, response.headers(), is_anonymous(credential));
        }
    }

    /// One attempt of `req` to `url`, with `authorization` when it may go there. The body is
    /// taken from `req` (a replayable body stays to be sent again).
    pub(crate) fn build_request(
        &self,
        req: &mut Req,
        method: &Method,
        url: &Url,
        authorization: Option<&Authorization>,
    ) -> Result<http::Request<RequestBody>, TransferError> {
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .header(header::USER_AGENT, &self.inner.user_agent);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        if let Some(a) = authorization {
            builder = builder.header(header::AUTHORIZATION, a.header_value().clone());
        }
        builder
            .body(req.body.take())
            .map_err(|e| TransferError::Protocol {
                context: req.ctx.clone(),
                reason: format!("cannot build the request: {e}"),
            })
    }

    /// Answers a `401` from the registry's own origin: the credentials its challenges ask
    /// for, or `None` when it sent no challenge.
    async fn answer_challenge(
        &self,
        registry: &str,
        response: &Response<Incoming>,
        scopes: &ScopeSet,
    ) -> Result<Option<Authorization>, TransferError> {
        self.inner
            .auth
            .respond_to(registry, response.headers(), scopes)
            .await
            .map_err(|source| TransferError::Auth {
                registry: registry.to_owned(),
                source,
            })
    }

    /// Where a redirect leads, refused when it leaves https for http, uses a scheme or host
    /// this transport does not allow, or is one redirect too many.
    fn redirect_target(
        &self,
        ctx: &RequestContext,
        url: &Url,
        response: &Response<Incoming>,
        redirects: usize,
    ) -> Result<Url, TransferError> {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| TransferError::Protocol {
                context: ctx.clone(),
                reason: format!(
                    "HTTP {} without a Location header",
                    response.status().as_u16()
                ),
            })?;
        let next = url.join(location).map_err(|e| TransferError::Protocol {
            context: ctx.clone(),
            reason: format!("invalid redirect Location: {e}"),
        })?;
        self.check_url(&next)?;
        if url.scheme() == "https" && next.scheme() == "http" {
            return Err(TransferError::Refused {
                url: redact_url(&next),
                reason: "a redirect from https to plain http".to_owned(),
            });
        }
        if redirects > MAX_REDIRECTS {
            return Err(TransferError::Protocol {
                context: ctx.clone(),
                reason: format!("more than {MAX_REDIRECTS} redirects"),
            });
        }
        Ok(next)
    }

    /// Refuses plain http to a host that is neither loopback nor named insecure.
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), TransferError> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.may_use_http(url.host_str().unwrap_or_default(), url.port_or_known_default()) => Ok(()),
            "http" => Err(TransferError::Refused {
                url: redact_url(url),
                reason: "plain http is used only for loopback hosts and hosts named with --insecure-registry".to_owned(),
            }),
            other => Err(TransferError::Refused {
                url: redact_url(url),
                reason: format!("unsupported scheme `{other}`"),
            }),
        }
    }

    /// Turns a response the operation did not expect into the matching error.
    pub(crate) async fn status_error(
        &self,
        ctx: &RequestContext,
        resp: Resp,
        scopes: &ScopeSet,
    ) -> TransferError {
        let status = resp.response.status();
        let body = read_capped(
            resp.response.into_body(),
            SMALL_BODY_LIMIT,
            self.inner.idle_timeout,
            &resp.url,
        )
        .await
        .unwrap_or_default();
        let errors = parse_error_envelope(&body);
        let mut details = StatusDetails {
            context: ctx.clone(),
            status: status.as_u16(),
            errors,
            hint: None,
        };
        match status.as_u16() {
            401 | 403 => {
                if let Some(a) = &resp.authorization
                    && let Some((scope, action)) = a.missing(scopes)
                {
                    return TransferError::ScopeDenied {
                        registry: ctx.registry.clone(),
                        repository: scope.name().to_owned(),
                        action: action.to_owned(),
                        identity: a.identity().to_owned(),
                    };
                }
                if status == StatusCode::FORBIDDEN && ctx.operation == crate::Operation::Ping {
                    details.hint = Some(
                        "the registry refuses this client before any credential is checked: \
                         its firewall or public-access setting does not allow your IP address"
                            .to_owned(),
                    );
                }
                if status == StatusCode::UNAUTHORIZED {
                    if resp.authorization.is_none() {
                        details.hint =
                            Some("the registry wants credentials and none were sent".to_owned());
                    }
                    TransferError::Unauthorized(Box::new(details))
                } else {
                    TransferError::Forbidden(Box::new(details))
                }
            }
            404 => TransferError::NotFound(Box::new(details)),
            429 => TransferError::RateLimited {
                details: Box::new(details),
                retries: resp.retries,
            },
            500..=599 => TransferError::Server {
                details: Box::new(details),
                retries: resp.retries,
            },
            _ => TransferError::UnexpectedStatus(Box::new(details)),
        }
    }
}

/// `host:port` of a URL (the default port when it names none).
fn host_port(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

/// Same scheme, host and port: the only place registry credentials go.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Reads what is left of a response so its connection can be reused (bounded).
pub(crate) async fn drain(response: Response<Incoming>) {
    let mut body = response.into_body();
    let mut left: u64 = 64 * 1024;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(5), body.frame()).await
    {
        if let Some(d) = frame.data_ref() {
            left = left.saturating_sub(d.len() as u64);
            if left == 0 {
                break;
            }
        }
    }
}

fn describe_client_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The token-service side of the transport: plain requests, no registry auth, no redirects,
/// bodies capped at 1 MiB.
struct TokenExchange {
    client: HyperClient,
    idle_timeout: Duration,
    insecure: InsecureHosts,
    user_agent: String,
}

#[async_trait::async_trait]
impl HttpExchange for TokenExchange {
    async fn exchange(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<Response<Bytes>, ExchangeError> {
        let url = Url::parse(&request.uri().to_string())
            .map_err(|e| ExchangeError::new(format!("invalid URL: {e}")))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        if url.scheme() != "https"
            && !(is_loopback_host(&host)
                || self.insecure.contains(&host, url.port_or_known_default()))
        {
            return Err(ExchangeError::new(format!(
                "refusing plain http to {}",
                redact_url(&url)
            )));
        }
        let (mut parts, body) = request.into_parts();
        parts.headers.entry(header::USER_AGENT).or_insert(
            HeaderValue::from_str(&self.user_agent)
                .unwrap_or(HeaderValue::from_static("acr-import")),
        );
        let request = http::Request::from_parts(
            parts,
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        let response = tokio::time::timeout(self.idle_timeout, self.client.request(request))
            .await
            .map_err(|_| ExchangeError::new(format!("{}: timed out", redact_url(&url))))?
            .map_err(|e| {
                let message = format!("{}: {}", redact_url(&url), describe_client_error(&e));
                ExchangeError::with_source(message, e)
            })?;
        let (parts, body) = response.into_parts();
        let bytes = read_capped(body, SMALL_BODY_LIMIT, self.idle_timeout, &url)
            .await
            .map_err(|e| ExchangeError::with_source(e.to_string(), e))?;
        Ok(Response::from_parts(parts, bytes))
    }
}
