//! An HTTP/1.1 reverse proxy on loopback that records every request and
//! injects faults chosen by rules.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::serve::ServerTask;
use crate::util::{ensure_loopback, parse_loopback_url, send_to};

mod rules;

pub use rules::{FaultAction, FaultRule, Trigger};
use rules::{RuleState, choose};

type ProxyBody = BoxBody<Bytes, ProxyError>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Options for [`Proxy::start`].
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Initial fault rules (more can be added with [`Proxy::add_rule`]).
    pub rules: Vec<FaultRule>,
    /// When set, every forwarded request carries this `Authorization` value
    /// instead of the client's (the log still shows what the client sent).
    pub upstream_authorization: Option<String>,
    /// Timeout for connecting to the upstream (default 5 s); on failure the
    /// client gets `502 Bad Gateway`.
    pub connect_timeout: Duration,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            upstream_authorization: None,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl ProxyOptions {
    /// Options with these rules.
    pub fn with_rules(rules: impl IntoIterator<Item = FaultRule>) -> Self {
        Self {
            rules: rules.into_iter().collect(),
            ..Self::default()
        }
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Position in the log (0-based).
    pub index: usize,
    /// Request method.
    pub method: String,
    /// Path and query, e.g. `/v2/a/blobs/uploads/?digest=...`.
    pub path: String,
    /// Request headers as received from the client, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Response status sent to the client; `None` if none was sent
    /// (connection dropped or reset, or the response is still pending).
    pub status: Option<u16>,
    /// Request body bytes read from the client.
    pub request_body_bytes: u64,
    /// Response body bytes sent towards the client.
    pub response_body_bytes: u64,
    /// Label of the fault rule applied, if any.
    pub fault: Option<String>,
    /// Whether the request was sent to the upstream.
    pub forwarded: bool,
    /// Whether the response body was delivered completely.
    pub completed: bool,
}

impl RecordedRequest {
    /// What the request is about, by its path: `uploads`, `blobs`, `manifests`, `tags/list`,
    /// `referrers`, `_tags` (ACR's tag listing), `/v2/`, or `other`.
    pub fn kind(&self) -> &'static str {
        let path = self.path.split('?').next().unwrap_or_default();
        if path.contains("/blobs/uploads") {
            "uploads"
        } else if path.contains("/blobs/") {
            "blobs"
        } else if path.contains("/manifests/") {
            "manifests"
        } else if path.ends_with("/tags/list") {
            "tags/list"
        } else if path.contains("/referrers/") {
            "referrers"
        } else if path.ends_with("/_tags") {
            "_tags"
        } else if path == "/v2/" || path == "/v2" {
            "/v2/"
        } else {
            "other"
        }
    }

    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client sent an `Authorization` header.
    pub fn has_authorization(&self) -> bool {
        self.header("authorization").is_some()
    }
}

#[derive(Debug)]
struct Entry {
    index: usize,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    status: AtomicU16,
    request_body_bytes: AtomicU64,
    response_body_bytes: AtomicU64,
    fault: Mutex<Option<String>>,
    forwarded: AtomicBool,
    completed: AtomicBool,
}

impl Entry {
    fn snapshot(&self) -> RecordedRequest {
        let status = self.status.load(Ordering::SeqCst);
        RecordedRequest {
            index: self.index,
            method: self.method.clone(),
            path: self.path.clone(),
            headers: self.headers.clone(),
            status: (status != 0).then_some(status),
            request_body_bytes: self.request_body_bytes.load(Ordering::SeqCst),
            response_body_bytes: self.response_body_bytes.load(Ordering::SeqCst),
            fault: lock(&self.fault).clone(),
            forwarded: self.forwarded.load(Ordering::SeqCst),
            completed: self.completed.load(Ordering::SeqCst),
        }
    }
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    upstream_authorization: Option<String>,
    connect_timeout: Duration,
    rules: Mutex<Vec<RuleState>>,
    log: Mutex<Vec<Arc<Entry>>>,
}

/// A recording, fault-injecting HTTP/1.1 reverse proxy on
/// `127.0.0.1:<random port>`.
///
/// Each request is forwarded to the upstream over a fresh connection with
/// its `Host` header unchanged (so a registry builds `Location` URLs that
/// point back at the proxy); bodies stream both ways. Stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _task: ServerTask,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (must be a loopback address).
    pub async fn start(upstream: SocketAddr, options: ProxyOptions) -> anyhow::Result<Self> {
        ensure_loopback(upstream)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            upstream_authorization: options.upstream_authorization,
            connect_timeout: options.connect_timeout,
            rules: Mutex::new(options.rules.into_iter().map(RuleState::new).collect()),
            log: Mutex::new(Vec::new()),
        });
        let task = ServerTask::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            _task: task,
        })
    }

    /// Starts a proxy in front of `http://HOST:PORT` (HOST a loopback IP or
    /// `localhost`; any path is ignored).
    pub async fn start_url(upstream: &str, options: ProxyOptions) -> anyhow::Result<Self> {
        Self::start(parse_loopback_url(upstream)?, options).await
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The upstream address.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Appends a rule (its counters start at zero).
    pub fn add_rule(&self, rule: FaultRule) {
        lock(&self.shared.rules).push(RuleState::new(rule));
    }

    /// Replaces all rules.
    pub fn set_rules(&self, rules: impl IntoIterator<Item = FaultRule>) {
        *lock(&self.shared.rules) = rules.into_iter().map(RuleState::new).collect();
    }

    /// Removes all rules: plain forwarding from now on.
    pub fn clear_rules(&self) {
        lock(&self.shared.rules).clear();
    }

    /// How many times the rule(s) labelled `label` fired.
    pub fn fired(&self, label: &str) -> usize {
        lock(&self.shared.rules)
            .iter()
            .filter(|r| r.rule.label == label)
            .map(|r| r.fired)
            .sum()
    }

    /// Snapshot of every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log)
            .iter()
            .map(|e| e.snapshot())
            .collect()
    }

    /// Clears the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Number of requests with `method` (any if empty) whose path contains
    /// `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.count_where(|r| {
            (method.is_empty() || r.method.eq_ignore_ascii_case(method))
                && r.path.contains(path_contains)
        })
    }

    /// Number of requests satisfying `pred`.
    pub fn count_where(&self, pred: impl Fn(&RecordedRequest) -> bool) -> usize {
        self.requests().iter().filter(|r| pred(r)).count()
    }

    /// Whether any request so far carried an `Authorization` header.
    pub fn saw_authorization(&self) -> bool {
        self.requests()
            .iter()
            .any(RecordedRequest::has_authorization)
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { handle(shared, req).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

/// A body fed by a channel (so a pump task can delay, alter or cut it).
struct ChannelBody {
    rx: mpsc::Receiver<Result<Frame<Bytes>, ProxyError>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = ProxyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

/// The client's request body, counted as it streams upstream.
struct CountingBody {
    inner: Incoming,
    entry: Arc<Entry>,
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &res
            && let Some(data) = frame.data_ref()
        {
            this.entry
                .request_body_bytes
                .fetch_add(data.len() as u64, Ordering::SeqCst);
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Error type of the proxy's service and bodies (concrete, to keep hyper's
/// bounds simple).
#[derive(Debug)]
struct ProxyError(String);

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProxyError {}

impl From<hyper::Error> for ProxyError {
    fn from(e: hyper::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<std::io::Error> for ProxyError {
    fn from(e: std::io::Error) -> Self {
        Self(e.to_string())
    }
}

fn injected(what: &str) -> ProxyError {
    ProxyError(format!("fault injected: {what}"))
}

fn full(status: u16, headers: &[(String, String)], body: Bytes) -> Response<ProxyBody> {
    let mut resp = Response::new(Full::new(body).map_err(|e: Infallible| match e {}).boxed());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in headers {
        // The body's own length wins; a contradicting header would trip hyper.
        if k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for h in HOP_BY_HOP
        .iter()
        .copied()
        .chain(listed.iter().map(String::as_str))
    {
        headers.remove(h);
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let entry = {
        let mut log = lock(&shared.log);
        let entry = Arc::new(Entry {
            index: log.len(),
            method: method.to_string(),
            path: path.clone(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            status: AtomicU16::new(0),
            request_body_bytes: AtomicU64::new(0),
            response_body_bytes: AtomicU64::new(0),
            fault: Mutex::new(None),
            forwarded: AtomicBool::new(false),
            completed: AtomicBool::new(false),
        });
        log.push(entry.clone());
        entry
    };

    let action = choose(&mut lock(&shared.rules), &method, &path).map(|(label, action)| {
        *lock(&entry.fault) = Some(label);
        action
    });

    match &action {
        Some(FaultAction::Respond {
            status,
            headers,
            body,
        }) => {
            entry.status.store(*status, Ordering::SeqCst);
            entry
                .response_body_bytes
                .store(body.len() as u64, Ordering::SeqCst);
            entry.completed.store(true, Ordering::SeqCst);
            return Ok(full(*status, headers, body.clone()));
        }
        Some(FaultAction::DropConnection) => {
            return Err(injected("connection dropped"));
        }
        Some(FaultAction::ResetDuringUpload { after_bytes }) => {
            let mut body = req.into_body();
            let mut read = 0u64;
            while read < *after_bytes {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            read += d.len() as u64;
                            entry.request_body_bytes.store(read, Ordering::SeqCst);
                        }
                    }
                    _ => break,
                }
            }
            return Err(injected("reset during upload"));
        }
        Some(FaultAction::Stall {
            duration,
            after_bytes: None,
        }) => tokio::time::sleep(*duration).await,
        _ => {}
    }

    // Forward.
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    if let Some(auth) = &shared.upstream_authorization
        && let Ok(v) = HeaderValue::from_str(auth)
    {
        headers.insert(header::AUTHORIZATION, v);
    }
    let mut up_req = Request::new(CountingBody {
        inner: body,
        entry: entry.clone(),
    });
    *up_req.method_mut() = parts.method;
    *up_req.uri_mut() = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    *up_req.headers_mut() = headers;

    let up_resp = match send_upstream(&shared, up_req).await {
        Ok(r) => r,
        Err(e) => {
            entry.status.store(502, Ordering::SeqCst);
            entry.completed.store(true, Ordering::SeqCst);
            return Ok(full(
                502,
                &[("Content-Type".into(), "text/plain".into())],
                Bytes::from(format!("proxy: upstream {} failed: {e}\n", shared.upstream)),
            ));
        }
    };
    entry.forwarded.store(true, Ordering::SeqCst);

    let (mut parts, up_body) = up_resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(FaultAction::RewriteLocation { to_base }) = &action
        && let Some(loc) = parts
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    {
        let new = rewrite_location(loc, to_base);
        if let Ok(v) = HeaderValue::from_str(&new) {
            parts.headers.insert(header::LOCATION, v);
        }
    }
    let content_length: Option<u64> = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());

    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(pump(up_body, tx, action, content_length, entry.clone()));
    entry.status.store(parts.status.as_u16(), Ordering::SeqCst);
    Ok(Response::from_parts(parts, ChannelBody { rx }.boxed()))
}

async fn send_upstream(
    shared: &Shared,
    req: Request<CountingBody>,
) -> Result<Response<Incoming>, ProxyError> {
    send_to(shared.upstream, shared.connect_timeout, req)
        .await
        .map_err(|e| ProxyError(format!("{e:#}")))
}

/// Rewrites `location` (absolute `scheme://authority/...` or relative
/// `/...`) onto `to_base`, keeping path and query.
pub fn rewrite_location(location: &str, to_base: &str) -> String {
    let base = to_base.trim_end_matches('/');
    let path = if let Some(rest) = location
        .strip_prefix("http://")
        .or_else(|| location.strip_prefix("https://"))
    {
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    } else if location.starts_with('/') {
        location
    } else {
        return format!("{base}/{location}");
    };
    format!("{base}{path}")
}

/// Ends the body with an error (hyper then drops the connection), once the
/// bytes already queued have been taken by hyper and had time to be flushed
/// — otherwise hyper could drop them together with the connection.
async fn abort_after_flush(tx: &mpsc::Sender<Result<Frame<Bytes>, ProxyError>>, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tx.capacity() < tx.max_capacity() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = tx.send(Err(injected(what))).await;
}

/// Streams the upstream body into the client's channel, applying the fault.
async fn pump(
    mut body: Incoming,
    tx: mpsc::Sender<Result<Frame<Bytes>, ProxyError>>,
    action: Option<FaultAction>,
    content_length: Option<u64>,
    entry: Arc<Entry>,
) {
    // Byte limit after which the connection is aborted.
    let limit: Option<(u64, &'static str)> = match &action {
        Some(FaultAction::CutAfter { bytes }) => Some((*bytes, "cut after N bytes")),
        Some(FaultAction::Truncate { missing }) => {
            content_length.map(|len| (len.saturating_sub(*missing), "truncated body"))
        }
        _ => None,
    };
    // Truncate without Content-Length: buffer to learn the length.
    let mut buffered: Option<Vec<Bytes>> = match (&action, content_length) {
        (Some(FaultAction::Truncate { .. }), None) => Some(Vec::new()),
        _ => None,
    };
    let flip = match &action {
        Some(FaultAction::FlipByte { offset }) => Some(*offset),
        _ => None,
    };
    let mut stall = match &action {
        Some(FaultAction::Stall {
            duration,
            after_bytes: Some(n),
        }) => Some((*n, *duration)),
        _ => None,
    };

    let mut sent = 0u64;
    // Stall before the first byte if asked for `after_bytes: Some(0)`.
    if let Some((0, d)) = stall {
        tokio::time::sleep(d).await;
        stall = None;
    }
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Err(e)) => {
                let _ = tx.send(Err(ProxyError::from(e))).await;
                return;
            }
            Some(Ok(f)) => f,
        };
        let frame = match frame.into_data() {
            Ok(data) => data,
            Err(trailers) => {
                if tx.send(Ok(trailers)).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if let Some(buf) = buffered.as_mut() {
            buf.push(frame);
            continue;
        }
        let mut data = frame;
        if let Some(off) = flip
            && off >= sent
            && off < sent + data.len() as u64
        {
            let mut v = data.to_vec();
            let i = (off - sent) as usize;
            v[i] ^= 0xFF;
            data = Bytes::from(v);
        }
        // Split at the stall point / limit.
        while !data.is_empty() {
            let mut take = data.len() as u64;
            if let Some((at, _)) = stall
                && at > sent
            {
                take = take.min(at - sent);
            }
            if let Some((lim, _)) = limit {
                take = take.min(lim.saturating_sub(sent));
            }
            if take > 0 {
                let chunk = data.split_to(take as usize);
                sent += take;
                entry.response_body_bytes.store(sent, Ordering::SeqCst);
                if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                    return;
                }
            }
            if let Some((lim, what)) = limit
                && sent >= lim
            {
                abort_after_flush(&tx, what).await;
                return;
            }
            if let Some((at, d)) = stall
                && sent >= at
            {
                tokio::time::sleep(d).await;
                stall = None;
            }
        }
    }
    if let Some(buf) = buffered {
        let total: u64 = buf.iter().map(|b| b.len() as u64).sum();
        let missing = match &action {
            Some(FaultAction::Truncate { missing }) => *missing,
            _ => 0,
        };
        let keep = total.saturating_sub(missing);
        for mut b in buf {
            let room = keep - sent;
            if room == 0 {
                break;
            }
            let chunk = b.split_to((b.len() as u64).min(room) as usize);
            sent += chunk.len() as u64;
            entry.response_body_bytes.store(sent, Ordering::SeqCst);
            if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                return;
            }
        }
        abort_after_flush(&tx, "truncated body").await;
        return;
    }
    entry.completed.store(true, Ordering::SeqCst);
    // Dropping `tx` ends the body.
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn location_rewrite() {
        assert_eq!(
            rewrite_location(
                "http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=1",
                "http://127.0.0.1:6000"
            ),
            "http://127.0.0.1:6000/v2/a/blobs/uploads/x?_state=1"
        );
        assert_eq!(
            rewrite_location("/v2/a/b", "http://127.0.0.1:6000/"),
            "http://127.0.0.1:6000/v2/a/b"
        );
        assert_eq!(rewrite_location("https://h", "http://b"), "http://b/");
    }

    #[test]
    fn rules_count_and_fire() {
        let shared = Shared {
            upstream: "127.0.0.1:1".parse().expect("addr"),
            upstream_authorization: None,
            connect_timeout: Duration::from_secs(1),
            rules: Mutex::new(vec![
                RuleState::new(
                    FaultRule::new(FaultAction::status(500))
                        .method("GET")
                        .path_contains("/blobs/")
                        .nth(2)
                        .label("second"),
                ),
                RuleState::new(
                    FaultRule::new(FaultAction::status(503))
                        .path_contains("/blobs/")
                        .label("all"),
                ),
            ]),
            log: Mutex::new(Vec::new()),
        };
        let get = Method::GET;
        let pick = |m: &Method, p: &str| choose(&mut lock(&shared.rules), m, p).map(|(l, _)| l);
        assert_eq!(pick(&get, "/v2/a/blobs/x").as_deref(), Some("all"));
        assert_eq!(pick(&get, "/v2/a/blobs/x").as_deref(), Some("second"));
        assert_eq!(pick(&get, "/v2/a/manifests/x"), None);
        assert_eq!(pick(&Method::HEAD, "/v2/a/blobs/x").as_deref(), Some("all"));
    }

    #[test]
    fn probability_is_deterministic() {
        let mk = || Shared {
            upstream: "127.0.0.1:1".parse().expect("addr"),
            upstream_authorization: None,
            connect_timeout: Duration::from_secs(1),
            rules: Mutex::new(vec![RuleState::new(
                FaultRule::new(FaultAction::OneOf(vec![
                    FaultAction::status(500),
                    FaultAction::status(503),
                ]))
                .probability(0.5, 42),
            )]),
            log: Mutex::new(Vec::new()),
        };
        let (a, b) = (mk(), mk());
        let run = |s: &Shared| -> Vec<Option<FaultAction>> {
            (0..32)
                .map(|_| choose(&mut lock(&s.rules), &Method::GET, "/").map(|(_, a)| a))
                .collect()
        };
        let ra = run(&a);
        assert_eq!(ra, run(&b));
        let fired = ra.iter().filter(|x| x.is_some()).count();
        assert!(fired > 4 && fired < 28, "fired {fired} of 32");
    }
}
