//! The `acr` binary against real registries: flags, formats, exit codes, signals.

use std::process::{Command, Stdio};
use std::time::Duration;

use acr_import_testsupport::seed::Seeder;
use acr_import_testsupport::{FaultAction, FaultRule, Proxy, ProxyOptions, Registry, TokenServer};

mod common;
use common::{
    ACR, Acr, acr, assert_contains_all, interrupt, json, rt, seed, seed_with, seeded_pair,
    show_tags, stalling_blobs, start_both, stderr, stdout, temp_file, token_source_and_target,
    wait_until, write_file,
};

/// The source stalling every blob download after 1000 bytes, for 30 s.
fn stalled(rt: &tokio::runtime::Runtime, src: &Registry) -> Proxy {
    stalling_blobs(rt, src, Duration::from_secs(30), Some(1000))
}

/// The import of `plain`'s `app:v1` into `reg` as `app:v1`, signed in to `reg` as `user`
/// through the target's environment variables.
fn import_as_target_user(plain: &Registry, reg: &Registry, user: (&str, &str)) -> Acr {
    Acr::import(&reg.host(), &format!("{}/app:v1", plain.host()))
        .images(&["app:v1"])
        .env("ACR_IMPORT_TARGET_USERNAME", user.0)
        .env("ACR_IMPORT_TARGET_PASSWORD", user.1)
}

#[test]
fn import_summary_formats_and_listing() {
    let rt = rt();
    let (src, dst) = seeded_pair(&rt, &[("app", "v1", 1)]);
    let source = format!("{}/app:v1", src.host());
    let import = Acr::import(&dst.host(), &source);
    let o = import.clone().images(&["app:v1", "app:stable"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!(
            "imported {source} → {}/app:v1 (2 blobs: 2 copied, 0 mounted, 0 skipped,",
            dst.host()
        )),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}') && !stderr(&o).contains('\u{1b}'),
        "no control characters off a terminal"
    );

    // Again: nothing to do, and the summary says so.
    let again = import.images(&["app:v1"]);
    let o = again.run();
    assert_eq!(
        stdout(&o).trim_end(),
        format!(
            "{source} → {}/app:v1: up to date (2 blobs already there)",
            dst.host()
        )
    );
    let o = again.clone().format("json").run();
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["up_to_date"], true);
    assert!(report["digest"].as_str().unwrap().starts_with("sha256:"));
    let o = again.clone().format("yaml").run();
    assert!(stdout(&o).contains("up_to_date: true"), "{}", stdout(&o));
    let o = again.format("none").run();
    assert!(o.status.success() && o.stdout.is_empty());

    let o = show_tags(&dst.host(), "app");
    assert_eq!(
        serde_json::from_slice::<Vec<String>>(&o.stdout).unwrap(),
        ["stable", "v1"]
    );
    let o = Acr::on_repository(&["repository", "show-manifests"], &dst.host(), "app").run();
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows[0]["tags"], serde_json::json!(["stable", "v1"]));
    assert!(
        rows[0].get("timestamp").is_some(),
        "az's shape: digest, tags, timestamp"
    );
    let o = Acr::on_repository(&["manifest", "list-metadata"], &dst.host(), "app")
        .args(&["--detail"])
        .format("table")
        .run();
    let table = stdout(&o);
    assert!(
        table.lines().next().unwrap().starts_with("Digest"),
        "{table}"
    );
    assert!(table.contains("amd64"), "{table}");
    let o = acr(&["repository", "list", "-n", &dst.host(), "-o", "tsv"]);
    assert_eq!(stdout(&o).trim(), "app");

    let o = acr(&["completion", "bash"]);
    assert!(stdout(&o).contains("_acr()"));
}

#[test]
fn usage_errors_conflicts_and_force() {
    let rt = rt();
    let (src, dst) = seeded_pair(&rt, &[("app", "v1", 2), ("app", "v2", 3)]);
    assert_eq!(acr(&["import", "-n", &dst.host()]).status.code(), Some(2));
    let o = Acr::import("my_registry", "x/y:1").run();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("ERROR: `my_registry` is not a valid registry name"),
        "{}",
        stderr(&o)
    );
    let o = Acr::import(&dst.host(), "Nginx:latest").run();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("use `nginx`"), "{}", stderr(&o));
    let o = Acr::import(&dst.host(), "x/y")
        .args(&["-u", "someone"])
        .run();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("Please provide password"));

    let v1 = format!("{}/app:v1", src.host());
    let v2 = format!("{}/app:v2", src.host());
    let prod = |source: &str| Acr::import(&dst.host(), source).images(&["app:prod"]);
    assert!(prod(&v1).run().status.success());
    let o = prod(&v2).run();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = prod(&v2).args(&["--force", "false"]).run();
    assert_eq!(o.status.code(), Some(1));
    let o = prod(&v2).args(&["--force"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let o = Acr::import(&dst.host(), &v1)
        .images(&["dry:run"])
        .args(&["--dry-run"])
        .format("json")
        .run();
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["dry_run"], true);
    let o = show_tags(&dst.host(), "dry");
    assert_ne!(o.status.code(), Some(0), "a dry run writes nothing");
}

#[test]
fn credentials_from_stdin_warning_for_p_and_auth_exit_code() {
    let rt = rt();
    let (src, dst) = start_both(
        &rt,
        Registry::builder().htpasswd(&[("alice", "pa55-word")]),
        Registry::builder(),
    );
    // Seed through a plain registry, then copy into the authenticated one with target env creds.
    let plain = rt.block_on(Registry::start()).unwrap();
    seed(&plain, "app", "v1", 4);
    import_as_target_user(&plain, &src, ("alice", "pa55-word")).run_ok();

    let source = format!("{}/app:v1", src.host());
    let to = |image: &str| Acr::import(&dst.host(), &source).images(&[image]);
    let o = to("app:v1")
        .args(&["-u", "alice", "--password-stdin", "--debug"])
        .stdin("pa55-word")
        .run_ok();
    assert!(
        !stderr(&o).contains("pa55-word") && !stdout(&o).contains("pa55-word"),
        "the secret never appears, even with --debug"
    );
    assert!(!stderr(&o).contains("WARNING"));

    let o = to("app:v2")
        .args(&["-u", "alice", "-p", "pa55-word"])
        .run_ok();
    assert!(
        stderr(&o).contains("WARNING: a password on the command line"),
        "{}",
        stderr(&o)
    );

    let o = to("app:v3").args(&["-u", "alice", "-p", "wrong"]).run();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(!stderr(&o).contains("wrong"), "{}", stderr(&o));
    let o = to("app:v3").run();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("HINT:"), "{}", stderr(&o));
}

#[test]
fn batch_file_reports_every_entry_and_fails_on_one() {
    let rt = rt();
    let (src, dst) = seeded_pair(&rt, &[("a", "v1", 5), ("b", "v1", 6)]);
    let (_dir, file) = temp_file(
        "mirror.yaml",
        &format!(
            "- source: {h}/a:v1\n  images: [mirror/a:v1]\n- source: {h}/b:v1\n  repositories: [mirror/b]\n- source: {h}/missing:v1\n",
            h = src.host()
        ),
    );
    let o = Acr::batch(&dst.host(), &file).run();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let table = stdout(&o);
    assert_eq!(
        table.lines().filter(|l| l.contains("imported")).count(),
        2,
        "{table}"
    );
    assert!(table.contains("FAILED"), "{table}");
    assert!(
        stderr(&o).contains("1 of 3 entries failed"),
        "{}",
        stderr(&o)
    );
    let o = show_tags(&dst.host(), "mirror/a");
    assert!(stdout(&o).contains("v1"));
}

#[test]
fn interrupt_mid_copy_exits_130_and_moves_no_tag() {
    let rt = rt();
    let (src, dst) = seeded_pair(&rt, &[("app", "v1", 7)]);
    // The source's blob downloads stall: the copy is mid-flight when the signal comes.
    let slow = stalled(&rt, &src);
    let child = Acr::import(&dst.host(), &format!("{}/app:v1", slow.host()))
        .images(&["app:v1"])
        .spawn();
    let reached = || slow.count("GET", "/blobs/") > 0;
    wait_until(Duration::from_secs(20), Duration::from_millis(50), reached);
    assert!(reached(), "the copy reached the blobs");
    let o = interrupt(child);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("no tag was moved"));
    let o = show_tags(&dst.host(), "app");
    assert!(!stdout(&o).contains("v1"), "no tag moved: {}", stdout(&o));
}

#[test]
fn trace_logs_carry_no_secret() {
    let rt = rt();
    let (tokens, src, dst) = token_source_and_target(&rt, TokenServer::builder().default_users());
    let plain = rt.block_on(Registry::start()).unwrap();
    seed(&plain, "app", "v1", 9);
    let o = import_as_target_user(&plain, &src, ("alice", "s3cret"))
        .env("RUST_LOG", "trace")
        .run_ok();
    let mut all = stdout(&o) + &stderr(&o);
    let o = Acr::import(&dst.host(), &format!("{}/app:v1", src.host()))
        .images(&["app:v1"])
        .args(&["-u", "alice", "--password-stdin"])
        .format("json")
        .env("RUST_LOG", "trace")
        .stdin("s3cret")
        .run_ok();
    all += &(stdout(&o) + &stderr(&o));
    assert!(all.len() > 1000, "trace logging is on: {} bytes", all.len());
    assert!(tokens.request_count() >= 2, "tokens were issued");
    for secret in ["s3cret", "eyJ", "Basic YWxp", "Bearer ey"] {
        assert!(!all.contains(secret), "`{secret}` leaked into the output");
    }
}

/// Seeds `repo:tag` in an authenticated registry as `user`.
fn seed_as(reg: &Registry, user: (&str, &str), repo: &str, tag: &str, n: u8) {
    seed_with(
        Seeder::new(&reg.host()).unwrap().basic(user.0, user.1),
        repo,
        tag,
        n,
    );
}

#[test]
fn batch_entries_on_one_host_keep_their_own_credentials() {
    use acr_import_testsupport::Grant;
    let rt = rt();
    // ann may read team-a only, bob team-b only: each entry works only with its own
    // credentials.
    let (_tokens, src, dst) = token_source_and_target(
        &rt,
        TokenServer::builder()
            .default_users()
            .user("ann", "ann-pw", [Grant::repository("team-a", &["pull"])])
            .user("bob", "bob-pw", [Grant::repository("team-b", &["pull"])]),
    );
    seed_as(&src, TokenServer::ALICE, "team-a", "v1", 11);
    seed_as(&src, TokenServer::ALICE, "team-b", "v1", 12);
    let dir = tempfile::tempdir().unwrap();
    let batch = |text: String| {
        let file = write_file(dir.path(), "batch.yaml", &text);
        Acr::batch(&dst.host(), &file)
            .env("ANN_USERNAME", "ann")
            .env("ANN_PASSWORD", "ann-pw")
            .env("BOB_USERNAME", "bob")
            .env("BOB_PASSWORD", "bob-pw")
            .run()
    };
    let o = batch(format!(
        "- source: {h}/team-a:v1\n  credentials-env: ANN\n- source: {h}/team-b:v1\n  credentials-env: BOB\n",
        h = src.host()
    ));
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    for repo in ["team-a", "team-b"] {
        let o = show_tags(&dst.host(), repo);
        assert!(stdout(&o).contains("v1"), "{repo}: {}", stdout(&o));
    }
    // One repository read with two different credentials: refused before anything runs.
    let o = batch(format!(
        "- source: {h}/team-a:v1\n  credentials-env: ANN\n- source: {h}/team-a:v1\n  images: [copy:v1]\n  credentials-env: BOB\n",
        h = src.host()
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("different credentials"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("-pw"), "{}", stderr(&o));
}

#[test]
fn interrupt_after_some_entries_names_the_tags_they_moved() {
    let rt = rt();
    let (src, dst) = seeded_pair(&rt, &[("fast", "v1", 13), ("slow", "v1", 14)]);
    let slow = stalled(&rt, &src);
    let (_dir, file) = temp_file(
        "batch.yaml",
        &format!(
            "- source: {}/fast:v1\n  images: [fast:v1]\n- source: {}/slow:v1\n  images: [slow:v1]\n",
            src.host(),
            slow.host()
        ),
    );
    let child = Acr::batch(&dst.host(), &file).spawn();
    let tagged = || stdout(&show_tags(&dst.host(), "fast")).contains("v1");
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        tagged() && slow.count("GET", "/blobs/") > 0
    });
    assert!(tagged(), "the fast entry finished");
    let o = interrupt(child);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("no tag was moved"), "{err}");
    assert!(
        err.contains(&format!("{}/fast:v1", dst.host())),
        "names the tag that moved: {err}"
    );
    assert!(!err.contains("slow:v1"), "{err}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_without_a_backtrace() {
    // `acr completion bash | head -1`: the reader is gone before the script is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(ACR)
        .args(["completion", "bash"])
        .env("RUST_BACKTRACE", "1")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn a_target_that_wants_a_login_gets_the_target_hint() {
    let rt = rt();
    let (src, dst) = start_both(
        &rt,
        Registry::builder(),
        Registry::builder().htpasswd(&[("alice", "pa55-word")]),
    );
    seed(&src, "app", "v1", 15);
    let err = Acr::import(&dst.host(), &format!("{}/app:v1", src.host())).expect_exit(4);
    assert!(
        err.starts_with("ERROR: the target side failed"),
        "which side refused: {err}"
    );
    assert!(err.contains(&dst.host()), "which registry: {err}");
    let hint = err
        .lines()
        .find(|l| l.starts_with("HINT:"))
        .unwrap_or_default();
    assert!(hint.contains("docker login"), "{err}");
    assert!(hint.contains("ACR_IMPORT_TARGET_USERNAME"), "{err}");
    assert!(!err.contains("--username"), "no source advice: {err}");
}

#[test]
fn an_unreachable_registry_fails_without_retries_naming_side_registry_and_operation() {
    // Nothing listens on a port we held and let go; a name under .invalid never resolves.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dst = rt().block_on(Registry::start()).unwrap();
    for (source, host, why) in [
        (
            format!("127.0.0.1:{port}/app:v1"),
            format!("127.0.0.1:{port}"),
            "nothing listens there",
        ),
        (
            "registry.invalid/app:v1".to_owned(),
            "registry.invalid".to_owned(),
            "does not resolve",
        ),
    ] {
        let err = Acr::import(&dst.host(), &source).expect_exit(1);
        assert!(
            err.starts_with(&format!(
                "ERROR: the source side failed: manifest fetch on {host}/app:v1"
            )),
            "{err}"
        );
        assert!(err.contains(why), "{err}");
        // Retrying cannot help, so nothing was retried (it took 14 s of retries before).
        assert!(!err.contains("retried"), "{err}");
    }
}

#[test]
fn a_timeout_keeps_the_failure_it_was_retrying() {
    let rt = rt();
    let (src, dst) = seeded_pair(&rt, &[("app", "v1", 16)]);
    // The source answers 503 to every manifest request: retried until the timeout.
    let busy = rt
        .block_on(Proxy::start(
            src.addr(),
            ProxyOptions::with_rules([FaultRule::new(FaultAction::Respond {
                status: 503,
                headers: vec![("Retry-After".into(), "1".into())],
                body: bytes::Bytes::new(),
            })
            .path_contains("/manifests/")
            .every()]),
        ))
        .unwrap();
    let err = Acr::import(&dst.host(), &format!("{}/app:v1", busy.host()))
        .args(&["--timeout", "1"])
        .expect_exit(1);
    assert!(err.contains("did not finish within 1 s"), "{err}");
    assert!(err.contains("no tag was moved"), "{err}");
    // The source is resolved with a HEAD first: that is the request being retried.
    assert!(
        err.contains("it was retrying after: HEAD") && err.contains("HTTP 503"),
        "the cause: {err}"
    );
}

#[test]
fn debug_shows_each_request_and_no_chatter() {
    let rt = rt();
    let (src, dst) = seeded_pair(&rt, &[("app", "v1", 17)]);
    let o = Acr::import(&dst.host(), &format!("{}/app:v1", src.host()))
        .args(&["--debug"])
        .run_ok();
    let err = stderr(&o);
    // The source is resolved with a HEAD, then read by digest.
    let manifest = format!("HEAD http://{}/v2/app/manifests/v1 → 200 in ", src.host());
    assert!(err.contains(&manifest), "{err}");
    let by_digest = format!("GET http://{}/v2/app/manifests/sha256:", src.host());
    assert!(err.contains(&by_digest), "{err}");
    let put = format!("PUT http://{}/v2/app/manifests/v1 → 201 in ", dst.host());
    assert!(err.contains(&put), "{err}");
    // Upload sessions carry state in their query: never printed.
    assert!(!err.contains("_state="), "{err}");
    for chatter in ["credential chosen", "hyper_util", "pooling", "rustls"] {
        assert!(!err.contains(chatter), "`{chatter}` in: {err}");
    }
}

#[test]
fn a_digest_is_no_target_tag() {
    let hex = "0123456789abcdef".repeat(4);
    let err = Acr::import("127.0.0.1:1", "127.0.0.1:2/app:v1")
        .images(&[&format!("x@sha256:{hex}")])
        .expect_exit(2);
    assert!(
        err.starts_with(&format!(
            "ERROR: --image `x@sha256:{hex}` names a digest: a target is repo[:tag]"
        )),
        "{err}"
    );
    assert!(err.contains("HINT: to copy by digest without a tag, use --repository x"));
}

#[test]
fn reference_errors_carry_only_advice_that_fits() {
    let o = Acr::import("127.0.0.1:1", "Nginx:latest").run();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim_end(),
        "ERROR: --source `Nginx:latest`: repository name must be lowercase: `Nginx` at position 0; use `nginx`"
    );
    let o = Acr::import("127.0.0.1:1", "app@sha256:abc").run();
    assert!(!stderr(&o).contains("--registry"), "{}", stderr(&o));
    // Where the reference names no repository, pointing at a full reference fits.
    let o = Acr::import("127.0.0.1:1", ":v1").run();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("give a full reference"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_import_table_has_a_row_per_target_and_batches_keep_file_order() {
    let rt = rt();
    let (src, dst) = seeded_pair(&rt, &[("app", "v1", 18)]);
    let source = format!("{}/app:v1", src.host());
    let o = Acr::import(&dst.host(), &source)
        .images(&["app:v1", "app:stable"])
        .args(&["--repository", "pinned"])
        .format("table")
        .run_ok();
    let table = stdout(&o);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].split_whitespace().eq([
            "Source", "Target", "Result", "Digest", "Copied", "Mounted", "Skipped", "Bytes",
            "Pulls"
        ]),
        "{table}"
    );
    assert_eq!(
        lines.len(),
        5,
        "a header, a rule and a row per target: {table}"
    );
    let h = dst.host();
    assert!(lines[2].contains(&format!("{h}/app:v1 ")), "{table}");
    assert!(lines[3].contains(&format!("{h}/app:stable ")), "{table}");
    assert!(lines[4].contains(&format!("{h}/pinned@sha256:")), "{table}");
    assert!(lines[2].contains("imported"), "{table}");
    assert!(
        !table.contains('{') && !table.contains('['),
        "no JSON in cells: {table}"
    );

    // A batch: rows in file order, whichever entry finishes first.
    for (i, repo) in ["b", "c", "d", "e"].iter().enumerate() {
        seed(&src, repo, "v1", 20 + i as u8);
    }
    let order = ["e", "b", "d", "c"];
    let yaml: String = order
        .iter()
        .map(|r| format!("- source: {}/{r}:v1\n", src.host()))
        .collect();
    let (_dir, file) = temp_file("batch.yaml", &yaml);
    let o = Acr::batch(&dst.host(), &file).format("tsv").run_ok();
    let sources: Vec<String> = stdout(&o)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = order
        .iter()
        .map(|r| format!("{}/{r}:v1", src.host()))
        .collect();
    assert_eq!(sources, expected);
}

#[test]
fn usage_errors_speak_one_voice_and_name_everything_missing() {
    let o = acr(&["import"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).lines().next().unwrap_or_default(),
        "ERROR: the following arguments are required: --name/-n, --source"
    );
    for (flag, value) in [("--jobs", "0"), ("--timeout", "0")] {
        let o = Acr::import("127.0.0.1:1", "x/y:1")
            .args(&[flag, value])
            .run();
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with(&format!("ERROR: invalid value '0' for '{flag}")),
            "{}",
            stderr(&o)
        );
    }
    let o = acr(&["import", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("ERROR: unexpected argument '--bogus'"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("error:"), "{}", stderr(&o));
    let o = acr(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("acr "), "{}", stdout(&o));
}

/// Pushes a one-layer image per platform (an index over them when there are several) to
/// `repo:tag` through `reg`.
async fn publish(reg: &Seeder, repo: &str, tag: &str, seed: u8, platforms: &[&str]) {
    use acr_import_testsupport::seed::{Blob, image, index};
    let mut children = Vec::new();
    for (i, arch) in platforms.iter().enumerate() {
        let layer = Blob::layer(u64::from(seed) * 100 + i as u64, 20_000);
        children.push(
            image(reg, repo, "linux", arch, &[&layer], false)
                .await
                .unwrap(),
        );
    }
    if let [only] = children.as_slice() {
        reg.put_manifest(repo, tag, only).await.unwrap();
        return;
    }
    let names: Vec<String> = platforms.iter().map(|a| format!("linux/{a}")).collect();
    let entries: Vec<_> = children
        .iter()
        .zip(&names)
        .map(|(m, p)| (m, Some(p.as_str()), None))
        .collect();
    index(reg, repo, Some(tag), &entries, false).await.unwrap();
}

/// Each entry's source pulls in a mirror report.
fn entry_pulls(report: &serde_json::Value) -> Vec<u64> {
    report["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["source_pulls"].as_u64().expect("source_pulls"))
        .collect()
}

/// Docker Hub's personality with an anonymous budget of `budget` pulls an hour, and a target.
fn docker_hub_and_target(
    rt: &tokio::runtime::Runtime,
    budget: u64,
) -> (acr_import_testsupport::Personality, Registry) {
    use acr_import_testsupport::{Kind, Personality};
    let (hub, dst) = rt.block_on(async {
        tokio::join!(
            Personality::builder(Kind::DockerHub)
                .anonymous_budget(budget, Duration::from_secs(3600))
                .start(),
            Registry::start()
        )
    });
    (hub.unwrap(), dst.unwrap())
}

/// Issue #15's scenario: a budget of 10 anonymous pulls on Docker Hub's personality.
#[test]
fn docker_hub_budget_first_import_unchanged_mirror_spent_budget_and_a_token() {
    use acr_import_testsupport::Kind;
    let rt = rt();
    let (hub, dst) = docker_hub_and_target(&rt, 10);
    let (user, token) = Kind::DockerHub.credentials().unwrap();
    let publisher = hub.seeder().unwrap();
    let images: Vec<String> = (0..13).map(|i| format!("library/img{i}")).collect();
    rt.block_on(async {
        publish(
            &publisher,
            "library/app",
            "v1",
            1,
            &["amd64", "arm64", "s390x"],
        )
        .await;
        publish(&publisher, "library/new", "v1", 2, &["amd64"]).await;
        for (i, repo) in images.iter().enumerate() {
            publish(&publisher, repo, "v1", 10 + i as u8, &["amd64"]).await;
        }
    });

    // A first import of a 3-platform image: at most 4 pulls.
    let app = format!("{}/library/app:v1", hub.host());
    let o = Acr::import(&dst.host(), &app).format("json").run_ok();
    assert_eq!(json(&o)["source_pulls"], 4);
    assert_eq!(hub.anonymous_pulls(), 4);

    // A 13-image mirror file, first run by a signed-in job (the target fills), then
    // re-run unchanged anonymously: 0 pulls, and it succeeds.
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, extra: &str| {
        let entries: String = images
            .iter()
            .map(|r| format!("- source: {}/{r}:v1\n{extra}", hub.host()))
            .collect();
        write_file(dir.path(), name, &entries)
    };
    let signed_in = write("signed-in.yaml", "  credentials-env: HUB\n");
    let o = Acr::batch(&dst.host(), &signed_in)
        .format("json")
        .env("HUB_USERNAME", user)
        .env("HUB_PASSWORD", token)
        .run_ok();
    let pulls = entry_pulls(&json(&o));
    assert!(pulls.iter().all(|p| *p == 1), "one per image: {pulls:?}");
    assert_eq!(
        hub.anonymous_pulls(),
        4,
        "the signed-in run spent no anonymous pull"
    );
    let mirror = write("mirror.yaml", "");
    let o = Acr::batch(&dst.host(), &mirror).format("json").run_ok();
    let report = json(&o);
    let up_to_date = report["tags"].as_array().unwrap().iter();
    assert_eq!(
        up_to_date.filter(|t| t["result"] == "up_to_date").count(),
        13
    );
    assert_eq!(entry_pulls(&report), [0; 13], "{report:#}");
    assert_eq!(
        hub.anonymous_pulls(),
        4,
        "the unchanged re-run spent nothing"
    );

    // The budget spent (by others behind the same address): a new image fails at once,
    // saying why and what to do, exit code 1, no tag.
    hub.spend_anonymous(6);
    let gets = hub.manifest_gets();
    let started = std::time::Instant::now();
    let new = format!("{}/library/new:v1", hub.host());
    let o = Acr::import(&dst.host(), &new).run();
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_contains_all(
        &stderr(&o),
        &[
            "this import needs 1 pull, 0 remain until",
            "a limit of 10 pulls per 1 h",
            "Docker Hub access token",
            "--platform",
            "--wait-rate-limit",
        ],
    );
    assert_eq!(hub.manifest_gets(), gets, "no manifest GET was sent");
    let o = show_tags(&dst.host(), "library/new");
    assert!(!stdout(&o).contains("v1"), "no tag: {}", stdout(&o));
    eprintln!("the refused import took {took:?}");

    // With a Docker Hub token it succeeds; the CDN origin serves the blobs and never sees
    // an Authorization header.
    hub.clear_requests();
    let o = Acr::import(&dst.host(), &new)
        .args(&["-u", user, "--password-stdin"])
        .format("json")
        .stdin(token)
        .run_ok();
    assert_eq!(json(&o)["source_pulls"], 1);
    assert!(!hub.cdn_requests().is_empty());
    assert!(!hub.cdn_saw_authorization(), "{:#?}", hub.cdn_requests());
}

/// `--wait-rate-limit`: the shortfall is said before any byte moves, then the import waits
/// for the reset with a countdown instead of failing; interrupted, it moves no tag.
#[test]
fn wait_rate_limit_counts_down_instead_of_failing() {
    let rt = rt();
    let (hub, dst) = docker_hub_and_target(&rt, 2);
    let publisher = hub.seeder().unwrap();
    rt.block_on(publish(
        &publisher,
        "library/app",
        "v1",
        3,
        &["amd64", "arm64", "s390x"],
    ));
    let child = Acr::import(&dst.host(), &format!("{}/library/app:v1", hub.host()))
        .args(&["--wait-rate-limit"])
        .spawn();
    let refused = || hub.requests().iter().any(|r| r.status == Some(429));
    wait_until(Duration::from_secs(20), Duration::from_millis(50), refused);
    assert!(refused(), "the budget ran out mid-import");
    // A few seconds of countdown.
    std::thread::sleep(Duration::from_millis(2500));
    let o = interrupt(child);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(130),
        "still waiting when interrupted: {err}"
    );
    assert_contains_all(
        &err,
        &[
            "this import needs 3 pulls, 1 remains until",
            "waiting for the budget when it runs out (--wait-rate-limit)",
            "waiting for the rate limit to reset",
        ],
    );
    let o = show_tags(&dst.host(), "library/app");
    assert!(!stdout(&o).contains("v1"), "no tag moved: {}", stdout(&o));
}
