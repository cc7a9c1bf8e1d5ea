//! Server-side import end to end: `acr-import-acr`'s ARM client, resolution, preflight and
//! `importImage` orchestration against the ARM emulator, which performs imports for real into
//! the distribution registry behind an emulated ACR.

use std::time::{Duration, Instant};

use acr_import_acr::import::{
    SourceArgs, import_body, preflight_input, resolve_source, run_server_import,
};
use acr_import_acr::preflight::{Rule, Unreadable, evaluate};
use acr_import_acr::{
    AcrError, AzureContext, Engine, ImportImageParameters, ImportProgress, Preflight, Registry,
    RegistryResourceId, ResolvedSource, ServerOutcome, Side, SourceResolution, Verdict,
    WaitOptions,
};
use acr_import_auth::Secret;
use acr_import_tests::world::{
    ADMIN, IMPORTER, OTHER_TENANT, READER, SUB, SUB_FOREIGN, TENANT, subscription_scope,
};
use acr_import_tests::{ARM_API_VERSION, ArmRegistry, ArmRole, ArmWorld, ArmWorldOptions};
use acr_import_testsupport::ACR_AUDIENCE;
use bytes::Bytes;

mod faults;
mod permissions;

fn fast() -> WaitOptions {
    WaitOptions {
        deadline: Some(Duration::from_secs(60)),
        initial_interval: Duration::from_millis(20),
        max_interval: Duration::from_millis(100),
    }
}

async fn connect(w: &ArmWorld, who: (&str, &str)) -> AzureContext {
    AzureContext::connect(w.arm_client(who), w.cloud(), Some(SUB))
        .await
        .expect("ARM context")
}

fn src(source: &str, registry: Option<&str>) -> SourceArgs {
    SourceArgs {
        source: source.to_owned(),
        registry: registry.map(str::to_owned),
        ..Default::default()
    }
}

/// `source` in `sourcereg`, named by the registry's resource ID.
fn by_id(w: &ArmWorld, source: &str) -> SourceArgs {
    src(source, Some(&w.source_id()))
}

/// `source` in `sourcereg`, named by the registry's name.
fn by_name(source: &str) -> SourceArgs {
    src(source, Some("sourcereg"))
}

/// `ctx`'s view of the target registry, `targetreg`.
async fn target_registry(ctx: &AzureContext) -> Registry {
    ctx.resolve_target("targetreg", None).await.expect("target")
}

/// `args` resolved through ARM.
async fn resolve(w: &ArmWorld, ctx: &AzureContext, args: &SourceArgs) -> SourceResolution {
    resolve_source(Some(ctx), &w.cloud(), args)
        .await
        .expect("source")
}

/// The network preflight of a server-side import of `source` into `target`.
fn server_verdict(target: &Registry, source: &ResolvedSource) -> Preflight {
    evaluate(&preflight_input(Engine::Server, Some(target), source, None))
}

/// `err` is an ARM error about the `side` registry.
fn assert_side(err: &AcrError, side: Side) {
    assert!(
        matches!(err, AcrError::Arm { side: s, .. } if *s == side),
        "{side}: {err}"
    );
}

/// Resolves the target and the source and builds the body of an import into `targetreg`.
async fn prepare(
    w: &ArmWorld,
    ctx: &AzureContext,
    args: &SourceArgs,
    images: &[&str],
    force: bool,
) -> Result<(RegistryResourceId, ImportImageParameters), AcrError> {
    let target = ctx.resolve_target("targetreg", None).await?;
    let source = resolve_source(Some(ctx), &w.cloud(), args).await?;
    let images: Vec<String> = images.iter().map(|s| s.to_string()).collect();
    let body = import_body(&source.source, &images, &[], force)?;
    Ok((target.resource_id()?, body))
}

/// Resolves, builds the body, imports into `targetreg` and waits.
async fn import(
    w: &ArmWorld,
    ctx: &AzureContext,
    args: SourceArgs,
    images: &[&str],
    force: bool,
) -> Result<(ServerOutcome, Vec<ImportProgress>), AcrError> {
    let (target, body) = prepare(w, ctx, &args, images, force).await?;
    let mut seen = Vec::new();
    let outcome = run_server_import(&ctx.arm, &target, &body, Some(&fast()), &mut |p| {
        seen.push(p.clone())
    })
    .await?;
    Ok((outcome, seen))
}

#[tokio::test]
async fn resource_id_source_is_imported_server_side() {
    let w = ArmWorld::start().await.expect("world");
    let ctx = connect(&w, IMPORTER).await;
    let (outcome, progress) = import(&w, &ctx, by_id(&w, "app:v1"), &[], false)
        .await
        .expect("import");
    assert_eq!(outcome, ServerOutcome::Completed);
    w.assert_target_tag("app", "v1", &w.app_v1).await;
    assert!(progress.len() >= 2, "{progress:?}");
    let body = &w.arm.import_bodies()[0];
    assert_eq!(body["source"]["resourceId"], w.source_id().as_str());
    assert_eq!(body["source"]["sourceImage"], "app:v1");
    assert_eq!(body["targetTags"][0], "app:v1");
    assert_eq!(body["mode"], "NoForce");
    assert!(body["source"].get("registryUri").is_none());
    // Every request used the stable api-version (subscriptions: their own).
    for r in w.arm.requests() {
        assert!(r.api_version.is_some(), "{r:?}");
        assert!(r.status < 400, "{r:?}");
    }
}

#[tokio::test]
async fn noforce_conflict_fails_and_force_overwrites() {
    let w = ArmWorld::start().await.expect("world");
    let ctx = connect(&w, IMPORTER).await;
    import(&w, &ctx, by_name("app:v1"), &["app:stable"], false)
        .await
        .expect("first import");
    w.assert_target_tag("app", "stable", &w.app_v1).await;
    let err = import(
        &w,
        &ctx,
        by_name("app:v2"),
        &["app:stable", "app:new"],
        false,
    )
    .await
    .expect_err("NoForce conflict");
    match &err {
        AcrError::Arm { side, message, .. } => {
            assert_eq!(*side, Side::Target, "{err}");
            assert!(message.contains("already exists"), "{err}");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("--force"), "{err}");
    // Nothing was copied: the old tag stays, the new one was not written.
    w.assert_target_tag("app", "stable", &w.app_v1).await;
    assert_eq!(w.target_digest("app", "new").await, None);
    import(
        &w,
        &ctx,
        by_name("app:v2"),
        &["app:stable", "app:new"],
        true,
    )
    .await
    .expect("forced import");
    w.assert_target_tag("app", "stable", &w.app_v2).await;
    w.assert_target_tag("app", "new", &w.app_v2).await;
    assert_eq!(w.arm.import_bodies()[2]["mode"], "Force");
}

#[tokio::test]
async fn lro_polls_several_times_and_honours_retry_after() {
    let w = ArmWorld::start_with(ArmWorldOptions::with_arm(|b| {
        b.polls_before_done(3).retry_after(1)
    }))
    .await
    .expect("world");
    let ctx = connect(&w, IMPORTER).await;
    let started = Instant::now();
    let (_, progress) = import(&w, &ctx, by_id(&w, "app:v1"), &["copy:v1"], false)
        .await
        .expect("import");
    // The POST's Retry-After (1 s) and three 202 polls with Retry-After: 1, not the 20 ms
    // back-off of the options.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(progress.len(), 3);
    assert_eq!(w.arm.count("GET", "/operationResults/"), 4);
    assert!(
        progress
            .iter()
            .all(|p| p.status.as_deref() == Some("Accepted"))
    );
    assert!(
        progress
            .last()
            .unwrap()
            .manifests
            .iter()
            .any(|(m, _)| m.starts_with("app@sha256:")),
        "{progress:?}"
    );
    w.assert_target_tag("copy", "v1", &w.app_v1).await;
}

#[tokio::test]
async fn no_wait_returns_the_operation_and_status_resumes_it() {
    let w = ArmWorld::start().await.expect("world");
    let ctx = connect(&w, IMPORTER).await;
    let args = by_id(&w, "app:v2");
    let (target, body) = prepare(&w, &ctx, &args, &[], false).await.unwrap();
    let outcome = run_server_import(&ctx.arm, &target, &body, None, &mut |_| {})
        .await
        .unwrap();
    let ServerOutcome::Started { operation_url } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        operation_url.starts_with(&w.arm.endpoint()),
        "{operation_url}"
    );
    assert!(
        operation_url.contains("/operationResults/registries-"),
        "{operation_url}"
    );
    assert_eq!(w.arm.count("GET", "/operationResults/"), 0);
    // Later, another client (as `acr import status URL` would) resumes polling.
    let later = w.arm_client(IMPORTER);
    later
        .wait(&operation_url, &fast(), &mut |_| {})
        .await
        .expect("resumed");
    w.assert_target_tag("app", "v2", &w.app_v2).await;
    // An operation URL off the ARM endpoint never gets the token.
    let err = later
        .wait(
            "https://evil.example/op?api-version=1",
            &fast(),
            &mut |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AcrError::ForeignUrl { .. }), "{err}");
}

#[tokio::test]
async fn deadline_expiry_names_the_operation_to_resume() {
    let w = ArmWorld::start().await.expect("world");
    w.arm.set_stalled(true);
    let ctx = connect(&w, IMPORTER).await;
    let args = by_id(&w, "app:v1");
    let (target, body) = prepare(&w, &ctx, &args, &[], false).await.unwrap();
    let options = WaitOptions {
        deadline: Some(Duration::from_millis(700)),
        ..fast()
    };
    let started = Instant::now();
    let err = run_server_import(&ctx.arm, &target, &body, Some(&options), &mut |_| {})
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let AcrError::Deadline { operation_url, .. } = &err else {
        panic!("{err}")
    };
    assert!(err.to_string().contains("acr import status"), "{err}");
    w.arm.set_stalled(false);
    ctx.arm
        .wait(operation_url, &fast(), &mut |_| {})
        .await
        .expect("resumed after the deadline");
    w.assert_target_tag("app", "v1", &w.app_v1).await;
}

#[tokio::test]
async fn arm_errors_are_typed_and_name_the_side() {
    const SUB3: &str = "44444444-0000-4000-8000-000000000004";
    let w = ArmWorld::start_with(ArmWorldOptions {
        source_subscription: SUB3,
        arm: Box::new(|b| b.subscription(SUB3, TENANT, "Unreadable subscription")),
        ..Default::default()
    })
    .await
    .expect("world");
    let source_id = w.source_id().replace(acr_import_tests::world::SUB2, SUB3);

    // No import right on the target.
    let reader = connect(&w, READER).await;
    let err = import(&w, &reader, src("lib/tool:1", None), &[], false)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            AcrError::Arm {
                status: 403,
                side: Side::Target,
                ..
            }
        ),
        "{text}"
    );
    assert!(err.is_auth() && text.contains("Data Importer"), "{text}");

    // No read on the source: the preflight says so, and ARM's linked-scope check refuses.
    let ctx = connect(&w, IMPORTER).await;
    let resolved = resolve(&w, &ctx, &src("app:v1", Some(&source_id))).await;
    assert!(matches!(
        resolved.source,
        ResolvedSource::Azure {
            unreadable: Some(Unreadable::Forbidden),
            ..
        }
    ));
    let target = target_registry(&ctx).await;
    let verdict = server_verdict(&target, &resolved.source);
    assert_eq!(verdict.verdict, Verdict::WillFail);
    assert_eq!(verdict.failures[0].rule, Rule::LinkedScopeReadMissing);
    let err = import(&w, &ctx, src("app:v1", Some(&source_id)), &[], false)
        .await
        .unwrap_err();
    assert_side(&err, Side::Source);
    assert!(err.to_string().contains("linked scope"), "{err}");

    // A missing source image fails the operation, on the source side.
    let err = import(
        &w,
        &ctx,
        src(&format!("{}/lib/nope:1", w.external.host()), None),
        &[],
        false,
    )
    .await
    .unwrap_err();
    assert_side(&err, Side::Source);
    assert!(err.to_string().contains("Unable to find manifest"), "{err}");
    assert!(
        err.to_string().contains(&w.target_id()),
        "the service names the target: {err}"
    );

    // A wrong api-version is refused.
    let old = w.arm_client(IMPORTER).with_api_version("2019-05-01");
    let err = old
        .get_registry(&w.target_id().parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AcrError::Arm { status: 400, code, .. } if code == "InvalidApiVersionParameter"),
        "{err}"
    );
}

#[tokio::test]
async fn the_emulator_is_strict_about_tokens_and_bodies() {
    let w = ArmWorld::start().await.expect("world");
    let http = w.http();
    let url = format!(
        "{}{}/importImage?api-version={ARM_API_VERSION}",
        w.arm.endpoint(),
        w.target_id()
    );
    let post = |auth: Option<String>, body: &'static str| {
        let mut b = http::Request::builder()
            .method("POST")
            .uri(url.clone())
            .header("content-type", "application/json");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Bytes::from_static(body.as_bytes())).unwrap()
    };
    let send = |r| {
        let http = http.clone();
        async move { http.exchange(r).await.unwrap() }
    };
    let good_body = r#"{"source":{"registryUri":"docker.io","sourceImage":"library/hello-world"},"mode":"NoForce"}"#;
    // The status and ARM's error code of an answer.
    let answer = |r: &http::Response<Bytes>| {
        let body = serde_json::from_slice::<serde_json::Value>(r.body()).unwrap();
        let code = body["error"]["code"].as_str().unwrap_or_default();
        (r.status().as_u16(), code.to_owned())
    };
    let r = send(post(None, good_body)).await;
    assert_eq!(answer(&r), (401, "AuthenticationFailed".into()));
    let r = send(post(Some("Bearer not.a.jwt".into()), good_body)).await;
    assert_eq!(answer(&r), (401, "InvalidAuthenticationToken".into()));
    let acr_token = w.aad.issue_token(IMPORTER.0, ACR_AUDIENCE, 600).unwrap();
    let r = send(post(Some(format!("Bearer {acr_token}")), good_body)).await;
    assert_eq!(
        answer(&r),
        (401, "InvalidAuthenticationTokenAudience".into())
    );
    let expired = w
        .aad
        .issue_token(IMPORTER.0, "https://management.azure.com", -60)
        .unwrap();
    let r = send(post(Some(format!("Bearer {expired}")), good_body)).await;
    assert_eq!(answer(&r), (401, "InvalidAuthenticationToken".into()));
    let token = w
        .aad
        .issue_token(IMPORTER.0, "https://management.azure.com", 600)
        .unwrap();
    for bad in [
        r#"{"source":{"sourceImage":"x:1"}}"#,
        r#"{"source":{"registryUri":"a.io","resourceId":"/subscriptions/x","sourceImage":"x:1"}}"#,
        r#"{"source":{"registryUri":"a.io","sourceImage":"x:1"},"mode":"Sometimes"}"#,
        r#"{"source":{"registryUri":"a.io","sourceImage":"x:1"},"extra":1}"#,
        r#"{"source":{"registryUri":"a.io","sourceImage":"x:1","credentials":{"username":"u"}}}"#,
        r#"{"targetTags":["x"]}"#,
        r#"not json"#,
    ] {
        let r = send(post(Some(format!("Bearer {token}")), bad)).await;
        assert_eq!(
            r.status().as_u16(),
            400,
            "{bad}: {}",
            String::from_utf8_lossy(r.body())
        );
    }
    // A token of another tenant cannot reach this subscription.
    let foreign_url = format!(
        "{}/subscriptions/{SUB_FOREIGN}/providers/Microsoft.ContainerRegistry/registries?api-version={ARM_API_VERSION}",
        w.arm.endpoint()
    );
    let r = send(
        http::Request::get(foreign_url)
            .header("authorization", format!("Bearer {token}"))
            .body(Bytes::new())
            .unwrap(),
    )
    .await;
    assert_eq!(answer(&r), (401, "InvalidAuthenticationTokenTenant".into()));
    let _ = OTHER_TENANT;
}

#[tokio::test]
async fn source_resolution_paths() {
    let w = ArmWorld::start().await.expect("world");
    let ctx = connect(&w, IMPORTER).await;
    resolution_by_registry(&w, &ctx).await;
    let with_creds = resolution_by_login_server(&w, &ctx).await;
    resolution_outside_every_subscription(&w, &ctx).await;
    imports_by_registry_uri(&w, &ctx, with_creds).await;
}

/// `--registry` as a name, a login server, an unknown name, a resource ID of another tenant.
async fn resolution_by_registry(w: &ArmWorld, ctx: &AzureContext) {
    let source_ls = w.source.login_server();
    // A name found in another visible subscription: its resource ID is used.
    let r = resolve(w, ctx, &src("app:v1", Some("SourceReg"))).await;
    assert!(
        matches!(&r.source, ResolvedSource::Azure { id, .. } if id.to_string() == w.source_id()),
        "{:?}",
        r.source
    );
    assert!(
        r.notes.iter().any(|n| n.contains("Azure AD")),
        "{:?}",
        r.notes
    );
    // The login server, repeated in --source: stripped, warned.
    let r = resolve(
        w,
        ctx,
        &src(&format!("{source_ls}/app:v1"), Some(&source_ls)),
    )
    .await;
    assert_eq!(r.source.image(), Some("app:v1"));
    assert!(matches!(r.source, ResolvedSource::Azure { .. }));
    assert!(
        r.warnings.iter().any(|x| x.contains("will be ignored")),
        "{:?}",
        r.warnings
    );
    let err = resolve_source(Some(ctx), &w.cloud(), &src("app:v1", Some("nosuchreg")))
        .await
        .unwrap_err();
    assert!(matches!(err, AcrError::RegistryNotFound { .. }), "{err}");
    // A resource ID of another tenant: unreadable, and the preflight says why.
    let foreign = format!(
        "/subscriptions/{SUB_FOREIGN}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/foreignreg"
    );
    let r = resolve(w, ctx, &src("app:v1", Some(&foreign))).await;
    let v = server_verdict(&target_registry(ctx).await, &r.source);
    assert_eq!(v.failures[0].rule, Rule::CrossTenantResourceId, "{v}");
}

/// A full `--source` on an ACR the identity can read: Azure AD, or `registryUri` with the
/// credentials given (never silently dropped); credentials with a resource ID are refused.
/// Returns the arguments with credentials.
async fn resolution_by_login_server(w: &ArmWorld, ctx: &AzureContext) -> SourceArgs {
    let by_login_server = src(&format!("{}/app:v1", w.source.login_server()), None);
    let r = resolve(w, ctx, &by_login_server).await;
    assert!(matches!(r.source, ResolvedSource::Azure { .. }));
    assert!(
        r.notes.iter().any(|n| n.contains("not anonymously")),
        "{:?}",
        r.notes
    );
    let with_creds = SourceArgs {
        username: Some(ADMIN.0.into()),
        password: Some(Secret::new(ADMIN.1)),
        ..by_login_server
    };
    let r = resolve(w, ctx, &with_creds).await;
    assert!(
        matches!(
            &r.source,
            ResolvedSource::External {
                credentials: Some(_),
                ..
            }
        ),
        "{:?}",
        r.source
    );
    let by_id_with_creds = SourceArgs {
        registry: Some(w.source_id()),
        ..with_creds.clone()
    };
    let err = resolve_source(Some(ctx), &w.cloud(), &by_id_with_creds)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AcrError::CredentialsWithResourceId { .. }),
        "{err}"
    );
    with_creds
}

/// A registry outside every subscription: anonymous, with a warning, and "cannot tell".
async fn resolution_outside_every_subscription(w: &ArmWorld, ctx: &AzureContext) {
    let r = resolve(
        w,
        ctx,
        &src(&format!("{}/lib/tool:1", w.external.host()), None),
    )
    .await;
    assert!(matches!(
        &r.source,
        ResolvedSource::External {
            unknown_acr: true,
            credentials: None,
            ..
        }
    ));
    assert!(
        r.warnings.iter().any(|x| x.contains("anonymous")),
        "{:?}",
        r.warnings
    );
    let v = server_verdict(&target_registry(ctx).await, &r.source);
    assert_eq!(v.verdict, Verdict::CannotTell);
}

/// Imports by `registryUri` with credentials and anonymously both work end to end; wrong
/// credentials fail on the source side.
async fn imports_by_registry_uri(w: &ArmWorld, ctx: &AzureContext, with_creds: SourceArgs) {
    import(w, ctx, with_creds.clone(), &["viacreds:v1"], false)
        .await
        .expect("registryUri + credentials");
    w.assert_target_tag("viacreds", "v1", &w.app_v1).await;
    let external = src(&format!("{}/lib/tool:1", w.external.host()), None);
    import(w, ctx, external, &[], false)
        .await
        .expect("anonymous registryUri");
    assert!(w.target_digest("lib/tool", "1").await.is_some());
    let bodies = w.arm.import_bodies();
    let source_ls = w.source.login_server();
    assert_eq!(bodies[0]["source"]["registryUri"], source_ls.as_str());
    assert_eq!(bodies[0]["source"]["credentials"]["username"], ADMIN.0);
    assert!(bodies[1]["source"].get("credentials").is_none());
    let wrong = SourceArgs {
        password: Some(Secret::new("wrong")),
        ..with_creds
    };
    let err = import(w, ctx, wrong, &["x:1"], false).await.unwrap_err();
    assert_side(&err, Side::Source);
}

#[tokio::test]
async fn preflight_verdicts_agree_with_the_service() {
    // Target denies and does not let trusted services through.
    let w = ArmWorld::start_with(ArmWorldOptions::with_target(|r| {
        r.deny_except(&["203.0.113.0/24"]).trusted_services(false)
    }))
    .await
    .expect("world");
    let ctx = connect(&w, IMPORTER).await;
    let target = target_registry(&ctx).await;
    let source = resolve(&w, &ctx, &by_id(&w, "app:v1")).await;
    let v = server_verdict(&target, &source.source);
    assert_eq!(
        v.failures[0].fix,
        "az acr update -n targetreg --allow-trusted-services true"
    );
    let err = import(&w, &ctx, by_id(&w, "app:v1"), &[], false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("denied"), "{err}");
    // The client engine is judged on this machine's address instead.
    let v = evaluate(&preflight_input(
        Engine::Client,
        Some(&target),
        &source.source,
        Some("198.51.100.1".parse().unwrap()),
    ));
    assert_eq!(v.failures[0].rule, Rule::ClientIpNotAllowed);
    let v = evaluate(&preflight_input(
        Engine::Client,
        Some(&target),
        &source.source,
        Some("203.0.113.9".parse().unwrap()),
    ));
    assert_eq!(v.verdict, Verdict::WillWork);

    // Source with public access disabled: by login server fails, by resource ID works.
    let w = ArmWorld::start_with(ArmWorldOptions::with_source(|r| {
        r.public_network_access(false)
    }))
    .await
    .expect("world");
    let ctx = connect(&w, IMPORTER).await;
    let target = target_registry(&ctx).await;
    let by_ls = SourceArgs {
        username: Some(ADMIN.0.into()),
        password: Some(Secret::new(ADMIN.1)),
        ..src(&format!("{}/app:v1", w.source.login_server()), None)
    };
    let resolved = resolve(&w, &ctx, &by_ls).await;
    // Named by login server (credentials keep it registryUri): the preflight reads its rules
    // through ARM and says so; the service refuses it.
    let v = server_verdict(&target, &resolved.source);
    assert_eq!(v.failures[0].rule, Rule::SourceNeedsResourceId, "{v}");
    assert!(
        v.failures[0].fix.contains("name the source by resource ID"),
        "{v}"
    );
    let err = import(&w, &ctx, by_ls, &[], false).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("public network access is disabled"),
        "{err}"
    );
    let by_id = resolve(&w, &ctx, &by_name("app:v1")).await;
    let v = server_verdict(&target, &by_id.source);
    assert_eq!(v.verdict, Verdict::WillWork, "{v}");
    import(&w, &ctx, by_name("app:v1"), &[], false)
        .await
        .expect("by resource ID");

    // Export policy disabled on the source: both say no.
    let w = ArmWorld::start_with(ArmWorldOptions::with_source(|r| {
        r.public_network_access(false).export_policy(false)
    }))
    .await
    .expect("world");
    let ctx = connect(&w, IMPORTER).await;
    let target = target_registry(&ctx).await;
    let by_id = resolve(&w, &ctx, &by_name("app:v1")).await;
    let v = server_verdict(&target, &by_id.source);
    assert_eq!(v.failures[0].rule, Rule::ExportPolicyDisabled, "{v}");
    let err = import(&w, &ctx, by_name("app:v1"), &[], false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("export policy"), "{err}");
}

#[tokio::test]
async fn listing_follows_next_links_and_lookups_ignore_case() {
    let w = ArmWorld::start_with(ArmWorldOptions::with_arm(|b| {
        b.page_size(1)
            .registry(ArmRegistry::new(SUB, "rg-a", "alphareg1"))
            .registry(ArmRegistry::new(SUB, "rg-b", "betareg22"))
            .role(
                "someone-else",
                &subscription_scope(SUB),
                ArmRole::Contributor,
            )
    }))
    .await
    .expect("world");
    let client = w.arm_client(IMPORTER);
    let all = client.list_registries(SUB).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(w.arm.count("GET", "/registries") >= 3);
    let found = client
        .find_registry("BETAREG22", &[SUB.to_owned()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.properties.login_server, "betareg22.azurecr.io");
    let found = client
        .find_registry("betareg22.westus2.geo.azurecr.io", &[SUB.to_owned()])
        .await
        .unwrap();
    assert!(found.is_some());
    let subs = client.list_subscriptions().await.unwrap();
    let mut ids: Vec<_> = subs.iter().map(|s| s.subscription_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, [SUB, acr_import_tests::world::SUB2]);
    // --resource-group: a direct GET; by login server: a lookup.
    let ctx = connect(&w, IMPORTER).await;
    let r = ctx
        .resolve_target("TargetReg", Some("RG-TARGET"))
        .await
        .unwrap();
    assert_eq!(r.name, "targetreg");
    let r = ctx
        .resolve_target(&w.target.login_server(), None)
        .await
        .unwrap();
    assert_eq!(r.name, "targetreg");
    let err = ctx.resolve_target("nosuchreg", None).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("could not be found in subscription"),
        "{err}"
    );
}

#[tokio::test]
async fn server_errors_while_polling_are_retried_then_reported() {
    let w = ArmWorld::start().await.expect("world");
    let ctx = connect(&w, IMPORTER).await;
    // Two 503s in front of the operation: polled again, and the import completes.
    w.arm.fail_polls(2, 503);
    import(&w, &ctx, by_id(&w, "app:v1"), &["polled:v1"], false)
        .await
        .expect("rides through 503s on the poll");
    w.assert_target_tag("polled", "v1", &w.app_v1).await;
    // A poll that keeps failing: a typed error with the status, naming the target side or
    // the operation, after a bounded number of tries.
    w.arm.fail_polls(50, 503);
    let before = w.arm.count("GET", "/operationResults/");
    let err = import(&w, &ctx, by_id(&w, "app:v2"), &["polled:v2"], false)
        .await
        .expect_err("a poll that keeps failing fails the import");
    let polls = w.arm.count("GET", "/operationResults/") - before;
    assert!((2..=6).contains(&polls), "bounded retries: {polls} polls");
    assert_eq!(err.arm_status(), Some(503), "{err}");
    assert!(
        !err.to_string().contains("eyJ"),
        "no token in the error: {err}"
    );
    // A 500, then three 429s, while polling: retried as the Azure SDKs do, and the import
    // completes (the operation went on regardless).
    w.arm.fail_polls(1, 500);
    import(&w, &ctx, by_id(&w, "app:v2"), &["polled:v3"], false)
        .await
        .expect("a 500 on the poll is ridden out");
    w.arm.fail_polls(3, 429);
    import(&w, &ctx, by_id(&w, "app:v2"), &["polled:v4"], false)
        .await
        .expect("three 429s on the poll are ridden out");
    w.assert_target_tag("polled", "v4", &w.app_v2).await;
    w.arm.fail_polls(0, 503);
}
