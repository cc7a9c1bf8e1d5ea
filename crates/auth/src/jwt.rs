//! Reading JSON Web Tokens without verifying them.
//!
//! Registries, ACR's token services and Azure AD verify the tokens they issue; this crate only
//! reads their payload to know when to fetch a new one (`exp`), what was granted (`access`)
//! and which tenant issued it (`tid`). Every claim read here is untrusted input: an `exp` may
//! be any 64-bit number, so the time left is computed with saturating arithmetic and every
//! caller bounds it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::de::DeserializeOwned;

/// The payload (second part) of a JWT, decoded into `T`. `None` for anything that is not a
/// JWT with a base64url JSON payload of that shape.
pub(crate) fn payload<T: DeserializeOwned>(token: &str) -> Option<T> {
    let part = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The time from now until `exp` (seconds since the Unix epoch), zero when it has passed, at
/// most `max`. Never overflows, whatever `exp` holds.
pub(crate) fn time_until(exp: i64, max: Duration) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let left = u64::try_from(exp.saturating_sub(now)).unwrap_or(0);
    Duration::from_secs(left).min(max)
}

/// An unsigned JWT carrying `claims` (JSON text), for tests.
#[cfg(test)]
pub(crate) fn unsigned(claims: &str) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.sig",
        e.encode(r#"{"alg":"ES256"}"#),
        e.encode(claims)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_of_jwts_and_of_anything_else() {
        let token = unsigned(r#"{"exp":5,"tid":"t"}"#);
        let claims: serde_json::Value = payload(&token).unwrap();
        assert_eq!(claims["tid"], "t");
        // Padded base64 is tolerated; what is not a JWT reads as nothing.
        let padded = format!("a.{}==.b", token.split('.').nth(1).unwrap());
        assert!(payload::<serde_json::Value>(&padded).is_some());
        for junk in ["", "abc", "a.!!!.c", "a.W10.c", "a.bnVsbA.c"] {
            assert!(
                payload::<std::collections::BTreeMap<String, i64>>(junk).is_none(),
                "{junk}"
            );
        }
    }

    #[test]
    fn time_until_saturates() {
        let max = Duration::from_secs(3600);
        assert_eq!(time_until(i64::MIN, max), Duration::ZERO);
        assert_eq!(time_until(0, max), Duration::ZERO);
        assert_eq!(time_until(i64::MAX, max), max);
    }

    proptest::proptest! {
        #[test]
        fn time_until_is_bounded(exp in proptest::num::i64::ANY, max in 0u64..1_000_000) {
            let max = Duration::from_secs(max);
            proptest::prop_assert!(time_until(exp, max) <= max);
        }
    }
}
