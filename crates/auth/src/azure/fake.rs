//! A token credential for unit tests: it records the scopes it is asked for and answers with
//! the token a function of the scope and the request's number makes.

use std::sync::Mutex;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::OffsetDateTime;

type MakeToken = dyn Fn(&str, usize) -> (String, OffsetDateTime) + Send + Sync;

pub(crate) struct FakeCredential {
    scopes: Mutex<Vec<String>>,
    make: Box<MakeToken>,
}

impl std::fmt::Debug for FakeCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCredential").finish_non_exhaustive()
    }
}

impl FakeCredential {
    /// Answers request `n` (from 1) for `scope` with `make(scope, n)`: the token and when it
    /// expires.
    pub(crate) fn new(
        make: impl Fn(&str, usize) -> (String, OffsetDateTime) + Send + Sync + 'static,
    ) -> Self {
        Self {
            scopes: Mutex::default(),
            make: Box::new(make),
        }
    }

    /// The scopes asked for, one entry a request (a request's scopes joined by spaces).
    pub(crate) fn scopes(&self) -> Vec<String> {
        self.scopes.lock().unwrap().clone()
    }

    /// How many tokens were asked for.
    pub(crate) fn count(&self) -> usize {
        self.scopes.lock().unwrap().len()
    }
}

#[async_trait::async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let scope = scopes.join(" ");
        let n = {
            let mut seen = self.scopes.lock().unwrap();
            seen.push(scope.clone());
            seen.len()
        };
        let (token, expires_on) = (self.make)(&scope, n);
        Ok(AccessToken::new(token, expires_on))
    }
}
