//! A small Azure Resource Manager client over the project's own HTTP stack: registry GET and
//! list, subscriptions, and the `importImage` long-running operation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use acr_import_auth::{HttpExchange, is_loopback_host};
use azure_core::credentials::{AccessToken, TokenCredential};
use bytes::Bytes;
use http::{Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::model::{ImportImageParameters, Registry, Subscription};
use crate::{AcrError, Cloud, RegistryResourceId, Side};

/// The api-version used unless overridden (a current stable one).
pub const DEFAULT_API_VERSION: &str = "2025-04-01";
/// The api-version of `GET /subscriptions`.
pub const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";
/// Environment variable overriding [`DEFAULT_API_VERSION`].
pub const API_VERSION_ENV: &str = "ACR_IMPORT_ARM_API_VERSION";

/// Pages followed at most when listing.
const MAX_PAGES: usize = 200;
/// Attempts of an idempotent request answered 429 or 5xx.
const GET_ATTEMPTS: u32 = 3;

/// An ARM client: one HTTP exchange, one token credential, one cloud.
pub struct ArmClient {
    http: Arc<dyn HttpExchange>,
    credential: Arc<dyn TokenCredential>,
    endpoint: Url,
    scope: String,
    api_version: String,
    token: tokio::sync::Mutex<Option<AccessToken>>,
}

impl fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("scope", &self.scope)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

/// What `POST …/importImage` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportStart {
    /// `200`: done already.
    Done,
    /// `202`: running; poll `operation_url`.
    Accepted {
        /// The `Location` to poll (opaque).
        operation_url: String,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
}

/// Progress of a running import, from a poll body such as
/// `{"status":"Accepted","app@sha256:…":"Pending"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportProgress {
    /// `status`, when sent.
    pub status: Option<String>,
    /// Each manifest and its state.
    pub manifests: Vec<(String, String)>,
}

impl fmt::Display for ImportProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Importing image... {}",
            self.status.as_deref().unwrap_or("Running")
        )?;
        if !self.manifests.is_empty() {
            let done = self
                .manifests
                .iter()
                .filter(|(_, s)| {
                    s.eq_ignore_ascii_case("Succeeded") || s.eq_ignore_ascii_case("Completed")
                })
                .count();
            write!(f, " ({done}/{} manifests done", self.manifests.len())?;
            for (m, s) in &self.manifests {
                write!(f, "; {m}: {s}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// One poll of the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollResult {
    /// `202`: still running.
    Running {
        /// What the body said.
        progress: ImportProgress,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// `200`/`204`: succeeded.
    Succeeded,
}

/// How [`ArmClient::wait`] polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOptions {
    /// Give up after this long (the client deadline, `--timeout`). Default: none.
    pub deadline: Option<Duration>,
    /// First interval when the service sends no `Retry-After`. Default: 2 s.
    pub initial_interval: Duration,
    /// The interval doubles up to this. Default: 30 s.
    pub max_interval: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            deadline: None,
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(30),
        }
    }
}

/// The shortest pause between two polls of an operation, whatever `Retry-After` says.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Reads `Retry-After` (delta seconds; an HTTP date counts as "unknown").
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
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
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// Uses another api-version for registry operations.
    pub fn with_api_version(mut self, api_version: impl Into<String>) -> Self {
        self.api_version = api_version.into();
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
        let fresh = cached.as_ref().is_some_and(|t| {
            t.expires_on - azure_core::time::Duration::seconds(120)
                > azure_core::time::OffsetDateTime::now_utc()
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
            *cached = Some(token);
        }
        Ok(cached
            .as_ref()
            .map(|t| t.token.secret().to_owned())
            .unwrap_or_default())
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

    fn url(&self, path: &str, api_version: &str) -> Result<Url, AcrError> {
        let mut url = self.endpoint.clone();
        let base = self.endpoint.path().trim_end_matches('/');
        url.set_path(&format!("{base}{path}"));
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
        Ok(url)
    }

    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<Bytes>,
    ) -> Result<http::Response<Bytes>, AcrError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.bearer().await?;
            let mut builder = http::Request::builder()
                .method(method.clone())
                .uri(url.as_str())
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::ACCEPT, "application/json");
            if body.is_some() {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
            }
            let request = builder
                .body(body.clone().unwrap_or_default())
                .map_err(|e| AcrError::Http {
                    url: redact(url),
                    message: e.to_string(),
                })?;
            let response = self
                .http
                .exchange(request)
                .await
                .map_err(|e| AcrError::Http {
                    url: redact(url),
                    message: e.to_string(),
                })?;
            let status = response.status();
            let transient =
                status == StatusCode::TOO_MANY_REQUESTS || matches!(status.as_u16(), 502..=504);
            if transient && method == Method::GET && attempt < GET_ATTEMPTS {
                let wait = retry_after(response.headers())
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(10));
                tracing::debug!("ARM answered {status}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                continue;
            }
            return Ok(response);
        }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        operation: &str,
        url: &Url,
    ) -> Result<T, AcrError> {
        let response = self.send(Method::GET, url, None).await?;
        if !response.status().is_success() {
            return Err(arm_error(operation, &response));
        }
        serde_json::from_slice(response.body()).map_err(|e| AcrError::Protocol {
            url: redact(url),
            reason: format!("unexpected response body: {e}"),
        })
    }

    /// `GET …/registries/{name}`.
    pub async fn get_registry(&self, id: &RegistryResourceId) -> Result<Registry, AcrError> {
        let url = self.url(id.as_str(), &self.api_version)?;
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
        let url = self.url("/subscriptions", SUBSCRIPTIONS_API_VERSION)?;
        self.list("listing subscriptions", url).await
    }

    /// Every registry of a subscription (`nextLink` pages followed).
    pub async fn list_registries(&self, subscription: &str) -> Result<Vec<Registry>, AcrError> {
        let url = self.url(
            &format!(
                "/subscriptions/{subscription}/providers/Microsoft.ContainerRegistry/registries"
            ),
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

    /// `POST …/importImage`.
    pub async fn begin_import(
        &self,
        target: &RegistryResourceId,
        body: &ImportImageParameters,
    ) -> Result<ImportStart, AcrError> {
        let url = self.url(&format!("{target}/importImage"), &self.api_version)?;
        let json = serde_json::to_vec(body).map_err(|e| AcrError::Protocol {
            url: redact(&url),
            reason: e.to_string(),
        })?;
        let response = self
            .send(Method::POST, &url, Some(Bytes::from(json)))
            .await?;
        match response.status() {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(ImportStart::Done),
            StatusCode::ACCEPTED | StatusCode::CREATED => {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .or_else(|| response.headers().get("azure-asyncoperation"))
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| AcrError::Protocol {
                        url: redact(&url),
                        reason: "202 Accepted without a Location header".into(),
                    })?;
                let absolute = self
                    .endpoint
                    .join(location)
                    .map_err(|e| AcrError::Protocol {
                        url: redact(&url),
                        reason: format!("invalid Location `{location}`: {e}"),
                    })?;
                self.same_origin(absolute.as_str())?;
                Ok(ImportStart::Accepted {
                    operation_url: absolute.to_string(),
                    retry_after: retry_after(response.headers()),
                })
            }
            _ => Err(arm_error("importImage", &response)),
        }
    }

    /// One GET of the operation URL.
    pub async fn poll(&self, operation_url: &str) -> Result<PollResult, AcrError> {
        let url = self.same_origin(operation_url)?;
        let response = self.send(Method::GET, &url, None).await?;
        match response.status() {
            StatusCode::ACCEPTED => {
                let progress = parse_progress(response.body());
                Ok(PollResult::Running {
                    progress,
                    retry_after: retry_after(response.headers()),
                })
            }
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::CREATED => {
                // Some operation endpoints answer 200 with a terminal status in the body.
                let body: serde_json::Value =
                    serde_json::from_slice(response.body()).unwrap_or_default();
                match body.get("status").and_then(|s| s.as_str()) {
                    Some(s)
                        if s.eq_ignore_ascii_case("Failed")
                            || s.eq_ignore_ascii_case("Canceled") =>
                    {
                        Err(arm_error("the import", &response))
                    }
                    Some(s)
                        if s.eq_ignore_ascii_case("Running")
                            || s.eq_ignore_ascii_case("Accepted")
                            || s.eq_ignore_ascii_case("InProgress") =>
                    {
                        Ok(PollResult::Running {
                            progress: parse_progress(response.body()),
                            retry_after: retry_after(response.headers()),
                        })
                    }
                    _ => Ok(PollResult::Succeeded),
                }
            }
            _ => Err(arm_error("the import", &response)),
        }
    }

    /// Polls until the operation ends, honouring `Retry-After` and otherwise backing off from
    /// `initial_interval` to `max_interval`; `on_progress` sees each running poll. Fails with
    /// [`AcrError::Deadline`] when `deadline` passes first (the operation keeps running on the
    /// service: `acr import status <url>` resumes).
    pub async fn wait(
        &self,
        operation_url: &str,
        options: &WaitOptions,
        on_progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<(), AcrError> {
        let started = tokio::time::Instant::now();
        let deadline = options.deadline.map(|d| started + d);
        let mut interval = options.initial_interval;
        loop {
            let poll = match deadline {
                Some(d) => tokio::time::timeout_at(d, self.poll(operation_url))
                    .await
                    .map_err(|_| deadline_error(operation_url, started))?,
                None => self.poll(operation_url).await,
            }?;
            let (progress, after) = match poll {
                PollResult::Succeeded => return Ok(()),
                PollResult::Running {
                    progress,
                    retry_after,
                } => (progress, retry_after),
            };
            on_progress(&progress);
            let pause = match after {
                // `Retry-After: 0` would make a busy loop of the poll: keep a floor.
                Some(d) => d.max(MIN_POLL_INTERVAL),
                None => {
                    let d = interval;
                    interval = (interval * 2).min(options.max_interval);
                    d
                }
            };
            if let Some(d) = deadline
                && tokio::time::Instant::now() + pause >= d
            {
                tokio::time::sleep_until(d).await;
                return Err(deadline_error(operation_url, started));
            }
            tokio::time::sleep(pause).await;
        }
    }
}

fn deadline_error(operation_url: &str, started: tokio::time::Instant) -> AcrError {
    AcrError::Deadline {
        operation_url: operation_url.to_owned(),
        waited: started.elapsed(),
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

fn parse_progress(body: &[u8]) -> ImportProgress {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let mut progress = ImportProgress::default();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            if k.eq_ignore_ascii_case("status") {
                progress.status = v.as_str().map(str::to_owned);
            } else if let Some(s) = v.as_str() {
                progress.manifests.push((k.clone(), s.to_owned()));
            }
        }
    }
    progress
}

fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// Turns an ARM error response into an [`AcrError::Arm`].
pub(crate) fn arm_error(operation: &str, response: &http::Response<Bytes>) -> AcrError {
    #[derive(serde::Deserialize, Default)]
    struct Body {
        #[serde(default)]
        error: Option<Detail>,
    }
    #[derive(serde::Deserialize, Default)]
    struct Detail {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        details: Vec<Detail>,
    }
    let status = response.status().as_u16();
    let parsed: Body = serde_json::from_slice(response.body()).unwrap_or_default();
    let (code, message, details) = match parsed.error {
        Some(d) => (
            d.code,
            d.message,
            d.details
                .into_iter()
                .map(|x| format!("{}: {}", x.code, x.message))
                .collect(),
        ),
        None => (
            format!("HTTP{status}"),
            String::from_utf8_lossy(response.body())
                .chars()
                .take(500)
                .collect(),
            Vec::new(),
        ),
    };
    let (side, hint) = classify(status, &code, &message, &details);
    AcrError::Arm {
        operation: operation.to_owned(),
        status,
        code,
        message,
        details,
        side,
        hint,
    }
}

/// Which side an ARM error is about, and what to do.
pub fn classify(status: u16, code: &str, message: &str, details: &[String]) -> (Side, String) {
    let all = format!("{code} {message} {}", details.join(" "));
    let has = |s: &str| all.to_ascii_lowercase().contains(&s.to_ascii_lowercase());
    if has("linked scope") {
        return (
            Side::Source,
            "you need read access to the source registry as well (ARM's linked-scope check): assign yourself Reader (or Container Registry Data Importer and Data Reader) on the source".into(),
        );
    }
    if code.starts_with("InvalidAuthenticationToken") || status == 401 {
        return (
            Side::Unknown,
            "Azure Resource Manager did not accept the token: check AZURE_TENANT_ID / the signed-in account, and that the subscription belongs to that tenant".into(),
        );
    }
    if code == "AuthorizationFailed" {
        return (
            Side::Target,
            "you need Microsoft.ContainerRegistry/registries/importImage/action on the target: role Container Registry Data Importer and Data Reader, or Contributor".into(),
        );
    }
    if has("already exists") || code.eq_ignore_ascii_case("Conflict") || code == "TagAlreadyExists"
    {
        return (
            Side::Target,
            "a target tag already exists and the import ran in NoForce mode: pass --force to move it".into(),
        );
    }
    if has("exportpolicy") || has("export policy") {
        return (
            Side::Source,
            "the source's export policy is disabled: az acr update -n <source> --allow-exports true".into(),
        );
    }
    if has("unauthorized") || has("denied") || has("forbidden") {
        return (
            Side::Source,
            "the service could not pull from the source: name an Azure source with --registry (Azure AD), or pass its credentials with --username/--password; Docker Hub official images need the library/ prefix".into(),
        );
    }
    if has("unable to find manifest")
        || has("manifest_unknown")
        || has("name_unknown")
        || has("not found in source")
    {
        return (
            Side::Source,
            "the source image does not exist: check the repository, tag or digest".into(),
        );
    }
    if has("rfc 7233")
        || has("unexpected length of body")
        || has("error copying blobs")
        || has("docker-content-digest")
    {
        return (
            Side::Source,
            "the source registry does not serve what the import service needs (Range requests, digests): retry, or use --mode client".into(),
        );
    }
    if code == "ResourceNotFound" || status == 404 {
        return (
            Side::Unknown,
            "check the registry name, resource group and --subscription".into(),
        );
    }
    if code == "InvalidParameters" || code == "InvalidRequestContent" || status == 400 {
        return (
            Side::Unknown,
            "check --source, --image and --repository".into(),
        );
    }
    if status == 429 || status >= 500 {
        return (
            Side::Unknown,
            "the service is busy or failing: retry later".into(),
        );
    }
    (Side::Unknown, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geo_endpoints_map_to_the_login_server() {
        assert_eq!(
            normalize_login_server("MyReg.EastUS.geo.azurecr.io"),
            "myreg.azurecr.io"
        );
        assert_eq!(
            normalize_login_server("myreg.azurecr.io"),
            "myreg.azurecr.io"
        );
        assert_eq!(normalize_login_server("ghcr.io"), "ghcr.io");
        assert_eq!(
            normalize_login_server("https://x.y.geo.azurecr.cn/"),
            "x.azurecr.cn"
        );
    }

    #[test]
    fn progress_bodies() {
        let p = parse_progress(
            br#"{"status":"Accepted","app@sha256:aa":"Pending","app@sha256:bb":"Succeeded"}"#,
        );
        assert_eq!(p.status.as_deref(), Some("Accepted"));
        assert_eq!(p.manifests.len(), 2);
        assert!(p.to_string().contains("1/2 manifests done"));
        assert_eq!(parse_progress(b"not json"), ImportProgress::default());
    }

    #[test]
    fn error_classification() {
        let cases: &[(u16, &str, &str, Side, &str)] = &[
            (
                403,
                "AuthorizationFailed",
                "The client 'x' with object id 'y' has permission to perform action 'Microsoft.ContainerRegistry/registries/importImage/action' on scope 't'; however, it does not have permission to perform action 'read' on the linked scope(s) 's'",
                Side::Source,
                "Reader",
            ),
            (
                403,
                "AuthorizationFailed",
                "does not have authorization to perform action 'Microsoft.ContainerRegistry/registries/importImage/action'",
                Side::Target,
                "Data Importer",
            ),
            (
                409,
                "Conflict",
                "Tag app:v1 already exists in target registry",
                Side::Target,
                "--force",
            ),
            (
                400,
                "InvalidParameters",
                "Operation registries-1 failed. Resource /x Invalid message Unauthorized Unauthorized {\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
                Side::Source,
                "library/",
            ),
            (
                400,
                "InvalidParameters",
                "Unable to find manifest digest Repo: app Tag: nope",
                Side::Source,
                "does not exist",
            ),
            (
                400,
                "InvalidParameters",
                "Error copying blobs",
                Side::Source,
                "--mode client",
            ),
            (
                401,
                "InvalidAuthenticationTokenTenant",
                "wrong issuer",
                Side::Unknown,
                "tenant",
            ),
            (
                404,
                "ResourceNotFound",
                "not found",
                Side::Unknown,
                "--subscription",
            ),
            (400, "InvalidParameters", "bad", Side::Unknown, "--source"),
            (503, "ServiceUnavailable", "x", Side::Unknown, "retry"),
        ];
        for (status, code, message, side, hint) in cases {
            let (s, h) = classify(*status, code, message, &[]);
            assert_eq!(s, *side, "{code}: {message}");
            assert!(h.contains(hint), "{code}: {h}");
        }
    }

    #[derive(Debug)]
    struct FakeCredential(std::sync::Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl TokenCredential for FakeCredential {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.0
                .lock()
                .unwrap()
                .extend(scopes.iter().map(|s| s.to_string()));
            Ok(AccessToken::new(
                "fake-Token~secret",
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    struct FakeHttp(std::sync::Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl HttpExchange for FakeHttp {
        async fn exchange(
            &self,
            request: http::Request<Bytes>,
        ) -> Result<http::Response<Bytes>, acr_import_auth::ExchangeError> {
            self.0.lock().unwrap().push(request.uri().to_string());
            let body = br#"{"id":"/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg1","name":"myreg1","properties":{"loginServer":"myreg1.azurecr.cn"}}"#;
            Ok(http::Response::new(Bytes::from_static(body)))
        }
    }

    #[tokio::test]
    async fn sovereign_clouds_use_their_endpoint_and_audience() {
        let id: RegistryResourceId = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg1".parse().unwrap();
        for (cloud, host, scope) in [
            (
                Cloud::azure_china_cloud(),
                "management.chinacloudapi.cn",
                "https://management.chinacloudapi.cn/.default",
            ),
            (
                Cloud::azure_us_government(),
                "management.usgovcloudapi.net",
                "https://management.usgovcloudapi.net/.default",
            ),
            (
                Cloud::azure_cloud(),
                "management.azure.com",
                "https://management.azure.com/.default",
            ),
        ] {
            let cred = Arc::new(FakeCredential(Default::default()));
            let http = Arc::new(FakeHttp(Default::default()));
            let arm = ArmClient::new(&cloud, http.clone(), cred.clone()).unwrap();
            assert!(!format!("{arm:?}").contains("fake-Token"));
            arm.get_registry(&id).await.unwrap();
            arm.get_registry(&id).await.unwrap();
            assert_eq!(*cred.0.lock().unwrap(), [scope], "one token, cached");
            let urls = http.0.lock().unwrap().clone();
            assert_eq!(urls.len(), 2);
            assert!(
                urls[0].starts_with(&format!("https://{host}/subscriptions/")),
                "{urls:?}"
            );
            assert!(urls[0].ends_with("?api-version=2025-04-01"), "{urls:?}");
        }
        // An emulator endpoint keeps the cloud's audience.
        let cloud = Cloud::azure_cloud().with_overrides(|k| {
            (k == "ACR_IMPORT_ARM_ENDPOINT").then(|| "https://127.0.0.1:9".to_owned())
        });
        let cred = Arc::new(FakeCredential(Default::default()));
        let http = Arc::new(FakeHttp(Default::default()));
        let arm = ArmClient::new(&cloud, http.clone(), cred.clone())
            .unwrap()
            .with_api_version("2023-07-01");
        arm.get_registry(&id).await.unwrap();
        assert_eq!(
            *cred.0.lock().unwrap(),
            ["https://management.azure.com/.default"]
        );
        assert!(http.0.lock().unwrap()[0].starts_with("https://127.0.0.1:9/subscriptions/"));
        assert!(http.0.lock().unwrap()[0].ends_with("api-version=2023-07-01"));
        // A nextLink or Location elsewhere never gets the token.
        assert!(arm.same_origin("https://evil.example/x").is_err());
        assert!(
            arm.same_origin("https://127.0.0.1:9/x?api-version=1")
                .is_ok()
        );
    }

    #[test]
    fn endpoints() {
        assert!(check_endpoint("https://management.azure.com").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8080").is_ok());
        assert!(check_endpoint("http://management.azure.com").is_err());
        assert!(check_endpoint("ftp://x").is_err());
    }
}
