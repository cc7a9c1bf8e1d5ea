//! One Azure AD token cache per credential: every user of an [`AadCredentialChain`] (the ARM
//! client, the ACR token exchange) shares the tokens it fetched, per scope set.
//!
//! [`AadCredentialChain`]: super::AadCredentialChain

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::{Duration, OffsetDateTime};

/// A token is fetched again this long before it expires.
const REFRESH_MARGIN: Duration = Duration::minutes(5);

/// Whether an Azure AD token fetched at `fetched` may still be sent: more than `margin` before
/// its expiry, and fetched less than [`MAX_TOKEN_LIFETIME`](crate::token::MAX_TOKEN_LIFETIME)
/// ago. The expiry is the service's word, so it is not trusted to be in range: one that
/// cannot have `margin` taken from it, or claims to be decades away, does not keep a token
/// for ever (and never panics).
pub fn reusable(token: &AccessToken, fetched: Instant, margin: Duration) -> bool {
    fetched.elapsed() < crate::token::MAX_TOKEN_LIFETIME
        && token
            .expires_on
            .checked_sub(margin)
            .is_some_and(|refresh_at| refresh_at > OffsetDateTime::now_utc())
}

/// A token and when it was fetched.
type Fetched = (Instant, AccessToken);

/// A [`TokenCredential`] that remembers each token until [`REFRESH_MARGIN`] before it expires,
/// and never longer than [`MAX_TOKEN_LIFETIME`](crate::token::MAX_TOKEN_LIFETIME).
/// Requests with options (claims challenges, another tenant) always go to the credential.
#[derive(Clone)]
pub(crate) struct CachedCredential {
    inner: Arc<dyn TokenCredential>,
    cache: Arc<tokio::sync::Mutex<HashMap<Vec<String>, Fetched>>>,
    /// The longest a token is reused, whatever its expiry says.
    max_lifetime: std::time::Duration,
}

impl fmt::Debug for CachedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedCredential").finish_non_exhaustive()
    }
}

impl CachedCredential {
    pub(crate) fn new(inner: Arc<dyn TokenCredential>) -> Self {
        Self {
            inner,
            cache: Arc::default(),
            max_lifetime: crate::token::MAX_TOKEN_LIFETIME,
        }
    }
}

#[async_trait::async_trait]
impl TokenCredential for CachedCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if options.is_some() {
            return self.inner.get_token(scopes, options).await;
        }
        let key: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        // Held across the request: two callers asking at once make one request.
        let mut cache = self.cache.lock().await;
        if let Some((fetched, token)) = cache.get(&key)
            && fetched.elapsed() < self.max_lifetime
            && reusable(token, *fetched, REFRESH_MARGIN)
        {
            return Ok(token.clone());
        }
        let token = self.inner.get_token(scopes, None).await?;
        cache.insert(key, (Instant::now(), token.clone()));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::fake::FakeCredential;

    /// Tokens `token-<n>` that last `lifetime`.
    fn lasting(lifetime: Duration) -> Arc<FakeCredential> {
        Arc::new(FakeCredential::new(move |_, n| {
            (format!("token-{n}"), OffsetDateTime::now_utc() + lifetime)
        }))
    }

    /// Tokens that expire `at`.
    fn expiring(at: OffsetDateTime) -> Arc<FakeCredential> {
        Arc::new(FakeCredential::new(move |_, _| ("t".to_owned(), at)))
    }

    #[tokio::test]
    async fn hostile_expiries_neither_panic_nor_live_forever() {
        // The earliest time the time crate holds: the margin cannot be subtracted from it.
        let earliest = OffsetDateTime::from_unix_timestamp(-377_705_116_800).unwrap();
        let inner = expiring(earliest);
        let cached = CachedCredential::new(inner.clone());
        cached.get_token(&["s/.default"], None).await.unwrap();
        cached.get_token(&["s/.default"], None).await.unwrap();
        assert_eq!(inner.count(), 2, "an expired token is fetched again");

        // A token that claims to last for ever is used no longer than the bound.
        let latest = OffsetDateTime::from_unix_timestamp(253_402_300_799).unwrap();
        let inner = expiring(latest);
        let mut cached = CachedCredential::new(inner.clone());
        cached.max_lifetime = std::time::Duration::ZERO;
        cached.get_token(&["s/.default"], None).await.unwrap();
        cached.get_token(&["s/.default"], None).await.unwrap();
        assert_eq!(inner.count(), 2);
    }

    #[tokio::test]
    async fn one_request_per_scope_until_near_expiry() {
        let inner = lasting(Duration::hours(1));
        let cached = CachedCredential::new(inner.clone());
        let shared = cached.clone();
        let a = cached.get_token(&["s1/.default"], None).await.unwrap();
        let b = shared.get_token(&["s1/.default"], None).await.unwrap();
        assert_eq!(a.token.secret(), b.token.secret());
        cached.get_token(&["s2/.default"], None).await.unwrap();
        assert_eq!(inner.scopes(), ["s1/.default", "s2/.default"]);

        // A token inside the margin is fetched again.
        let inner = lasting(Duration::minutes(4));
        let cached = CachedCredential::new(inner.clone());
        cached.get_token(&["s1/.default"], None).await.unwrap();
        cached.get_token(&["s1/.default"], None).await.unwrap();
        assert_eq!(inner.count(), 2);
        assert!(!format!("{cached:?}").contains("token-"));
    }
}
