//! One Azure AD token cache per credential: every user of an [`AadCredentialChain`] (the ARM
//! client, the ACR token exchange) shares the tokens it fetched, per scope set.
//!
//! [`AadCredentialChain`]: super::AadCredentialChain

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::{Duration, OffsetDateTime};

/// A token is fetched again this long before it expires.
const REFRESH_MARGIN: Duration = Duration::minutes(5);

/// A [`TokenCredential`] that remembers each token until [`REFRESH_MARGIN`] before it expires.
/// Requests with options (claims challenges, another tenant) always go to the credential.
#[derive(Clone)]
pub(crate) struct CachedCredential {
    inner: Arc<dyn TokenCredential>,
    cache: Arc<tokio::sync::Mutex<HashMap<Vec<String>, AccessToken>>>,
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
        if let Some(token) = cache.get(&key)
            && token.expires_on - REFRESH_MARGIN > OffsetDateTime::now_utc()
        {
            return Ok(token.clone());
        }
        let token = self.inner.get_token(scopes, None).await?;
        cache.insert(key, token.clone());
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug)]
    struct Counting(Mutex<Vec<String>>, Duration);

    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.0.lock().unwrap().push(scopes.join(" "));
            Ok(AccessToken::new(
                format!("token-{}", self.0.lock().unwrap().len()),
                OffsetDateTime::now_utc() + self.1,
            ))
        }
    }

    #[tokio::test]
    async fn one_request_per_scope_until_near_expiry() {
        let inner = Arc::new(Counting(Mutex::default(), Duration::hours(1)));
        let cached = CachedCredential::new(inner.clone());
        let shared = cached.clone();
        let a = cached.get_token(&["s1/.default"], None).await.unwrap();
        let b = shared.get_token(&["s1/.default"], None).await.unwrap();
        assert_eq!(a.token.secret(), b.token.secret());
        cached.get_token(&["s2/.default"], None).await.unwrap();
        assert_eq!(*inner.0.lock().unwrap(), ["s1/.default", "s2/.default"]);

        // A token inside the margin is fetched again.
        let inner = Arc::new(Counting(Mutex::default(), Duration::minutes(4)));
        let cached = CachedCredential::new(inner.clone());
        cached.get_token(&["s1/.default"], None).await.unwrap();
        cached.get_token(&["s1/.default"], None).await.unwrap();
        assert_eq!(inner.0.lock().unwrap().len(), 2);
        assert!(!format!("{cached:?}").contains("token-"));
    }
}
