//! The permissions preflight against the emulator's role assignments, and the real call
//! agreeing with it.

use std::sync::Arc;

use acr_import_acr::import::SourceArgs;
use acr_import_acr::permissions::{
    PermissionsEngine, PermissionsInput, PermissionsRead, TargetRef, evaluate as permissions,
    gather,
};
use acr_import_acr::preflight::Rule;
use acr_import_acr::{Preflight, RegistryResourceId};
use acr_import_auth::azure::{AcrLoginServers, AzureAdProvider};
use acr_import_auth::{AcrAudience, CredentialChain};
use acr_import_tests::Names;
use acr_import_tests::world::{
    PUSHER, SOURCE_RG, STRANGER, SUB2, importer_cannot_read_permissions, push_image,
    subscription_scope, target_id,
};
use acr_import_testsupport::{RepositoryCondition, RoleDefinition};
use acr_import_transfer::{Copier, CopyOptions, Endpoint, Source, Target, Transport};

use super::*;

/// The combined preflight of a server-side import of `args` into `targetreg`, as `who`.
async fn server_preflight(w: &ArmWorld, ctx: &AzureContext, args: &SourceArgs) -> Preflight {
    let target_id: RegistryResourceId = w.target_id().parse().unwrap();
    let target = ctx.arm.get_registry(&target_id).await.ok();
    let source = resolve(w, ctx, args).await;
    let network = evaluate(&preflight_input(
        Engine::Server,
        target.as_ref(),
        &source.source,
        None,
    ));
    let target_ref = match &target {
        Some(r) => TargetRef::Registry(r),
        None => TargetRef::Unreadable(&target_id),
    };
    let input = gather(
        &ctx.arm,
        PermissionsEngine::Server,
        Some(target_ref),
        vec!["app".into()],
        &source.source,
    )
    .await;
    network.merge(permissions(&input))
}

#[tokio::test]
async fn acr_push_alone_cannot_import_and_the_importer_role_can() {
    let target_scope = target_id();
    let w = ArmWorld::start_with(ArmWorldOptions::with_arm(move |b| {
        b.role(PUSHER.0, &target_scope, ArmRole::AcrPush).role(
            PUSHER.0,
            &subscription_scope(SUB2),
            ArmRole::Reader,
        )
    }))
    .await
    .expect("world");
    let ctx = connect(&w, PUSHER).await;
    let v = server_preflight(&w, &ctx, &by_id(&w, "app:v1")).await;
    assert_eq!(v.verdict, Verdict::WillFail, "{v}");
    let f = v
        .failures
        .iter()
        .find(|f| f.rule == Rule::PermissionMissing)
        .expect("a missing permission");
    assert_eq!(f.registry, "targetreg");
    assert!(
        f.reason
            .contains("Microsoft.ContainerRegistry/registries/importImage/action"),
        "{v}"
    );
    let oid = w.aad.object_id(PUSHER.0).unwrap();
    assert!(
        f.fix.contains(&format!(
            "az role assignment create --assignee {oid} --role \"Container Registry Data Importer and Data Reader\" --scope {}",
            w.target_id()
        )),
        "{v}"
    );
    // The real call agrees.
    // (The caller cannot read the target: its ID is known to the test.)
    let source = resolve(&w, &ctx, &by_id(&w, "app:v1")).await;
    let body = import_body(&source.source, &[], &[], false).unwrap();
    let err = ctx
        .arm
        .begin_import(&w.target_id().parse().unwrap(), &body)
        .await
        .expect_err("importImage is refused");
    assert_eq!(err.arm_status(), Some(403), "{err}");
    assert!(err.to_string().contains("importImage/action"), "{err}");

    // The importer role (the world's IMPORTER): the verdict passes and the import works.
    let ctx = connect(&w, IMPORTER).await;
    let v = server_preflight(&w, &ctx, &by_id(&w, "app:v1")).await;
    assert_eq!(v.verdict, Verdict::WillWork, "{v}");
    import(&w, &ctx, by_id(&w, "app:v1"), &[], false)
        .await
        .expect("import");
}

#[tokio::test]
async fn a_resource_id_source_without_read_fails_naming_the_source() {
    let w = ArmWorld::start_with(ArmWorldOptions::with_arm(|b| {
        b.role(STRANGER.0, &subscription_scope(SUB), ArmRole::Importer)
    }))
    .await
    .expect("world");
    let ctx = connect(&w, STRANGER).await;
    let v = server_preflight(&w, &ctx, &by_id(&w, "app:v1")).await;
    assert_eq!(v.verdict, Verdict::WillFail, "{v}");
    assert_eq!(v.failures.len(), 1, "one finding, not one per check: {v}");
    let f = &v.failures[0];
    assert_eq!(f.rule, Rule::LinkedScopeReadMissing);
    assert_eq!(f.registry, w.source_id());
    assert!(f.reason.contains("source registry"), "{v}");
    assert!(
        f.fix.contains(&format!(
            "--role \"Container Registry Data Importer and Data Reader\" --scope {}",
            w.source_id()
        )),
        "{v}"
    );
    let err = import(&w, &ctx, by_id(&w, "app:v1"), &[], false)
        .await
        .expect_err("linked-scope check");
    assert!(err.to_string().contains("linked scope"), "{err}");
    assert_side(&err, Side::Source);
}

#[tokio::test]
async fn a_repository_condition_on_an_abac_source_gives_unknown_and_the_registry_decides() {
    let source_scope = format!(
        "/subscriptions/{SUB2}/resourceGroups/{SOURCE_RG}/providers/Microsoft.ContainerRegistry/registries/sourcereg"
    );
    let w = ArmWorld::start_with(ArmWorldOptions {
        source: Box::new(|r| r.abac(true)),
        arm: Box::new(move |b| {
            b.role(STRANGER.0, &subscription_scope(SUB), ArmRole::Importer)
                .role(STRANGER.0, &source_scope, ArmRole::Reader)
                .assign(
                    STRANGER.0,
                    &source_scope,
                    RoleDefinition::repository_reader(),
                    Some(RepositoryCondition::StartsWith("team1/".into())),
                )
        }),
        ..Default::default()
    })
    .await
    .expect("world");
    push_image(&w.admin(), &w.source.login_server(), "team1/app", "v1", 11)
        .await
        .expect("seed");
    let ctx = connect(&w, STRANGER).await;
    let v = server_preflight(&w, &ctx, &by_id(&w, "team1/app:v1")).await;
    assert_eq!(v.verdict, Verdict::CannotTell, "{v}");
    let u = &v.unknowns[0];
    assert_eq!(u.rule, Rule::PermissionConditional);
    assert_eq!(u.registry, "sourcereg");
    assert!(
        u.reason.contains("StringStartsWithIgnoreCase 'team1/'"),
        "{v}"
    );
    assert!(u.reason.contains("does not evaluate"), "{v}");
    assert!(v.notes.iter().any(|n| n.contains("ABAC")), "{v}");
    // The registry decides: inside the condition the import works, outside it is refused.
    import(
        &w,
        &ctx,
        by_id(&w, "team1/app:v1"),
        &["team1/app:v1"],
        false,
    )
    .await
    .expect("inside the condition");
    let err = import(&w, &ctx, by_id(&w, "app:v1"), &[], false)
        .await
        .expect_err("outside the condition");
    assert_side(&err, Side::Source);
    assert!(
        err.to_string()
            .to_ascii_lowercase()
            .contains("unauthorized"),
        "{err}"
    );
}

#[tokio::test]
async fn a_caller_who_may_not_read_permissions_gets_unknown_and_the_import_proceeds() {
    let w = ArmWorld::start_with(ArmWorldOptions::with_arm(importer_cannot_read_permissions))
        .await
        .expect("world");
    let ctx = connect(&w, IMPORTER).await;
    let v = server_preflight(&w, &ctx, &by_id(&w, "app:v1")).await;
    assert_eq!(v.verdict, Verdict::CannotTell, "{v}");
    assert_eq!(v.unknowns[0].rule, Rule::PermissionsUnreadable);
    assert!(v.unknowns[0].reason.contains("goes ahead"), "{v}");
    import(&w, &ctx, by_id(&w, "app:v1"), &[], false)
        .await
        .expect("the import proceeds");
    w.assert_target_tag("app", "v1", &w.app_v1).await;
}

#[tokio::test]
async fn the_permissions_api_is_strict() {
    let w = ArmWorld::start().await.expect("world");
    let ctx = connect(&w, IMPORTER).await;
    let perms = ctx
        .arm
        .list_permissions(&w.target_id())
        .await
        .expect("read");
    assert!(
        perms
            .iter()
            .any(|p| p.actions.iter().any(|a| a.ends_with("importImage/action"))),
        "{perms:?}"
    );
    let http = w.http();
    let get = |url: String, auth: bool| {
        let http = http.clone();
        let token = w
            .aad
            .issue_token(IMPORTER.0, "https://management.azure.com", 600)
            .unwrap();
        async move {
            let mut b = http::Request::get(url);
            if auth {
                b = b.header("authorization", format!("Bearer {token}"));
            }
            http.exchange(b.body(Bytes::new()).unwrap()).await.unwrap()
        }
    };
    let base = format!(
        "{}{}/providers/Microsoft.Authorization/permissions",
        w.arm.endpoint(),
        w.target_id()
    );
    assert_eq!(
        get(format!("{base}?api-version={ARM_API_VERSION}"), true)
            .await
            .status(),
        400
    );
    assert_eq!(
        get(format!("{base}?api-version=2022-04-01"), false)
            .await
            .status(),
        401
    );
    let r = get(format!("{base}?api-version=2022-04-01"), true).await;
    assert_eq!(r.status(), 200);
    let missing = base.replace("targetreg", "nosuchreg");
    assert_eq!(
        get(format!("{missing}?api-version=2022-04-01"), true)
            .await
            .status(),
        404
    );
}

/// A transport that signs in to both ACRs with Azure AD as `who`, for `audience`.
fn aad_transport(w: &ArmWorld, who: (&str, &str), audience: AcrAudience) -> Transport {
    let chain = w.aad_chain(who);
    let servers = AcrLoginServers::new()
        .with_host(&w.target.login_server())
        .with_host(&w.source.login_server());
    let provider = AzureAdProvider::from_chain(&chain, w.http(), servers, audience);
    Transport::builder()
        .credentials(Arc::new(CredentialChain::new().with_azure(provider)))
        .proxy_from_env(false)
        .retry(acr_import_transfer::RetryPolicy::none())
        .build()
        .expect("transport")
}

/// What the permissions preflight reads for a client-side copy of `source` into `repo` of
/// `target`, as `ctx`'s caller.
async fn client_permissions(
    ctx: &AzureContext,
    target: &Registry,
    repo: &str,
    source: &ResolvedSource,
) -> PermissionsInput {
    let target = Some(TargetRef::Registry(target));
    gather(
        &ctx.arm,
        PermissionsEngine::Client,
        target,
        vec![repo.into()],
        source,
    )
    .await
}

async fn client_copy(w: &ArmWorld, transport: &Transport, repo: &str) -> Result<(), String> {
    let src = transport
        .registry(&format!("http://{}", w.source.login_server()))
        .map_err(|e| e.to_string())?;
    let dst = transport
        .registry(&format!("http://{}", w.target.login_server()))
        .map_err(|e| e.to_string())?;
    Copier::new(CopyOptions::default())
        .copy(
            &Source {
                endpoint: Endpoint::registry(src, "app".repo()),
                reference: "v1".parse().unwrap(),
            },
            &[Target {
                endpoint: Endpoint::registry(dst, repo.repo()),
                tag: Some("v1".parse().unwrap()),
            }],
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn client_side_with_arm_tokens_disabled_and_an_abac_target() {
    let w = ArmWorld::start_with(ArmWorldOptions::pusher_and_a_target_without_arm_tokens())
        .await
        .expect("world");
    // The preflight reads the policy and the caller's push right.
    let ctx = connect(&w, PUSHER).await;
    let target = target_registry(&ctx).await;
    assert!(!target.accepts_arm_audience_tokens());
    let source = resolve(&w, &ctx, &by_id(&w, "app:v1")).await;
    let input = client_permissions(&ctx, &target, "mirror", &source.source).await;
    assert!(matches!(
        input.target.as_ref().unwrap().permissions,
        PermissionsRead::Known(_)
    ));
    assert_eq!(permissions(&input).verdict, Verdict::WillWork);
    // The ARM audience is refused by this registry; the default (ACR audience) is accepted.
    let err = client_copy(&w, &aad_transport(&w, PUSHER, AcrAudience::Arm), "mirror")
        .await
        .expect_err("ARM-audience token refused");
    assert!(err.contains("authentication as ARM is disabled"), "{err}");
    client_copy(
        &w,
        &aad_transport(&w, PUSHER, AcrAudience::default()),
        "mirror",
    )
    .await
    .expect("client-side import with the ACR audience");
    assert!(w.target_digest("mirror", "v1").await.is_some());

    // The target moves to ABAC mode: AcrPush is no longer honored; preflight and push agree.
    w.arm.update_registry("targetreg", |r| r.abac = true);
    let target = target_registry(&ctx).await;
    let input = client_permissions(&ctx, &target, "mirror2", &source.source).await;
    let v = permissions(&input);
    assert_eq!(v.verdict, Verdict::WillFail, "{v}");
    assert!(
        v.failures[0]
            .fix
            .contains("--role \"Container Registry Repository Writer\""),
        "{v}"
    );
    let err = client_copy(
        &w,
        &aad_transport(&w, PUSHER, AcrAudience::default()),
        "mirror2",
    )
    .await
    .expect_err("the push is refused");
    assert!(!err.is_empty());
    assert!(w.target_digest("mirror2", "v1").await.is_none());
}
