//! The Azure AD (Entra ID) emulator: token endpoint, client credentials, managed identity.

use super::*;

#[derive(Clone)]
pub(super) enum AppCredential {
    Secret(String),
    Certificate(Vec<u8>),
    Federated(String),
}

#[derive(Clone)]
pub(super) struct App {
    pub(super) tenant: String,
    pub(super) client_id: String,
    pub(super) object_id: String,
    pub(super) credential: AppCredential,
}

#[derive(Clone)]
pub(super) struct ManagedIdentity {
    pub(super) tenant: String,
    pub(super) client_id: String,
    pub(super) object_id: String,
    pub(super) header: String,
}

/// One request the [`AadEmulator`] handled. Never holds a secret or assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AadRequest {
    /// HTTP method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// `token` (the v2 token endpoint), `managed_identity` or `other`.
    pub endpoint: String,
    /// `client_id` (form or query).
    pub client_id: Option<String>,
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `scope` (token endpoint) or `resource` (managed identity).
    pub scope: Option<String>,
    /// `client_secret`, `client_assertion`, `identity_header` or `none`.
    pub credential_kind: String,
    /// Response status.
    pub status: u16,
    /// The `error` code, when refused.
    pub error: Option<String>,
}

pub(super) struct AadState {
    pub(super) signer: TokenIssuer,
    pub(super) authority: Mutex<String>,
    pub(super) tenants: BTreeSet<String>,
    pub(super) apps: Vec<App>,
    pub(super) managed_identity: Option<ManagedIdentity>,
    pub(super) lifetime_secs: Mutex<i64>,
    pub(super) log: Mutex<Vec<AadRequest>>,
}

impl AadState {
    pub(super) fn object_id(&self, client_id: &str) -> Option<String> {
        self.apps
            .iter()
            .find(|a| a.client_id == client_id)
            .map(|a| a.object_id.clone())
            .or_else(|| {
                self.managed_identity
                    .as_ref()
                    .filter(|m| m.client_id == client_id)
                    .map(|m| m.object_id.clone())
            })
    }

    /// Signs an access token for a principal.
    fn issue(
        &self,
        tenant: &str,
        client_id: &str,
        object_id: &str,
        resource: &str,
        lifetime: i64,
    ) -> anyhow::Result<String> {
        let now = unix_now();
        let authority = lock(&self.authority).clone();
        self.signer.sign_claims(&json!({
            "aud": resource,
            "iss": format!("{authority}/{tenant}/v2.0"),
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
            "tid": tenant,
            "oid": object_id,
            "sub": object_id,
            "appid": client_id,
            "azp": client_id,
            "idtyp": "app",
            "ver": "2.0",
            "jti": random_hex(12),
        }))
    }
}

/// Configures and starts an [`AadEmulator`].
#[derive(Default)]
pub struct AadEmulatorBuilder {
    tenants: BTreeSet<String>,
    apps: Vec<App>,
    managed_identity: Option<ManagedIdentity>,
    lifetime_secs: Option<i64>,
}

impl fmt::Debug for AadEmulatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AadEmulatorBuilder")
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl AadEmulatorBuilder {
    /// A known tenant with no application (so requests to it are not "tenant not found").
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenants.insert(tenant.to_string());
        self
    }

    fn app(mut self, tenant: &str, client_id: &str, credential: AppCredential) -> Self {
        self.tenants.insert(tenant.to_string());
        self.apps.push(App {
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            object_id: guid(),
            credential,
        });
        self
    }

    /// A service principal with a client secret.
    pub fn client_secret(self, tenant: &str, client_id: &str, secret: &str) -> Self {
        self.app(tenant, client_id, AppCredential::Secret(secret.to_string()))
    }

    /// A service principal with a registered certificate (DER).
    pub fn client_certificate(self, tenant: &str, client_id: &str, cert_der: &[u8]) -> Self {
        self.app(
            tenant,
            client_id,
            AppCredential::Certificate(cert_der.to_vec()),
        )
    }

    /// An application with a federated credential: the assertion must equal `federated_token`.
    pub fn federated(self, tenant: &str, client_id: &str, federated_token: &str) -> Self {
        self.app(
            tenant,
            client_id,
            AppCredential::Federated(federated_token.to_string()),
        )
    }

    /// Enables the App Service managed-identity endpoint for one identity.
    pub fn managed_identity(
        mut self,
        tenant: &str,
        client_id: &str,
        identity_header: &str,
    ) -> Self {
        self.tenants.insert(tenant.to_string());
        self.managed_identity = Some(ManagedIdentity {
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            object_id: guid(),
            header: identity_header.to_string(),
        });
        self
    }

    /// Lifetime of issued tokens in seconds (negative: already expired). Default 3600.
    pub fn token_lifetime(mut self, secs: i64) -> Self {
        self.lifetime_secs = Some(secs);
        self
    }

    /// Binds the ports and starts serving.
    pub async fn start(self) -> anyhow::Result<AadEmulator> {
        let tls = test_tls()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(AadState {
            signer: TokenIssuer::new("aad-emulator", "aad")?,
            authority: Mutex::new(format!("https://{addr}")),
            tenants: self.tenants,
            apps: self.apps,
            managed_identity: self.managed_identity,
            lifetime_secs: Mutex::new(self.lifetime_secs.unwrap_or(3600)),
            log: Mutex::new(Vec::new()),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
        let handle = |state: Arc<AadState>, req| async move { aad_handle(&state, req).await };
        let mut tasks = vec![ServerTask::spawn(serve_http1_with(
            listener,
            Some(acceptor),
            state.clone(),
            handle,
        ))];
        let mut mi_addr = None;
        if state.managed_identity.is_some() {
            let mi_listener = TcpListener::bind("127.0.0.1:0").await?;
            mi_addr = Some(mi_listener.local_addr()?);
            tasks.push(ServerTask::spawn(serve_http1_with(
                mi_listener,
                None,
                state.clone(),
                handle,
            )));
        }
        Ok(AadEmulator {
            addr,
            mi_addr,
            tls: tls.config.clone(),
            ca_pem: tls.ca_pem,
            state,
            _tasks: tasks,
        })
    }
}

/// An Azure AD emulator on loopback (see the module docs). Stops on drop.
pub struct AadEmulator {
    addr: SocketAddr,
    mi_addr: Option<SocketAddr>,
    ca_pem: String,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<AadState>,
    _tasks: Vec<ServerTask>,
}

impl fmt::Debug for AadEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AadEmulator")
            .field("addr", &self.addr)
            .field("mi_addr", &self.mi_addr)
            .finish_non_exhaustive()
    }
}

impl AadEmulator {
    /// A builder with no tenant and no application.
    pub fn builder() -> AadEmulatorBuilder {
        AadEmulatorBuilder::default()
    }

    /// `https://127.0.0.1:PORT`: what `AZURE_AUTHORITY_HOST` must be.
    pub fn authority_host(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The HTTPS address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token endpoint of `tenant`.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.authority_host())
    }

    /// PEM of the test CA that signed the HTTPS certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes [`Self::ca_pem`] to `path`.
    pub fn write_ca_file(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, &self.ca_pem).with_context(|| format!("writing {}", path.display()))
    }

    /// A TLS server configuration with a certificate for `127.0.0.1` / `localhost` signed by the
    /// test CA ([`Self::ca_pem`]), for other emulators (e.g. of Azure Resource Manager) that
    /// clients trusting this CA must reach over HTTPS.
    pub fn tls_server_config(&self) -> Arc<rustls::ServerConfig> {
        self.tls.clone()
    }

    /// A handle that verifies this emulator's access tokens (signature and `exp`) from other
    /// tasks, for emulators of resource servers.
    pub fn token_verifier(&self) -> AadTokenVerifier {
        AadTokenVerifier {
            state: self.state.clone(),
        }
    }

    /// `http://127.0.0.1:PORT/msi/token`: what `IDENTITY_ENDPOINT` must be (when a managed
    /// identity is configured).
    pub fn identity_endpoint(&self) -> Option<String> {
        self.mi_addr.map(|a| format!("http://{a}/msi/token"))
    }

    /// The object ID (`oid`) of a registered client or managed identity.
    pub fn object_id(&self, client_id: &str) -> Option<String> {
        self.state.object_id(client_id)
    }

    /// Checks an access token's signature and `exp`, returning its claims.
    pub fn verify_access_token(&self, token: &str) -> anyhow::Result<Value> {
        self.state.signer.verify(token)
    }

    /// Signs an access token for a registered client directly (what `az account
    /// get-access-token` would print for that principal), valid `lifetime_secs`.
    pub fn issue_token(
        &self,
        client_id: &str,
        resource: &str,
        lifetime_secs: i64,
    ) -> anyhow::Result<String> {
        let (tenant, object_id) = self
            .state
            .apps
            .iter()
            .find(|a| a.client_id == client_id)
            .map(|a| (a.tenant.clone(), a.object_id.clone()))
            .context("unknown client")?;
        self.state
            .issue(&tenant, client_id, &object_id, resource, lifetime_secs)
    }

    /// Lifetime of tokens issued from now on, in seconds (negative: already expired).
    pub fn set_token_lifetime(&self, secs: i64) {
        *lock(&self.state.lifetime_secs) = secs;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<AadRequest> {
        lock(&self.state.log).clone()
    }

    /// How many tokens were issued (token endpoint and managed identity).
    pub fn tokens_issued(&self) -> usize {
        lock(&self.state.log)
            .iter()
            .filter(|r| r.status == 200)
            .count()
    }

    pub(super) fn state(&self) -> Arc<AadState> {
        self.state.clone()
    }
}

/// Verifies the access tokens of an [`AadEmulator`] ([`AadEmulator::token_verifier`]).
#[derive(Clone)]
pub struct AadTokenVerifier {
    state: Arc<AadState>,
}

impl fmt::Debug for AadTokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AadTokenVerifier").finish_non_exhaustive()
    }
}

impl AadTokenVerifier {
    /// Checks a token's signature and `exp`, returning its claims.
    pub fn verify(&self, token: &str) -> anyhow::Result<Value> {
        self.state.signer.verify(token)
    }

    /// The object ID (`oid`) of a registered client or managed identity.
    pub fn object_id(&self, client_id: &str) -> Option<String> {
        self.state.object_id(client_id)
    }
}

/// An Azure AD error: status, `error`, AADSTS code and description.
pub(super) struct AadError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl AadError {
    fn new(status: StatusCode, error: &'static str, code: u32, description: String) -> Self {
        Self {
            status,
            error,
            code,
            description,
        }
    }

    fn response(&self) -> Response<Full<Bytes>> {
        json_response(
            self.status,
            &json!({
                "error": self.error,
                "error_description": format!("AADSTS{}: {}", self.code, self.description),
                "error_codes": [self.code],
                "timestamp": crate::util::rfc3339(unix_now()),
                "trace_id": guid(),
                "correlation_id": guid(),
                "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
            }),
        )
    }
}

pub(super) fn allowed_resource(resource: &str) -> bool {
    let r = resource.trim_end_matches('/');
    [ARM_AUDIENCE, ARM_AUDIENCE_LEGACY, ACR_AUDIENCE].contains(&r)
}

pub(super) async fn aad_handle(state: &AadState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let req = FormRequest::read(req).await;
    let (method, path, params) = (&req.method, &req.path, &req.params);
    let content_type = req.header(header::CONTENT_TYPE).unwrap_or_default();
    let identity_header = req.header("x-identity-header");
    let get = |k: &str| req.param(k).map(str::to_owned);
    let mut record = AadRequest {
        method: method.to_string(),
        path: path.clone(),
        endpoint: "other".into(),
        client_id: get("client_id"),
        grant_type: get("grant_type"),
        scope: get("scope").or_else(|| get("resource")),
        credential_kind: if get("client_secret").is_some() {
            "client_secret".into()
        } else if get("client_assertion").is_some() {
            "client_assertion".into()
        } else if identity_header.is_some() {
            "identity_header".into()
        } else {
            "none".into()
        },
        status: 0,
        error: None,
    };
    let result = if path == "/msi/token" {
        record.endpoint = "managed_identity".into();
        managed_identity_token(state, method, params, identity_header)
    } else if let Some(tenant) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/oauth2/v2.0/token"))
        .filter(|t| !t.contains('/'))
    {
        record.endpoint = "token".into();
        if method != Method::POST {
            Err(AadError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests.".into(),
            ))
        } else if !content_type.starts_with("application/x-www-form-urlencoded") {
            Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must be application/x-www-form-urlencoded.".into(),
            ))
        } else {
            v2_token(state, tenant, params)
        }
    } else {
        Err(AadError::new(
            StatusCode::NOT_FOUND,
            "invalid_request",
            90000,
            format!("The emulator serves no endpoint at {path}."),
        ))
    };
    let response = match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => {
            record.error = Some(e.error.to_string());
            e.response()
        }
    };
    record.status = response.status().as_u16();
    lock(&state.log).push(record);
    response
}

/// The v2 token endpoint: every check in the order Azure AD makes them (the request, then the
/// client's credential), then the token.
pub(super) fn v2_token(
    state: &AadState,
    tenant: &str,
    params: &[(String, String)],
) -> Result<Value, AadError> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (app, resource) = token_request(state, tenant, &get)?;
    let client_id = app.client_id.as_str();
    client_credential(state, tenant, app, &get)?;
    let lifetime = *lock(&state.lifetime_secs);
    let token = state
        .issue(tenant, client_id, &app.object_id, resource, lifetime)
        .map_err(|e| {
            AadError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                50000,
                e.to_string(),
            )
        })?;
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }))
}

/// A 400 of Azure AD.
fn bad(error: &'static str, code: u32, description: String) -> AadError {
    AadError::new(StatusCode::BAD_REQUEST, error, code, description)
}

/// A 401 of Azure AD: the client's credential is refused.
fn unauthorized(code: u32, description: String) -> AadError {
    AadError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        code,
        description,
    )
}

/// The checks of a client-credentials request: the tenant, the grant type, the application
/// and the one `/.default` scope of a known resource. The application and the resource.
fn token_request<'s, 'p>(
    state: &'s AadState,
    tenant: &str,
    get: &impl Fn(&str) -> Option<&'p str>,
) -> Result<(&'s App, &'p str), AadError> {
    if !state.tenants.contains(tenant) {
        return Err(bad(
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID."
            ),
        ));
    }
    match get("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(bad(
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            ));
        }
        None => {
            return Err(bad(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.".into(),
            ));
        }
    }
    let Some(client_id) = get("client_id") else {
        return Err(bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.".into(),
        ));
    };
    let Some(app) = state
        .apps
        .iter()
        .find(|a| a.client_id == client_id && a.tenant == tenant)
    else {
        return Err(bad(
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        ));
    };
    let Some(scope) = get("scope") else {
        return Err(bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.".into(),
        ));
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let [scope] = scopes.as_slice() else {
        return Err(bad(
            "invalid_scope",
            1002012,
            format!("The provided value for scope {scope} is not valid: give exactly one scope."),
        ));
    };
    let Some(resource) = scope.strip_suffix("/.default") else {
        return Err(bad(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must \
                 have a scope value with /.default suffixed to the resource identifier \
                 (application ID URI)."
            ),
        ));
    };
    if !allowed_resource(resource) {
        return Err(bad(
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}."
            ),
        ));
    }

    Ok((app, resource))
}

/// The client's credential: its secret, certificate assertion or federated token, as the
/// application was registered with.
fn client_credential<'p>(
    state: &AadState,
    tenant: &str,
    app: &App,
    get: &impl Fn(&str) -> Option<&'p str>,
) -> Result<(), AadError> {
    let client_id = app.client_id.as_str();
    let secret = get("client_secret");
    let assertion = get("client_assertion");
    match (&app.credential, secret, assertion) {
        (_, Some(_), Some(_)) => {
            return Err(bad(
                "invalid_request",
                50027,
                "Give either client_secret or client_assertion, not both.".into(),
            ));
        }
        (_, None, None) => {
            return Err(unauthorized(
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or \
                 'client_secret'."
                    .into(),
            ));
        }
        (AppCredential::Secret(expected), Some(given), None) => {
            if given != expected {
                return Err(unauthorized(
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the \
                         request is the client secret value, not the client secret ID, for a \
                         secret added to app '{client_id}'."
                    ),
                ));
            }
        }
        (AppCredential::Secret(_), None, Some(_)) => {
            return Err(unauthorized(
                700027,
                format!(
                    "Client assertion failed signature validation: app '{client_id}' has no certificate or federated credential."
                ),
            ));
        }
        (AppCredential::Certificate(_) | AppCredential::Federated(_), Some(_), None) => {
            return Err(unauthorized(
                7000215,
                format!("Invalid client secret provided: app '{client_id}' has no client secret."),
            ));
        }
        (cred, None, Some(assertion)) => {
            if get("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
                return Err(bad(
                    "invalid_request",
                    50027,
                    format!("client_assertion_type must be {CLIENT_ASSERTION_TYPE}."),
                ));
            }
            let authority = lock(&state.authority).clone();
            let audience = format!("{authority}/{tenant}/oauth2/v2.0/token");
            let checked = match cred {
                AppCredential::Certificate(der) => {
                    verify_client_assertion(assertion, der, client_id, &audience)
                }
                AppCredential::Federated(expected) => {
                    if assertion == expected {
                        Ok(())
                    } else {
                        Err((
                            70021,
                            "No matching federated identity record found for presented assertion."
                                .to_string(),
                        ))
                    }
                }
                AppCredential::Secret(_) => Err((700027, "no certificate".to_string())),
            };
            if let Err((code, description)) = checked {
                return Err(unauthorized(code, description));
            }
        }
    }

    Ok(())
}

/// Checks a certificate client assertion; `Err((AADSTS code, description))`.
pub(super) fn verify_client_assertion(
    assertion: &str,
    cert_der: &[u8],
    client_id: &str,
    audience: &str,
) -> Result<(), (u32, String)> {
    let fail = |code: u32, msg: &str| Err((code, format!("Client assertion {msg}")));
    let mut parts = assertion.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return fail(50012, "is not a JWT.");
    };
    let decode = |p: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
    };
    let (Some(header), Some(claims)) = (decode(h), decode(c)) else {
        return fail(50012, "is not a JWT.");
    };
    if header["alg"] != "RS256" {
        return fail(
            700027,
            "failed signature validation. [Reason - the algorithm must be RS256.]",
        );
    }
    let sha1 = URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der).as_ref());
    let sha256 =
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, cert_der).as_ref());
    let x5t = header.get("x5t").and_then(Value::as_str);
    let x5t256 = header.get("x5t#S256").and_then(Value::as_str);
    if (x5t.is_none() && x5t256.is_none())
        || x5t.is_some_and(|t| t != sha1)
        || x5t256.is_some_and(|t| t != sha256)
    {
        return fail(
            700027,
            "failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: see x5t]",
        );
    }
    let Some(public_key) = rsa_public_key_of(cert_der) else {
        return fail(700027, "failed: the registered certificate has no RSA key.");
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(s) else {
        return fail(700027, "failed signature validation.");
    };
    if ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &public_key,
    )
    .verify(format!("{h}.{c}").as_bytes(), &signature)
    .is_err()
    {
        return fail(700027, "failed signature validation.");
    }
    if claims["aud"] != audience {
        return fail(
            700212,
            &format!(
                "audience claim must be {audience}, found {}.",
                claims["aud"]
            ),
        );
    }
    if claims["iss"] != client_id || claims["sub"] != client_id {
        return fail(700023, "iss and sub claims must both be the client ID.");
    }
    let now = unix_now();
    let exp = claims["exp"].as_i64();
    let nbf = claims["nbf"].as_i64();
    match (exp, nbf) {
        (Some(exp), _) if exp <= now => {
            return fail(700024, "is not within its valid time range (expired).");
        }
        (_, Some(nbf)) if nbf > now + SKEW_SECS => {
            return fail(
                700024,
                "is not within its valid time range (not yet valid).",
            );
        }
        (None, _) => return fail(700024, "has no exp claim."),
        _ => {}
    }
    if claims.get("jti").and_then(Value::as_str).is_none() {
        return fail(700023, "has no jti claim.");
    }
    Ok(())
}

pub(super) fn managed_identity_token(
    state: &AadState,
    method: &Method,
    params: &[(String, String)],
    header_value: Option<&str>,
) -> Result<Value, AadError> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(mi) = &state.managed_identity else {
        return Err(AadError::new(
            StatusCode::NOT_FOUND,
            "invalid_request",
            0,
            "no managed identity".into(),
        ));
    };
    let bad = |status, msg: &str| Err(AadError::new(status, "invalid_request", 0, msg.to_string()));
    if *method != Method::GET {
        return bad(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    if header_value != Some(mi.header.as_str()) {
        return bad(
            StatusCode::UNAUTHORIZED,
            "The X-IDENTITY-HEADER header is missing or wrong.",
        );
    }
    if get("api-version") != Some("2019-08-01") {
        return bad(StatusCode::BAD_REQUEST, "api-version must be 2019-08-01.");
    }
    let Some(resource) = get("resource") else {
        return bad(StatusCode::BAD_REQUEST, "resource is required.");
    };
    if !allowed_resource(resource) {
        return bad(
            StatusCode::BAD_REQUEST,
            "The resource is not a known audience.",
        );
    }
    if let Some(client_id) = get("client_id")
        && client_id != mi.client_id
    {
        return bad(
            StatusCode::BAD_REQUEST,
            "No managed identity with this client_id is assigned to this resource.",
        );
    }
    let lifetime = *lock(&state.lifetime_secs);
    let token = state
        .issue(&mi.tenant, &mi.client_id, &mi.object_id, resource, lifetime)
        .map_err(|e| {
            AadError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                0,
                e.to_string(),
            )
        })?;
    Ok(json!({
        "access_token": token,
        "expires_on": (unix_now() + lifetime).to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": mi.client_id,
    }))
}
