//! The App Service (and Functions, Container Apps) managed-identity protocol.
//!
//! `azure_identity` 1.0's `ManagedIdentityCredential` reads `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` from the process environment (at construction and again per request) and
//! falls back to IMDS (169.254.169.254) when they are absent. This crate's chain must be
//! driven by an injected [`AzureEnvironment`](super::AzureEnvironment) and must never touch
//! IMDS, so it speaks the App Service protocol itself — one `GET`:
//!
//! `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<scope without /.default>
//! [&client_id=<user-assigned client id>]` with `X-IDENTITY-HEADER: {IDENTITY_HEADER}`, answered
//! `{"access_token":…,"expires_on":"<epoch seconds>","resource":…,"token_type":"Bearer"}`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::{Error, ErrorKind};
use azure_core::time::{Duration, OffsetDateTime};
use bytes::Bytes;
use serde::Deserialize;

use crate::Secret;
use crate::exchange::HttpExchange;

/// The api-version App Service's identity endpoint speaks.
const API_VERSION: &str = "2019-08-01";
/// Tokens are fetched again this long before they expire.
const REFRESH_MARGIN_SECS: i64 = 300;

/// A managed identity of App Service, Functions or Container Apps.
pub(crate) struct AppServiceManagedIdentity {
    pub(crate) endpoint: url::Url,
    pub(crate) header: Secret,
    pub(crate) client_id: Option<String>,
    pub(crate) http: Arc<dyn HttpExchange>,
    pub(crate) retries: u32,
    cache: tokio::sync::Mutex<HashMap<String, (std::time::Instant, AccessToken)>>,
}

impl fmt::Debug for AppServiceManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppServiceManagedIdentity")
            .field("endpoint", &self.endpoint.as_str())
            .field("header", &"[redacted]")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct MsiResponse {
    access_token: String,
    expires_on: ExpiresOn,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ExpiresOn {
    Text(String),
    Number(i64),
}

impl AppServiceManagedIdentity {
    pub(crate) fn new(
        endpoint: url::Url,
        header: Secret,
        client_id: Option<String>,
        http: Arc<dyn HttpExchange>,
        retries: u32,
    ) -> Self {
        Self {
            endpoint,
            header,
            client_id,
            http,
            retries,
            cache: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn fetch(&self, scope: &str) -> azure_core::Result<AccessToken> {
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let mut url = self.endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("api-version", API_VERSION);
            q.append_pair("resource", resource);
            if let Some(id) = &self.client_id {
                q.append_pair("client_id", id);
            }
        }
        let mut attempt = 0;
        let response = loop {
            let request = http::Request::get(url.as_str())
                .header("x-identity-header", self.header.expose())
                .header("metadata", "true")
                .body(Bytes::new())
                .map_err(|e| Error::with_message(ErrorKind::Other, e.to_string()))?;
            match self.http.exchange(request).await {
                Ok(r) => break r,
                Err(_) if attempt < self.retries => attempt += 1,
                Err(e) => return Err(Error::with_message(ErrorKind::Io, e.to_string())),
            }
        };
        let status = response.status();
        if !status.is_success() {
            let body: String = String::from_utf8_lossy(response.body())
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect();
            return Err(Error::with_message(
                ErrorKind::Credential,
                format!(
                    "the App Service managed-identity endpoint answered HTTP {}: {body}",
                    status.as_u16()
                ),
            ));
        }
        let parsed: MsiResponse = serde_json::from_slice(response.body()).map_err(|e| {
            Error::with_message(
                ErrorKind::DataConversion,
                format!("the managed-identity endpoint sent an invalid token response: {e}"),
            )
        })?;
        let expires_on = match parsed.expires_on {
            ExpiresOn::Number(n) => n,
            ExpiresOn::Text(t) => t.trim().parse::<i64>().map_err(|_| {
                Error::with_message(
                    ErrorKind::DataConversion,
                    "the managed-identity endpoint sent an expires_on that is not epoch seconds",
                )
            })?,
        };
        let expires_on = OffsetDateTime::from_unix_timestamp(expires_on).map_err(|_| {
            Error::with_message(
                ErrorKind::DataConversion,
                "the managed-identity endpoint sent an out-of-range expires_on",
            )
        })?;
        Ok(AccessToken::new(parsed.access_token, expires_on))
    }
}

#[async_trait::async_trait]
impl TokenCredential for AppServiceManagedIdentity {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let [scope] = scopes else {
            return Err(Error::with_message(
                ErrorKind::Credential,
                "managed identity needs exactly one scope",
            ));
        };
        let mut cache = self.cache.lock().await;
        if let Some((fetched, token)) = cache.get(*scope)
            && super::reusable(token, *fetched, Duration::seconds(REFRESH_MARGIN_SECS))
        {
            return Ok(token.clone());
        }
        let token = self.fetch(scope).await?;
        cache.insert(
            (*scope).to_owned(),
            (std::time::Instant::now(), token.clone()),
        );
        Ok(token)
    }
}
