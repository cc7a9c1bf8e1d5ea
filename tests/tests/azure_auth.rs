//! Azure AD → ACR authentication end to end: the credential chain of `acr-import-auth`, the
//! transport of `acr-import-transfer`, and the Azure emulators of the test support crate (an
//! Azure AD over TLS with a test CA, and an ACR login server in front of a real token-auth
//! registry).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acr_import_auth::azure::env::{
    ACR_IMPORT_LOGIN_SERVER_SUFFIX, AZURE_AUTHORITY_HOST, AZURE_CLIENT_CERTIFICATE_PATH,
    AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID,
    IDENTITY_ENDPOINT, IDENTITY_HEADER, PATH,
};
use acr_import_auth::{
    AadCredentialChain, AadOptions, AadSource, AcrAudience, AcrLoginServers, AcrTokenExchange,
    AuthError, AzureAdProvider, AzureEnvironment, Credential, CredentialChain, CredentialProvider,
    CredentialSource, DockerConfigSource, HttpExchange, NULL_GUID_USERNAME, Secret,
    StaticCredentials,
};
use acr_import_tests::Names;
use acr_import_tests::world::push_image;
use acr_import_testsupport::{
    ACR_ISSUER, AadEmulator, AcrEmulator, AcrEmulatorBuilder, AcrRequest, AcrRole,
    TestClientCertificate, decode_claims_unverified,
};
use acr_import_transfer::{RetryPolicy, TransferError, Transport};
use bytes::Bytes;

const TENANT: &str = "5e7a1c2d-0000-4000-8000-00000000a11d";
const OTHER_TENANT: &str = "0f0f0f0f-0000-4000-8000-0000000f0e19";
const PULLER: (&str, &str) = ("a0000000-0000-4000-8000-000000000001", "pull-Secret~Zq1");
const PUSHER: (&str, &str) = ("a0000000-0000-4000-8000-000000000002", "push-Secret~Wx2");
const FOREIGN: (&str, &str) = ("a0000000-0000-4000-8000-000000000003", "foreign-Secret~Vv3");
const CERT_APP: &str = "a0000000-0000-4000-8000-000000000004";
const WORKLOAD_APP: &str = "a0000000-0000-4000-8000-000000000005";
const FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDp3b3JrbG9hZCJ9.ZmVkZXJhdGVk";
const MI_CLIENT: &str = "a0000000-0000-4000-8000-000000000006";
const MI_HEADER: &str = "mi-Header~Secret7";
const ADMIN: (&str, &str) = ("acrimport", "admin-Password~8");
const READER_TOKEN: (&str, &str) = ("ci-reader", "scoped-Password~9");

/// Every secret used here: no message, `Debug` or explanation may contain one.
const SECRETS: [&str; 8] = [
    PULLER.1,
    PUSHER.1,
    FOREIGN.1,
    FEDERATED_TOKEN,
    MI_HEADER,
    ADMIN.1,
    READER_TOKEN.1,
    "eyJ",
];

fn assert_no_secret(text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "`{s}` leaked into: {text}");
    }
}

struct World {
    aad: AadEmulator,
    acr: AcrEmulator,
    dir: tempfile::TempDir,
    ca: PathBuf,
    cert_file: PathBuf,
    federated_file: PathBuf,
    /// Requests the ACR emulator saw while seeding.
    seeded: usize,
}

async fn world() -> World {
    world_with(|b| b).await
}

async fn world_with(configure: impl FnOnce(AcrEmulatorBuilder) -> AcrEmulatorBuilder) -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = TestClientCertificate::generate("acr-import test app").expect("certificate");
    let aad = AadEmulator::builder()
        .client_secret(TENANT, PULLER.0, PULLER.1)
        .client_secret(TENANT, PUSHER.0, PUSHER.1)
        .client_secret(OTHER_TENANT, FOREIGN.0, FOREIGN.1)
        .client_certificate(TENANT, CERT_APP, cert.cert_der())
        .federated(TENANT, WORKLOAD_APP, FEDERATED_TOKEN)
        .managed_identity(TENANT, MI_CLIENT, MI_HEADER)
        .start()
        .await
        .expect("AAD emulator");
    let acr = configure(
        AcrEmulator::builder(&aad, TENANT)
            .role(PULLER.0, AcrRole::Pull)
            .role(PUSHER.0, AcrRole::Push)
            .role(FOREIGN.0, AcrRole::Push)
            .role(CERT_APP, AcrRole::Pull)
            .role(WORKLOAD_APP, AcrRole::Pull)
            .role(MI_CLIENT, AcrRole::Pull)
            .admin_user(ADMIN.0, ADMIN.1)
            .repository_token(
                READER_TOKEN.0,
                READER_TOKEN.1,
                &[("app", &["content/read", "metadata/read"])],
            ),
    )
    .start()
    .await
    .expect("ACR emulator");
    let ca = dir.path().join("aad-ca.pem");
    aad.write_ca_file(&ca).expect("CA file");
    let cert_file = dir.path().join("client.pem");
    cert.write(&cert_file).expect("cert file");
    let federated_file = dir.path().join("federated-token");
    std::fs::write(&federated_file, FEDERATED_TOKEN).expect("token file");
    let mut w = World {
        aad,
        acr,
        dir,
        ca,
        cert_file,
        federated_file,
        seeded: 0,
    };
    // Seed `app:v1` with the admin user.
    let admin = w.transport(w.static_for(basic_credential(ADMIN.0, ADMIN.1)));
    push_image(&admin, &w.acr.login_server(), "app", "v1", 1)
        .await
        .expect("seeding with the admin user");
    w.seeded = w.acr.requests().len();
    w
}

fn basic_credential(user: &str, password: &str) -> Credential {
    Credential::Basic {
        username: user.to_owned(),
        password: Secret::new(password),
    }
}

impl World {
    /// The ACR emulator's log after seeding, token-service requests only.
    fn token_requests(&self) -> Vec<AcrRequest> {
        self.acr.requests()[self.seeded..]
            .iter()
            .filter(|r| r.path == "/oauth2/token")
            .cloned()
            .collect()
    }

    fn login_server(&self) -> String {
        self.acr.login_server()
    }

    fn transport(&self, credentials: Arc<dyn CredentialProvider>) -> Transport {
        Transport::builder()
            .ca_file(&self.ca)
            .credentials(credentials)
            .proxy_from_env(false)
            .retry(RetryPolicy::none())
            .connect_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(30))
            .build()
            .expect("transport")
    }

    /// The HTTP exchange Azure AD and ACR exchange traffic goes through.
    fn http(&self) -> Arc<dyn HttpExchange> {
        self.transport(Arc::new(StaticCredentials::new()))
            .exchange()
    }

    fn env(&self, vars: &[(&str, &str)]) -> AzureEnvironment {
        let mut env = AzureEnvironment::from_vars(vars.iter().copied())
            .with(AZURE_AUTHORITY_HOST, self.aad.authority_host());
        if !vars.iter().any(|(k, _)| *k == PATH) {
            // No `az` anywhere: the Azure CLI never runs unless a test asks for it.
            env = env.with(PATH, self.dir.path().join("empty-path"));
        }
        env
    }

    fn aad_chain(&self, vars: &[(&str, &str)]) -> Result<AadCredentialChain, AuthError> {
        AadCredentialChain::new(
            &self.env(vars),
            self.http(),
            AadOptions {
                retries: 0,
                ..Default::default()
            },
        )
    }

    fn provider(&self, vars: &[(&str, &str)], audience: AcrAudience) -> AzureAdProvider {
        let chain = self.aad_chain(vars).expect("AAD chain");
        AzureAdProvider::from_chain(
            &chain,
            self.http(),
            AcrLoginServers::from_env(&self.env(vars)).with_host(&self.login_server()),
            audience,
        )
    }

    fn chain(&self, vars: &[(&str, &str)]) -> Arc<CredentialChain> {
        Arc::new(CredentialChain::new().with_azure(self.provider(vars, AcrAudience::Arm)))
    }

    fn static_for(&self, credential: Credential) -> Arc<StaticCredentials> {
        Arc::new(StaticCredentials::new().with(&self.login_server(), credential))
    }

    fn secret_vars(&self, app: (&'static str, &'static str)) -> Vec<(&'static str, &'static str)> {
        app_env(app.0, AZURE_CLIENT_SECRET, app.1).to_vec()
    }
}

/// The environment of the application `client_id` in the home tenant, with `key` set to
/// `value` (its secret, certificate or token file).
fn app_env<'a>(client_id: &'a str, key: &'a str, value: &'a str) -> [(&'a str, &'a str); 3] {
    [
        (AZURE_TENANT_ID, TENANT),
        (AZURE_CLIENT_ID, client_id),
        (key, value),
    ]
}

/// Pulls `app:v1`: the manifest and every blob, verified.
async fn pull(transport: &Transport, registry: &str) -> Result<(), TransferError> {
    let reg = transport.registry(registry)?;
    let m = reg.get_manifest(&"app".repo(), &"v1".at()).await?;
    let content = m.parse().expect("an image manifest");
    let mut blobs = content.layers.clone();
    blobs.extend(content.config.clone());
    for d in blobs {
        let data = reg
            .get_blob(&"app".repo(), &d.digest, Some(d.size), true)
            .await?
            .collect(1 << 20)
            .await?;
        assert_eq!(data.len() as u64, d.size);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_principal_secret_pulls_and_a_pull_only_role_cannot_push() {
    let w = world().await;
    let ls = w.login_server();
    let chain = w.chain(&w.secret_vars(PULLER));
    let t = w.transport(chain.clone());
    pull(&t, &ls).await.expect("pull with AcrPull");

    // One Azure AD token (client secret, ARM scope), one exchange.
    let aad = w.aad.requests();
    assert_eq!(aad.len(), 1, "{aad:?}");
    assert_eq!(aad[0].credential_kind, "client_secret");
    assert_eq!(aad[0].grant_type.as_deref(), Some("client_credentials"));
    assert_eq!(
        aad[0].scope.as_deref(),
        Some("https://management.azure.com/.default")
    );
    assert_eq!(aad[0].path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(w.acr.count("/oauth2/exchange"), 1);
    let refresh_grants = w.token_requests();
    assert!(!refresh_grants.is_empty());
    assert!(
        refresh_grants
            .iter()
            .all(|r| r.grant_type.as_deref() == Some("refresh_token") && r.status == 200),
        "{refresh_grants:?}"
    );

    // Pushing with AcrPull: the token service grants pull only, the push is refused clearly.
    let err = push_image(&t, &ls, "app", "v2", 2)
        .await
        .expect_err("AcrPull must not push");
    let text = err.to_string();
    assert!(
        matches!(err, TransferError::ScopeDenied { ref action, ref repository, .. }
            if action == "push" && repository == "app"),
        "{err:?}"
    );
    assert!(text.contains("may not push repository `app`"), "{text}");
    assert_no_secret(&format!("{text} {err:?}"));

    // The same through AcrPush works.
    let pusher = w.transport(w.chain(&w.secret_vars(PUSHER)));
    push_image(&pusher, &ls, "app", "v2", 2)
        .await
        .expect("AcrPush pushes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_scoped_token_pulls_but_may_not_push() {
    let w = world().await;
    let ls = w.login_server();
    let t = w.transport(w.static_for(basic_credential(READER_TOKEN.0, READER_TOKEN.1)));
    pull(&t, &ls).await.expect("pull with a content/read token");
    let err = push_image(&t, &ls, "app", "v3", 3)
        .await
        .expect_err("content/read must not push");
    let text = err.to_string();
    assert!(text.contains("may not push repository `app`"), "{text}");
    assert!(text.contains(READER_TOKEN.0), "{text}");
    assert_no_secret(&text);
    // Another repository is not in the scope map: no pull either.
    let reg = t.registry(&ls).expect("registry");
    let err = reg
        .get_manifest(&"other".repo(), &"v1".at())
        .await
        .expect_err("not in the scope map");
    assert!(err.to_string().contains("other"), "{err}");
    // No Azure AD involved.
    assert!(w.aad.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_principal_as_basic_credentials_needs_no_azure_ad() {
    let w = world().await;
    let ls = w.login_server();
    let t = w.transport(w.static_for(basic_credential(PULLER.0, PULLER.1)));
    pull(&t, &ls)
        .await
        .expect("appId/secret as basic credentials");
    assert!(w.aad.requests().is_empty());
    let token_requests = w.token_requests();
    assert!(!token_requests.is_empty());
    assert!(
        token_requests.iter().all(|r| r.method == "GET"
            && r.username.as_deref() == Some(PULLER.0)
            && r.status == 200)
    );

    // A wrong secret is refused by the token service, with the user but not the secret.
    let t = w.transport(w.static_for(basic_credential(PULLER.0, "wrong-Secret~0")));
    let err = pull(&t, &ls).await.expect_err("wrong secret");
    let text = format!("{err} {err:?}");
    assert!(text.contains("rejected"), "{text}");
    assert!(text.contains(PULLER.0), "{text}");
    assert!(!text.contains("wrong-Secret~0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_guid_username_with_an_acr_refresh_token() {
    let w = world().await;
    let ls = w.login_server();
    let refresh = w.acr.issue_refresh_token(PULLER.0).expect("refresh token");
    let credential = Credential::from_username_password(NULL_GUID_USERNAME, Secret::new(&*refresh));
    assert!(matches!(credential, Credential::RefreshToken(_)));
    let t = w.transport(w.static_for(credential));
    pull(&t, &ls).await.expect("null GUID + refresh token");
    let grants = w.token_requests();
    assert!(!grants.is_empty());
    assert!(
        grants
            .iter()
            .all(|r| r.method == "POST" && r.grant_type.as_deref() == Some("refresh_token")),
        "{grants:?}"
    );

    // The same credential saved by `docker login` in a config file, through the chain.
    let config = w.dir.path().join("config.json");
    std::fs::write(
        &config,
        serde_json::json!({"auths": {ls.clone(): {
            "username": NULL_GUID_USERNAME, "password": refresh}}})
        .to_string(),
    )
    .expect("config");
    let chain = CredentialChain::new().with_docker_config(DockerConfigSource::new([&config], None));
    let explanation = chain.explain(&ls).await.expect("explain");
    assert!(
        matches!(explanation.source, CredentialSource::DockerConfig(_)),
        "{explanation}"
    );
    assert_no_secret(&format!("{explanation} {explanation:?} {chain:?}"));
    let t = w.transport(Arc::new(chain));
    pull(&t, &ls).await.expect("null GUID from a Docker config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_assertion() {
    let w = world().await;
    let ls = w.login_server();
    let cert_path = w.cert_file.to_str().expect("utf-8 path").to_owned();
    let vars = app_env(CERT_APP, AZURE_CLIENT_CERTIFICATE_PATH, &cert_path);
    let aad_chain = w.aad_chain(&vars).expect("chain");
    assert_eq!(aad_chain.source(), Some(AadSource::ClientCertificate));
    let t = w.transport(w.chain(&vars));
    pull(&t, &ls)
        .await
        .expect("pull with a certificate credential");
    let aad = w.aad.requests();
    assert_eq!(aad.len(), 1);
    assert_eq!(aad[0].credential_kind, "client_assertion");
    assert_eq!(aad[0].status, 200);

    // A certificate with another key than the registered one is refused by Azure AD.
    let other = TestClientCertificate::generate_with_other_key("impostor").expect("cert");
    let other_path = w.dir.path().join("other.pem");
    other.write(&other_path).expect("write");
    let other_path = other_path.to_str().expect("utf-8").to_owned();
    let vars = app_env(CERT_APP, AZURE_CLIENT_CERTIFICATE_PATH, &other_path);
    let t = w.transport(w.chain(&vars));
    let err = pull(&t, &ls).await.expect_err("wrong key");
    let text = err.to_string();
    assert!(text.contains("AADSTS700027"), "{text}");
    assert!(text.contains("client certificate"), "{text}");
    assert_no_secret(&format!("{text} {err:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_with_a_federated_token_file() {
    let w = world().await;
    let ls = w.login_server();
    let file = w.federated_file.to_str().expect("utf-8").to_owned();
    let vars = app_env(WORKLOAD_APP, AZURE_FEDERATED_TOKEN_FILE, &file);
    assert_eq!(
        w.aad_chain(&vars).expect("chain").source(),
        Some(AadSource::WorkloadIdentity)
    );
    let t = w.transport(w.chain(&vars));
    pull(&t, &ls).await.expect("pull with workload identity");
    let aad = w.aad.requests();
    assert_eq!(aad.len(), 1);
    assert_eq!(aad[0].credential_kind, "client_assertion");
    assert_eq!(aad[0].client_id.as_deref(), Some(WORKLOAD_APP));

    // A token file holding something else is refused.
    let stale = w.dir.path().join("stale-token");
    std::fs::write(&stale, "eyJzdGFsZQ.eyJzdGFsZQ.c2ln").expect("write");
    let stale = stale.to_str().expect("utf-8").to_owned();
    let vars = app_env(WORKLOAD_APP, AZURE_FEDERATED_TOKEN_FILE, &stale);
    let t = w.transport(w.chain(&vars));
    let err = pull(&t, &ls).await.expect_err("unknown federated token");
    assert!(err.to_string().contains("AADSTS70021"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_service_managed_identity() {
    let w = world().await;
    let ls = w.login_server();
    let endpoint = w.aad.identity_endpoint().expect("MI endpoint");
    assert!(endpoint.starts_with("http://127.0.0.1:"));
    let vars = [
        (IDENTITY_ENDPOINT, endpoint.as_str()),
        (IDENTITY_HEADER, MI_HEADER),
    ];
    let chain = w.aad_chain(&vars).expect("chain");
    assert_eq!(chain.source(), Some(AadSource::AppServiceManagedIdentity));
    let t = w.transport(w.chain(&vars));
    pull(&t, &ls).await.expect("pull with a managed identity");
    let aad = w.aad.requests();
    assert_eq!(aad.len(), 1, "{aad:?}");
    assert_eq!(aad[0].endpoint, "managed_identity");
    assert_eq!(
        aad[0].scope.as_deref(),
        Some("https://management.azure.com")
    );

    // The user-assigned form (AZURE_CLIENT_ID) names the identity.
    let vars_ua = [
        (IDENTITY_ENDPOINT, endpoint.as_str()),
        (IDENTITY_HEADER, MI_HEADER),
        (AZURE_CLIENT_ID, MI_CLIENT),
    ];
    pull(&w.transport(w.chain(&vars_ua)), &ls)
        .await
        .expect("user-assigned identity");

    // A wrong identity header is refused.
    let vars = [
        (IDENTITY_ENDPOINT, endpoint.as_str()),
        (IDENTITY_HEADER, "not-the-header"),
    ];
    let err = pull(&w.transport(w.chain(&vars)), &ls)
        .await
        .expect_err("wrong header");
    let text = err.to_string();
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(!text.contains("not-the-header"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_fetched_and_exchanged_again() {
    let w = world_with(|b| b.refresh_token_lifetime(Duration::from_secs(2))).await;
    let ls = w.login_server();
    w.aad.set_token_lifetime(2);
    let chain = w.chain(&w.secret_vars(PULLER));
    pull(&w.transport(chain.clone()), &ls)
        .await
        .expect("first pull");
    assert_eq!(w.aad.tokens_issued(), 1);
    assert_eq!(w.acr.count("/oauth2/exchange"), 1);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    // A new transport (its access-token cache is empty) with the same chain: the ACR refresh
    // token and the Azure AD token have both expired, so both are fetched again.
    pull(&w.transport(chain.clone()), &ls)
        .await
        .expect("pull after expiry");
    assert_eq!(w.aad.tokens_issued(), 2);
    assert_eq!(w.acr.count("/oauth2/exchange"), 2);
    let exchanges: Vec<_> = w
        .acr
        .requests()
        .into_iter()
        .filter(|r| r.path == "/oauth2/exchange")
        .collect();
    assert!(exchanges.iter().all(|r| r.status == 200), "{exchanges:?}");

    // Azure AD handing out already-expired tokens: ACR refuses them at the exchange...
    w.aad.set_token_lifetime(-60);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let err = pull(&w.transport(chain.clone()), &ls)
        .await
        .expect_err("expired Azure AD token");
    assert!(err.to_string().contains("has expired"), "{err}");
    // ...and once Azure AD is healthy the next attempt fetches a fresh token and succeeds.
    w.aad.set_token_lifetime(3600);
    pull(&w.transport(chain), &ls)
        .await
        .expect("pull with a fresh token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_another_tenant_is_refused_at_the_exchange() {
    let w = world().await;
    let ls = w.login_server();
    let vars = [
        (AZURE_TENANT_ID, OTHER_TENANT),
        (AZURE_CLIENT_ID, FOREIGN.0),
        (AZURE_CLIENT_SECRET, FOREIGN.1),
    ];
    let err = pull(&w.transport(w.chain(&vars)), &ls)
        .await
        .expect_err("cross-tenant");
    let text = err.to_string();
    assert!(
        text.contains(&format!("Access to registry '{ls}' was denied (HTTP 401)")),
        "{text}"
    );
    assert!(text.contains("not the registry's tenant"), "{text}");
    assert!(text.contains("az login"), "{text}");
    assert_no_secret(&format!("{text} {err:?}"));
    // Azure AD did issue the token: it is ACR that refused it.
    assert_eq!(w.aad.tokens_issued(), 1);
    let exchange = w
        .acr
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth2/exchange")
        .expect("an exchange");
    assert_eq!(exchange.status, 401);

    // A principal without a role assignment is refused the same way.
    w.acr.set_role(PULLER.0, None);
    let err = pull(&w.transport(w.chain(&w.secret_vars(PULLER))), &ls)
        .await
        .expect_err("no role");
    assert!(err.to_string().contains("no role assignment"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_as_arm_disabled_needs_the_acr_audience() {
    let w = world_with(|b| b.authentication_as_arm(false)).await;
    let ls = w.login_server();
    let vars = w.secret_vars(PULLER);
    let arm = Arc::new(CredentialChain::new().with_azure(w.provider(&vars, AcrAudience::Arm)));
    let err = pull(&w.transport(arm), &ls)
        .await
        .expect_err("ARM audience refused");
    assert!(
        err.to_string()
            .contains("authentication as ARM is disabled"),
        "{err}"
    );
    let acr = Arc::new(
        CredentialChain::new().with_azure(w.provider(&vars, AcrAudience::ContainerRegistry)),
    );
    pull(&w.transport(acr), &ls)
        .await
        .expect("ACR audience accepted");
    let scopes: Vec<_> = w
        .aad
        .requests()
        .into_iter()
        .filter_map(|r| r.scope)
        .collect();
    assert_eq!(
        scopes,
        [
            "https://management.azure.com/.default",
            "https://containerregistry.azure.net/.default"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_cli_account_through_a_fake_az() {
    let w = world().await;
    let ls = w.login_server();
    let token = w
        .aad
        .issue_token(PULLER.0, "https://management.azure.com", 3600)
        .expect("token");
    let bin = w.dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let az = bin.join("az");
    let expires_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let log = w.dir.path().join("az-args");
    std::fs::write(
        &az,
        format!(
            "#!/bin/sh\necho \"$@\" > '{}'\nprintf '%s' '{{\"accessToken\":\"{token}\",\"expires_on\":{expires_on},\"tokenType\":\"Bearer\"}}'\n",
            log.display()
        ),
    )
    .expect("az");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    // The fake `az` and the shell that runs it, nothing else.
    let sh = acr_import_testsupport::find_tool("sh").expect("sh on PATH");
    let path = std::env::join_paths([bin.as_path(), sh.parent().expect("a directory")])
        .expect("a PATH")
        .into_string()
        .expect("UTF-8");
    let vars = [(PATH, path.as_str())];
    let aad = w.aad_chain(&vars).expect("chain");
    assert_eq!(aad.source(), Some(AadSource::AzureCli));
    pull(&w.transport(w.chain(&vars)), &ls)
        .await
        .expect("pull with the Azure CLI's account");
    let args = std::fs::read_to_string(&log).expect("az ran");
    assert!(
        args.contains("account get-access-token")
            && args.contains("--scope https://management.azure.com/.default"),
        "{args}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_explains_its_choice_and_never_shows_a_secret() {
    let w = world().await;
    let ls = w.login_server();
    let docker_config = w.dir.path().join("config.json");
    std::fs::write(&docker_config, r#"{"auths":{}}"#).expect("config");
    let vars = {
        let mut v = w.secret_vars(PULLER);
        v.push((AZURE_FEDERATED_TOKEN_FILE, "/nonexistent/token"));
        v.push((ACR_IMPORT_LOGIN_SERVER_SUFFIX, ".azurecr.example"));
        v
    };
    let provider = w.provider(&vars, AcrAudience::Arm);
    let chain = Arc::new(
        CredentialChain::new()
            .with_explicit(
                StaticCredentials::new().with("ghcr.io", basic_credential(ADMIN.0, ADMIN.1)),
            )
            .with_docker_config(DockerConfigSource::new([&docker_config], None))
            .with_azure(provider),
    );

    let e = chain.explain(&ls).await.expect("explain");
    let text = e.to_string();
    assert!(matches!(e.source, CredentialSource::AzureAd(_)), "{text}");
    assert!(
        text.contains("client secret (AZURE_CLIENT_SECRET)"),
        "{text}"
    );
    assert!(text.contains(PULLER.0), "{text}");
    assert!(text.contains("explicit credentials: none given"), "{text}");
    assert!(text.contains("no entry for this registry"), "{text}");
    assert!(
        text.contains("workload identity (AZURE_FEDERATED_TOKEN_FILE): a source earlier"),
        "{text}"
    );
    let explicit = chain.explain("ghcr.io").await.expect("explain");
    assert_eq!(explicit.source, CredentialSource::Explicit);
    let suffix = chain
        .explain("myreg.azurecr.example")
        .await
        .expect("explain");
    assert!(
        matches!(suffix.source, CredentialSource::AzureAd(_)),
        "{suffix}"
    );
    let other = chain.explain("quay.io").await.expect("explain");
    assert_eq!(other.source, CredentialSource::Anonymous);
    assert!(
        other.to_string().contains("not an ACR login server"),
        "{other}"
    );
    // Explaining fetched no token.
    assert!(w.aad.requests().is_empty());

    // Using it, then collecting every rendering of everything.
    pull(&w.transport(chain.clone()), &ls).await.expect("pull");
    let env = w.env(&vars);
    let aad_chain = w.aad_chain(&vars).expect("chain");
    let exchange = AcrTokenExchange::new(
        w.http(),
        aad_chain.credential().expect("credential"),
        "test",
    );
    let refresh = exchange.refresh_token(&ls).await.expect("exchange");
    let wrong = app_env(PULLER.0, AZURE_CLIENT_SECRET, "definitely-Wrong~1");
    let wrong_err = pull(&w.transport(w.chain(&wrong)), &ls)
        .await
        .expect_err("wrong secret");
    let wrong_text = format!("{wrong_err} {wrong_err:?}");
    assert!(wrong_text.contains("AADSTS7000215"), "{wrong_text}");
    assert!(!wrong_text.contains("definitely-Wrong~1"), "{wrong_text}");
    let rendered = [
        text,
        format!("{e:?}"),
        format!("{chain:?}"),
        format!("{env:?}"),
        format!("{aad_chain:?}"),
        aad_chain.explanation().to_string(),
        format!("{exchange:?}"),
        format!("{refresh:?}"),
        format!("{:?}", Credential::RefreshToken(refresh.clone())),
        format!("{:?}", w.acr.requests()),
        format!("{:?}", w.aad.requests()),
        wrong_text,
    ]
    .join("\n");
    assert_no_secret(&rendered);
    assert!(!rendered.contains(refresh.expose()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acr_token_service_contract() {
    // The emulator's side of the ACR contract, driven directly: password grant, refresh grant,
    // no `expires_in`, ACR claims, intersection of requested and allowed access.
    let w = world().await;
    let ls = w.login_server();
    let http = w.http();
    let post = |form: String| {
        http::Request::post(format!("http://{ls}/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from(form))
            .expect("request")
    };
    let response = http
        .exchange(post(format!(
            "grant_type=password&service={ls}&username={}&password={}&scope=repository%3Aapp%3Apull%2Cpush",
            PULLER.0,
            PULLER.1.replace('~', "%7E")
        )))
        .await
        .expect("password grant");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(response.body()).expect("json");
    assert!(body.get("expires_in").is_none(), "{body}");
    let claims =
        decode_claims_unverified(body["access_token"].as_str().expect("token")).expect("claims");
    assert_eq!(claims["iss"], ACR_ISSUER);
    assert_eq!(claims["aud"], ls.as_str());
    assert_eq!(claims["tenant"], TENANT);
    assert_eq!(
        claims["access"],
        serde_json::json!([{"type": "repository", "name": "app", "actions": ["pull"]}])
    );

    // A refresh token is not an access token and vice versa.
    let access = body["access_token"].as_str().expect("token").to_owned();
    let response = http
        .exchange(post(format!(
            "grant_type=refresh_token&service={ls}&refresh_token={access}&scope=repository%3Aapp%3Apull"
        )))
        .await
        .expect("refresh grant");
    assert_eq!(response.status(), 401);

    // Wrong password, unknown service, unsupported grant.
    for (form, status) in [
        (
            format!(
                "grant_type=password&service={ls}&username={}&password=nope",
                PULLER.0
            ),
            401,
        ),
        (
            format!(
                "grant_type=password&service=other.azurecr.io&username={}&password=x",
                PULLER.0
            ),
            400,
        ),
        (format!("grant_type=authorization_code&service={ls}"), 400),
    ] {
        let r = http.exchange(post(form)).await.expect("response");
        assert_eq!(r.status(), status);
    }

    // The exchange refuses garbage and unsigned tokens.
    let exchange = |form: String| {
        http::Request::post(format!("http://{ls}/oauth2/exchange"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from(form))
            .expect("request")
    };
    let forged = format!(
        "eyJhbGciOiJFUzI1NiJ9.{}.c2ln",
        base64_url(&serde_json::json!({"aud": "https://management.azure.com", "tid": TENANT, "exp": 4_000_000_000u64}).to_string())
    );
    let r = http
        .exchange(exchange(format!(
            "grant_type=access_token&service={ls}&access_token={forged}"
        )))
        .await
        .expect("response");
    assert_eq!(r.status(), 401);
    let r = http
        .exchange(exchange(format!("grant_type=refresh_token&service={ls}")))
        .await
        .expect("response");
    assert_eq!(r.status(), 400);
}

fn base64_url(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_ad_emulator_contract() {
    // Azure AD's refusals, as azure_identity reports them.
    let w = world().await;
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[
                (AZURE_TENANT_ID, "ffffffff-0000-4000-8000-000000000000"),
                (AZURE_CLIENT_ID, PULLER.0),
                (AZURE_CLIENT_SECRET, PULLER.1),
            ],
            "AADSTS90002",
        ),
        (
            &[
                (AZURE_TENANT_ID, TENANT),
                (AZURE_CLIENT_ID, "b0000000-0000-4000-8000-00000000dead"),
                (AZURE_CLIENT_SECRET, "x"),
            ],
            "AADSTS700016",
        ),
        (
            &[
                (AZURE_TENANT_ID, TENANT),
                (AZURE_CLIENT_ID, FOREIGN.0),
                (AZURE_CLIENT_SECRET, FOREIGN.1),
            ],
            "AADSTS700016",
        ),
    ];
    for (vars, code) in cases {
        let chain = w.aad_chain(vars).expect("chain");
        let exchange = AcrTokenExchange::new(w.http(), chain.credential().expect("cred"), "t");
        let err = exchange
            .refresh_token(&w.login_server())
            .await
            .expect_err("refused");
        assert!(matches!(err, AuthError::AzureToken { .. }), "{err:?}");
        assert!(err.to_string().contains(code), "{code}: {err}");
        assert_no_secret(&err.to_string());
    }
    // Tokens verify against the emulator's key and carry the documented claims.
    let token = w
        .aad
        .issue_token(PULLER.0, "https://management.azure.com", 60)
        .expect("token");
    let claims = w.aad.verify_access_token(&token).expect("verifies");
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["appid"], PULLER.0);
    assert_eq!(claims["aud"], "https://management.azure.com");
    assert_eq!(claims["oid"].as_str(), w.aad.object_id(PULLER.0).as_deref());
}
