//! A local Azure: an [`AadEmulator`], a target and a source [`AcrEmulator`], a plain registry
//! outside Azure, and an [`ArmEmulator`] that knows the two ACRs as `targetreg` and
//! `sourcereg`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acr_import_acr::{ArmClient, Cloud};
use acr_import_auth::azure::env::{
    AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID, PATH,
};
use acr_import_auth::{
    AadCredentialChain, AadOptions, AzureEnvironment, Credential, HttpExchange, Secret,
    StaticCredentials,
};
use acr_import_reference::DigestAlgorithm;
use acr_import_testsupport::seed::{Blob, OCI_CONFIG, OCI_LAYER};
use acr_import_testsupport::{AadEmulator, AcrEmulator, Rbac, Registry};
use acr_import_transfer::{Manifest, RetryPolicy, TransferError, Transport, digest_of, manifest};
use bytes::Bytes;

use crate::Names;
use crate::arm_emulator::{ArmEmulator, ArmEmulatorBuilder, ArmRegistry, ArmRole};

/// The home tenant.
pub const TENANT: &str = "5e7a1c2d-0000-4000-8000-00000000a11d";
/// Another tenant.
pub const OTHER_TENANT: &str = "0f0f0f0f-0000-4000-8000-0000000f0e19";
/// The target's subscription.
pub const SUB: &str = "11111111-0000-4000-8000-000000000001";
/// The source's subscription (same tenant).
pub const SUB2: &str = "22222222-0000-4000-8000-000000000002";
/// A subscription of the other tenant.
pub const SUB_FOREIGN: &str = "33333333-0000-4000-8000-000000000003";
/// The principal that imports: Importer on [`SUB`], Reader on [`SUB2`].
pub const IMPORTER: (&str, &str) = ("a0000000-0000-4000-8000-0000000000a1", "importer-Secret~1");
/// A principal with Reader on everything and no import right.
pub const READER: (&str, &str) = ("a0000000-0000-4000-8000-0000000000a2", "reader-Secret~2");
/// A principal with no role anywhere unless a test gives it one.
pub const PUSHER: (&str, &str) = ("a0000000-0000-4000-8000-0000000000a3", "pusher-Secret~4");
/// Another principal with no role anywhere unless a test gives it one.
pub const STRANGER: (&str, &str) = ("a0000000-0000-4000-8000-0000000000a4", "stranger-Secret~5");
/// The admin user of both ACRs.
pub const ADMIN: (&str, &str) = ("acradmin", "admin-Password~3");
/// The resource group of the target.
pub const TARGET_RG: &str = "rg-target";
/// The resource group of the source.
pub const SOURCE_RG: &str = "rg-source";

/// The target registry's resource ID, `/subscriptions/{SUB}/…/registries/targetreg`, known
/// before the world starts (for role assignments).
pub fn target_id() -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{TARGET_RG}/providers/Microsoft.ContainerRegistry/registries/targetreg"
    )
}

/// The ARM scope of the subscription `id`, `/subscriptions/{id}` (for role assignments).
pub fn subscription_scope(id: &str) -> String {
    format!("/subscriptions/{id}")
}

/// [`PUSHER`]'s roles for a client-side import: `AcrPush` and `Reader` on the target, `Reader`
/// on the source's subscription ([`SUB2`]).
pub fn pusher_roles(b: ArmEmulatorBuilder) -> ArmEmulatorBuilder {
    let target = target_id();
    b.role(PUSHER.0, &target, ArmRole::AcrPush)
        .role(PUSHER.0, &target, ArmRole::Reader)
        .role(PUSHER.0, &subscription_scope(SUB2), ArmRole::Reader)
}

/// [`IMPORTER`] may not read its permissions on [`SUB`] (`permissions/read` denied): a
/// permissions preflight cannot tell.
pub fn importer_cannot_read_permissions(b: ArmEmulatorBuilder) -> ArmEmulatorBuilder {
    b.deny(
        IMPORTER.0,
        &subscription_scope(SUB),
        "Microsoft.Authorization/permissions/read",
    )
}

/// What to change in the default world.
pub struct ArmWorldOptions {
    /// Change the target registry.
    pub target: Box<dyn FnOnce(ArmRegistry) -> ArmRegistry + Send>,
    /// Change the source registry.
    pub source: Box<dyn FnOnce(ArmRegistry) -> ArmRegistry + Send>,
    /// Change the emulator (roles, paging, polls…).
    pub arm: Box<dyn FnOnce(ArmEmulatorBuilder) -> ArmEmulatorBuilder + Send>,
    /// The source's subscription (default [`SUB2`]).
    pub source_subscription: &'static str,
}

impl Default for ArmWorldOptions {
    fn default() -> Self {
        Self {
            target: Box::new(|r| r),
            source: Box::new(|r| r),
            arm: Box::new(|b| b),
            source_subscription: SUB2,
        }
    }
}

impl ArmWorldOptions {
    /// The default world with `arm` applied to the emulator (roles, paging, polls…).
    pub fn with_arm(
        arm: impl FnOnce(ArmEmulatorBuilder) -> ArmEmulatorBuilder + Send + 'static,
    ) -> Self {
        Self {
            arm: Box::new(arm),
            ..Default::default()
        }
    }

    /// The default world with `target` applied to the target registry.
    pub fn with_target(target: impl FnOnce(ArmRegistry) -> ArmRegistry + Send + 'static) -> Self {
        Self {
            target: Box::new(target),
            ..Default::default()
        }
    }

    /// The default world with `source` applied to the source registry.
    pub fn with_source(source: impl FnOnce(ArmRegistry) -> ArmRegistry + Send + 'static) -> Self {
        Self {
            source: Box::new(source),
            ..Default::default()
        }
    }

    /// A target that refuses ARM-audience tokens, and [`PUSHER`] with its client-side roles
    /// ([`pusher_roles`]).
    pub fn pusher_and_a_target_without_arm_tokens() -> Self {
        Self {
            target: Box::new(|r| r.authentication_as_arm(false)),
            arm: Box::new(pusher_roles),
            ..Default::default()
        }
    }
}

impl std::fmt::Debug for ArmWorldOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmWorldOptions").finish_non_exhaustive()
    }
}

/// The world (see the module docs). `sourcereg` holds `app:v1` and `app:v2`; `external` (a
/// registry outside Azure, no auth) holds `lib/tool:1`.
#[derive(Debug)]
pub struct ArmWorld {
    /// Azure AD.
    pub aad: AadEmulator,
    /// The target ACR (`targetreg`).
    pub target: AcrEmulator,
    /// The source ACR (`sourcereg`).
    pub source: AcrEmulator,
    /// A registry outside Azure.
    pub external: Registry,
    /// ARM.
    pub arm: ArmEmulator,
    /// The digest of `sourcereg/app:v1`.
    pub app_v1: String,
    /// The digest of `sourcereg/app:v2`.
    pub app_v2: String,
    dir: tempfile::TempDir,
    ca: PathBuf,
}

/// Pushes a one-layer OCI image whose content depends on `seed`.
pub async fn push_image(
    transport: &Transport,
    registry: &str,
    repo: &str,
    tag: &str,
    seed: u64,
) -> Result<Manifest, TransferError> {
    let reg = transport.registry(registry)?;
    let repo = repo.repo();
    let config = Blob {
        bytes: Bytes::from(format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"seed":{seed}}}"#
        )),
        media_type: OCI_CONFIG,
    };
    let layer = Blob {
        bytes: Bytes::from(format!("layer {seed} ").repeat(100)),
        media_type: OCI_LAYER,
    };
    let sha256 = |b: &Blob| digest_of(DigestAlgorithm::Sha256, &b.bytes);
    reg.push_blob(&repo, &sha256(&config), config.bytes.clone(), u64::MAX)
        .await?;
    reg.push_blob(&repo, &sha256(&layer), layer.bytes.clone(), u64::MAX)
        .await?;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    })
    .to_string();
    let m = Manifest {
        digest: digest_of(DigestAlgorithm::Sha256, body.as_bytes()),
        bytes: Bytes::from(body),
        media_type: manifest::OCI_MANIFEST.to_owned(),
    };
    reg.put_manifest(&repo, &tag.at(), &m).await?;
    Ok(m)
}

impl ArmWorld {
    /// The default world.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(ArmWorldOptions::default()).await
    }

    /// A world with changes.
    pub async fn start_with(options: ArmWorldOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let aad = AadEmulator::builder()
            .client_secret(TENANT, IMPORTER.0, IMPORTER.1)
            .client_secret(TENANT, READER.0, READER.1)
            .client_secret(TENANT, PUSHER.0, PUSHER.1)
            .client_secret(TENANT, STRANGER.0, STRANGER.1)
            .tenant(OTHER_TENANT)
            .start()
            .await?;
        // One set of role assignments for ARM and both registries' data planes; each
        // registry's scope becomes its resource ID when ARM serves it (`backed_by`).
        let rbac = Rbac::new();
        let target = AcrEmulator::builder(&aad, TENANT)
            .rbac(rbac.clone(), "/unbound/target")
            .admin_user(ADMIN.0, ADMIN.1)
            .start()
            .await?;
        let source = AcrEmulator::builder(&aad, TENANT)
            .rbac(rbac.clone(), "/unbound/source")
            .admin_user(ADMIN.0, ADMIN.1)
            .start()
            .await?;
        let external = Registry::start().await?;
        let ca = dir.path().join("ca.pem");
        aad.write_ca_file(&ca)?;
        let admin = Self::admin_transport(&ca, &[&source.login_server(), &target.login_server()])?;
        let v1 = push_image(&admin, &source.login_server(), "app", "v1", 1).await?;
        let v2 = push_image(&admin, &source.login_server(), "app", "v2", 2).await?;
        push_image(&admin, &external.host(), "lib/tool", "1", 3).await?;
        let target_reg =
            (options.target)(ArmRegistry::new(SUB, TARGET_RG, "targetreg").backed_by(&target)?);
        let source_reg = (options.source)(
            ArmRegistry::new(options.source_subscription, SOURCE_RG, "sourcereg")
                .backed_by(&source)?,
        );
        let builder = ArmEmulator::builder(&aad)
            .subscription(SUB, TENANT, "Target subscription")
            .subscription(SUB2, TENANT, "Source subscription")
            .subscription(SUB_FOREIGN, OTHER_TENANT, "Foreign subscription")
            .registry(target_reg)
            .registry(source_reg)
            .role(IMPORTER.0, &subscription_scope(SUB), ArmRole::Importer)
            .role(IMPORTER.0, &subscription_scope(SUB2), ArmRole::Reader)
            .role(READER.0, &subscription_scope(SUB), ArmRole::Reader)
            .role(READER.0, &subscription_scope(SUB2), ArmRole::Reader)
            .polls_before_done(2)
            .retry_after(0);
        let arm = (options.arm)(builder).start().await?;
        Ok(Self {
            aad,
            target,
            source,
            external,
            arm,
            app_v1: v1.digest.to_string(),
            app_v2: v2.digest.to_string(),
            dir,
            ca,
        })
    }

    fn admin_transport(ca: &PathBuf, hosts: &[&str]) -> anyhow::Result<Transport> {
        let mut creds = StaticCredentials::new();
        for h in hosts {
            creds.insert(
                h,
                Credential::Basic {
                    username: ADMIN.0.to_owned(),
                    password: Secret::new(ADMIN.1),
                },
            );
        }
        Ok(Transport::builder()
            .ca_file(ca)
            .credentials(Arc::new(creds))
            .proxy_from_env(false)
            .retry(RetryPolicy::none())
            .connect_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(30))
            .build()?)
    }

    /// A transport with the admin user on both ACRs (to seed and inspect).
    pub fn admin(&self) -> Transport {
        Self::admin_transport(
            &self.ca,
            &[&self.source.login_server(), &self.target.login_server()],
        )
        .expect("admin transport")
    }

    /// The CA file trusted by clients (Azure AD and ARM certificates).
    pub fn ca_file(&self) -> PathBuf {
        self.ca.clone()
    }

    /// A scratch folder.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// `/subscriptions/…/registries/targetreg` ([`target_id`]).
    pub fn target_id(&self) -> String {
        target_id()
    }

    /// `/subscriptions/…/registries/sourcereg` (in [`SUB2`]).
    pub fn source_id(&self) -> String {
        format!(
            "/subscriptions/{SUB2}/resourceGroups/{SOURCE_RG}/providers/Microsoft.ContainerRegistry/registries/sourcereg"
        )
    }

    /// The public cloud with ARM at the emulator.
    pub fn cloud(&self) -> Cloud {
        let endpoint = self.arm.endpoint();
        Cloud::azure_cloud()
            .with_overrides(move |k| (k == "ACR_IMPORT_ARM_ENDPOINT").then(|| endpoint.clone()))
    }

    /// An HTTP exchange trusting the test CA.
    pub fn http(&self) -> Arc<dyn HttpExchange> {
        Transport::builder()
            .ca_file(&self.ca)
            .proxy_from_env(false)
            .retry(RetryPolicy::none())
            .build()
            .expect("transport")
            .exchange()
    }

    /// The environment of a principal (client secret), with no `az` on `PATH`.
    pub fn env_for(&self, principal: (&str, &str)) -> Vec<(String, String)> {
        vec![
            (AZURE_AUTHORITY_HOST.to_owned(), self.aad.authority_host()),
            (AZURE_TENANT_ID.to_owned(), TENANT.to_owned()),
            (AZURE_CLIENT_ID.to_owned(), principal.0.to_owned()),
            (AZURE_CLIENT_SECRET.to_owned(), principal.1.to_owned()),
            ("ACR_IMPORT_ARM_ENDPOINT".to_owned(), self.arm.endpoint()),
            (
                PATH.to_owned(),
                self.dir.path().join("no-az").display().to_string(),
            ),
        ]
    }

    /// The Azure AD credential chain of `principal` ([`Self::env_for`]): no retries, no `az`.
    pub fn aad_chain(&self, principal: (&str, &str)) -> AadCredentialChain {
        let env = AzureEnvironment::from_vars(self.env_for(principal));
        let options = AadOptions {
            retries: 0,
            allow_azure_cli: false,
            ..Default::default()
        };
        AadCredentialChain::new(&env, self.http(), options).expect("Azure AD chain")
    }

    /// An ARM client signed in as `principal`.
    pub fn arm_client(&self, principal: (&str, &str)) -> ArmClient {
        let chain = self.aad_chain(principal);
        // The Azure SDK policy, with back-offs short enough for tests.
        ArmClient::new(&self.cloud(), self.http(), Arc::new(chain))
            .expect("ARM client")
            .with_retry_policy(acr_import_acr::RetryPolicy {
                initial_delay: Duration::from_millis(50),
                ..acr_import_acr::RetryPolicy::default()
            })
    }

    /// The digest `repo:tag` has in the target, if any.
    pub async fn target_digest(&self, repo: &str, tag: &str) -> Option<String> {
        self.admin()
            .registry(&self.target.login_server())
            .ok()?
            .head_manifest(&repo.repo(), &tag.at())
            .await
            .ok()
            .flatten()
            .and_then(|h| h.digest)
            .map(|d| d.to_string())
    }

    /// Asserts that `repo:tag` in the target has `digest`.
    pub async fn assert_target_tag(&self, repo: &str, tag: &str, digest: &str) {
        assert_eq!(
            self.target_digest(repo, tag).await.as_deref(),
            Some(digest),
            "{repo}:{tag}"
        );
    }
}
