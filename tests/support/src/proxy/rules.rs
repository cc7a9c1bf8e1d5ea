//! Fault rules: what a rule does to a matching request, when it fires, and the choice of
//! the action for a request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;

use crate::util::SplitMix64;

/// What a fault rule does to a matching request.
///
/// New variants may be added (e.g. richer random mixes); match with a
/// wildcard arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FaultAction {
    /// Answer directly with this status, headers and body; the request is
    /// not forwarded.
    Respond {
        /// Status code, e.g. 429, 503, 307.
        status: u16,
        /// Response headers, e.g. `("Retry-After", "1")` or `("Location", url)`.
        headers: Vec<(String, String)>,
        /// Response body.
        body: Bytes,
    },
    /// Forward, then XOR the response body byte at `offset` with `0xFF`
    /// (nothing happens if the body is shorter).
    FlipByte {
        /// Zero-based offset into the response body.
        offset: u64,
    },
    /// Forward, send the response head and the first `bytes` body bytes,
    /// then abort the connection.
    CutAfter {
        /// Body bytes delivered before the connection drops.
        bytes: u64,
    },
    /// Forward, send the response head (its `Content-Length` unchanged) and
    /// all but the last `missing` body bytes, then close the connection.
    Truncate {
        /// How many bytes short of the full body to stop.
        missing: u64,
    },
    /// Wait `duration`: before forwarding the request when `after_bytes` is
    /// `None`, else after that many response body bytes were sent.
    Stall {
        /// How long to hold.
        duration: Duration,
        /// `None`: stall before forwarding; `Some(n)`: mid-body after `n` bytes.
        after_bytes: Option<u64>,
    },
    /// Read `after_bytes` of the request body (or all of it if shorter),
    /// then close the connection without a response; nothing is forwarded.
    ResetDuringUpload {
        /// Request body bytes consumed before closing.
        after_bytes: u64,
    },
    /// Close the connection at once without a response; nothing is forwarded.
    DropConnection,
    /// Forward, then rewrite the response `Location` header (absolute or
    /// relative) so it points at `to_base` (e.g. `http://127.0.0.1:PORT`)
    /// keeping path and query.
    RewriteLocation {
        /// New scheme and authority, e.g. `http://127.0.0.1:4000`.
        to_base: String,
    },
    /// Pick one of these actions with the rule's seeded PRNG (seed 0 unless
    /// the rule uses [`FaultRule::probability`] or [`FaultRule::seed`]).
    OneOf(Vec<FaultAction>),
}

impl FaultAction {
    /// `Respond` with `status`, no headers, a short text body.
    pub fn status(status: u16) -> Self {
        Self::Respond {
            status,
            headers: Vec::new(),
            body: Bytes::from(format!("injected {status}\n")),
        }
    }

    /// `429 Too Many Requests` with `Retry-After: <secs>`.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self::Respond {
            status: 429,
            headers: vec![("Retry-After".into(), retry_after_secs.to_string())],
            body: Bytes::from_static(
                b"{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"injected\"}]}",
            ),
        }
    }

    /// A redirect (`status` 301/302/303/307/308) to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::Respond {
            status,
            headers: vec![("Location".into(), location.into())],
            body: Bytes::new(),
        }
    }
}

/// Which of the matching requests a rule fires on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// Every matching request.
    Every,
    /// Only the `n`-th matching request (1-based).
    Nth(usize),
    /// The first `n` matching requests.
    FirstN(usize),
    /// Each matching request independently with probability `p`, drawn from
    /// a SplitMix64 PRNG seeded with `seed` (deterministic).
    Probability {
        /// Probability in `[0, 1]`.
        p: f64,
        /// PRNG seed.
        seed: u64,
    },
}

/// Path predicate of a rule.
#[derive(Clone)]
enum PathMatch {
    Any,
    Contains(String),
    Predicate(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl fmt::Debug for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("Any"),
            Self::Contains(s) => f.debug_tuple("Contains").field(s).finish(),
            Self::Predicate(_) => f.write_str("Predicate(..)"),
        }
    }
}

/// A fault rule: which requests (method, path), when (trigger) and what
/// (action). Built fluently:
///
/// ```
/// use acr_import_testsupport::{FaultAction, FaultRule};
/// let rule = FaultRule::new(FaultAction::CutAfter { bytes: 100 })
///     .method("GET")
///     .path_contains("/blobs/")
///     .nth(1)
///     .label("cut first blob GET");
/// # let _ = rule;
/// ```
///
/// Every rule counts all requests matching its method and path; among the
/// rules that fire for a request, the first one added wins.
#[derive(Debug, Clone)]
pub struct FaultRule {
    method: Option<Method>,
    path: PathMatch,
    trigger: Trigger,
    seed: Option<u64>,
    action: FaultAction,
    pub(super) label: String,
}

impl FaultRule {
    /// A rule applying `action` to every request (narrow it with the
    /// other methods).
    pub fn new(action: FaultAction) -> Self {
        Self {
            method: None,
            path: PathMatch::Any,
            trigger: Trigger::Every,
            seed: None,
            label: format!("{action:?}"),
            action,
        }
    }

    /// Only requests with this method (e.g. `"GET"`, `"PUT"`).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Method::from_bytes(method.as_bytes()).ok();
        self
    }

    /// Only requests whose path-and-query contains `needle`.
    pub fn path_contains(mut self, needle: &str) -> Self {
        self.path = PathMatch::Contains(needle.into());
        self
    }

    /// Only requests whose path-and-query satisfies `pred`.
    pub fn path_matches(mut self, pred: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.path = PathMatch::Predicate(Arc::new(pred));
        self
    }

    /// Fire on every matching request (the default).
    pub fn every(mut self) -> Self {
        self.trigger = Trigger::Every;
        self
    }

    /// Fire only on the `n`-th matching request (1-based).
    pub fn nth(mut self, n: usize) -> Self {
        self.trigger = Trigger::Nth(n);
        self
    }

    /// Fire on the first `n` matching requests.
    pub fn first(mut self, n: usize) -> Self {
        self.trigger = Trigger::FirstN(n);
        self
    }

    /// Fire with probability `p` per matching request, from a PRNG seeded
    /// with `seed`.
    pub fn probability(mut self, p: f64, seed: u64) -> Self {
        self.trigger = Trigger::Probability { p, seed };
        self.seed.get_or_insert(seed);
        self
    }

    /// Seed of the PRNG used by [`FaultAction::OneOf`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// A name for the rule, recorded in [`RecordedRequest::fault`](super::RecordedRequest::fault).
    pub fn label(mut self, label: &str) -> Self {
        self.label = label.into();
        self
    }

    /// The rule's trigger.
    pub fn trigger(&self) -> Trigger {
        self.trigger
    }

    /// The rule's action.
    pub fn action(&self) -> &FaultAction {
        &self.action
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Contains(s) => path.contains(s.as_str()),
            PathMatch::Predicate(p) => p(path),
        }
    }
}

#[derive(Debug)]
pub(super) struct RuleState {
    pub(super) rule: FaultRule,
    matched: usize,
    pub(super) fired: usize,
    rng: SplitMix64,
}

impl RuleState {
    pub(super) fn new(rule: FaultRule) -> Self {
        let seed = rule.seed.unwrap_or(0);
        Self {
            rule,
            matched: 0,
            fired: 0,
            rng: SplitMix64::new(seed),
        }
    }
}

/// Chooses the action for a request, updating rule counters.
pub(super) fn choose(
    rules: &mut [RuleState],
    method: &Method,
    path: &str,
) -> Option<(String, FaultAction)> {
    let mut chosen = None;
    for st in rules.iter_mut() {
        if !st.rule.matches(method, path) {
            continue;
        }
        st.matched += 1;
        let fires = match st.rule.trigger {
            Trigger::Every => true,
            Trigger::Nth(n) => st.matched == n,
            Trigger::FirstN(n) => st.matched <= n,
            Trigger::Probability { p, .. } => st.rng.next_f64() < p,
        };
        if fires && chosen.is_none() {
            st.fired += 1;
            let mut action = st.rule.action.clone();
            while let FaultAction::OneOf(choices) = action {
                if choices.is_empty() {
                    return None;
                }
                let i = st.rng.below(choices.len() as u64) as usize;
                action = choices[i].clone();
            }
            chosen = Some((st.rule.label.clone(), action));
        }
    }
    chosen
}
