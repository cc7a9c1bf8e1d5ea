//! Token responses and the token cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::jwt;
use crate::scope::{Scope, ScopeSet};
use crate::{AuthError, Secret};

/// The lifetime the distribution spec assumes when a token response names none.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

/// The longest a token is used, whatever its response or its `exp` claim say.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A bearer token ready to send, with when to stop sending it.
#[derive(Debug, Clone)]
pub struct Token {
    /// The value for `Authorization: Bearer …`.
    pub access_token: Secret,
    /// A refresh token, when the service handed one out.
    pub refresh_token: Option<Secret>,
    /// What the token grants, when the token is a JWT that says so (ACR and distribution
    /// tokens do); `None` when unknown.
    pub granted: Option<ScopeSet>,
    /// When the token stops being used (its expiry less a safety margin).
    pub use_until: Instant,
}

impl Token {
    /// Whether the token may still be sent.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.use_until
    }
}

#[derive(Deserialize)]
struct RawResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<i64>,
    issued_at: Option<String>,
    refresh_token: Option<String>,
}

/// Parses a token service response (`token` / `access_token`, `expires_in`, `issued_at`,
/// `refresh_token`), as the distribution token spec and ACR's `/oauth2/token` send it.
///
/// Without `expires_in` the JWT's own `exp` claim decides (ACR sends none); without either, the
/// spec's 60 seconds. The token is used until 90 % of its lifetime (at least 5 s before expiry).
pub fn parse_response(realm: &str, body: &[u8], received: Instant) -> Result<Token, AuthError> {
    let invalid = |reason: String| AuthError::InvalidTokenResponse {
        realm: realm.to_owned(),
        reason,
    };
    let raw: RawResponse = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the body is not the expected JSON object ({e})")))?;
    let value = raw
        .access_token
        .filter(|t| !t.is_empty())
        .or(raw.token.filter(|t| !t.is_empty()))
        .ok_or_else(|| invalid("neither `token` nor `access_token` is present".to_owned()))?;
    let claims = jwt_claims(&value);
    // Both come from the token service, untrusted: saturated and bounded.
    let lifetime = match raw.expires_in {
        Some(secs) if secs > 0 => Duration::from_secs(secs.max(60) as u64).min(MAX_TOKEN_LIFETIME),
        _ => claims
            .as_ref()
            .and_then(|c| c.exp)
            .map(|exp| jwt::time_until(exp, MAX_TOKEN_LIFETIME))
            .unwrap_or(DEFAULT_LIFETIME),
    };
    // `issued_at` in the past shortens what is left; a clock skew into the future is ignored.
    let already_spent = raw
        .issued_at
        .as_deref()
        .and_then(parse_rfc3339_age)
        .unwrap_or_default()
        .min(lifetime);
    let remaining = lifetime - already_spent;
    let margin = (lifetime / 10).max(Duration::from_secs(5)).min(remaining);
    Ok(Token {
        access_token: Secret::new(value),
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
        granted: claims.and_then(|c| c.access),
        use_until: received + (remaining - margin),
    })
}

/// The claims of a JWT this crate reads: expiry and the granted access list.
pub(crate) struct Claims {
    pub exp: Option<i64>,
    pub access: Option<ScopeSet>,
}

#[derive(Deserialize)]
struct RawClaims {
    exp: Option<i64>,
    access: Option<Vec<RawAccess>>,
}

#[derive(Deserialize)]
struct RawAccess {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    actions: Vec<String>,
}

/// Reads the payload of a JWT without verifying it: the registry verifies, this crate only
/// wants to know when to refresh and what was granted. `None` for anything not a JWT.
pub(crate) fn jwt_claims(token: &str) -> Option<Claims> {
    let raw: RawClaims = jwt::payload(token)?;
    Some(Claims {
        exp: raw.exp,
        access: raw.access.map(|list| {
            list.into_iter()
                .map(|a| {
                    let mut s = Scope::repository(&a.name, a.actions.iter().map(String::as_str));
                    if a.kind != "repository" {
                        s = Scope::parse(&format!("{}:{}:{}", a.kind, a.name, a.actions.join(",")))
                            .unwrap_or(s);
                    }
                    s
                })
                .collect()
        }),
    })
}

/// Age of an RFC 3339 timestamp (`2024-05-01T10:00:00Z`, fractional seconds and offsets
/// accepted); `None` if unparsable or in the future.
fn parse_rfc3339_age(text: &str) -> Option<Duration> {
    let then: jiff::Timestamp = text.parse().ok()?;
    let age = jiff::Timestamp::now().duration_since(then);
    Duration::try_from(age).ok()
}

/// Tokens by (registry, scopes), dropped once stale.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<(String, String), Token>>,
}

impl TokenCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh token for exactly these scopes, or one whose granted access covers them.
    pub fn get(&self, registry: &str, scopes: &ScopeSet) -> Option<Token> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, t| t.is_fresh(now));
        if let Some(t) = entries.get(&(registry.to_owned(), scopes.to_string())) {
            return Some(t.clone());
        }
        entries
            .iter()
            .filter(|((r, _), _)| r == registry)
            .find(|(_, t)| t.granted.as_ref().is_some_and(|g| g.covers(scopes)))
            .map(|(_, t)| t.clone())
    }

    /// Stores a token.
    pub fn put(&self, registry: &str, scopes: &ScopeSet, token: Token) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert((registry.to_owned(), scopes.to_string()), token);
    }

    /// Forgets the token for these scopes (the registry refused it).
    pub fn remove(&self, registry: &str, scopes: &ScopeSet) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&(registry.to_owned(), scopes.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::jwt::unsigned as jwt;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn docker_style_response() {
        let now = Instant::now();
        let t = parse_response(
            "r",
            br#"{"token":"abc","access_token":"abc","expires_in":300}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.access_token.expose(), "abc");
        let left = t.use_until - now;
        assert!(
            left >= Duration::from_secs(260) && left <= Duration::from_secs(270),
            "{left:?}"
        );
    }

    #[test]
    fn short_expiry_is_raised_to_sixty_seconds() {
        let now = Instant::now();
        let t = parse_response("r", br#"{"token":"abc","expires_in":3}"#, now).unwrap();
        assert!(t.use_until - now >= Duration::from_secs(50));
    }

    #[test]
    fn acr_style_response_reads_exp_and_access_from_the_jwt() {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 4500;
        let token = jwt(&format!(
            r#"{{"exp":{exp},"access":[{{"type":"repository","name":"app","actions":["pull"]}}]}}"#
        ));
        let now = Instant::now();
        let body = format!(r#"{{"access_token":"{token}"}}"#);
        let t = parse_response("r", body.as_bytes(), now).unwrap();
        let left = t.use_until - now;
        assert!(
            left > Duration::from_secs(3900) && left < Duration::from_secs(4100),
            "{left:?}"
        );
        let granted = t.granted.unwrap();
        assert!(granted.covers(&ScopeSet::new().with(Scope::pull("app"))));
        assert!(!granted.covers(&ScopeSet::new().with(Scope::push("app"))));
    }

    #[test]
    fn issued_at_in_the_past_shortens_the_lifetime() {
        let now = Instant::now();
        let body = br#"{"token":"abc","expires_in":3600,"issued_at":"2001-01-01T00:00:00.123Z"}"#;
        let t = parse_response("r", body, now).unwrap();
        assert!(t.use_until <= now);
    }

    #[test]
    fn rfc3339_ages() {
        let z = parse_rfc3339_age("2001-01-01T00:00:00Z").unwrap();
        let plus_one = parse_rfc3339_age("2001-01-01T00:00:00.5+01:00").unwrap();
        let diff = plus_one.abs_diff(z).as_secs_f64();
        assert!((diff - 3600.0).abs() < 2.0, "{diff}");
        assert!(parse_rfc3339_age("2001-01-01t00:00:00z").is_some());
        for not_an_age in [
            "2999-01-01T00:00:00Z",
            "2001-01-01",
            "2001-01-01T00:00:00",
            "soon",
            "",
        ] {
            assert_eq!(parse_rfc3339_age(not_an_age), None, "{not_an_age}");
        }
    }

    #[test]
    fn malformed_responses_are_typed_errors() {
        for body in [&b"<html>"[..], b"{}", br#"{"token":""}"#, b"[]", b""] {
            assert!(matches!(
                parse_response("https://realm", body, Instant::now()),
                Err(AuthError::InvalidTokenResponse { .. })
            ));
        }
    }

    #[test]
    fn cache_serves_covering_tokens_and_drops_stale_ones() {
        let cache = TokenCache::new();
        let wide = ScopeSet::new()
            .with(Scope::push("a"))
            .with(Scope::pull("b"));
        let granted = wide.clone();
        cache.put(
            "reg",
            &wide,
            Token {
                access_token: Secret::new("t1"),
                refresh_token: None,
                granted: Some(granted),
                use_until: Instant::now() + Duration::from_secs(60),
            },
        );
        let narrow = ScopeSet::new().with(Scope::pull("b"));
        assert_eq!(
            cache.get("reg", &narrow).unwrap().access_token.expose(),
            "t1"
        );
        assert!(cache.get("other", &narrow).is_none());
        cache.put(
            "reg",
            &narrow,
            Token {
                access_token: Secret::new("old"),
                refresh_token: None,
                granted: None,
                use_until: Instant::now(),
            },
        );
        assert_eq!(
            cache.get("reg", &narrow).unwrap().access_token.expose(),
            "t1"
        );
    }

    fn lifetime_of(body: &str) -> Duration {
        let now = Instant::now();
        let t = parse_response("r", body.as_bytes(), now).unwrap();
        t.use_until.saturating_duration_since(now)
    }

    #[test]
    fn hostile_expiries_saturate_and_stay_bounded() {
        for exp in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX, i64::MAX - 1] {
            let body = format!(
                r#"{{"access_token":"{}"}}"#,
                jwt(&format!(r#"{{"exp":{exp}}}"#))
            );
            let left = lifetime_of(&body);
            assert!(left <= MAX_TOKEN_LIFETIME, "exp {exp}: {left:?}");
        }
        let left = lifetime_of(&format!(r#"{{"token":"t","expires_in":{}}}"#, i64::MAX));
        assert!(
            left <= MAX_TOKEN_LIFETIME && left > MAX_TOKEN_LIFETIME / 2,
            "{left:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_exp_claim_gives_a_bounded_lifetime(exp in proptest::num::i64::ANY) {
            let body = format!(r#"{{"access_token":"{}"}}"#, jwt(&format!(r#"{{"exp":{exp}}}"#)));
            proptest::prop_assert!(lifetime_of(&body) <= MAX_TOKEN_LIFETIME);
        }

        #[test]
        fn exp_claims_near_now_are_honoured(ahead in -100_000i64..100_000) {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
            let body = format!(r#"{{"access_token":"{}"}}"#, jwt(&format!(r#"{{"exp":{}}}"#, now + ahead)));
            let left = lifetime_of(&body);
            let lifetime = Duration::from_secs(ahead.max(0) as u64).min(MAX_TOKEN_LIFETIME);
            proptest::prop_assert!(left <= lifetime, "{left:?} > {lifetime:?}");
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_response("r", &body, Instant::now());
        }

        #[test]
        fn arbitrary_json_fields_never_panic(
            token in "[A-Za-z0-9._-]{0,40}",
            expires in proptest::option::of(proptest::num::i64::ANY),
            issued in proptest::option::of(".{0,40}"),
        ) {
            let body = serde_json::json!({"token": token, "expires_in": expires, "issued_at": issued});
            let _ = parse_response("r", body.to_string().as_bytes(), Instant::now());
        }
    }
}
