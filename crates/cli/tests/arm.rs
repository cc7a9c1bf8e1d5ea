//! `acr import` server-side, end to end: the binary against the local Azure (Azure AD, ARM and
//! two ACR login servers in front of real registries).

use std::time::Duration;

use acr_import_tests::Names;
use acr_import_tests::world::{
    ADMIN, IMPORTER, PUSHER, READER, importer_cannot_read_permissions, pusher_roles,
};
use acr_import_tests::{ArmWorld, ArmWorldOptions};

mod arm_common;
mod common;
use arm_common::{
    acr, assert_exit, assert_stderr_has, assert_stdout_has, code, command_without_subscription,
    import, import_command, import_with_target_admin, output, words,
};
use common::{ACR, json, stderr as err, stdout as out, write_file};

#[tokio::test(flavor = "multi_thread")]
async fn server_mode_imports_by_resource_id() {
    let w = ArmWorld::start().await.expect("world");
    let id = w.source_id();
    let args = ["--source", "app:v1", "-r", &id, "--mode", "server"];
    let o = import(&w, IMPORTER, &args).await;
    assert_exit(&o, 0);
    assert_stdout_has(&o, "server-side");
    assert_stderr_has(&o, "Importing image...");
    let last = err(&o)
        .lines()
        .rfind(|l| l.starts_with("Importing image..."))
        .unwrap_or_default()
        .to_owned();
    assert_eq!(last, "Importing image... Succeeded", "{}", err(&o));
    w.assert_target_tag("app", "v1", &w.app_v1).await;
    assert_eq!(
        w.arm.import_bodies()[0]["source"]["resourceId"],
        id.as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_mode_says_which_engine_and_why() {
    let w = ArmWorld::start().await.expect("world");
    // ACR target through ARM, plain request: server-side, with JSON output.
    let args = words("--source app:v2 -r sourcereg -t mirror/app:2 -o json");
    let o = import(&w, IMPORTER, &args).await;
    assert_exit(&o, 0);
    assert_stderr_has(&o, "importing server-side: the target is an ACR");
    let v = json(&o);
    assert_eq!(v["engine"], "server");
    assert_eq!(v["targetTags"][0], "mirror/app:2");
    w.assert_target_tag("mirror/app", "2", &w.app_v2).await;
    // A platform filter is not something importImage does: client-side, and it says why.
    let src = format!("{}/lib/tool:1", w.external.host());
    let line = format!("--source {src} --platform linux/amd64 -t tool:1");
    let o = import_with_target_admin(&w, IMPORTER, &words(&line)).await;
    assert_exit(&o, 0);
    assert_stderr_has(&o, "importing client-side: a platform filter");
    assert!(w.target_digest("tool", "1").await.is_some());
    assert_eq!(
        w.arm.import_bodies().len(),
        1,
        "the client-side import did not call importImage"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_only_prints_the_verdict_and_exit_code() {
    let w = ArmWorld::start_with(ArmWorldOptions::with_target(|r| {
        r.deny_except(&[]).trusted_services(false)
    }))
    .await
    .expect("world");
    let id = w.source_id();
    let args = ["--source", "app:v1", "-r", &id, "--preflight-only"];
    let o = import(&w, IMPORTER, &args).await;
    assert_exit(&o, 3);
    assert_stdout_has(&o, "will fail");
    assert_stdout_has(
        &o,
        "az acr update -n targetreg --allow-trusted-services true",
    );
    assert!(w.arm.import_bodies().is_empty());
    // Without --preflight-only the import is refused before it starts, with the same reason.
    let o = import(&w, IMPORTER, &args[..4]).await;
    assert_exit(&o, 3);
    assert_stderr_has(&o, "--allow-trusted-services true");
    assert!(w.arm.import_bodies().is_empty());

    let w = ArmWorld::start().await.expect("world");
    let args = words("--source app:v1 -r sourcereg --preflight-only -o json");
    let o = import(&w, IMPORTER, &args).await;
    assert_exit(&o, 0);
    assert_eq!(json(&o)["verdict"], "WillWork");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_wait_then_status_resumes() {
    let w = ArmWorld::start().await.expect("world");
    let id = w.source_id();
    let args = ["--source", "app:v1", "-r", &id, "--no-wait"];
    let o = import(&w, IMPORTER, &args).await;
    assert_exit(&o, 0);
    let url = out(&o).trim().to_owned();
    assert!(
        url.starts_with(&w.arm.endpoint()) && url.contains("operationResults"),
        "{url}"
    );
    assert_stderr_has(&o, "Import has started");
    let o = acr(&w, IMPORTER, ["import", "status", &url]).await;
    assert_exit(&o, 0);
    assert_stderr_has(&o, "finished successfully");
    w.assert_target_tag("app", "v1", &w.app_v1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conflicts_force_timeouts_and_refusals() {
    let w = ArmWorld::start().await.expect("world");
    let id = w.source_id();
    let base = |extra: &[&'static str]| [["-r", id.as_str()].as_slice(), extra].concat();
    let args = base(&["--source", "app:v1", "-t", "app:prod"]);
    let o = import(&w, IMPORTER, &args).await;
    assert_exit(&o, 0);
    let args = base(&["--source", "app:v2", "-t", "app:prod"]);
    let o = import(&w, IMPORTER, &args).await;
    assert_exit(&o, 1);
    assert!(
        err(&o).contains("already exists") && err(&o).contains("--force"),
        "{}",
        err(&o)
    );
    assert_stderr_has(&o, "target side");
    w.assert_target_tag("app", "prod", &w.app_v1).await;
    let args = base(&["--source", "app:v2", "-t", "app:prod", "--force"]);
    let o = import(&w, IMPORTER, &args).await;
    assert_exit(&o, 0);
    w.assert_target_tag("app", "prod", &w.app_v2).await;
    assert_eq!(w.arm.import_bodies()[2]["mode"], "Force");

    // A stalled operation and --timeout: exit 1, and how to resume.
    w.arm.set_stalled(true);
    let args = base(&["--source", "app:v1", "-t", "app:late", "--timeout", "2"]);
    let o = import(&w, IMPORTER, &args).await;
    assert_exit(&o, 1);
    assert_stderr_has(&o, "acr import status https://");
    assert_stderr_has(&o, "its last state: Importing image... Accepted");
    w.arm.set_stalled(false);

    // Credentials with a resource-ID source: refused, nothing sent.
    let before = w.arm.import_bodies().len();
    let args = base(&["--source", "app:v1", "-u", "someone", "-p", "pw-Secret"]);
    let o = import(&w, IMPORTER, &args).await;
    assert_exit(&o, 2);
    assert_stderr_has(&o, "cannot be used with the Azure source");
    assert!(!err(&o).contains("pw-Secret"));
    assert_eq!(w.arm.import_bodies().len(), before);

    // No import right: the permissions preflight says so before anything is sent (exit 3),
    // with the role and the command that grant it.
    let before = w.arm.import_bodies().len();
    let args = base(&["--source", "app:v1", "-t", "app:denied"]);
    let o = import(&w, READER, &args).await;
    assert_exit(&o, 3);
    let role = "--role \"Container Registry Data Importer and Data Reader\"";
    for want in ["importImage/action", role] {
        assert_stderr_has(&o, want);
    }
    assert_eq!(w.arm.import_bodies().len(), before, "nothing was started");

    // --mode server with a target that is no ACR: a usage error.
    let external = w.external.host();
    let src = format!("{external}/lib/tool:1");
    let args = [
        "import", "-n", &external, "--source", &src, "--mode", "server",
    ];
    let o = acr(&w, IMPORTER, args).await;
    assert_exit(&o, 2);
    assert_stderr_has(&o, "--mode server needs");
}

/// The digests of the rows `acr repository show-manifests` printed.
fn listed_digests(o: &std::process::Output) -> Vec<String> {
    json(o)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn show_manifests_reads_the_acr_metadata_api() {
    let w = ArmWorld::start().await.expect("world");
    let ls = w.source.login_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = acr_import_testsupport::basic_auth(ADMIN.0, ADMIN.1);
    let config =
        serde_json::json!({"auths": {ls.clone(): {"auth": auth.trim_start_matches("Basic ")}}});
    write_file(dir.path(), "config.json", &config.to_string());
    let list = |extra: &[&str]| {
        let mut cmd = tokio::process::Command::new(ACR);
        cmd.args(words(&format!(
            "repository show-manifests -n {ls} --repository app"
        )))
        .args(extra)
        .arg("--ca-file")
        .arg(w.ca_file())
        .env_clear()
        .env("DOCKER_CONFIG", dir.path())
        .kill_on_drop(true);
        output(cmd)
    };
    let o = list(&[]).await;
    assert_exit(&o, 0);
    let rows = json(&o);
    let rows = rows.as_array().expect("a list");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in rows {
        assert_eq!(
            r.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["digest", "tags", "timestamp"]
        );
        assert!(
            !r["timestamp"].as_str().unwrap().is_empty(),
            "the service's lastUpdateTime: {r}"
        );
    }
    let digests: Vec<&str> = rows.iter().map(|r| r["digest"].as_str().unwrap()).collect();
    assert!(digests.contains(&w.app_v1.as_str()) && digests.contains(&w.app_v2.as_str()));
    assert!(
        w.source
            .requests()
            .iter()
            .any(|r| r.path == "/acr/v1/app/_manifests"),
        "through the metadata API"
    );

    let desc = listed_digests(&list(&["--orderby", "time_desc"]).await);
    let asc = listed_digests(&list(&["--orderby", "time_asc"]).await);
    assert_eq!(
        desc.iter().rev().collect::<Vec<_>>(),
        asc.iter().collect::<Vec<_>>()
    );

    let detail = json(&list(&["--detail", "--top", "1"]).await);
    assert_eq!(detail.as_array().unwrap().len(), 1);
    assert!(
        detail[0]["mediaType"]
            .as_str()
            .unwrap()
            .starts_with("application/vnd."),
        "{detail}"
    );
    assert!(detail[0]["changeableAttributes"].is_object(), "{detail}");

    let o = list(&["--orderby", "size"]).await;
    assert_exit(&o, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_firewall_refusal_client_side_names_the_rules_and_the_fix() {
    let w = ArmWorld::start_with(ArmWorldOptions::with_target(|r| {
        r.deny_except(&["203.0.113.0/24"])
    }))
    .await
    .expect("world");
    w.target.set_firewall(true);
    let src = format!("{}/lib/tool:1", w.external.host());
    let args = ["--source", &src, "-t", "tool:1", "--mode", "client"];
    let o = import_with_target_admin(&w, IMPORTER, &args).await;
    assert_ne!(code(&o), 0, "{}{}", out(&o), err(&o));
    let e = err(&o);
    assert!(
        e.contains("HINT: your IP is not allowed by the registry's firewall"),
        "{e}"
    );
    // The failure names the side, the registry, the operation and the status.
    assert!(e.contains("the target side failed: "), "{e}");
    assert!(e.contains(&w.target.login_server()), "{e}");
    assert!(e.contains("HTTP 403"), "{e}");
    assert!(
        e.contains("203.0.113.0/24"),
        "the rules are summarized: {e}"
    );
    assert!(
        e.contains("az acr show --query networkRuleSet --name targetreg"),
        "{e}"
    );
    // Seen from inside the firewall: nothing was imported.
    w.target.set_firewall(false);
    assert!(w.target_digest("tool", "1").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_permissions_preflight_names_the_role_and_the_command() {
    let w = ArmWorld::start_with(ArmWorldOptions::with_arm(|b| {
        importer_cannot_read_permissions(pusher_roles(b))
    }))
    .await
    .expect("world");
    let id = w.source_id();
    let args = ["--source", "app:v1", "-r", &id, "--preflight-only"];
    let o = import(&w, PUSHER, &args).await;
    assert_exit(&o, 3);
    let oid = w.aad.object_id(PUSHER.0).unwrap();
    for want in [
        "importImage/action",
        &format!(
            "az role assignment create --assignee {oid} --role \"Container Registry Data Importer and Data Reader\" --scope {}",
            w.target_id()
        ),
    ] {
        assert_stdout_has(&o, want);
    }
    // A caller who may not read its permissions: "cannot tell", and the import goes ahead.
    let o = import(&w, IMPORTER, &args[..4]).await;
    assert_exit(&o, 0);
    assert_stderr_has(&o, "preflight cannot tell");
    assert_stderr_has(&o, "may not read its own permissions");
    w.assert_target_tag("app", "v1", &w.app_v1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_side_with_azure_ad_into_a_registry_that_refuses_arm_tokens() {
    let w = ArmWorld::start_with(ArmWorldOptions::pusher_and_a_target_without_arm_tokens())
        .await
        .expect("world");
    let tagged = |tag: &'static str, audience: Option<&'static str>| {
        let mut args = vec!["--source", "app:v1", "-r", "sourcereg", "--mode", "client"];
        args.extend(["-t", tag]);
        if let Some(a) = audience {
            args.extend(["--acr-audience", a]);
        }
        args
    };
    // The ARM audience, asked for, is refused by this registry: the preflight reads the
    // registry's policy and says so before anything moves.
    let o = import(&w, PUSHER, &tagged("mirror:arm", Some("arm"))).await;
    assert_exit(&o, 3);
    assert_stderr_has(&o, "accepts only ACR-audience");
    assert_stderr_has(&o, "drop --acr-audience arm");
    assert!(w.target_digest("mirror", "arm").await.is_none());
    // The default asks for the ACR audience: accepted.
    let o = import(&w, PUSHER, &tagged("mirror:v1", None)).await;
    assert_exit(&o, 0);
    w.assert_target_tag("mirror", "v1", &w.app_v1).await;
    // Where ARM tokens are accepted and asked for, ARM and the registries share one Azure AD
    // token: one request for the scope in the run.
    w.arm
        .update_registry("targetreg", |r| r.authentication_as_arm = true);
    let arm_scope = |w: &ArmWorld| {
        w.aad
            .requests()
            .iter()
            .filter(|r| r.scope.as_deref() == Some("https://management.azure.com/.default"))
            .count()
    };
    let before = arm_scope(&w);
    let o = import(&w, PUSHER, &tagged("mirror:v2", Some("arm"))).await;
    assert_exit(&o, 0);
    assert_eq!(
        arm_scope(&w) - before,
        1,
        "one Azure AD token request per run"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_subscription_comes_from_a_resource_id_target() {
    // The importer sees two subscriptions: without --subscription, a name is ambiguous, but a
    // resource-ID target names its subscription.
    let w = ArmWorld::start().await.expect("world");
    let id = w.source_id();
    let run = |target: String| {
        let args = ["import", "-n", &target, "--source", "app:v2", "-r", &id];
        output(command_without_subscription(&w, IMPORTER, args))
    };
    let o = run("targetreg".into()).await;
    assert_exit(&o, 2);
    assert_stderr_has(&o, "--subscription");
    let o = run(w.target_id()).await;
    assert_exit(&o, 0);
    w.assert_target_tag("app", "v2", &w.app_v2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupting_a_server_side_import_says_it_runs_on() {
    let w = ArmWorld::start().await.expect("world");
    w.arm.set_stalled(true);
    let id = w.source_id();
    let child = import_command(&w, IMPORTER, &["--source", "app:v1", "-r", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run acr");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while w.arm.import_bodies().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(w.arm.import_bodies().len(), 1, "the import was accepted");
    // Give the client a moment to read the 202 before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let o = child.wait_with_output().await.expect("wait");
    assert_eq!(code(&o), 130, "{}", err(&o));
    assert!(!err(&o).contains("no tag was moved"), "{}", err(&o));
    assert!(
        err(&o).contains("runs on in Azure") && err(&o).contains("acr import status https://"),
        "{}",
        err(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_entry_names_its_source_registry_like_registry_does() {
    let w = ArmWorld::start().await.expect("world");
    // Client-side, the importer reads the source with its Azure AD identity.
    w.source
        .set_role(IMPORTER.0, Some(acr_import_testsupport::AcrRole::Pull));
    let batch = format!(
        "- source: app:v1\n  registry: sourcereg\n  images: [batch/app:v1]\n- source: app:v2\n  registry: {}\n  images: [batch/app:v2]\n",
        w.source_id()
    );
    let file = write_file(&w.dir(), "batch.yaml", &batch);
    let o = import_with_target_admin(&w, IMPORTER, &["--from-file", &file]).await;
    assert_exit(&o, 0);
    w.assert_target_tag("batch/app", "v1", &w.app_v1).await;
    w.assert_target_tag("batch/app", "v2", &w.app_v2).await;
}

/// A mirror into an ACR through ARM runs server-side: one `importImage` per copy, at most 8
/// running at once, started only as fast as ARM's write throttling allows (no write left: a
/// pause; `429`: the operation waits its `Retry-After` and is started again), polled together.
#[tokio::test(flavor = "multi_thread")]
async fn a_mirror_fans_out_server_side_within_the_bound_and_arm_throttling() {
    let w = ArmWorld::start().await.expect("world");
    let seed = acr_import_transfer::Transport::builder()
        .proxy_from_env(false)
        .build()
        .unwrap();
    let mut digests = std::collections::BTreeMap::new();
    for i in 0..12u64 {
        let m = acr_import_tests::world::push_image(
            &seed,
            &w.external.host(),
            "lib/many",
            &format!("1.{i}"),
            500 + i,
        )
        .await
        .unwrap();
        digests.insert(format!("1.{i}"), m.digest.to_string());
    }
    let write_file = |target: &str| {
        let entry = format!(
            "- source: {}/lib/many\n  target: {target}\n",
            w.external.host()
        );
        write_file(&w.dir(), "mirror.yaml", &entry)
    };
    // A dry run starts no operation and writes no tag: it reports what would be imported.
    let file = write_file("mirror/dry");
    // The plan reads the target's tags with the admin user (the importer's role lets it start
    // imports, not read the registry's data).
    let mirror = |extra: &[&'static str]| {
        [
            ["--from-file", file.as_str(), "--mode", "server"].as_slice(),
            extra,
        ]
        .concat()
    };
    let o = import_with_target_admin(&w, IMPORTER, &mirror(&["--dry-run", "-o", "json"])).await;
    assert_exit(&o, 0);
    assert_eq!(w.arm.count("POST", "/importImage"), 0);
    let report = json(&o);
    assert_eq!(report["dry_run"], true, "{report}");
    let tags = report["tags"].as_array().expect("tags");
    assert_eq!(tags.len(), 12, "{report}");
    assert!(tags.iter().all(|t| t["result"] == "would_copy"), "{report}");
    assert!(w.target_digest("mirror/dry", "1.0").await.is_none());

    // Unthrottled: 8 operations run at once, no more.
    write_file("mirror/bound");
    let o = import_with_target_admin(&w, IMPORTER, &mirror(&[])).await;
    assert_exit(&o, 0);
    assert_eq!(w.arm.max_running_imports(), 8);

    // Throttled: 5 writes per 3 s.
    w.arm.set_write_budget(5, Duration::from_secs(3));
    let before = w.arm.count("POST", "/importImage");
    write_file("mirror/many");
    let o = import_with_target_admin(&w, IMPORTER, &mirror(&["-o", "json"])).await;
    assert_exit(&o, 0);
    let report = json(&o);
    assert_eq!(report["engine"], "server");
    assert_eq!(report["entries"][0]["copied"], 12, "{report}");
    for (tag, digest) in &digests {
        w.assert_target_tag("mirror/many", tag, digest).await;
    }
    let posts: Vec<_> = w
        .arm
        .requests_matching("POST", "/importImage")
        .into_iter()
        .skip(before)
        .collect();
    let throttled: Vec<usize> = (0..posts.len())
        .filter(|&i| posts[i].status == 429)
        .collect();
    assert_eq!(posts.len() - throttled.len(), 12, "{posts:?}");
    eprintln!(
        "{} imports, {} POSTs answered 429",
        posts.len() - throttled.len(),
        throttled.len()
    );
    // The client stopped when ARM said no write was left, and waited out each 429.
    assert!(throttled.len() <= 3, "{} throttled POSTs", throttled.len());
    for &i in &throttled {
        if let Some(next) = posts.get(i + 1) {
            let waited = next.at.duration_since(posts[i].at);
            assert!(
                waited >= Duration::from_millis(900),
                "started again {waited:?} after a 429"
            );
        }
    }

    // Nothing changed: the re-run looks, and starts no import.
    let before = w.arm.count("POST", "/importImage");
    let o = import_with_target_admin(&w, IMPORTER, &mirror(&[])).await;
    assert_exit(&o, 0);
    assert_eq!(w.arm.count("POST", "/importImage"), before);
    // The target's tags were read from ACR's listing with digests, once.
    assert_eq!(
        w.target
            .requests()
            .iter()
            .filter(|r| r.path == "/acr/v1/mirror/many/_tags" && r.status != 401)
            .count(),
        2,
        "one listing per run (besides the challenge that asks for a token)"
    );
}

/// `lib/tool:1` of the world's external registry signed with a new cosign key: a handle on
/// that registry, the image's digest and the key.
async fn sign_external_tool(
    w: &ArmWorld,
) -> (
    acr_import_transfer::Registry,
    acr_import_reference::Digest,
    acr_import_testsupport::cosign::CosignKey,
) {
    use acr_import_testsupport::cosign::{self, CosignKey};
    use acr_import_testsupport::seed::{Seeder, push_artifact};

    let t = acr_import_transfer::Transport::builder()
        .proxy_from_env(false)
        .build()
        .expect("transport");
    let external = t.registry(&w.external.host()).expect("registry");
    let image = external
        .head_manifest(&"lib/tool".repo(), &"1".at())
        .await
        .expect("head")
        .and_then(|h| h.digest)
        .expect("the seeded image");
    let key = CosignKey::generate().expect("key");
    let sig = cosign::signature(&key, "lib/tool", image.as_str()).expect("sign");
    push_artifact(
        &Seeder::new(&w.external.host()).expect("seeder"),
        "lib/tool",
        &sig,
    )
    .await
    .expect("push the signature");
    (external, image, key)
}

/// Asserts that the target's `repo` holds the signature [`sign_external_tool`] made: the
/// source's `.sig` manifest byte for byte, verifying with the key.
async fn assert_signature_copied(
    w: &ArmWorld,
    (external, image, key): &(
        acr_import_transfer::Registry,
        acr_import_reference::Digest,
        acr_import_testsupport::cosign::CosignKey,
    ),
    repo: &str,
) {
    use acr_import_tests::signatures::signature_verifies;

    let target = w
        .admin()
        .registry(&w.target.login_server())
        .expect("target");
    let tag = acr_import_testsupport::cosign::digest_tag(image.as_str(), "sig");
    assert_eq!(
        target
            .get_manifest(&repo.repo(), &tag.at())
            .await
            .expect("the .sig"),
        external
            .get_manifest(&"lib/tool".repo(), &tag.at())
            .await
            .expect("source"),
        "byte for byte"
    );
    signature_verifies(&target, repo, image.as_str(), key)
        .await
        .expect("the signature verifies on the target");
}

/// A server-side mirror is followed by the images' signatures, copied from this machine.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_side_mirror_is_followed_by_the_signatures() {
    let w = ArmWorld::start().await.expect("world");
    // The image outside Azure is signed with cosign; importImage copies the image only.
    let signed = sign_external_tool(&w).await;
    let entry = format!(
        "- source: {}/lib/tool:1\n  images: [mirror/tool:1]\n",
        w.external.host()
    );
    let file = write_file(&w.dir(), "signed.yaml", &entry);
    let args = ["--from-file", &file, "--mode", "server", "-o", "json"];
    let o = import_with_target_admin(&w, IMPORTER, &args).await;
    assert_exit(&o, 0);
    assert_eq!(w.arm.import_bodies().len(), 1, "the image went server-side");
    let report = json(&o);
    assert_eq!(report["engine"], "server");
    assert_eq!(report["copies"][0]["followed"]["signatures"], 1, "{report}");
    // The signature's manifest was read from the source here: a pull, in the entry's row too.
    assert_eq!(report["entries"][0]["source_pulls"], 1, "{report}");
    assert_signature_copied(&w, &signed, "mirror/tool").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_imports_are_followed_by_their_signatures_client_side() {
    let w = ArmWorld::start().await.expect("world");
    // The image outside Azure is signed with cosign; importImage copies the image only.
    let signed = sign_external_tool(&w).await;
    let src = format!("{}/lib/tool:1", w.external.host());
    let args = ["--source", &src, "-t", "tool:1", "--mode", "server"];
    let o = import_with_target_admin(&w, IMPORTER, &args).await;
    assert_exit(&o, 0);
    assert!(
        err(&o).contains("then the signatures, attestations and SBOMs"),
        "the plan says so: {}",
        err(&o)
    );
    assert!(
        out(&o).contains("server-side") && out(&o).contains("client-side: followed: 1 signature"),
        "{}",
        out(&o)
    );
    assert_eq!(w.arm.import_bodies().len(), 1);
    assert_signature_copied(&w, &signed, "tool").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_side_import_says_what_stayed_behind_when_this_machine_cannot_read_the_source() {
    use acr_import_testsupport::{FaultAction, FaultRule, Proxy, ProxyOptions};

    let w = ArmWorld::start().await.expect("world");
    // The source lets the import service read the image, but refuses this machine what only
    // it asks for (the referrers, the tag list, the digest tags), with ACR's firewall answer.
    let firewall = FaultAction::Respond {
        status: 403,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: bytes::Bytes::from_static(
            br#"{"errors":[{"code":"DENIED","message":"client with IP '203.0.113.9' is not allowed access. Refer https://aka.ms/acr/firewall to grant access."}]}"#,
        ),
    };
    let proxy = Proxy::start(
        w.external.addr(),
        ProxyOptions::with_rules([FaultRule::new(firewall).path_matches(|p| {
            p.contains("/referrers/") || p.contains("/tags/list") || p.contains("/sha256-")
        })]),
    )
    .await
    .expect("proxy");
    let src = format!("{}/lib/tool:1", proxy.host());
    let args = [
        "--source", &src, "-t", "tool:1", "--mode", "server", "-o", "json",
    ];
    let o = import_with_target_admin(&w, IMPORTER, &args).await;
    assert_exit(&o, 0);
    let e = err(&o);
    assert!(
        e.contains(&format!(
            "WARNING: signatures, attestations and SBOMs of {src}"
        )) && e.contains("were not followed: this machine could not use the source registry")
            && e.contains("stayed behind"),
        "{e}"
    );
    let v = json(&o);
    assert_eq!(v["engine"], "server");
    assert!(
        v["followers"]["left-behind"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("source") && r.contains("403")),
        "{v}"
    );
    assert!(
        w.target_digest("tool", "1").await.is_some(),
        "the image itself was imported"
    );
}
