//! A small Azure Resource Manager client over the project's own HTTP stack: registry GET and
//! list, subscriptions, the caller's permissions, and the `importImage` long-running
//! operation.
//!
//! - [`send`](self::RetryPolicy): the bearer token, `x-ms-client-request-id` on every call, the
//!   Azure SDK retry policy ([`RetryPolicy`]);
//! - [`lro`](self::ImportStart): `importImage` and its operation, polled per the Azure
//!   async-operation guidelines;
//! - [`errors`](self::classify): ARM error answers as [`AcrError::Arm`], with the side of an
//!   import that failed and the next step.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use acr_import_auth::{HttpExchange, is_loopback_host};
use azure_core::credentials::{AccessToken, TokenCredential};
use http::Method;
use serde::de::DeserializeOwned;
use url::Url;

use crate::model::{Registry, Subscription};
use crate::permissions::Permission;
use crate::{AcrError, Cloud, RegistryResourceId};

mod errors;
mod lro;
mod send;

pub use errors::classify;
pub use lro::{ImportProgress, ImportStart, MIN_POLL_INTERVAL, PollResult, WaitOptions};
pub use send::{CLIENT_REQUEST_ID, CORRELATION_REQUEST_ID, REQUEST_ID, RequestIds, RetryPolicy};

/// The api-version of `Microsoft.ContainerRegistry` used unless overridden: the newest stable
/// one (what the current Python management SDK sends). Its `importImage` body and the registry
/// properties read here are those of 2025-04-01, plus `roleAssignmentMode` and
/// `azureADAuthenticationAsArmPolicy`.
pub const DEFAULT_API_VERSION: &str = "2025-11-01";
/// The api-version of `GET /subscriptions`.
pub const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";
/// The api-version of `Microsoft.Authorization/permissions` (its newest stable one).
pub const PERMISSIONS_API_VERSION: &str = "2022-04-01";
/// Environment variable overriding [`DEFAULT_API_VERSION`].
pub const API_VERSION_ENV: &str = "ACR_IMPORT_ARM_API_VERSION";

/// Pages followed at most when listing.
const MAX_PAGES: usize = 200;

/// An ARM client: one HTTP exchange, one token credential, one cloud.
pub struct ArmClient {
    http: Arc<dyn HttpExchange>,
    credential: Arc<dyn TokenCredential>,
    endpoint: Url,
    scope: String,
    api_version: String,
    retry: RetryPolicy,
    token: tokio::sync::Mutex<Option<(std::time::Instant, AccessToken)>>,
    /// The `Location` of each operation polled through its `Azure-AsyncOperation` monitor.
    final_locations: std::sync::Mutex<HashMap<String, String>>,
}

impl fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("scope", &self.scope)
            .field("api_version", &self.api_version)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Checks an ARM endpoint: https, or http on loopback only.
fn check_endpoint(endpoint: &str) -> Result<Url, AcrError> {
    let url = Url::parse(endpoint).map_err(|e| AcrError::InvalidArmEndpoint {
        endpoint: endpoint.to_owned(),
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(url.host_str().unwrap_or_default()) => {}
        _ => {
            return Err(AcrError::InvalidArmEndpoint {
                endpoint: endpoint.to_owned(),
                reason: "ARM must be reached over https (plain http only on loopback)".into(),
            });
        }
    }
    Ok(url)
}

impl ArmClient {
    /// A client for `cloud`'s ARM endpoint, authenticating with `credential` for
    /// [`Cloud::arm_scope`] and sending through `http`.
    pub fn new(
        cloud: &Cloud,
        http: Arc<dyn HttpExchange>,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, AcrError> {
        let endpoint = check_endpoint(&cloud.arm_endpoint)?;
        Ok(Self {
            http,
            credential,
            endpoint,
            scope: cloud.arm_scope(),
            api_version: DEFAULT_API_VERSION.to_owned(),
            retry: RetryPolicy::default(),
            token: tokio::sync::Mutex::new(None),
            final_locations: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Uses another api-version for registry operations.
    pub fn with_api_version(mut self, api_version: impl Into<String>) -> Self {
        self.api_version = api_version.into();
        self
    }

    /// The retry policy of every request. Default: [`RetryPolicy::default`], the Azure SDKs'.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The api-version of registry operations.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The ARM endpoint.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    async fn bearer(&self) -> Result<String, AcrError> {
        let mut cached = self.token.lock().await;
        let fresh = cached.as_ref().is_some_and(|(fetched, t)| {
            acr_import_auth::azure::reusable(t, *fetched, azure_core::time::Duration::seconds(120))
        });
        if !fresh {
            let token = self
                .credential
                .get_token(&[self.scope.as_str()], None)
                .await
                .map_err(|e| AcrError::Token {
                    scope: self.scope.clone(),
                    message: e.to_string(),
                })?;
            *cached = Some((std::time::Instant::now(), token));
        }
        Ok(cached
            .as_ref()
            .map(|(_, t)| t.token.secret().to_owned())
            .unwrap_or_default())
    }

    /// The object ID (`oid` claim) of the identity ARM sees, read from its token: the
    /// `--assignee` of a role assignment. `None` when the token is not a JWT that says.
    pub async fn caller_object_id(&self) -> Result<Option<String>, AcrError> {
        let token = self.bearer().await?;
        Ok(acr_import_auth::azure::jwt_claim_str(&token, "oid"))
    }

    /// An absolute URL on this endpoint; refuses any other origin (the bearer token goes only
    /// to ARM).
    fn same_origin(&self, url: &str) -> Result<Url, AcrError> {
        let parsed = Url::parse(url).map_err(|e| AcrError::ForeignUrl {
            url: url.to_owned(),
            endpoint: self.endpoint.to_string(),
            reason: e.to_string(),
        })?;
        if parsed.origin() != self.endpoint.origin() {
            return Err(AcrError::ForeignUrl {
                url: url.to_owned(),
                endpoint: self.endpoint.to_string(),
                reason: "it is not on the ARM endpoint, and the ARM token is sent only there"
                    .into(),
            });
        }
        Ok(parsed)
    }

    /// The endpoint's URL with `segments` appended, each escaped as one path segment (a `/`
    /// or `?` in a value stays inside its segment; `.` and `..` are dropped).
    fn url<'a>(
        &self,
        segments: impl IntoIterator<Item = &'a str>,
        api_version: &str,
    ) -> Result<Url, AcrError> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| AcrError::InvalidArmEndpoint {
                endpoint: self.endpoint.to_string(),
                reason: "it cannot have a path".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
        Ok(url)
    }

    /// The URL of `tail` under a resource (or scope) ID: the ID's segments, then `tail`.
    fn resource_url(&self, id: &str, tail: &[&str], api_version: &str) -> Result<Url, AcrError> {
        let segments = id.split('/').filter(|s| !s.is_empty());
        self.url(segments.chain(tail.iter().copied()), api_version)
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        operation: &str,
        url: &Url,
    ) -> Result<T, AcrError> {
        let answer = self
            .send_ok(operation, Method::GET, url, None, None)
            .await?;
        serde_json::from_slice(answer.response.body()).map_err(|e| AcrError::Protocol {
            url: redact(url),
            reason: format!("unexpected response body: {e} ({})", answer.ids),
        })
    }

    /// `GET …/registries/{name}`.
    pub async fn get_registry(&self, id: &RegistryResourceId) -> Result<Registry, AcrError> {
        let url = self.resource_url(id.as_str(), &[], &self.api_version)?;
        self.get_json(&format!("reading registry {}", id.name()), &url)
            .await
    }

    async fn list<T: DeserializeOwned>(
        &self,
        operation: &str,
        first: Url,
    ) -> Result<Vec<T>, AcrError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page<T> {
            #[serde(default = "Vec::new")]
            value: Vec<T>,
            #[serde(default)]
            next_link: Option<String>,
        }
        let mut out = Vec::new();
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let page: Page<T> = self.get_json(operation, &url).await?;
            out.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                Some(next) => url = self.same_origin(&next)?,
                None => return Ok(out),
            }
        }
        Err(AcrError::Protocol {
            url: redact(&url),
            reason: format!("more than {MAX_PAGES} pages of results"),
        })
    }

    /// `GET /subscriptions`: every subscription the identity can see.
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, AcrError> {
        let url = self.url(["subscriptions"], SUBSCRIPTIONS_API_VERSION)?;
        self.list("listing subscriptions", url).await
    }

    /// Every registry of a subscription (`nextLink` pages followed).
    pub async fn list_registries(&self, subscription: &str) -> Result<Vec<Registry>, AcrError> {
        let url = self.url(
            [
                "subscriptions",
                subscription,
                "providers",
                "Microsoft.ContainerRegistry",
                "registries",
            ],
            &self.api_version,
        )?;
        self.list(
            &format!("listing registries of subscription {subscription}"),
            url,
        )
        .await
    }

    /// The one registry, in any of `subscriptions`, whose name or login server is `value`
    /// (case-insensitively; a `<name>.<region>.geo` endpoint counts as its registry's login
    /// server). `None` when there is none; an error when there are several.
    pub async fn find_registry(
        &self,
        value: &str,
        subscriptions: &[String],
    ) -> Result<Option<Registry>, AcrError> {
        let wanted = normalize_login_server(value);
        let mut found: Vec<Registry> = Vec::new();
        for sub in subscriptions {
            for r in self.list_registries(sub).await? {
                if r.name.eq_ignore_ascii_case(&wanted)
                    || r.login_server().eq_ignore_ascii_case(&wanted)
                {
                    found.push(r);
                }
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            _ => Err(AcrError::AmbiguousRegistry {
                value: value.to_owned(),
                matches: found.into_iter().map(|r| r.id).collect(),
            }),
        }
    }

    /// `GET {scope}/providers/Microsoft.Authorization/permissions`: the caller's effective
    /// permissions at `scope` (a resource ID), one entry per role assignment that applies
    /// (learn.microsoft.com/rest/api/authorization/permissions/list-for-resource).
    pub async fn list_permissions(&self, scope: &str) -> Result<Vec<Permission>, AcrError> {
        let url = self.resource_url(
            scope,
            &["providers", "Microsoft.Authorization", "permissions"],
            PERMISSIONS_API_VERSION,
        )?;
        self.list(&format!("reading your permissions on {scope}"), url)
            .await
    }
}

/// `<name>.<region>.geo.<suffix>` → `<name>.<suffix>`; lowercased; scheme and `/` removed.
pub fn normalize_login_server(value: &str) -> String {
    let v = value
        .trim()
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() >= 5 && parts[2] == "geo" && parts[3].starts_with("azurecr") {
        let mut out = vec![parts[0]];
        out.extend(&parts[3..]);
        return out.join(".");
    }
    v
}

fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
