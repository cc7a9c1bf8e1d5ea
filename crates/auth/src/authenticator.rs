//! The challenge–response flow: from a registry's `401` to an `Authorization` header.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderValue;
use zeroize::Zeroizing;

use crate::AuthError;
use crate::challenge::{self, BearerChallenge, Challenge};
use crate::credential::{Credential, CredentialProvider};
use crate::exchange::{HttpExchange, is_loopback_host};
use crate::scope::{Scope, ScopeSet};
use crate::token::{self, Token, TokenCache};

/// The `client_id` sent to token services.
const CLIENT_ID: &str = "acr-import";
/// How much of an error body from a token service goes into an error message.
const BODY_EXCERPT: usize = 300;

/// An `Authorization` header value, with what it is known to grant.
#[derive(Clone)]
pub struct Authorization {
    value: HeaderValue,
    granted: Option<ScopeSet>,
    identity: String,
}

impl Authorization {
    /// The header value, marked sensitive so that `http`'s own `Debug` hides it.
    pub fn header_value(&self) -> &HeaderValue {
        &self.value
    }

    /// The first scope and action in `wanted` that this authorization is known not to grant
    /// (only bearer tokens that list their access can tell).
    pub fn missing<'a>(&self, wanted: &'a ScopeSet) -> Option<(&'a Scope, &'a str)> {
        self.granted.as_ref()?.first_missing(wanted)
    }

    /// Who the authorization speaks for (`user \`alice\``, `anonymous`, …), for messages.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// `Authorization: <scheme> <credential>`; the text is zeroed once the header holds it.
    fn new(
        scheme: &str,
        credential: &str,
        granted: Option<ScopeSet>,
        identity: String,
    ) -> Result<Self, AuthError> {
        let text = Zeroizing::new(format!("{scheme} {credential}"));
        let mut value = HeaderValue::from_str(&text).map_err(|_| AuthError::InvalidCredential {
            reason: "the credential contains characters not allowed in an HTTP header".to_owned(),
        })?;
        value.set_sensitive(true);
        Ok(Self {
            value,
            granted,
            identity,
        })
    }
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("value", &"[redacted]")
            .field("identity", &self.identity)
            .finish()
    }
}

/// Turns registry challenges into `Authorization` headers, caching tokens per registry and
/// scope set.
///
/// One `Authenticator` serves every registry of a process: a transport asks
/// [`Authenticator::authorization`] before a request (to avoid a `401` round trip when it can)
/// and [`Authenticator::respond`] after a `401`.
pub struct Authenticator {
    http: Arc<dyn HttpExchange>,
    credentials: Arc<dyn CredentialProvider>,
    cache: TokenCache,
    challenges: Mutex<HashMap<String, Challenge>>,
    insecure_hosts: Vec<String>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("insecure_hosts", &self.insecure_hosts)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator that sends token requests through `http` and takes credentials from
    /// `credentials`.
    pub fn new(http: Arc<dyn HttpExchange>, credentials: Arc<dyn CredentialProvider>) -> Self {
        Self {
            http,
            credentials,
            cache: TokenCache::new(),
            challenges: Mutex::new(HashMap::new()),
            insecure_hosts: Vec::new(),
        }
    }

    /// Hosts (`host` or `host:port`) whose token realm may be plain `http://` although they are
    /// not loopback addresses. Default: none.
    pub fn with_insecure_hosts(mut self, hosts: impl IntoIterator<Item = String>) -> Self {
        self.insecure_hosts = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        self
    }

    /// The header to send with a request needing `scopes` on `registry`, when it is known
    /// without asking the registry first: a cached token, a token fetched from a realm this
    /// registry named before, or basic credentials for a registry that asked for them.
    /// `Ok(None)`: nothing known yet, send the request without one.
    pub async fn authorization(
        &self,
        registry: &str,
        scopes: &ScopeSet,
    ) -> Result<Option<Authorization>, AuthError> {
        let known = self.known_challenge(registry);
        match known {
            None => Ok(None),
            Some(Challenge::Basic { .. }) => {
                let credential = self.credentials.credential_for(registry, scopes).await?;
                basic(&credential).map(Some)
            }
            Some(Challenge::Bearer(bearer)) => {
                if let Some(t) = self.cache.get(registry, scopes) {
                    return bearer_header(&t, "a cached token".to_owned()).map(Some);
                }
                self.fetch(registry, &bearer, scopes).await.map(Some)
            }
        }
    }

    /// Answers a `401`: parses the `WWW-Authenticate` values, forgets any cached token for
    /// these scopes, and returns a new header to retry with.
    pub async fn respond(
        &self,
        registry: &str,
        www_authenticate: &[&str],
        scopes: &ScopeSet,
    ) -> Result<Authorization, AuthError> {
        let parsed = challenge::select(www_authenticate.iter().copied())?;
        self.challenges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(registry.to_owned(), parsed.clone());
        match parsed {
            Challenge::Basic { .. } => {
                let credential = self.credentials.credential_for(registry, scopes).await?;
                basic(&credential)
            }
            Challenge::Bearer(bearer) => {
                self.cache.remove(registry, scopes);
                self.fetch(registry, &bearer, scopes).await
            }
        }
    }

    /// [`Self::respond`] to a `401` response's headers: `None` when they carry no
    /// `WWW-Authenticate` challenge (values that are not text are passed over).
    pub async fn respond_to(
        &self,
        registry: &str,
        headers: &http::HeaderMap,
        scopes: &ScopeSet,
    ) -> Result<Option<Authorization>, AuthError> {
        let values: Vec<&str> = headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Ok(None);
        }
        self.respond(registry, &values, scopes).await.map(Some)
    }

    fn known_challenge(&self, registry: &str) -> Option<Challenge> {
        self.challenges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(registry)
            .cloned()
    }

    async fn fetch(
        &self,
        registry: &str,
        bearer: &BearerChallenge,
        scopes: &ScopeSet,
    ) -> Result<Authorization, AuthError> {
        let credential = self.credentials.credential_for(registry, scopes).await?;
        if let Credential::BearerToken(t) = &credential {
            return Authorization::new("Bearer", t.expose(), None, credential.identity());
        }
        let realm = self.check_realm(&bearer.realm)?;
        let request = token_request(&realm, bearer, scopes, &credential)?;
        let sent = Instant::now();
        let response = self.http.exchange(request).await?;
        let status = response.status();
        if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
            return Err(AuthError::CredentialsRejected {
                realm: realm.to_string(),
                identity: credential.identity(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(AuthError::TokenRequestFailed {
                realm: realm.to_string(),
                status: status.as_u16(),
                body: excerpt(response.body()),
            });
        }
        let token = token::parse_response(realm.as_str(), response.body(), sent)?;
        let header = bearer_header(&token, credential.identity())?;
        self.cache.put(registry, scopes, token);
        Ok(header)
    }

    /// A realm must be https, except on loopback or a host the user named as insecure: a
    /// plain-http realm elsewhere would hand credentials to anyone on the path.
    fn check_realm(&self, realm: &str) -> Result<url::Url, AuthError> {
        let url = url::Url::parse(realm).map_err(|e| AuthError::InvalidRealm {
            realm: realm.to_owned(),
            reason: e.to_string(),
        })?;
        match url.scheme() {
            "https" => Ok(url),
            "http" => {
                let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
                let host_port = match url.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.clone(),
                };
                let named = self
                    .insecure_hosts
                    .iter()
                    .any(|h| *h == host || *h == host_port);
                if is_loopback_host(&host) || named {
                    Ok(url)
                } else {
                    Err(AuthError::InsecureRealm {
                        realm: realm.to_owned(),
                    })
                }
            }
            other => Err(AuthError::InvalidRealm {
                realm: realm.to_owned(),
                reason: format!("unsupported scheme `{other}`"),
            }),
        }
    }
}

fn basic(credential: &Credential) -> Result<Authorization, AuthError> {
    match credential {
        Credential::Basic { username, password } => {
            let raw = Zeroizing::new(format!("{username}:{}", password.expose()));
            let encoded =
                Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()));
            Authorization::new("Basic", &encoded, None, credential.identity())
        }
        Credential::BearerToken(t) => {
            Authorization::new("Bearer", t.expose(), None, credential.identity())
        }
        Credential::Anonymous | Credential::RefreshToken(_) => {
            Err(AuthError::CredentialsRequired {
                identity: credential.identity(),
            })
        }
    }
}

fn bearer_header(token: &Token, identity: String) -> Result<Authorization, AuthError> {
    Authorization::new(
        "Bearer",
        token.access_token.expose(),
        token.granted.clone(),
        identity,
    )
}

/// Builds the token request the distribution spec describes: `GET realm?service&scope…` with
/// basic credentials (or none), or the OAuth2 `POST` form for a refresh token.
fn token_request(
    realm: &url::Url,
    bearer: &BearerChallenge,
    scopes: &ScopeSet,
    credential: &Credential,
) -> Result<http::Request<Bytes>, AuthError> {
    // The scopes asked for are those the caller needs plus whatever the challenge named.
    let mut all = scopes.clone();
    if let Some(extra) = &bearer.scope {
        for s in extra.split(' ').filter_map(Scope::parse) {
            all.insert(s);
        }
    }
    let build_error = |e: http::Error| AuthError::InvalidCredential {
        reason: format!("cannot build the token request: {e}"),
    };
    match credential {
        Credential::RefreshToken(refresh) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token");
            if let Some(service) = &bearer.service {
                form.append_pair("service", service);
            }
            form.append_pair("client_id", CLIENT_ID);
            if !all.is_empty() {
                form.append_pair("scope", &all.to_string());
            }
            form.append_pair("refresh_token", refresh.expose());
            http::Request::post(realm.as_str())
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(Bytes::from(form.finish()))
                .map_err(build_error)
        }
        _ => {
            let mut url = realm.clone();
            {
                let mut q = url.query_pairs_mut();
                if let Some(service) = &bearer.service {
                    q.append_pair("service", service);
                }
                for s in all.iter() {
                    q.append_pair("scope", &s.to_string());
                }
                if let Credential::Basic { username, .. } = credential {
                    q.append_pair("account", username);
                }
                q.append_pair("client_id", CLIENT_ID);
            }
            let mut request = http::Request::get(url.as_str());
            if let Credential::Basic { .. } = credential {
                let header = basic(credential)?;
                request = request.header(http::header::AUTHORIZATION, header.value);
            }
            request.body(Bytes::new()).map_err(build_error)
        }
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(BODY_EXCERPT)
        .collect();
    if text.chars().count() > BODY_EXCERPT {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use crate::credential::StaticCredentials;
    use crate::exchange::ExchangeError;

    /// Records requests and answers each with a fixed token response.
    struct FixedTokenService {
        requests: Mutex<Vec<http::Request<Bytes>>>,
        status: u16,
        body: &'static str,
    }

    #[async_trait::async_trait]
    impl HttpExchange for FixedTokenService {
        async fn exchange(
            &self,
            request: http::Request<Bytes>,
        ) -> Result<http::Response<Bytes>, ExchangeError> {
            self.requests.lock().unwrap().push(request);
            Ok(http::Response::builder()
                .status(self.status)
                .body(Bytes::from_static(self.body.as_bytes()))
                .unwrap())
        }
    }

    fn setup(
        status: u16,
        body: &'static str,
        cred: Credential,
    ) -> (Arc<FixedTokenService>, Authenticator) {
        let svc = Arc::new(FixedTokenService {
            requests: Mutex::new(Vec::new()),
            status,
            body,
        });
        let creds = StaticCredentials::new().with("reg.example", cred);
        let auth = Authenticator::new(svc.clone(), Arc::new(creds));
        (svc, auth)
    }

    fn alice() -> Credential {
        Credential::Basic {
            username: "alice".into(),
            password: Secret::new("s3cret-pw"),
        }
    }

    const CHALLENGE: &str = r#"Bearer realm="https://auth.example/token",service="reg.example",scope="repository:app:pull""#;

    #[tokio::test]
    async fn bearer_flow_sends_basic_to_the_realm_and_caches() {
        let (svc, auth) = setup(200, r#"{"token":"tok-1","expires_in":300}"#, alice());
        let scopes = ScopeSet::new().with(Scope::push("app"));
        assert!(
            auth.authorization("reg.example", &scopes)
                .await
                .unwrap()
                .is_none()
        );
        let h = auth
            .respond("reg.example", &[CHALLENGE], &scopes)
            .await
            .unwrap();
        assert_eq!(h.header_value().to_str().unwrap(), "Bearer tok-1");
        assert!(h.header_value().is_sensitive());
        {
            let reqs = svc.requests.lock().unwrap();
            assert_eq!(reqs.len(), 1);
            let uri = reqs[0].uri().to_string();
            assert!(uri.starts_with("https://auth.example/token?service=reg.example&scope=repository%3Aapp%3Apull%2Cpush&account=alice"), "{uri}");
            let basic = reqs[0].headers()[http::header::AUTHORIZATION]
                .to_str()
                .unwrap();
            assert_eq!(basic, "Basic YWxpY2U6czNjcmV0LXB3");
        }
        // Cached now, and a new scope set goes straight to the known realm.
        auth.authorization("reg.example", &scopes)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(svc.requests.lock().unwrap().len(), 1);
        let other = ScopeSet::new().with(Scope::pull("other"));
        auth.authorization("reg.example", &other)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(svc.requests.lock().unwrap().len(), 2);
        assert!(format!("{h:?}").contains("redacted") && !format!("{h:?}").contains("tok-1"));
    }

    #[tokio::test]
    async fn refresh_tokens_use_the_oauth2_post_form() {
        let (svc, auth) = setup(
            200,
            r#"{"access_token":"acc"}"#,
            Credential::RefreshToken(Secret::new("rt-123")),
        );
        let scopes = ScopeSet::new().with(Scope::pull("app"));
        auth.respond("reg.example", &[CHALLENGE], &scopes)
            .await
            .unwrap();
        let reqs = svc.requests.lock().unwrap();
        assert_eq!(reqs[0].method(), http::Method::POST);
        let body = std::str::from_utf8(reqs[0].body()).unwrap();
        assert_eq!(
            body,
            "grant_type=refresh_token&service=reg.example&client_id=acr-import&scope=repository%3Aapp%3Apull&refresh_token=rt-123"
        );
    }

    #[tokio::test]
    async fn rejected_credentials_name_the_identity_not_the_secret() {
        let (_svc, auth) = setup(401, r#"{"details":"bad"}"#, alice());
        let err = auth
            .respond("reg.example", &[CHALLENGE], &ScopeSet::new())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(
            err,
            AuthError::CredentialsRejected { status: 401, .. }
        ));
        assert!(text.contains("alice") && !text.contains("s3cret"), "{text}");
    }

    #[tokio::test]
    async fn plain_http_realm_is_refused_off_loopback() {
        let (svc, auth) = setup(200, r#"{"token":"t"}"#, alice());
        let err = auth
            .respond(
                "reg.example",
                &[r#"Bearer realm="http://auth.example/token",service="s""#],
                &ScopeSet::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::InsecureRealm { .. }), "{err}");
        assert!(svc.requests.lock().unwrap().is_empty());
        // Loopback realms are fine.
        auth.respond(
            "reg.example",
            &[r#"Bearer realm="http://127.0.0.1:5001/token",service="s""#],
            &ScopeSet::new(),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn respond_to_reads_every_www_authenticate_value_of_a_response() {
        let (svc, auth) = setup(200, r#"{"token":"tok-h","expires_in":300}"#, alice());
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        let none = auth
            .respond_to("reg.example", &headers, &ScopeSet::new())
            .await
            .unwrap();
        assert!(none.is_none(), "no challenge, no answer");
        assert!(svc.requests.lock().unwrap().is_empty());
        // An unknown scheme first, the bearer challenge second: both are read.
        headers.append(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Negotiate"#),
        );
        headers.append(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(CHALLENGE),
        );
        let h = auth
            .respond_to("reg.example", &headers, &ScopeSet::new())
            .await
            .unwrap()
            .expect("the bearer challenge is answered");
        assert_eq!(h.header_value().to_str().unwrap(), "Bearer tok-h");
    }

    #[tokio::test]
    async fn basic_challenge_needs_credentials() {
        let (_svc, auth) = setup(200, "", Credential::Anonymous);
        let err = auth
            .respond("reg.example", &[r#"Basic realm="x""#], &ScopeSet::new())
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::CredentialsRequired { .. }));
        let (_svc, auth) = setup(200, "", alice());
        let h = auth
            .respond("reg.example", &[r#"Basic realm="x""#], &ScopeSet::new())
            .await
            .unwrap();
        assert!(h.header_value().to_str().unwrap().starts_with("Basic "));
        // Known afterwards: sent before any 401.
        assert!(
            auth.authorization("reg.example", &ScopeSet::new())
                .await
                .unwrap()
                .is_some()
        );
    }
}
