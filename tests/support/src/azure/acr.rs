//! The ACR emulator: its configuration, its state and its handle.

use super::*;

/// A built-in role of an Azure AD principal on the registry (a shorthand for a role assignment
/// at the registry's scope in its [`Rbac`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcrRole {
    /// AcrPull: pull, metadata read, the catalog.
    Pull,
    /// AcrPush: AcrPull plus push, metadata write.
    Push,
    /// Owner: everything, delete included (registry-wide permissions mode only).
    Owner,
}

impl AcrRole {
    /// The role definition.
    pub fn definition(self) -> RoleDefinition {
        match self {
            AcrRole::Pull => RoleDefinition::acr_pull(),
            AcrRole::Push => RoleDefinition::acr_push(),
            AcrRole::Owner => RoleDefinition::owner(),
        }
    }
}

/// The grants of a caller: fixed (admin user, repository-scoped token, anonymous), or what the
/// role assignments of an Azure AD principal allow.
#[derive(Debug, Clone)]
pub(super) enum Rights {
    Fixed(Vec<Grant>),
    Principal(String),
}

impl Rights {
    pub(super) fn grants(&self, state: &AcrState, requested: &[Access]) -> Vec<Grant> {
        match self {
            Rights::Fixed(g) => g.clone(),
            Rights::Principal(oid) => state.rbac.grants(oid, &state.scope(), requested),
        }
    }
}

/// Every grant: what the admin user holds.
pub(super) fn everything() -> Vec<Grant> {
    vec![
        Grant::repository(
            "*",
            &["pull", "push", "delete", "metadata_read", "metadata_write"],
        ),
        Grant::catalog(),
    ]
}

/// Maps ACR scope-map actions (`content/read`…) to token actions (`pull`…).
pub(super) fn scope_map_action(action: &str) -> Option<&'static str> {
    Some(match action {
        "content/read" => "pull",
        "content/write" => "push",
        "content/delete" => "delete",
        "metadata/read" => "metadata_read",
        "metadata/write" => "metadata_write",
        _ => return None,
    })
}

#[derive(Clone)]
pub(super) struct RepoToken {
    pub(super) password: String,
    pub(super) grants: Vec<Grant>,
}

/// One request the [`AcrEmulator`] handled. Never holds a secret or token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcrRequest {
    /// HTTP method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// `grant_type` of token-service requests.
    pub grant_type: Option<String>,
    /// `service` of token-service requests.
    pub service: Option<String>,
    /// The username (Basic or password grant).
    pub username: Option<String>,
    /// Scopes asked for.
    pub requested: Vec<Access>,
    /// Access granted.
    pub granted: Vec<Access>,
    /// Who the token service took the caller for.
    pub subject: Option<String>,
    /// Response status.
    pub status: u16,
    /// Why it was refused.
    pub error: Option<String>,
}

impl AcrRequest {
    /// A request that is not for the token service (forwarded, or a metadata listing).
    pub(super) fn other(method: &Method, path: &str, response: &Response<Full<Bytes>>) -> Self {
        Self {
            method: method.to_string(),
            path: path.to_owned(),
            grant_type: None,
            service: None,
            username: None,
            requested: Vec::new(),
            granted: Vec::new(),
            subject: None,
            status: response.status().as_u16(),
            error: None,
        }
    }
}

pub(super) struct AcrState {
    pub(super) login_server: String,
    pub(super) tenant: String,
    pub(super) aad: Arc<AadState>,
    pub(super) issuer: TokenIssuer,
    /// The role assignments (shared with an ARM emulator) and this registry's scope in them.
    pub(super) rbac: Arc<Rbac>,
    pub(super) scope: Mutex<String>,
    pub(super) admin: Option<(String, String)>,
    pub(super) tokens: HashMap<String, RepoToken>,
    pub(super) arm_audience: Mutex<bool>,
    pub(super) anonymous_pull: bool,
    pub(super) refresh_lifetime: Mutex<Duration>,
    pub(super) access_lifetime: Duration,
    pub(super) upstream: SocketAddr,
    pub(super) log: Mutex<Vec<AcrRequest>>,
    /// When the metadata listing first saw each digest (its `createdTime`/`lastUpdateTime`),
    /// with a sequence number that keeps the order stable within a second.
    pub(super) first_seen: Mutex<HashMap<String, (i64, u64)>>,
    /// The data plane refuses every client, as a registry firewall does to an IP it does
    /// not allow.
    pub(super) firewall: Mutex<bool>,
}

/// Configures and starts an [`AcrEmulator`].
pub struct AcrEmulatorBuilder {
    aad: Arc<AadState>,
    tenant: String,
    roles: Vec<(String, AcrRole)>,
    rbac: Option<(Arc<Rbac>, String)>,
    admin: Option<(String, String)>,
    tokens: HashMap<String, RepoToken>,
    arm_audience: bool,
    anonymous_pull: bool,
    refresh_lifetime: Duration,
    access_lifetime: Duration,
}

impl fmt::Debug for AcrEmulatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcrEmulatorBuilder")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl AcrEmulatorBuilder {
    /// Gives a principal (a registered client ID or managed identity's client ID, or an object
    /// ID) a role.
    pub fn role(mut self, principal: &str, role: AcrRole) -> Self {
        let oid = self
            .aad
            .object_id(principal)
            .unwrap_or_else(|| principal.to_string());
        self.roles.push((oid, role));
        self
    }

    /// Takes role assignments from `rbac` (shared with an ARM emulator), where this registry is
    /// the resource `scope` (`/subscriptions/…/registries/<name>`). Default: a store of its own,
    /// and a scope made of the port.
    pub fn rbac(mut self, rbac: Arc<Rbac>, scope: &str) -> Self {
        self.rbac = Some((rbac, scope.to_owned()));
        self
    }

    /// Enables the admin user.
    pub fn admin_user(mut self, username: &str, password: &str) -> Self {
        self.admin = Some((username.to_string(), password.to_string()));
        self
    }

    /// A repository-scoped token: `scope_map` lists repositories and ACR scope-map actions
    /// (`content/read`, `content/write`, `content/delete`, `metadata/read`, `metadata/write`).
    pub fn repository_token(
        mut self,
        name: &str,
        password: &str,
        scope_map: &[(&str, &[&str])],
    ) -> Self {
        let grants = scope_map
            .iter()
            .map(|(repo, actions)| {
                let actions: Vec<&str> =
                    actions.iter().filter_map(|a| scope_map_action(a)).collect();
                Grant::repository(repo, &actions)
            })
            .collect();
        self.tokens.insert(
            name.to_string(),
            RepoToken {
                password: password.to_string(),
                grants,
            },
        );
        self
    }

    /// Whether ARM-audience Azure AD tokens are accepted at the exchange (default: yes).
    pub fn authentication_as_arm(mut self, enabled: bool) -> Self {
        self.arm_audience = enabled;
        self
    }

    /// Whether anonymous pulls are allowed (default: no).
    pub fn anonymous_pull(mut self, enabled: bool) -> Self {
        self.anonymous_pull = enabled;
        self
    }

    /// Lifetime of exchanged refresh tokens (default 3 h).
    pub fn refresh_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.refresh_lifetime = lifetime;
        self
    }

    /// Lifetime of access tokens (default 75 min).
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_lifetime = lifetime;
        self
    }

    /// Binds the login server's port, starts the registry behind it, and serves.
    pub async fn start(self) -> anyhow::Result<AcrEmulator> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let login_server = addr.to_string();
        let issuer = TokenIssuer::new(ACR_ISSUER, &login_server)?;
        let registry = Registry::builder()
            .token_auth(TokenAuthSettings {
                realm: format!("http://{login_server}/oauth2/token"),
                service: login_server.clone(),
                issuer: ACR_ISSUER.to_string(),
                root_cert_pem: issuer.root_cert_pem().to_string(),
            })
            .relative_urls(true)
            .start()
            .await
            .context("starting the registry behind the ACR emulator")?;
        let (rbac, scope) = self.rbac.unwrap_or_else(|| {
            (
                Rbac::new(),
                format!(
                    "/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/acr-emulator/providers/Microsoft.ContainerRegistry/registries/emulator{}",
                    addr.port()
                ),
            )
        });
        for (oid, role) in self.roles {
            rbac.assign(&oid, &scope, role.definition(), None);
        }
        let state = Arc::new(AcrState {
            login_server: login_server.clone(),
            tenant: self.tenant,
            aad: self.aad,
            issuer,
            rbac,
            scope: Mutex::new(scope),
            admin: self.admin,
            tokens: self.tokens,
            arm_audience: Mutex::new(self.arm_audience),
            anonymous_pull: self.anonymous_pull,
            refresh_lifetime: Mutex::new(self.refresh_lifetime),
            access_lifetime: self.access_lifetime,
            upstream: registry.addr(),
            log: Mutex::new(Vec::new()),
            first_seen: Mutex::new(HashMap::new()),
            firewall: Mutex::new(false),
        });
        let task = ServerTask::spawn(serve_http1_with(
            listener,
            None,
            state.clone(),
            |state, req| async move { acr_handle(&state, req).await },
        ));
        Ok(AcrEmulator {
            addr,
            registry,
            state,
            _task: task,
        })
    }
}

/// An ACR login server on loopback (see the module docs). Stops on drop (the registry too).
pub struct AcrEmulator {
    addr: SocketAddr,
    registry: Registry,
    state: Arc<AcrState>,
    _task: ServerTask,
}

impl fmt::Debug for AcrEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcrEmulator")
            .field("login_server", &self.state.login_server)
            .field("tenant", &self.state.tenant)
            .finish_non_exhaustive()
    }
}

impl AcrEmulator {
    /// A builder for a registry of `tenant`, trusting tokens of `aad`.
    pub fn builder(aad: &AadEmulator, tenant: &str) -> AcrEmulatorBuilder {
        AcrEmulatorBuilder {
            aad: aad.state(),
            tenant: tenant.to_string(),
            roles: Vec::new(),
            rbac: None,
            admin: None,
            tokens: HashMap::new(),
            arm_audience: true,
            anonymous_pull: false,
            refresh_lifetime: Duration::from_secs(3 * 3600),
            access_lifetime: Duration::from_secs(4500),
        }
    }

    /// `127.0.0.1:PORT`, the login server name (and token service).
    pub fn login_server(&self) -> String {
        self.state.login_server.clone()
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The registry behind the login server.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The signer of ACR's tokens.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.state.issuer
    }

    /// With `deny`, every data-plane request (not `/oauth2/*`) is refused with ACR's
    /// firewall answer: `403 DENIED`, "client with IP … is not allowed access".
    pub fn set_firewall(&self, deny: bool) {
        *lock(&self.state.firewall) = deny;
    }

    /// Changes a principal's role at the registry's scope (`None` removes its assignments
    /// there).
    pub fn set_role(&self, principal: &str, role: Option<AcrRole>) {
        let oid = self.object_id(principal);
        let scope = self.state.scope();
        self.state.rbac.unassign(&oid, &scope, None);
        if let Some(r) = role {
            self.state.rbac.assign(&oid, &scope, r.definition(), None);
        }
    }

    /// Assigns `role` to a principal (client ID or object ID) at the registry's scope, limited
    /// to repositories by `condition` when given.
    pub fn assign(
        &self,
        principal: &str,
        role: RoleDefinition,
        condition: Option<RepositoryCondition>,
    ) {
        let oid = self.object_id(principal);
        self.state
            .rbac
            .assign(&oid, &self.state.scope(), role, condition);
    }

    /// The role assignments the data plane follows.
    pub fn rbac(&self) -> Arc<Rbac> {
        self.state.rbac.clone()
    }

    /// The registry's resource ID in its [`Rbac`].
    pub fn scope(&self) -> String {
        self.state.scope()
    }

    /// Moves the registry to another resource ID (its role assignments stay where they were).
    pub fn set_scope(&self, scope: &str) {
        *lock(&self.state.scope) = scope.to_owned();
    }

    /// Whether Azure AD tokens of the ARM audience are accepted at the exchange (the
    /// registry's `azureADAuthenticationAsArmPolicy`).
    pub fn set_authentication_as_arm(&self, enabled: bool) {
        *lock(&self.state.arm_audience) = enabled;
    }

    fn object_id(&self, principal: &str) -> String {
        self.state
            .aad
            .object_id(principal)
            .unwrap_or_else(|| principal.to_string())
    }

    /// A handle on the registry's settings that an ARM emulator keeps in step with the
    /// registry resource it serves.
    pub fn handle(&self) -> AcrHandle {
        AcrHandle {
            state: self.state.clone(),
        }
    }

    /// Lifetime of refresh tokens exchanged from now on.
    pub fn set_refresh_token_lifetime(&self, lifetime: Duration) {
        *lock(&self.state.refresh_lifetime) = lifetime;
    }

    /// An ACR refresh token for a principal (client ID or object ID), as the exchange would
    /// issue it.
    pub fn issue_refresh_token(&self, principal: &str) -> anyhow::Result<String> {
        let oid = self
            .state
            .aad
            .object_id(principal)
            .unwrap_or_else(|| principal.to_string());
        refresh_token_for(&self.state, &oid)
    }

    /// Every request so far (token service and forwarded ones).
    pub fn requests(&self) -> Vec<AcrRequest> {
        lock(&self.state.log).clone()
    }

    /// Requests whose path is `path`.
    pub fn count(&self, path: &str) -> usize {
        lock(&self.state.log)
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

/// Settings of a running [`AcrEmulator`] that the registry's ARM resource decides.
#[derive(Clone)]
pub struct AcrHandle {
    state: Arc<AcrState>,
}

impl fmt::Debug for AcrHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcrHandle")
            .field("login_server", &self.state.login_server)
            .finish_non_exhaustive()
    }
}

impl AcrHandle {
    /// `policies.azureADAuthenticationAsArmPolicy`: ARM-audience tokens accepted or not.
    pub fn set_authentication_as_arm(&self, enabled: bool) {
        *lock(&self.state.arm_audience) = enabled;
    }

    /// The registry's resource ID (the scope its role assignments are looked up at).
    pub fn set_scope(&self, scope: &str) {
        *lock(&self.state.scope) = scope.to_owned();
    }

    /// The role assignments the data plane follows.
    pub fn rbac(&self) -> Arc<Rbac> {
        self.state.rbac.clone()
    }
}

impl AcrState {
    /// The registry's resource ID.
    pub(super) fn scope(&self) -> String {
        lock(&self.scope).clone()
    }
}

pub(super) fn refresh_token_for(state: &AcrState, object_id: &str) -> anyhow::Result<String> {
    let lifetime = *lock(&state.refresh_lifetime);
    let mut claims = state.issuer.claims(object_id, &[], lifetime);
    claims["grant_type"] = json!("refresh_token");
    claims["tenant"] = json!(state.tenant);
    claims["permissions"] = json!({"actions": ["read", "write"], "notActions": []});
    if let Some(obj) = claims.as_object_mut() {
        obj.remove("access");
    }
    state.issuer.sign_claims(&claims)
}

pub(super) fn acr_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({"errors": [{"code": code, "message": message, "detail": null}]}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_map_actions() {
        assert_eq!(scope_map_action("content/read"), Some("pull"));
        assert_eq!(scope_map_action("content/write"), Some("push"));
        assert_eq!(scope_map_action("bogus"), None);
    }
}
