//! An Azure Resource Manager emulator for container registries, on loopback over HTTPS.
//!
//! It serves what acr-import asks of ARM, strictly:
//!
//! - `GET /subscriptions?api-version=2022-12-01`: the subscriptions of the caller's tenant in
//!   which the caller holds a role;
//! - `GET /subscriptions/{sub}/providers/Microsoft.ContainerRegistry/registries`: the registries
//!   the caller can read, [`ArmEmulatorBuilder::page_size`] per page with `nextLink`;
//! - `GET …/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}`;
//! - `POST …/registries/{name}/importImage` and the operation it starts
//!   (`GET …/locations/{loc}/operationResults/registries-{id}`).
//!
//! Every request needs the configured api-version (400 `InvalidApiVersionParameter`
//! otherwise) and a bearer token that the [`AadEmulator`] signed, unexpired, with an ARM
//! audience (401 `InvalidAuthenticationToken…`); a subscription of another tenant than the
//! token's answers 401 `InvalidAuthenticationTokenTenant`. Role assignments ([`ArmRole`] at a
//! subscription, resource-group or registry scope) decide reads (403 `AuthorizationFailed`)
//! and `importImage/action`; a `resourceId` source also needs `read` on the source (the
//! linked-scope check, 403 with ARM's text).
//!
//! `importImage` validates the body (`source.sourceImage`; `resourceId` xor `registryUri`;
//! `credentials.password` only with `registryUri`; `mode` `Force|NoForce`; no unknown fields),
//! answers `202` with `Location` and `Retry-After`, and performs the import for real in the
//! background with acr-import-transfer: from the source (an emulated ACR, reached with the
//! import service's own identity, or any registry by `registryUri` with the given credentials
//! or anonymously) into the distribution registry behind the target's [`AcrEmulator`]. It
//! decides failures from the documented rules: a restricted registry (public access disabled
//! or default action Deny) without the trusted-services bypass, a public-access-disabled
//! source named by login server or in another tenant, an export policy disabled on the source,
//! `NoForce` with an existing target tag (before anything is copied), and pull failures
//! (`Unauthorized`, unknown manifests). The operation answers `202` with per-manifest progress
//! at least [`ArmEmulator::set_polls_before_done`] times, then `200`, or `400` with
//! `{error:{code,message}}` naming the target resource as the service does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use acr_import_auth::{Credential, NULL_GUID_USERNAME, Secret, StaticCredentials};
use acr_import_reference::RepositoryReference;
use acr_import_testsupport::{
    ARM_AUDIENCE, ARM_AUDIENCE_LEGACY, AadEmulator, AadTokenVerifier, AcrEmulator, AcrRole,
};
use acr_import_transfer::{
    Copier, CopyOptions, Endpoint, RetryPolicy, Source, Target, TransferError, Transport,
};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The api-version registry operations must use unless configured otherwise.
pub const ARM_API_VERSION: &str = "2025-04-01";
/// The api-version of `GET /subscriptions`.
pub const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";
/// The identity the emulated import service uses on emulated ACRs.
pub const IMPORT_SERVICE_PRINCIPAL: &str = "acr-import-service-00000000";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf).unwrap_or_default();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn guid() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A role at a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmRole {
    /// `read` only.
    Reader,
    /// "Container Registry Data Importer and Data Reader": `read` and `importImage/action`.
    Importer,
    /// Everything.
    Contributor,
}

impl ArmRole {
    fn can_import(self) -> bool {
        matches!(self, ArmRole::Importer | ArmRole::Contributor)
    }
}

/// A registry resource of the emulator.
#[derive(Clone)]
pub struct ArmRegistry {
    /// Subscription ID.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Name.
    pub name: String,
    /// Region.
    pub location: String,
    /// `loginServer`.
    pub login_server: String,
    /// `sku.name`.
    pub sku: String,
    /// `publicNetworkAccess == Enabled`.
    pub public_network_access: bool,
    /// `networkRuleSet.defaultAction == Deny`.
    pub default_action_deny: bool,
    /// `networkRuleSet.ipRules`.
    pub ip_rules: Vec<String>,
    /// `networkRuleBypassOptions == AzureServices`.
    pub trusted_services: bool,
    /// `policies.exportPolicy.status == enabled`.
    pub export_policy_enabled: bool,
    service_credential: Option<Credential>,
}

impl fmt::Debug for ArmRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmRegistry")
            .field("id", &self.id())
            .field("login_server", &self.login_server)
            .finish_non_exhaustive()
    }
}

impl ArmRegistry {
    /// An open Premium registry with the login server `<name>.azurecr.io` (replace it with
    /// [`ArmRegistry::backed_by`] to make imports real).
    pub fn new(subscription: &str, resource_group: &str, name: &str) -> Self {
        Self {
            subscription: subscription.to_owned(),
            resource_group: resource_group.to_owned(),
            name: name.to_owned(),
            location: "westus2".to_owned(),
            login_server: format!("{}.azurecr.io", name.to_ascii_lowercase()),
            sku: "Premium".to_owned(),
            public_network_access: true,
            default_action_deny: false,
            ip_rules: Vec::new(),
            trusted_services: true,
            export_policy_enabled: true,
            service_credential: None,
        }
    }

    /// Serves the registry through `acr`: its login server, and the import service's identity
    /// (given the Owner role there) to push and pull.
    pub fn backed_by(mut self, acr: &AcrEmulator) -> anyhow::Result<Self> {
        acr.set_role(IMPORT_SERVICE_PRINCIPAL, Some(AcrRole::Owner));
        let refresh = acr.issue_refresh_token(IMPORT_SERVICE_PRINCIPAL)?;
        self.login_server = acr.login_server();
        self.service_credential = Some(Credential::from_username_password(
            NULL_GUID_USERNAME,
            Secret::new(refresh),
        ));
        Ok(self)
    }

    /// The resource ID.
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerRegistry/registries/{}",
            self.subscription, self.resource_group, self.name
        )
    }

    /// Builder: the SKU.
    pub fn sku(mut self, sku: &str) -> Self {
        self.sku = sku.to_owned();
        self
    }

    /// Builder: public network access.
    pub fn public_network_access(mut self, enabled: bool) -> Self {
        self.public_network_access = enabled;
        self
    }

    /// Builder: default action Deny with these IP rules.
    pub fn deny_except(mut self, ip_rules: &[&str]) -> Self {
        self.default_action_deny = true;
        self.ip_rules = ip_rules.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Builder: whether trusted services bypass the firewall.
    pub fn trusted_services(mut self, allowed: bool) -> Self {
        self.trusted_services = allowed;
        self
    }

    /// Builder: the export policy.
    pub fn export_policy(mut self, enabled: bool) -> Self {
        self.export_policy_enabled = enabled;
        self
    }

    fn restricted(&self) -> bool {
        !self.public_network_access || self.default_action_deny
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id(),
            "name": self.name,
            "type": "Microsoft.ContainerRegistry/registries",
            "location": self.location,
            "sku": {"name": self.sku, "tier": self.sku},
            "properties": {
                "loginServer": self.login_server,
                "provisioningState": "Succeeded",
                "adminUserEnabled": false,
                "publicNetworkAccess": if self.public_network_access { "Enabled" } else { "Disabled" },
                "networkRuleSet": {
                    "defaultAction": if self.default_action_deny { "Deny" } else { "Allow" },
                    "ipRules": self.ip_rules.iter().map(|v| json!({"action": "Allow", "value": v})).collect::<Vec<_>>(),
                },
                "networkRuleBypassOptions": if self.trusted_services { "AzureServices" } else { "None" },
                "policies": {"exportPolicy": {"status": if self.export_policy_enabled { "enabled" } else { "disabled" }}},
                "privateEndpointConnections": [],
            }
        })
    }
}

/// One request the emulator handled (no tokens, no bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmRequest {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// `api-version`.
    pub api_version: Option<String>,
    /// Response status.
    pub status: u16,
    /// `error.code`, when refused.
    pub code: Option<String>,
    /// When it was answered.
    pub at: std::time::Instant,
}

/// ARM's write throttling of a subscription: `capacity` writes per `window`.
#[derive(Debug, Clone)]
struct WriteBudget {
    capacity: u64,
    left: u64,
    window: Duration,
    since: std::time::Instant,
}

impl WriteBudget {
    /// Takes a write: `Ok(left)`, or `Err(retry after)` when none is left.
    fn take(&mut self) -> Result<u64, Duration> {
        let now = std::time::Instant::now();
        if now.duration_since(self.since) >= self.window {
            self.since = now;
            self.left = self.capacity;
        }
        if self.left == 0 {
            return Err(self.window.saturating_sub(now.duration_since(self.since)));
        }
        self.left -= 1;
        Ok(self.left)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OpStatus {
    Running,
    Succeeded,
    Failed { code: String, message: String },
}

struct Operation {
    tenant: String,
    status: OpStatus,
    polls: usize,
    manifests: Vec<(String, String)>,
    /// A poll has told the caller it ended.
    reported: bool,
}

struct Subscription {
    id: String,
    tenant: String,
    name: String,
}

struct State {
    endpoint: Mutex<String>,
    api_version: String,
    verifier: AadTokenVerifier,
    subscriptions: Vec<Subscription>,
    registries: Mutex<Vec<ArmRegistry>>,
    roles: Vec<(String, String, ArmRole)>,
    operations: Mutex<HashMap<String, Operation>>,
    polls_before_done: Mutex<usize>,
    retry_after: Mutex<u64>,
    stalled: Mutex<bool>,
    /// Polls still to answer with this server error (a fault in front of the operation).
    poll_faults: Mutex<(usize, u16)>,
    /// ARM's write throttling of the subscription, when set.
    writes: Mutex<Option<WriteBudget>>,
    /// Operations started and not yet seen ended by a poll: now, and the most at once.
    outstanding: Mutex<(usize, usize)>,
    page_size: usize,
    log: Mutex<Vec<ArmRequest>>,
    bodies: Mutex<Vec<Value>>,
}

/// Configures an [`ArmEmulator`].
pub struct ArmEmulatorBuilder {
    tls: Arc<rustls::ServerConfig>,
    verifier: AadTokenVerifier,
    api_version: String,
    subscriptions: Vec<Subscription>,
    registries: Vec<ArmRegistry>,
    roles: Vec<(String, String, ArmRole)>,
    page_size: usize,
    polls_before_done: usize,
    retry_after: u64,
}

impl fmt::Debug for ArmEmulatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmEmulatorBuilder")
            .field("registries", &self.registries)
            .finish_non_exhaustive()
    }
}

impl ArmEmulatorBuilder {
    /// A subscription of `tenant`.
    pub fn subscription(mut self, id: &str, tenant: &str, display_name: &str) -> Self {
        self.subscriptions.push(Subscription {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
            name: display_name.to_owned(),
        });
        self
    }

    /// A registry (its subscription must be added too).
    pub fn registry(mut self, registry: ArmRegistry) -> Self {
        self.registries.push(registry);
        self
    }

    /// Gives `principal` (a client ID of the [`AadEmulator`], or an object ID) `role` at
    /// `scope` (`/subscriptions/…[/resourceGroups/…[/providers/…/registries/…]]`).
    pub fn role(mut self, principal: &str, scope: &str, role: ArmRole) -> Self {
        let oid = self
            .verifier
            .object_id(principal)
            .unwrap_or_else(|| principal.to_owned());
        self.roles.push((oid, scope.to_ascii_lowercase(), role));
        self
    }

    /// The api-version required of registry operations (default [`ARM_API_VERSION`]).
    pub fn api_version(mut self, v: &str) -> Self {
        self.api_version = v.to_owned();
        self
    }

    /// Registries per list page (default 100).
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// `202` answers an operation gives at least (default 2).
    pub fn polls_before_done(mut self, n: usize) -> Self {
        self.polls_before_done = n;
        self
    }

    /// `Retry-After` seconds of `202` answers (default 0).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = secs;
        self
    }

    /// Binds `127.0.0.1:0` and serves HTTPS.
    pub async fn start(self) -> anyhow::Result<ArmEmulator> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            endpoint: Mutex::new(format!("https://{addr}")),
            api_version: self.api_version,
            verifier: self.verifier,
            subscriptions: self.subscriptions,
            registries: Mutex::new(self.registries),
            roles: self.roles,
            operations: Mutex::new(HashMap::new()),
            polls_before_done: Mutex::new(self.polls_before_done),
            retry_after: Mutex::new(self.retry_after),
            stalled: Mutex::new(false),
            poll_faults: Mutex::new((0, 503)),
            writes: Mutex::new(None),
            outstanding: Mutex::new((0, 0)),
            page_size: self.page_size,
            log: Mutex::new(Vec::new()),
            bodies: Mutex::new(Vec::new()),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls);
        let task = tokio::spawn(accept_loop(listener, acceptor, state.clone()));
        Ok(ArmEmulator { addr, state, task })
    }
}

/// The ARM emulator (see the module docs). Stops on drop.
pub struct ArmEmulator {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl fmt::Debug for ArmEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for ArmEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ArmEmulator {
    /// A builder trusting `aad`'s tokens and serving with its test CA.
    pub fn builder(aad: &AadEmulator) -> ArmEmulatorBuilder {
        ArmEmulatorBuilder {
            tls: aad.tls_server_config(),
            verifier: aad.token_verifier(),
            api_version: ARM_API_VERSION.to_owned(),
            subscriptions: Vec::new(),
            registries: Vec::new(),
            roles: Vec::new(),
            page_size: 100,
            polls_before_done: 2,
            retry_after: 0,
        }
    }

    /// `https://127.0.0.1:PORT`: what `ACR_IMPORT_ARM_ENDPOINT` must be.
    pub fn endpoint(&self) -> String {
        lock(&self.state.endpoint).clone()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ArmRequest> {
        lock(&self.state.log).clone()
    }

    /// Requests whose path contains `needle` (case-insensitively).
    pub fn count(&self, method: &str, needle: &str) -> usize {
        let needle = needle.to_ascii_lowercase();
        lock(&self.state.log)
            .iter()
            .filter(|r| r.method == method && r.path.to_ascii_lowercase().contains(&needle))
            .count()
    }

    /// Every `importImage` body received (valid or not), in order.
    pub fn import_bodies(&self) -> Vec<Value> {
        lock(&self.state.bodies).clone()
    }

    /// `202` answers each operation gives at least from now on.
    pub fn set_polls_before_done(&self, n: usize) {
        *lock(&self.state.polls_before_done) = n;
    }

    /// `Retry-After` seconds from now on.
    pub fn set_retry_after(&self, secs: u64) {
        *lock(&self.state.retry_after) = secs;
    }

    /// Stalled operations answer `202` forever (as reported for some sources).
    pub fn set_stalled(&self, stalled: bool) {
        *lock(&self.state.stalled) = stalled;
    }

    /// The next `count` polls of any operation answer `status` (a 5xx, as ARM's front ends
    /// sometimes do) with an ARM error body, before the operation is looked at.
    pub fn fail_polls(&self, count: usize, status: u16) {
        *lock(&self.state.poll_faults) = (count, status);
    }

    /// ARM's write throttling from now on: `writes` per `window` for the subscription, each
    /// `importImage` counting one; every answer to one says how many are left
    /// (`x-ms-ratelimit-remaining-subscription-writes`), and past the limit ARM answers `429
    /// TooManyRequests` with `Retry-After` until the window ends (the documented contract:
    /// <https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling>).
    pub fn set_write_budget(&self, writes: u64, window: Duration) {
        *lock(&self.state.writes) = Some(WriteBudget {
            capacity: writes,
            left: writes,
            window,
            since: std::time::Instant::now(),
        });
    }

    /// The most `importImage` operations that were running at once (started, and not yet
    /// seen ended by a poll).
    pub fn max_running_imports(&self) -> usize {
        lock(&self.state.outstanding).1
    }

    /// Changes a registry (by name, case-insensitively).
    pub fn update_registry(&self, name: &str, f: impl FnOnce(&mut ArmRegistry)) {
        if let Some(r) = lock(&self.state.registries)
            .iter_mut()
            .find(|r| r.name.eq_ignore_ascii_case(name))
        {
            f(r);
        }
    }

    /// The statuses of the operations: `Running`, `Succeeded` or `Failed: <message>`.
    pub fn operation_statuses(&self) -> Vec<String> {
        lock(&self.state.operations)
            .values()
            .map(|o| match &o.status {
                OpStatus::Running => "Running".to_owned(),
                OpStatus::Succeeded => "Succeeded".to_owned(),
                OpStatus::Failed { message, .. } => format!("Failed: {message}"),
            })
            .collect()
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        conns.spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

type Reply = (StatusCode, Value, Vec<(&'static str, String)>);

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Reply {
    (
        status,
        json!({"error": {"code": code, "message": message.into()}}),
        Vec::new(),
    )
}

fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let api_version = query_param(&query, "api-version");
    let (status, value, headers) = route(
        &state,
        &method,
        &path,
        &query,
        api_version.as_deref(),
        auth.as_deref(),
        content_type.as_deref(),
        &body,
    )
    .await;
    lock(&state.log).push(ArmRequest {
        method: method.to_string(),
        path,
        api_version,
        status: status.as_u16(),
        code: value["error"]["code"].as_str().map(str::to_owned),
        at: std::time::Instant::now(),
    });
    let bytes = if value.is_null() {
        Bytes::new()
    } else {
        Bytes::from(value.to_string())
    };
    let mut resp = Response::new(Full::new(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    for (k, v) in headers {
        if let Ok(v) = header::HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// The caller: object ID and tenant.
struct Caller {
    oid: String,
    tid: String,
}

fn authenticate(state: &State, auth: Option<&str>) -> Result<Caller, Reply> {
    let Some(token) = auth.and_then(|a| a.strip_prefix("Bearer ")) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    let claims = state.verifier.verify(token).map_err(|e| {
        error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            format!("The access token is invalid: {e}"),
        )
    })?;
    let aud = claims["aud"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('/');
    if aud != ARM_AUDIENCE && aud != ARM_AUDIENCE_LEGACY {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenAudience",
            format!("The access token has been obtained for wrong audience or resource '{aud}'."),
        ));
    }
    Ok(Caller {
        oid: claims["oid"].as_str().unwrap_or_default().to_owned(),
        tid: claims["tid"].as_str().unwrap_or_default().to_owned(),
    })
}

impl State {
    fn subscription(&self, id: &str) -> Option<&Subscription> {
        self.subscriptions
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(id))
    }

    fn check_subscription(&self, caller: &Caller, id: &str) -> Result<(), Reply> {
        let Some(sub) = self.subscription(id) else {
            return Err(error(
                StatusCode::NOT_FOUND,
                "SubscriptionNotFound",
                format!("The subscription '{id}' could not be found."),
            ));
        };
        if !sub.tenant.eq_ignore_ascii_case(&caller.tid) {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationTokenTenant",
                format!(
                    "The access token is from the wrong issuer. It must match the tenant associated with subscription '{id}'."
                ),
            ));
        }
        Ok(())
    }

    /// The roles the caller holds on `resource_id` (in its own tenant only).
    fn roles_on(&self, caller: &Caller, resource_id: &str) -> Vec<ArmRole> {
        let resource = resource_id.to_ascii_lowercase();
        let sub = resource.split('/').nth(2).unwrap_or_default().to_owned();
        if self
            .subscription(&sub)
            .is_none_or(|s| !s.tenant.eq_ignore_ascii_case(&caller.tid))
        {
            return Vec::new();
        }
        self.roles
            .iter()
            .filter(|(oid, scope, _)| {
                oid == &caller.oid
                    && (resource == *scope || resource.starts_with(&format!("{scope}/")))
            })
            .map(|(_, _, r)| *r)
            .collect()
    }

    fn can_read(&self, caller: &Caller, id: &str) -> bool {
        !self.roles_on(caller, id).is_empty()
    }

    fn registry_by_id(&self, sub: &str, rg: &str, name: &str) -> Option<ArmRegistry> {
        lock(&self.registries)
            .iter()
            .find(|r| {
                r.subscription.eq_ignore_ascii_case(sub)
                    && r.resource_group.eq_ignore_ascii_case(rg)
                    && r.name.eq_ignore_ascii_case(name)
            })
            .cloned()
    }

    fn registry_by_login_server(&self, host: &str) -> Option<ArmRegistry> {
        lock(&self.registries)
            .iter()
            .find(|r| r.login_server.eq_ignore_ascii_case(host))
            .cloned()
    }
}

#[allow(clippy::too_many_arguments)]
async fn route(
    state: &Arc<State>,
    method: &Method,
    path: &str,
    query: &str,
    api_version: Option<&str>,
    auth: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Reply {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let wanted = if l == ["subscriptions"] {
        SUBSCRIPTIONS_API_VERSION
    } else {
        state.api_version.as_str()
    };
    match api_version {
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        Some(v) if v != wanted => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                format!("The api-version '{v}' is invalid. The supported versions are '{wanted}'."),
            );
        }
        _ => {}
    }
    let caller = match authenticate(state, auth) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match (method, l.as_slice()) {
        (&Method::GET, ["subscriptions"]) => {
            let value: Vec<Value> = state
                .subscriptions
                .iter()
                .filter(|s| s.tenant.eq_ignore_ascii_case(&caller.tid))
                .filter(|s| {
                    let prefix = format!("/subscriptions/{}", s.id.to_ascii_lowercase());
                    state.roles.iter().any(|(oid, scope, _)| {
                        oid == &caller.oid && (scope == &prefix || scope.starts_with(&format!("{prefix}/")))
                    })
                })
                .map(|s| {
                    json!({"id": format!("/subscriptions/{}", s.id), "subscriptionId": s.id, "tenantId": s.tenant,
                           "displayName": s.name, "state": "Enabled"})
                })
                .collect();
            (StatusCode::OK, json!({ "value": value }), Vec::new())
        }
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.containerregistry",
                "registries",
            ],
        ) => {
            let sub = segments[1];
            if let Err(r) = state.check_subscription(&caller, sub) {
                return r;
            }
            let readable: Vec<Value> = lock(&state.registries)
                .iter()
                .filter(|r| r.subscription.eq_ignore_ascii_case(sub))
                .filter(|r| state.can_read(&caller, &r.id()))
                .map(ArmRegistry::to_json)
                .collect();
            let skip: usize = query_param(query, "$skipToken")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let page: Vec<Value> = readable
                .iter()
                .skip(skip)
                .take(state.page_size)
                .cloned()
                .collect();
            let mut out = json!({ "value": page });
            if skip + state.page_size < readable.len() {
                out["nextLink"] = json!(format!(
                    "{}{path}?api-version={}&$skipToken={}",
                    lock(&state.endpoint),
                    state.api_version,
                    skip + state.page_size
                ));
            }
            (StatusCode::OK, out, Vec::new())
        }
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.containerregistry",
                "registries",
                _,
            ],
        ) => {
            let (sub, rg, name) = (segments[1], segments[3], segments[7]);
            if let Err(r) = state.check_subscription(&caller, sub) {
                return r;
            }
            let Some(reg) = state.registry_by_id(sub, rg, name) else {
                return error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    format!(
                        "The Resource 'Microsoft.ContainerRegistry/registries/{name}' under resource group '{rg}' was not found."
                    ),
                );
            };
            if !state.can_read(&caller, &reg.id()) {
                return error(
                    StatusCode::FORBIDDEN,
                    "AuthorizationFailed",
                    format!(
                        "The client with object id '{}' does not have authorization to perform action 'Microsoft.ContainerRegistry/registries/read' over scope '{}' or the scope is invalid.",
                        caller.oid,
                        reg.id()
                    ),
                );
            }
            (StatusCode::OK, reg.to_json(), Vec::new())
        }
        (
            &Method::POST,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.containerregistry",
                "registries",
                _,
                "importimage",
            ],
        ) => {
            let (sub, rg, name) = (segments[1], segments[3], segments[7]);
            import_image(state, &caller, sub, rg, name, content_type, body)
        }
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.containerregistry",
                "locations",
                _,
                "operationresults",
                _,
            ],
        ) => poll(state, &caller, segments[7]),
        _ => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No HTTP resource was found that matches {method} {path}."),
        ),
    }
}

/// The parsed, validated body.
struct ImportBody {
    source_image: String,
    resource_id: Option<String>,
    registry_uri: Option<String>,
    credentials: Option<(Option<String>, String)>,
    target_tags: Vec<String>,
    untagged: Vec<String>,
    force: bool,
}

fn invalid(message: impl Into<String>) -> Reply {
    error(StatusCode::BAD_REQUEST, "InvalidRequestContent", message)
}

fn parse_body(value: &Value) -> Result<ImportBody, Reply> {
    let Some(obj) = value.as_object() else {
        return Err(invalid("The request content is not a JSON object."));
    };
    for k in obj.keys() {
        if !["source", "targetTags", "untaggedTargetRepositories", "mode"].contains(&k.as_str()) {
            return Err(invalid(format!(
                "Could not find member '{k}' on object of type 'ImportImageParameters'."
            )));
        }
    }
    let Some(source) = obj.get("source").and_then(Value::as_object) else {
        return Err(invalid("The 'source' field is required."));
    };
    for k in source.keys() {
        if !["sourceImage", "resourceId", "registryUri", "credentials"].contains(&k.as_str()) {
            return Err(invalid(format!(
                "Could not find member '{k}' on object of type 'ImportSource'."
            )));
        }
    }
    let Some(source_image) = source.get("sourceImage").and_then(Value::as_str) else {
        return Err(invalid("The 'source.sourceImage' field is required."));
    };
    if source_image.parse::<RepositoryReference>().is_err() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidParameters",
            format!("The source image '{source_image}' is invalid."),
        ));
    }
    let resource_id = source
        .get("resourceId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let registry_uri = source
        .get("registryUri")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if resource_id.is_some() == registry_uri.is_some() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidParameters",
            "Exactly one of 'source.resourceId' and 'source.registryUri' must be given.",
        ));
    }
    let credentials = match source.get("credentials") {
        None | Some(Value::Null) => None,
        Some(c) => {
            if resource_id.is_some() {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameters",
                    "'source.credentials' can only be used with 'source.registryUri'.",
                ));
            }
            let Some(password) = c.get("password").and_then(Value::as_str) else {
                return Err(invalid(
                    "The 'source.credentials.password' field is required.",
                ));
            };
            Some((
                c.get("username").and_then(Value::as_str).map(str::to_owned),
                password.to_owned(),
            ))
        }
    };
    let strings = |k: &str| -> Result<Vec<String>, Reply> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid(format!("'{k}' must be a list of strings.")))
                })
                .collect(),
            Some(_) => Err(invalid(format!("'{k}' must be a list of strings."))),
        }
    };
    let target_tags = strings("targetTags")?;
    let untagged = strings("untaggedTargetRepositories")?;
    let force = match obj.get("mode").and_then(Value::as_str) {
        None | Some("NoForce") => false,
        Some("Force") => true,
        Some(other) => {
            return Err(invalid(format!(
                "Requested value '{other}' was not found for 'mode' (Force, NoForce)."
            )));
        }
    };
    Ok(ImportBody {
        source_image: source_image.to_owned(),
        resource_id,
        registry_uri,
        credentials,
        target_tags,
        untagged,
        force,
    })
}

fn import_image(
    state: &Arc<State>,
    caller: &Caller,
    sub: &str,
    rg: &str,
    name: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Reply {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    lock(&state.bodies).push(value.clone());
    if let Err(r) = state.check_subscription(caller, sub) {
        return r;
    }
    let left = match lock(&state.writes).as_mut().map(WriteBudget::take) {
        None => None,
        Some(Ok(left)) => Some(left),
        Some(Err(wait)) => {
            let (status, body, mut headers) = error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "The request is being throttled as the limit has been reached for operation type - Write.",
            );
            headers.push((
                "retry-after",
                wait.as_secs_f64().ceil().max(1.0).to_string(),
            ));
            headers.push((
                "x-ms-ratelimit-remaining-subscription-writes",
                "0".to_owned(),
            ));
            return (status, body, headers);
        }
    };
    let (status, body, mut headers) =
        start_import(state, caller, sub, rg, name, content_type, &value);
    if let Some(left) = left {
        headers.push((
            "x-ms-ratelimit-remaining-subscription-writes",
            left.to_string(),
        ));
    }
    if status == StatusCode::ACCEPTED {
        let mut o = lock(&state.outstanding);
        o.0 += 1;
        o.1 = o.1.max(o.0);
    }
    (status, body, headers)
}

/// `importImage` past ARM's throttling: checks, then the operation.
fn start_import(
    state: &Arc<State>,
    caller: &Caller,
    sub: &str,
    rg: &str,
    name: &str,
    content_type: Option<&str>,
    value: &Value,
) -> Reply {
    if !content_type.is_some_and(|c| c.starts_with("application/json")) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "The content media type is not supported: use application/json.",
        );
    }
    let Some(target) = state.registry_by_id(sub, rg, name) else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource 'Microsoft.ContainerRegistry/registries/{name}' under resource group '{rg}' was not found."
            ),
        );
    };
    let target_id = target.id();
    if !state
        .roles_on(caller, &target_id)
        .iter()
        .any(|r| r.can_import())
    {
        return error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            format!(
                "The client with object id '{}' does not have authorization to perform action 'Microsoft.ContainerRegistry/registries/importImage/action' over scope '{target_id}' or the scope is invalid.",
                caller.oid
            ),
        );
    }
    let parsed = match parse_body(value) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !["basic", "standard", "premium"].contains(&target.sku.to_ascii_lowercase().as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "ImportNotSupported",
            "Imports are only supported for managed registries.",
        );
    }
    let source_registry = match &parsed.resource_id {
        Some(id) => {
            let parts: Vec<&str> = id.trim_start_matches('/').split('/').collect();
            let found = (parts.len() == 8 && parts[6].eq_ignore_ascii_case("registries"))
                .then(|| state.registry_by_id(parts[1], parts[3], parts[7]))
                .flatten();
            let readable = found
                .as_ref()
                .is_some_and(|r| state.can_read(caller, &r.id()));
            if !readable {
                return error(
                    StatusCode::FORBIDDEN,
                    "AuthorizationFailed",
                    format!(
                        "The client with object id '{}' has permission to perform action 'Microsoft.ContainerRegistry/registries/importImage/action' on scope '{target_id}'; however, it does not have permission to perform action 'read' on the linked scope(s) '{id}' or the linked scope(s) are invalid.",
                        caller.oid
                    ),
                );
            }
            found
        }
        None => None,
    };
    let op = format!("registries-{}", guid());
    lock(&state.operations).insert(
        op.clone(),
        Operation {
            tenant: caller.tid.clone(),
            status: OpStatus::Running,
            polls: 0,
            manifests: Vec::new(),
            reported: false,
        },
    );
    let location = format!(
        "{}/subscriptions/{sub}/providers/Microsoft.ContainerRegistry/locations/{}/operationResults/{op}?api-version={}",
        lock(&state.endpoint),
        target.location.to_ascii_uppercase(),
        state.api_version
    );
    let source_tenant = source_registry.as_ref().and_then(|r| {
        state
            .subscription(&r.subscription)
            .map(|s| s.tenant.clone())
    });
    let cross_tenant = source_tenant.is_some_and(|t| !t.eq_ignore_ascii_case(&caller.tid));
    let task_state = state.clone();
    let op_id = op.clone();
    // The copy engine's futures are not `Send` for every lifetime, so the operation runs on a
    // thread of its own with its own runtime, as the service runs it apart from ARM.
    std::thread::spawn(move || {
        let result = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(perform(
                &task_state,
                &op_id,
                &target,
                source_registry.as_ref(),
                cross_tenant,
                &parsed,
            )),
            Err(e) => Err(fail("InternalServerError", e.to_string())),
        };
        let mut ops = lock(&task_state.operations);
        if let Some(o) = ops.get_mut(&op_id) {
            o.status = match result {
                Ok(()) => {
                    for m in &mut o.manifests {
                        m.1 = "Succeeded".to_owned();
                    }
                    OpStatus::Succeeded
                }
                Err((code, detail)) => OpStatus::Failed {
                    code,
                    message: format!(
                        "Operation {op_id} failed. Resource {} {detail}",
                        target.id()
                    ),
                },
            };
        }
    });
    let retry = *lock(&state.retry_after);
    (
        StatusCode::ACCEPTED,
        Value::Null,
        vec![("location", location), ("retry-after", retry.to_string())],
    )
}

type Failure = (String, String);

fn fail(code: &str, detail: impl Into<String>) -> Failure {
    (code.to_owned(), detail.into())
}

/// Performs the import: rules first, then the copy.
async fn perform(
    state: &Arc<State>,
    op: &str,
    target: &ArmRegistry,
    source_registry: Option<&ArmRegistry>,
    cross_tenant: bool,
    body: &ImportBody,
) -> Result<(), Failure> {
    if target.restricted() && !target.trusted_services {
        return Err(fail(
            "InvalidParameters",
            format!(
                "Access to {} denied: client is not allowed access by the registry's network rules (trusted services are not allowed).",
                target.login_server
            ),
        ));
    }
    let (source_host, source_credential) = match (source_registry, &body.registry_uri) {
        (Some(s), _) => {
            if s.restricted() && !s.trusted_services {
                return Err(fail(
                    "InvalidParameters",
                    format!(
                        "Access to {} denied: the source registry's network rules do not allow trusted services.",
                        s.login_server
                    ),
                ));
            }
            if !s.public_network_access && cross_tenant {
                return Err(fail(
                    "InvalidParameters",
                    format!(
                        "Access to {} denied: cross-tenant import from a registry with public network access disabled is not supported.",
                        s.login_server
                    ),
                ));
            }
            if !s.export_policy_enabled {
                return Err(fail(
                    "InvalidParameters",
                    format!(
                        "Access to {} denied: the export policy of the source registry is disabled.",
                        s.login_server
                    ),
                ));
            }
            (s.login_server.clone(), s.service_credential.clone())
        }
        (None, Some(uri)) => {
            if let Some(known) = state.registry_by_login_server(uri) {
                if !known.public_network_access {
                    return Err(fail(
                        "InvalidParameters",
                        format!(
                            "Access to {uri} denied: public network access is disabled; name the source by resource ID."
                        ),
                    ));
                }
                if !known.export_policy_enabled {
                    return Err(fail(
                        "InvalidParameters",
                        format!(
                            "Access to {uri} denied: the export policy of the source registry is disabled."
                        ),
                    ));
                }
            }
            let credential = body.credentials.as_ref().map(|(u, p)| {
                Credential::from_username_password(
                    u.clone().unwrap_or_else(|| NULL_GUID_USERNAME.to_owned()),
                    Secret::new(p.clone()),
                )
            });
            (uri.clone(), credential)
        }
        (None, None) => return Err(fail("InvalidParameters", "no source")),
    };
    let mut credentials = StaticCredentials::new();
    if let Some(c) = &target.service_credential {
        credentials.insert(&target.login_server, c.clone());
    }
    if let Some(c) = source_credential {
        credentials.insert(&source_host, c);
    }
    let transport = Transport::builder()
        .credentials(Arc::new(credentials))
        .proxy_from_env(false)
        .retry(RetryPolicy::none())
        .connect_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| fail("InternalServerError", e.to_string()))?;
    let with_scheme = |h: &str| {
        let host = h.rsplit_once(':').map_or(h, |(a, _)| a);
        if acr_import_auth::is_loopback_host(host) {
            format!("http://{h}")
        } else {
            h.to_owned()
        }
    };
    let src_reg = transport
        .registry(&with_scheme(&source_host))
        .map_err(|e| fail("InvalidParameters", e.to_string()))?;
    let dst_reg = transport
        .registry(&with_scheme(&target.login_server))
        .map_err(|e| fail("InternalServerError", e.to_string()))?;
    let image: RepositoryReference = body
        .source_image
        .parse()
        .map_err(|_| fail("InvalidParameters", "invalid source image"))?;
    let repo = image.repository().to_string();
    let source_tag = image.tag().map(|t| t.to_string());
    let reference = image
        .digest()
        .map(|d| d.to_string())
        .or_else(|| source_tag.clone())
        .unwrap_or_else(|| "latest".to_owned());
    let head = src_reg
        .head_manifest(&repo, &reference)
        .await
        .map_err(|e| pull_failure(&e, &repo, &reference))?;
    let Some(head) = head else {
        return Err(fail(
            "InvalidParameters",
            format!("Unable to find manifest digest Repo: {repo} Tag: {reference}"),
        ));
    };
    let digest = head
        .digest
        .map(|d| d.to_string())
        .unwrap_or_else(|| reference.clone());
    if let Some(o) = lock(&state.operations).get_mut(op) {
        o.manifests = vec![(format!("{repo}@{digest}"), "Pending".to_owned())];
    }
    let mut targets = Vec::new();
    for t in &body.target_tags {
        let (r, tag) = match t.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => (r.to_owned(), tag.to_owned()),
            _ => (
                t.clone(),
                source_tag.clone().unwrap_or_else(|| "latest".to_owned()),
            ),
        };
        targets.push((r, Some(tag)));
    }
    for r in &body.untagged {
        targets.push((r.clone(), None));
    }
    if targets.is_empty() {
        targets.push((
            repo.clone(),
            Some(source_tag.clone().unwrap_or_else(|| "latest".to_owned())),
        ));
    }
    if !body.force {
        for (r, tag) in &targets {
            if let Some(tag) = tag
                && dst_reg
                    .head_manifest(r, tag)
                    .await
                    .map_err(|e| fail("InternalServerError", e.to_string()))?
                    .is_some()
            {
                return Err(fail(
                    "Conflict",
                    format!(
                        "Tag {r}:{tag} already exists in target registry (mode NoForce); use Force mode to overwrite it."
                    ),
                ));
            }
        }
    }
    let source = Source {
        endpoint: Endpoint::registry(src_reg, repo.clone()),
        reference: reference.clone(),
    };
    let targets: Vec<Target> = targets
        .into_iter()
        .map(|(r, tag)| Target {
            endpoint: Endpoint::registry(dst_reg.clone(), r),
            tag,
        })
        .collect();
    let copier = Copier::new(CopyOptions {
        force: true,
        referrers: false,
        ..CopyOptions::default()
    });
    let report = copier
        .copy(&source, &targets)
        .await
        .map_err(|e| pull_failure(&e, &repo, &reference))?;
    if let Some(o) = lock(&state.operations).get_mut(op) {
        o.manifests = report
            .manifests
            .iter()
            .map(|m| (format!("{repo}@{}", m.digest), "Pending".to_owned()))
            .collect();
    }
    Ok(())
}

fn pull_failure(e: &TransferError, repo: &str, reference: &str) -> Failure {
    match e {
        TransferError::Unauthorized(_)
        | TransferError::Auth { .. }
        | TransferError::ScopeDenied { .. } => fail(
            "InvalidParameters",
            format!(
                "Invalid message Unauthorized Unauthorized {{\"errors\":[{{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\",\"detail\":[{{\"Type\":\"repository\",\"Name\":\"{repo}\",\"Action\":\"pull\"}}]}}]}}"
            ),
        ),
        TransferError::Forbidden(_) => fail(
            "InvalidParameters",
            "Invalid message Forbidden Forbidden {\"errors\":[{\"code\":\"DENIED\"}]}",
        ),
        TransferError::NotFound(_) => fail(
            "InvalidParameters",
            format!("Unable to find manifest digest Repo: {repo} Tag: {reference}"),
        ),
        other => fail("InvalidParameters", format!("Error copying blobs: {other}")),
    }
}

fn poll(state: &Arc<State>, caller: &Caller, op: &str) -> Reply {
    {
        let mut faults = lock(&state.poll_faults);
        if faults.0 > 0 {
            faults.0 -= 1;
            let status = StatusCode::from_u16(faults.1).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return error(
                status,
                "ServiceUnavailable",
                "The service is temporarily unavailable (injected).",
            );
        }
    }
    let needed = *lock(&state.polls_before_done);
    let stalled = *lock(&state.stalled);
    let retry = *lock(&state.retry_after);
    let mut ops = lock(&state.operations);
    let Some(o) = ops.get_mut(op) else {
        return error(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            format!("The operation '{op}' was not found."),
        );
    };
    if !o.tenant.eq_ignore_ascii_case(&caller.tid) {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenTenant",
            "The access token is from the wrong issuer.",
        );
    }
    let ended = !stalled && o.polls >= needed && o.status != OpStatus::Running;
    if ended && !o.reported {
        o.reported = true;
        let mut outstanding = lock(&state.outstanding);
        outstanding.0 = outstanding.0.saturating_sub(1);
    }
    match &o.status {
        OpStatus::Succeeded if !stalled && o.polls >= needed => {
            (StatusCode::OK, Value::Null, Vec::new())
        }
        OpStatus::Failed { code, message } if !stalled && o.polls >= needed => {
            error(StatusCode::BAD_REQUEST, code, message.clone())
        }
        status => {
            let succeeded = *status == OpStatus::Succeeded;
            o.polls += 1;
            let mut body = json!({"status": "Accepted"});
            for (m, s) in &o.manifests {
                body[m] = json!(if succeeded { "Succeeded" } else { s.as_str() });
            }
            (
                StatusCode::ACCEPTED,
                body,
                vec![("retry-after", retry.to_string())],
            )
        }
    }
}
