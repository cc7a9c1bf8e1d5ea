//! An Azure Resource Manager emulator for container registries, on loopback over HTTPS.
//!
//! It serves what acr-import asks of ARM, strictly:
//!
//! - `GET /subscriptions?api-version=2022-12-01`: the subscriptions of the caller's tenant in
//!   which the caller holds a role;
//! - `GET /subscriptions/{sub}/providers/Microsoft.ContainerRegistry/registries`: the registries
//!   the caller can read, [`ArmEmulatorBuilder::page_size`] per page with `nextLink`;
//! - `GET …/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}`, with
//!   the properties of `Microsoft.ContainerRegistry` 2025-11-01 (`roleAssignmentMode`,
//!   `policies.azureADAuthenticationAsArmPolicy`, `dataEndpointEnabled`/`HostNames`…);
//! - `GET {scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01`: the
//!   caller's own permissions at a subscription, resource group or registry, one entry per role
//!   assignment that applies, with its `condition` (learn.microsoft.com/rest/api/authorization/
//!   permissions/list-for-resource); a deny assignment of
//!   `Microsoft.Authorization/permissions/read` answers 403 `AuthorizationFailed`;
//! - `POST …/registries/{name}/importImage` and the operation it starts (`GET
//!   …/locations/{loc}/operationResults/registries-{id}`; with
//!   [`ArmEmulator::set_async_operation_header`], also the `Azure-AsyncOperation` status
//!   monitor `…/operationStatuses/registries-{id}` of the async-operation guidelines).
//!
//! Every request needs the configured api-version (400 `InvalidApiVersionParameter`
//! otherwise) and a bearer token that the [`AadEmulator`] signed, unexpired, with an ARM
//! audience (401 `InvalidAuthenticationToken…`); a subscription of another tenant than the
//! token's answers 401 `InvalidAuthenticationTokenTenant`. Answers carry `x-ms-request-id` and
//! `x-ms-correlation-request-id`; the log keeps each request's `x-ms-client-request-id`.
//!
//! Role assignments live in an [`Rbac`] shared with the [`AcrEmulator`]s behind the registries
//! (built-in roles with their documented actions, custom roles, repository conditions, ABAC
//! mode): they decide reads (`Microsoft.ContainerRegistry/registries/read`, 403
//! `AuthorizationFailed`), `importImage/action` on the target, `read` on a `resourceId` source
//! (the linked-scope check, 403 with ARM's text) and the caller's pull on it (decided when the
//! import runs, per repository), and what the registries' token services grant.
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
//!
//! Faults a front end of ARM produces can be injected: throttled POSTs
//! ([`ArmEmulator::throttle_imports`]), error answers to polls ([`ArmEmulator::fail_polls`]),
//! `200` answers with a status that is not terminal ([`ArmEmulator::set_nonterminal_200s`]), and
//! a write budget per subscription ([`ArmEmulator::set_write_budget`]).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use acr_import_auth::{Credential, NULL_GUID_USERNAME, Secret};
use acr_import_testsupport::ServerTask;
use acr_import_testsupport::{
    AadEmulator, AadTokenVerifier, AcrEmulator, AcrHandle, Rbac, RepositoryCondition,
    RoleDefinition, random_guid as guid,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

mod import;
mod operations;
mod routes;

use operations::{OpStatus, Operation};

/// The api-version registry operations must use unless configured otherwise.
pub const ARM_API_VERSION: &str = "2025-11-01";
/// The api-version of `GET /subscriptions`.
pub const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";
/// The api-version of `Microsoft.Authorization/permissions`.
pub const PERMISSIONS_API_VERSION: &str = "2022-04-01";
/// The identity the emulated import service uses on emulated ACRs.
pub const IMPORT_SERVICE_PRINCIPAL: &str = "acr-import-service-00000000";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A built-in role, as a shorthand for its definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmRole {
    /// Reader: every read (`*/read`).
    Reader,
    /// "Container Registry Data Importer and Data Reader": `read`, `pull/read` and
    /// `importImage/action`.
    Importer,
    /// Contributor: everything but access management.
    Contributor,
    /// AcrPull.
    AcrPull,
    /// AcrPush.
    AcrPush,
    /// Owner.
    Owner,
}

impl ArmRole {
    /// The role definition.
    pub fn definition(self) -> RoleDefinition {
        match self {
            ArmRole::Reader => RoleDefinition::reader(),
            ArmRole::Importer => RoleDefinition::data_importer(),
            ArmRole::Contributor => RoleDefinition::contributor(),
            ArmRole::AcrPull => RoleDefinition::acr_pull(),
            ArmRole::AcrPush => RoleDefinition::acr_push(),
            ArmRole::Owner => RoleDefinition::owner(),
        }
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
    /// `roleAssignmentMode == AbacRepositoryPermissions`.
    pub abac: bool,
    /// `policies.azureADAuthenticationAsArmPolicy.status == enabled` (the default).
    pub authentication_as_arm: bool,
    /// `dataEndpointEnabled`.
    pub data_endpoint_enabled: bool,
    service_credential: Option<Credential>,
    acr: Option<AcrHandle>,
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
            abac: false,
            authentication_as_arm: true,
            data_endpoint_enabled: false,
            service_credential: None,
            acr: None,
        }
    }

    /// Serves the registry through `acr`: its login server, its role assignments (whose
    /// [`Rbac`] the ARM emulator then shares, with this registry's resource ID as the scope),
    /// and the import service's identity, which may push and pull in either permissions mode.
    pub fn backed_by(mut self, acr: &AcrEmulator) -> anyhow::Result<Self> {
        let handle = acr.handle();
        handle.set_scope(&self.id());
        for role in [
            RoleDefinition::owner(),
            RoleDefinition::repository_contributor(),
            RoleDefinition::catalog_lister(),
        ] {
            acr.assign(IMPORT_SERVICE_PRINCIPAL, role, None);
        }
        let refresh = acr.issue_refresh_token(IMPORT_SERVICE_PRINCIPAL)?;
        self.login_server = acr.login_server();
        self.service_credential = Some(Credential::from_username_password(
            NULL_GUID_USERNAME,
            Secret::new(refresh),
        ));
        self.acr = Some(handle);
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

    /// Builder: ABAC repository permissions (`roleAssignmentMode`).
    pub fn abac(mut self, enabled: bool) -> Self {
        self.abac = enabled;
        self
    }

    /// Builder: whether ARM-audience Azure AD tokens are accepted at the registry's exchange.
    pub fn authentication_as_arm(mut self, enabled: bool) -> Self {
        self.authentication_as_arm = enabled;
        self
    }

    /// Builder: dedicated data endpoints.
    pub fn data_endpoints(mut self, enabled: bool) -> Self {
        self.data_endpoint_enabled = enabled;
        self
    }

    fn restricted(&self) -> bool {
        !self.public_network_access || self.default_action_deny
    }

    /// Puts the settings the registry's data plane follows into the backing ACR and `rbac`.
    fn sync(&self, rbac: &Rbac) {
        rbac.set_abac(&self.id(), self.abac);
        if let Some(acr) = &self.acr {
            acr.set_authentication_as_arm(self.authentication_as_arm);
        }
    }

    fn to_json(&self) -> Value {
        let enabled = |on: bool| if on { "enabled" } else { "disabled" };
        let data_hosts: Vec<String> = if self.data_endpoint_enabled {
            vec![format!(
                "{}.{}.data.azurecr.io",
                self.name.to_ascii_lowercase(),
                self.location
            )]
        } else {
            Vec::new()
        };
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
                "policies": {
                    "exportPolicy": {"status": enabled(self.export_policy_enabled)},
                    "azureADAuthenticationAsArmPolicy": {"status": enabled(self.authentication_as_arm)},
                },
                "dataEndpointEnabled": self.data_endpoint_enabled,
                "dataEndpointHostNames": data_hosts,
                "roleAssignmentMode": if self.abac { "AbacRepositoryPermissions" } else { "LegacyRegistryPermissions" },
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
    /// `x-ms-client-request-id`, when sent.
    pub client_request_id: Option<String>,
    /// Response status.
    pub status: u16,
    /// `error.code`, when refused.
    pub code: Option<String>,
    /// When it was answered.
    pub at: std::time::Instant,
}

struct Subscription {
    id: String,
    tenant: String,
    name: String,
}

/// Faults injected in front of the service.
#[derive(Debug, Default)]
struct Faults {
    /// `importImage` POSTs still to answer 429 with this `Retry-After`.
    throttled_imports: (usize, u64),
    /// Polls still to answer with this status (and `Retry-After`, for a 429).
    polls: (usize, u16),
    /// Running polls still to answer `200` with this non-terminal status.
    nonterminal_200s: (usize, String),
    /// ARM's write throttling of the subscription, when set.
    writes: Option<WriteBudget>,
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

struct State {
    endpoint: Mutex<String>,
    api_version: String,
    verifier: AadTokenVerifier,
    rbac: Arc<Rbac>,
    subscriptions: Vec<Subscription>,
    registries: Mutex<Vec<ArmRegistry>>,
    operations: Mutex<HashMap<String, Operation>>,
    polls_before_done: Mutex<usize>,
    retry_after: Mutex<u64>,
    stalled: Mutex<bool>,
    async_operation_header: Mutex<bool>,
    faults: Mutex<Faults>,
    /// Operations started and not yet seen ended by a poll: now, and the most at once.
    outstanding: Mutex<(usize, usize)>,
    page_size: usize,
    log: Mutex<Vec<ArmRequest>>,
    bodies: Mutex<Vec<Value>>,
}

/// A role assignment to make when the emulator starts.
type PendingAssignment = (String, String, RoleDefinition, Option<RepositoryCondition>);

/// Configures an [`ArmEmulator`].
pub struct ArmEmulatorBuilder {
    tls: Arc<rustls::ServerConfig>,
    verifier: AadTokenVerifier,
    api_version: String,
    rbac: Option<Arc<Rbac>>,
    subscriptions: Vec<Subscription>,
    registries: Vec<ArmRegistry>,
    assignments: Vec<PendingAssignment>,
    denies: Vec<(String, String, String)>,
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

    /// A registry (its subscription must be added too). A registry backed by an
    /// [`AcrEmulator`] brings the role assignments the emulator then shares.
    pub fn registry(mut self, registry: ArmRegistry) -> Self {
        if self.rbac.is_none()
            && let Some(acr) = &registry.acr
        {
            self.rbac = Some(acr.rbac());
        }
        self.registries.push(registry);
        self
    }

    /// Uses `rbac` for the role assignments (default: those of the first registry backed by an
    /// ACR emulator, or a store of its own).
    pub fn rbac(mut self, rbac: Arc<Rbac>) -> Self {
        self.rbac = Some(rbac);
        self
    }

    fn object_id(&self, principal: &str) -> String {
        self.verifier
            .object_id(principal)
            .unwrap_or_else(|| principal.to_owned())
    }

    /// Gives `principal` (a client ID of the [`AadEmulator`], or an object ID) `role` at
    /// `scope` (`/subscriptions/…[/resourceGroups/…[/providers/…/registries/…]]`).
    pub fn role(self, principal: &str, scope: &str, role: ArmRole) -> Self {
        self.assign(principal, scope, role.definition(), None)
    }

    /// Assigns any role definition (built-in or custom) at `scope`, limited to repositories by
    /// `condition` when given.
    pub fn assign(
        mut self,
        principal: &str,
        scope: &str,
        role: RoleDefinition,
        condition: Option<RepositoryCondition>,
    ) -> Self {
        let oid = self.object_id(principal);
        self.assignments
            .push((oid, scope.to_owned(), role, condition));
        self
    }

    /// A deny assignment: `action` is refused to `principal` at and below `scope`.
    pub fn deny(mut self, principal: &str, scope: &str, action: &str) -> Self {
        let oid = self.object_id(principal);
        self.denies.push((oid, scope.to_owned(), action.to_owned()));
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
        let rbac = self.rbac.unwrap_or_default();
        for r in &self.registries {
            if let Some(acr) = &r.acr
                && !Arc::ptr_eq(&acr.rbac(), &rbac)
            {
                anyhow::bail!(
                    "registry {} is backed by an ACR emulator with role assignments of its own: build the ACR emulators with one shared Rbac",
                    r.name
                );
            }
            r.sync(&rbac);
        }
        for (oid, scope, role, condition) in self.assignments {
            rbac.assign(&oid, &scope, role, condition);
        }
        for (oid, scope, action) in self.denies {
            rbac.deny(&oid, &scope, &action);
        }
        let state = Arc::new(State {
            endpoint: Mutex::new(format!("https://{addr}")),
            api_version: self.api_version,
            verifier: self.verifier,
            rbac,
            subscriptions: self.subscriptions,
            registries: Mutex::new(self.registries),
            operations: Mutex::new(HashMap::new()),
            polls_before_done: Mutex::new(self.polls_before_done),
            retry_after: Mutex::new(self.retry_after),
            stalled: Mutex::new(false),
            async_operation_header: Mutex::new(false),
            faults: Mutex::new(Faults::default()),
            outstanding: Mutex::new((0, 0)),
            page_size: self.page_size,
            log: Mutex::new(Vec::new()),
            bodies: Mutex::new(Vec::new()),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls);
        let task = ServerTask::spawn(acr_import_testsupport::serve_http1_with(
            listener,
            Some(acceptor),
            state.clone(),
            routes::handle,
        ));
        Ok(ArmEmulator {
            addr,
            state,
            _task: task,
        })
    }
}

/// The ARM emulator (see the module docs). Stops on drop.
pub struct ArmEmulator {
    addr: SocketAddr,
    state: Arc<State>,
    _task: ServerTask,
}

impl fmt::Debug for ArmEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ArmEmulator {
    /// A builder trusting `aad`'s tokens and serving with its test CA.
    pub fn builder(aad: &AadEmulator) -> ArmEmulatorBuilder {
        ArmEmulatorBuilder {
            tls: aad.tls_server_config(),
            verifier: aad.token_verifier(),
            api_version: ARM_API_VERSION.to_owned(),
            rbac: None,
            subscriptions: Vec::new(),
            registries: Vec::new(),
            assignments: Vec::new(),
            denies: Vec::new(),
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

    /// The `method` requests whose path contains `needle` (case-insensitively), in order.
    pub fn requests_matching(&self, method: &str, needle: &str) -> Vec<ArmRequest> {
        let needle = needle.to_ascii_lowercase();
        lock(&self.state.log)
            .iter()
            .filter(|r| r.method == method && r.path.to_ascii_lowercase().contains(&needle))
            .cloned()
            .collect()
    }

    /// How many `method` requests have a path containing `needle` (case-insensitively).
    pub fn count(&self, method: &str, needle: &str) -> usize {
        self.requests_matching(method, needle).len()
    }

    /// Every `importImage` body received (valid or not), in order.
    pub fn import_bodies(&self) -> Vec<Value> {
        lock(&self.state.bodies).clone()
    }

    /// The role assignments.
    pub fn rbac(&self) -> Arc<Rbac> {
        self.state.rbac.clone()
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

    /// Whether the `202` of `importImage` also names an `Azure-AsyncOperation` status monitor.
    pub fn set_async_operation_header(&self, on: bool) {
        *lock(&self.state.async_operation_header) = on;
    }

    /// The next `count` `importImage` POSTs answer `429 Too Many Requests` with `Retry-After:
    /// retry_after` (ARM's throttling: nothing is started).
    pub fn throttle_imports(&self, count: usize, retry_after: u64) {
        lock(&self.state.faults).throttled_imports = (count, retry_after);
    }

    /// ARM's write throttling from now on: `writes` per `window` for the subscription, each
    /// `importImage` counting one; every answer to one says how many are left
    /// (`x-ms-ratelimit-remaining-subscription-writes`), and past the limit ARM answers `429
    /// TooManyRequests` with `Retry-After` until the window ends (the documented contract:
    /// learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
    pub fn set_write_budget(&self, writes: u64, window: Duration) {
        lock(&self.state.faults).writes = Some(WriteBudget {
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

    /// The next `count` polls of any operation answer `status` (a 5xx or a 429, as ARM's front
    /// ends sometimes do) with an ARM error body, before the operation is looked at.
    pub fn fail_polls(&self, count: usize, status: u16) {
        lock(&self.state.faults).polls = (count, status);
    }

    /// The next `count` polls of a running operation answer `200` with `{"status": status}`
    /// (a status that is not terminal) instead of `202`.
    pub fn set_nonterminal_200s(&self, count: usize, status: &str) {
        lock(&self.state.faults).nonterminal_200s = (count, status.to_owned());
    }

    /// Changes a registry (by name, case-insensitively).
    pub fn update_registry(&self, name: &str, f: impl FnOnce(&mut ArmRegistry)) {
        if let Some(r) = lock(&self.state.registries)
            .iter_mut()
            .find(|r| r.name.eq_ignore_ascii_case(name))
        {
            f(r);
            r.sync(&self.state.rbac);
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
