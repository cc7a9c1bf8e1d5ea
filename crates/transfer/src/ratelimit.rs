//! Registry rate limits: the budget a registry announces, and the stop a long `429` puts on
//! that registry for every later request of the process.
//!
//! Docker Hub counts every manifest `GET` as a pull (a `HEAD` is free) and announces the
//! budget on manifest answers as `ratelimit-limit: 100;w=21600` and
//! `ratelimit-remaining: 20;w=21600` (count; window in seconds). A `429` whose reset is
//! further away than a short retry waits ([`RateLimitPolicy::longest_retry`]) stops the
//! registry: the request fails at once with [`TransferError::RateLimitReached`], and so does
//! every later request to that registry (a batch fails entry by entry in no time, not after
//! minutes of retries each) — or, with [`RateLimitPolicy::wait`], every request to it waits
//! for the reset, with a countdown for the caller to show.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use std::time::Instant;

use acr_import_auth::Authorization;
use http::{HeaderMap, Method, Response};
use hyper::body::Incoming;
use url::Url;

use crate::TransferError;
use crate::body::read_capped;
use crate::error::parse_error_envelope;
use crate::retry::parse_retry_after;
use crate::transport::{Req, SMALL_BODY_LIMIT, Transport, drain};

/// `N;w=SECONDS`: a count and the window it applies to (the form of Docker Hub's
/// `ratelimit-limit` and `ratelimit-remaining`; `w` may be absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// The count.
    pub count: u64,
    /// The window, when given.
    pub window: Option<Duration>,
}

impl std::str::FromStr for Quota {
    type Err = ();
    fn from_str(value: &str) -> Result<Self, ()> {
        let mut parts = value.split(';').map(str::trim);
        let count = parts.next().ok_or(())?.parse().map_err(|_| ())?;
        let mut window = None;
        for p in parts {
            if let Some(w) = p.strip_prefix("w=") {
                window = Some(Duration::from_secs(w.trim().parse().map_err(|_| ())?));
            }
        }
        Ok(Quota { count, window })
    }
}

/// What a registry said about its budget on its latest answer that carried
/// `ratelimit-limit` and `ratelimit-remaining`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitStatus {
    /// Requests (pulls, on Docker Hub) allowed per window.
    pub limit: u64,
    /// Requests left in the window.
    pub remaining: u64,
    /// The window, when announced (Docker Hub: a rolling 6 h).
    pub window: Option<Duration>,
    /// When the answer arrived.
    pub seen_at: SystemTime,
}

impl RateLimitStatus {
    /// Reads the two headers; `None` unless both parse.
    pub fn from_headers(headers: &HeaderMap, seen_at: SystemTime) -> Option<Self> {
        let quota =
            |name: &str| -> Option<Quota> { headers.get(name)?.to_str().ok()?.parse().ok() };
        let (limit, remaining) = (quota("ratelimit-limit")?, quota("ratelimit-remaining")?);
        Some(Self {
            limit: limit.count,
            remaining: remaining.count,
            window: remaining.window.or(limit.window),
            seen_at,
        })
    }

    /// When the whole budget is back at the latest: the window after this answer (a rolling
    /// window gives pulls back earlier, as they age out of it).
    pub fn full_by(&self) -> Option<SystemTime> {
        self.window.map(|w| self.seen_at + w)
    }
}

/// A registry's rate limit that a short retry cannot outwait, or a plan that needs more than
/// the announced budget: where, the limit, when it resets, and what to do.
#[derive(Debug, Clone)]
pub struct RateLimitStop {
    /// The registry host.
    pub registry: String,
    /// The budget it announced, if it did.
    pub status: Option<RateLimitStatus>,
    /// When requests may go again (at the latest, unless [`Self::exact`]).
    pub until: SystemTime,
    /// Whether [`Self::until`] came from `Retry-After` (exact) rather than the window.
    pub exact: bool,
    /// For a plan refused before any byte moved: the requests it needs.
    pub needed: Option<u64>,
    /// Whether the refused requests were anonymous.
    pub anonymous: bool,
    /// Whether the registry is Docker Hub (by its host or its `docker-ratelimit-source`).
    pub docker_hub: bool,
    /// What the registry said, when it said something.
    pub message: Option<String>,
}

impl fmt::Display for RateLimitStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = SystemTime::now();
        let name = if self.docker_hub && self.registry == "registry-1.docker.io" {
            "docker.io".to_owned()
        } else {
            self.registry.clone()
        };
        let at = clock(self.until, now);
        let when = format!(
            "{}{at} (in {})",
            if self.exact { "at " } else { "by " },
            span(self.until.duration_since(now).unwrap_or_default())
        );
        let limit = self.status.as_ref().map(|s| {
            format!(
                "{} pulls{}",
                s.limit,
                s.window
                    .map(|w| format!(" per {}", span(w)))
                    .unwrap_or_default()
            )
        });
        match (self.needed, &self.status) {
            (Some(needed), Some(s)) => write!(
                f,
                "{name}: this import needs {needed} pull{}, {} remain{} until {at} (a limit of {}); nothing was copied",
                if needed == 1 { "" } else { "s" },
                s.remaining,
                if s.remaining == 1 { "s" } else { "" },
                limit.unwrap_or_default()
            )?,
            _ => {
                match &limit {
                    Some(l) => write!(f, "{name}: the pull rate limit is reached ({l})")?,
                    None => write!(f, "{name}: the registry rate-limits this client (HTTP 429)")?,
                }
                write!(f, "; it resets {when}")?;
                if let Some(m) = &self.message {
                    let m: String = m.chars().take(300).collect();
                    write!(f, "; the registry said: {m}")?;
                }
                f.write_str("; no tag was moved")?;
            }
        }
        f.write_str(". To go on: ")?;
        if self.anonymous {
            if self.docker_hub {
                f.write_str(
                    "authenticate, which raises the limit (-u USER --password-stdin with a \
                     Docker Hub access token, or a `docker login` entry in the Docker config); ",
                )?;
            } else {
                f.write_str(
                    "authenticate (-u USER --password-stdin, or an entry in the Docker config); ",
                )?;
            }
        }
        f.write_str(
            "import less (--platform os/arch copies one platform instead of all); \
             or pass --wait-rate-limit to wait for the reset",
        )
    }
}

/// One tick of a wait for a rate limit to reset, for a countdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitWait {
    /// The registry host.
    pub registry: String,
    /// When the wait ends at the latest.
    pub until: SystemTime,
    /// Time left.
    pub left: Duration,
}

impl fmt::Display for RateLimitWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: waiting for the rate limit to reset, {} left (by {})",
            self.registry,
            span(self.left),
            clock(self.until, SystemTime::now())
        )
    }
}

/// Receives the ticks of rate-limit waits.
pub type WaitObserver = Arc<dyn Fn(&RateLimitWait) + Send + Sync>;

/// How the transport meets a rate limit. Every field states its default.
#[derive(Clone)]
pub struct RateLimitPolicy {
    /// The longest reset a `429` may announce and still be retried as today (with the retry
    /// policy's backoff); a later reset stops the registry. Default: 60 s.
    pub longest_retry: Duration,
    /// Wait for the reset instead of failing (`--wait-rate-limit`). Default: off.
    pub wait: bool,
    /// While waiting, how often the registry is asked (with a free manifest `HEAD`) whether
    /// its budget is back before the announced reset. Default: 60 s.
    pub probe_every: Duration,
    /// Told about each second of a wait. Default: nobody.
    pub on_wait: Option<WaitObserver>,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        Self {
            longest_retry: Duration::from_secs(60),
            wait: false,
            probe_every: Duration::from_secs(60),
            on_wait: None,
        }
    }
}

impl fmt::Debug for RateLimitPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitPolicy")
            .field("longest_retry", &self.longest_retry)
            .field("wait", &self.wait)
            .field("probe_every", &self.probe_every)
            .finish_non_exhaustive()
    }
}

/// What to do with a `429`.
pub(crate) enum Verdict {
    /// Retry as any transient failure (after the `Retry-After`, if one was sent).
    Retry,
    /// The registry is stopped: fail, or wait, as the policy says.
    Stop(Box<RateLimitStop>),
}

#[derive(Default)]
struct Entry {
    status: Option<RateLimitStatus>,
    /// Whether the answer that carried [`Self::status`] was to an anonymous request.
    anonymous: bool,
    docker_hub: bool,
    stop: Option<RateLimitStop>,
    /// A waiter is showing the countdown and probing.
    leader: bool,
}

/// The rate-limit state of every registry a transport talks to.
pub(crate) struct RateLimits {
    pub(crate) policy: RateLimitPolicy,
    by_registry: Mutex<HashMap<String, Entry>>,
}

impl RateLimits {
    pub(crate) fn new(policy: RateLimitPolicy) -> Self {
        Self {
            policy,
            by_registry: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, registry: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut map = self.by_registry.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(registry.to_owned()).or_default())
    }

    /// Records the budget an answer of `registry` announced.
    pub(crate) fn observe(&self, registry: &str, headers: &HeaderMap, anonymous: bool) {
        let status = RateLimitStatus::from_headers(headers, SystemTime::now());
        let hub = headers.contains_key("docker-ratelimit-source");
        if status.is_some() || hub {
            self.with(registry, |e| {
                if status.is_some() {
                    e.status = status;
                    e.anonymous = anonymous;
                }
                e.docker_hub |= hub;
            });
        }
    }

    /// The budget `registry` announced last.
    pub(crate) fn status(&self, registry: &str) -> Option<RateLimitStatus> {
        self.with(registry, |e| e.status.clone())
    }

    /// The stop on `registry`, while it lasts.
    pub(crate) fn stopped(&self, registry: &str) -> Option<RateLimitStop> {
        let now = SystemTime::now();
        self.with(registry, |e| {
            if e.stop.as_ref().is_some_and(|s| s.until <= now) {
                e.stop = None;
            }
            e.stop.clone()
        })
    }

    /// Lifts the stop on `registry` (its budget is back).
    pub(crate) fn lift(&self, registry: &str) {
        self.with(registry, |e| e.stop = None);
    }

    /// Judges a `429` of `registry`: a reset within [`RateLimitPolicy::longest_retry`] is
    /// retried; a later one (`Retry-After`, or a spent budget with its window) is a stop,
    /// for the caller to [`Self::record`] once it has read the registry's message.
    pub(crate) fn on_429(&self, registry: &str, headers: &HeaderMap, anonymous: bool) -> Verdict {
        let now = SystemTime::now();
        let retry_after = headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let status = RateLimitStatus::from_headers(headers, now).or_else(|| self.status(registry));
        let (wait, exact) = match (retry_after, &status) {
            (Some(d), _) => (d, true),
            (None, Some(s)) if s.remaining == 0 => (s.window.unwrap_or_default(), false),
            _ => return Verdict::Retry,
        };
        if wait <= self.policy.longest_retry {
            return Verdict::Retry;
        }
        let docker_hub = registry == "registry-1.docker.io"
            || headers.contains_key("docker-ratelimit-source")
            || self.with(registry, |e| e.docker_hub);
        let stop = RateLimitStop {
            registry: registry.to_owned(),
            status,
            until: now + wait,
            exact,
            needed: None,
            anonymous,
            docker_hub,
            message: None,
        };
        Verdict::Stop(Box::new(stop))
    }

    /// Stops `stop.registry` for every later request, until the stop's time.
    pub(crate) fn record(&self, stop: &RateLimitStop) {
        self.with(&stop.registry, |e| e.stop = Some(stop.clone()));
    }

    /// A plan that needs `needed` requests of `registry` when fewer remain: the stop to fail
    /// with (nothing is recorded: a smaller import may still fit).
    pub(crate) fn shortfall(&self, registry: &str, needed: u64) -> Option<RateLimitStop> {
        let (status, docker_hub, anonymous) =
            self.with(registry, |e| (e.status.clone(), e.docker_hub, e.anonymous));
        let status = status?;
        if needed <= status.remaining {
            return None;
        }
        Some(RateLimitStop {
            registry: registry.to_owned(),
            until: status.full_by().unwrap_or(status.seen_at),
            exact: false,
            needed: Some(needed),
            anonymous,
            docker_hub: docker_hub || registry == "registry-1.docker.io",
            message: None,
            status: Some(status),
        })
    }

    /// Claims the countdown of `registry`'s wait: `true` for the first waiter, who shows the
    /// countdown and probes; the others just wait.
    pub(crate) fn lead(&self, registry: &str) -> bool {
        self.with(registry, |e| !std::mem::replace(&mut e.leader, true))
    }

    /// Gives the countdown up.
    pub(crate) fn unlead(&self, registry: &str) {
        self.with(registry, |e| e.leader = false);
    }

    pub(crate) fn tick(&self, stop: &RateLimitStop) {
        if let Some(observe) = &self.policy.on_wait {
            observe(&RateLimitWait {
                registry: stop.registry.clone(),
                until: stop.until,
                left: stop
                    .until
                    .duration_since(SystemTime::now())
                    .unwrap_or_default(),
            });
        }
    }
}

/// Whether a request goes without credentials of a user (none, or an anonymous token).
pub(crate) fn is_anonymous(authorization: Option<&Authorization>) -> bool {
    authorization.is_none_or(|a| a.identity() == "anonymous")
}

/// The transport's side of rate limits: a stopped registry's requests fail at once or wait,
/// a long `429` stops its registry, a wait shows a countdown and probes with `HEAD`s.
impl Transport {
    /// Before a request goes: a registry stopped by its rate limit fails it at once with the
    /// same error, or (waiting for rate limits) holds it until the reset.
    pub(crate) async fn respect_stop(
        &self,
        req: &mut Req,
        authorization: Option<&Authorization>,
    ) -> Result<(), TransferError> {
        let Some(stop) = self.inner.limits.stopped(&req.ctx.registry) else {
            return Ok(());
        };
        if !self.inner.limits.policy.wait {
            return Err(reached(stop));
        }
        let url = req.url.clone();
        self.wait_out(req, &url, authorization).await;
        Ok(())
    }

    /// A `429` whose reset is further away than a retry waits: the registry is stopped for
    /// every later request; this one fails with the stop, or (waiting for rate limits) waits
    /// for the reset and returns to be sent again.
    pub(crate) async fn stop_registry(
        &self,
        mut stop: RateLimitStop,
        response: Response<Incoming>,
        url: &Url,
        req: &mut Req,
        authorization: Option<&Authorization>,
    ) -> Result<(), TransferError> {
        let body = read_capped(
            response.into_body(),
            SMALL_BODY_LIMIT,
            self.inner.idle_timeout,
            url,
        )
        .await
        .unwrap_or_default();
        stop.message = parse_error_envelope(&body)
            .into_iter()
            .map(|e| e.message)
            .find(|m| !m.is_empty())
            .or_else(|| {
                let text = String::from_utf8_lossy(&body).trim().to_owned();
                (!text.is_empty() && text.len() < 500 && !text.starts_with('<')).then_some(text)
            });
        tracing::debug!(registry = %stop.registry, "rate limit reached: {stop}");
        self.inner.limits.record(&stop);
        if !self.inner.limits.policy.wait {
            return Err(reached(stop));
        }
        self.wait_out(req, url, authorization).await;
        Ok(())
    }

    /// Waits while `req`'s registry is stopped. The first waiter shows the countdown (each
    /// second) and, when it reads a manifest, asks every [`RateLimitPolicy::probe_every`]
    /// with a `HEAD` (free where pulls are counted) whether the budget is back; the others
    /// wait quietly.
    async fn wait_out(&self, req: &mut Req, url: &Url, authorization: Option<&Authorization>) {
        struct Lead<'a>(&'a RateLimits, &'a str, bool);
        impl Drop for Lead<'_> {
            fn drop(&mut self) {
                if self.2 {
                    self.0.unlead(self.1);
                }
            }
        }
        let limits = &self.inner.limits;
        let registry = req.ctx.registry.clone();
        let lead = Lead(limits, &registry, limits.lead(&registry));
        let probes = lead.2 && req.ctx.operation == crate::Operation::GetManifest;
        let mut probed = Instant::now();
        while let Some(stop) = limits.stopped(&registry) {
            if lead.2 {
                limits.tick(&stop);
            }
            let left = stop
                .until
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            tokio::time::sleep(left.min(Duration::from_secs(1))).await;
            if probes && probed.elapsed() >= limits.policy.probe_every {
                probed = Instant::now();
                if self.budget_back(req, url, authorization).await {
                    limits.lift(&registry);
                }
            }
        }
    }

    /// Asks with a manifest `HEAD` whether the registry's budget is back (a `HEAD` costs no
    /// pull): its answer's `ratelimit-remaining` is above zero, or it sends no limit at all.
    async fn budget_back(
        &self,
        req: &mut Req,
        url: &Url,
        authorization: Option<&Authorization>,
    ) -> bool {
        // A wait outlasts tokens: ask with a current one (the cached token, or a fresh one).
        let fresh = self
            .inner
            .auth
            .authorization(&req.ctx.registry, &req.scopes)
            .await
            .ok()
            .flatten();
        let authorization = fresh.as_ref().or(authorization);
        let Ok(request) = self.build_request(req, &Method::HEAD, url, authorization) else {
            return false;
        };
        self.count(url, &Method::HEAD, false);
        let sent =
            tokio::time::timeout(self.inner.idle_timeout, self.inner.client.request(request)).await;
        let Ok(Ok(response)) = sent else {
            return false;
        };
        let registry = &req.ctx.registry;
        self.inner
            .limits
            .observe(registry, response.headers(), is_anonymous(authorization));
        let back = response.status().is_success()
            && RateLimitStatus::from_headers(response.headers(), SystemTime::now())
                .is_none_or(|s| s.remaining > 0);
        drain(response).await;
        back
    }
}

/// The error of a stop.
pub(crate) fn reached(stop: RateLimitStop) -> TransferError {
    TransferError::RateLimitReached(Box::new(stop))
}

/// `13:05 UTC` for a time within a day, `Thu, 02 Jan 2025 13:05 UTC` beyond.
fn clock(t: SystemTime, now: SystemTime) -> String {
    let text = httpdate::fmt_http_date(t);
    // `Wed, 21 Oct 2015 07:28:00 GMT`
    let parts: Vec<&str> = text.split(' ').collect();
    let hm = parts
        .get(4)
        .map(|t| t.get(..5).unwrap_or(t))
        .unwrap_or_default();
    let far = t.duration_since(now).unwrap_or_default() > Duration::from_secs(20 * 3600);
    if far && parts.len() >= 4 {
        format!("{} {} {} {hm} UTC", parts[1], parts[2], parts[3])
    } else {
        format!("{hm} UTC")
    }
}

/// `5 h 59 min`, `12 min`, `40 s`.
pub(crate) fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ if s % 3600 < 60 => format!("{} h", s / 3600),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    macro_rules! quota {
        ($($name:ident: $text:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!($text.parse::<Quota>().ok(), $want);
            }
        )*};
    }

    quota! {
        docker_hub_form: "100;w=21600" => Some(Quota { count: 100, window: Some(Duration::from_secs(21600)) });
        spaces: " 7 ; w=60 " => Some(Quota { count: 7, window: Some(Duration::from_secs(60)) });
        count_only: "42" => Some(Quota { count: 42, window: None });
        other_parameters: "5;comment=\"x\";w=10" => Some(Quota { count: 5, window: Some(Duration::from_secs(10)) });
        not_a_number: "many;w=10" => None;
        bad_window: "5;w=soon" => None;
        empty: "" => None;
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn status_needs_both_headers() {
        let now = SystemTime::now();
        let h = headers(&[
            ("ratelimit-limit", "10;w=3600"),
            ("ratelimit-remaining", "3;w=3600"),
        ]);
        let s = RateLimitStatus::from_headers(&h, now).unwrap();
        assert_eq!((s.limit, s.remaining), (10, 3));
        assert_eq!(s.full_by(), Some(now + Duration::from_secs(3600)));
        let h = headers(&[("ratelimit-limit", "10;w=3600")]);
        assert!(RateLimitStatus::from_headers(&h, now).is_none());
    }

    #[test]
    fn short_429s_are_retried_long_ones_stop_the_registry() {
        let limits = RateLimits::new(RateLimitPolicy::default());
        let short = headers(&[("retry-after", "2")]);
        assert!(matches!(limits.on_429("r", &short, true), Verdict::Retry));
        assert!(matches!(
            limits.on_429("r", &HeaderMap::new(), true),
            Verdict::Retry
        ));
        assert!(limits.stopped("r").is_none());
        let spent = headers(&[
            ("ratelimit-limit", "10;w=3600"),
            ("ratelimit-remaining", "0;w=3600"),
            ("docker-ratelimit-source", "192.0.2.1"),
        ]);
        let Verdict::Stop(mut stop) = limits.on_429("r", &spent, true) else {
            panic!("a spent hourly budget stops the registry");
        };
        assert!(!stop.exact && stop.docker_hub && stop.anonymous);
        stop.message = Some("spent".into());
        limits.record(&stop);
        assert!(limits.stopped("r").is_some(), "later requests see the stop");
        assert!(limits.stopped("other").is_none());
        let text = stop.to_string();
        for part in [
            "the pull rate limit is reached (10 pulls per 1 h)",
            "resets by",
            "Docker Hub access token",
            "--platform",
            "--wait-rate-limit",
            "no tag was moved",
            "spent",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
        limits.lift("r");
        assert!(limits.stopped("r").is_none());
        let long = headers(&[("retry-after", "7200")]);
        let Verdict::Stop(stop) = limits.on_429("s", &long, false) else {
            panic!("a two-hour Retry-After stops the registry");
        };
        assert!(stop.exact);
        let text = stop.to_string();
        assert!(
            text.contains("resets at") && !text.contains("authenticate"),
            "{text}"
        );
    }

    #[test]
    fn a_plan_larger_than_the_budget_is_a_shortfall() {
        let limits = RateLimits::new(RateLimitPolicy::default());
        assert!(limits.shortfall("r", 4).is_none(), "no budget announced");
        limits.observe(
            "r",
            &headers(&[
                ("ratelimit-limit", "10;w=3600"),
                ("ratelimit-remaining", "2;w=3600"),
            ]),
            true,
        );
        assert!(limits.shortfall("r", 2).is_none());
        let stop = limits.shortfall("r", 4).unwrap();
        let text = stop.to_string();
        assert!(
            text.starts_with("r: this import needs 4 pulls, 2 remain until "),
            "{text}"
        );
        for part in [
            "UTC (a limit of 10 pulls per 1 h); nothing was copied",
            "authenticate",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
        assert!(limits.stopped("r").is_none(), "a shortfall stops nothing");
    }

    #[test]
    fn spans_and_clocks() {
        assert_eq!(span(Duration::from_secs(40)), "40 s");
        assert_eq!(span(Duration::from_secs(720)), "12 min");
        assert_eq!(span(Duration::from_secs(21600)), "6 h");
        assert_eq!(span(Duration::from_secs(21540)), "5 h 59 min");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(13 * 3600 + 5 * 60 + 30);
        assert_eq!(clock(t, t), "13:05 UTC");
        assert_eq!(
            clock(t, t - Duration::from_secs(2 * 86400)),
            "01 Jan 1970 13:05 UTC"
        );
    }
}
