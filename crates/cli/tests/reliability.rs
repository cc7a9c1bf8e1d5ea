//! The binary under SIGKILL and a target restart: no tag ever points at incomplete content,
//! and running the import again completes.

use std::process::{Command, Stdio};
use std::time::Duration;

use acr_import_testsupport::seed::Seeder;
use acr_import_testsupport::{Proxy, Registry, SplitMix64};
use acr_import_transfer::{Registry as Client, Transport};

mod common;
use common::{Acr, json, pair, proxies, push_image, rt, stalling_blobs, stderr, temp_file};

/// Seeds an image of `layers` blobs (256 KiB each) under `repo:v1`.
async fn seed(reg: &Registry, repo: &str, layers: u64, seed: u64) {
    let blobs = (0..layers).map(|k| seed * 1000 + k);
    let reg = &Seeder::new(&reg.host()).unwrap();
    push_image(reg, repo, "v1", blobs, 256 * 1024).await;
}

/// Every tag of `repo` resolves, and every blob its manifest names exists.
async fn tags_are_complete(reg: &Client, repo: &str) -> usize {
    let tags = match reg.list_tags(repo, None).await {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return 0,
        Err(e) => panic!("{e}"),
    };
    for tag in &tags {
        let m = reg
            .get_manifest(repo, tag)
            .await
            .unwrap_or_else(|e| panic!("tag {tag} does not resolve: {e}"));
        let c = m.parse().unwrap();
        for d in c.config.iter().chain(c.layers.iter()) {
            assert_eq!(
                reg.head_blob(repo, &d.digest).await.unwrap(),
                Some(d.size),
                "tag {tag} points at incomplete content"
            );
        }
    }
    tags.len()
}

/// `acr import` of `<src>/app:v1` into `dst` as `app:v1` with 3 jobs, only its standard
/// error kept.
fn import(src: &str, dst: &str) -> Command {
    let mut c = Acr::import(dst, &format!("{src}/app:v1"))
        .images(&["app:v1"])
        .args(&["--jobs", "3"])
        .command();
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// A source seeded with a 12-layer `app:v1` behind a proxy that holds every blob read, and
/// an empty target; with clients of both. Bind `_src`: the source stops when it drops.
struct Slow {
    _src: Registry,
    dst: Registry,
    s: Client,
    d: Client,
    slow: Proxy,
}

fn slow_source(rt: &tokio::runtime::Runtime, seed_n: u64, stall_ms: u64) -> Slow {
    let (src, dst) = pair(rt);
    let t = Transport::builder().build().unwrap();
    let (s, d) = (
        t.registry(&src.url()).unwrap(),
        t.registry(&dst.url()).unwrap(),
    );
    rt.block_on(seed(&src, "app", 12, seed_n));
    let slow = stalling_blobs(rt, &src, Duration::from_millis(stall_ms), None);
    Slow {
        _src: src,
        dst,
        s,
        d,
        slow,
    }
}

#[test]
fn sigkill_at_random_points_never_leaves_a_dangling_tag() {
    let rt = rt();
    // Slow blob reads so that kills land in the middle of the copy.
    let Slow {
        _src,
        s,
        d,
        dst,
        slow,
    } = slow_source(&rt, 1, 150);
    let mut rng = SplitMix64::new(2026);
    for round in 0..5 {
        let delay = 100 + rng.below(900);
        let mut child = import(&slow.host(), &dst.host()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        let tags = rt.block_on(tags_are_complete(&d, "app"));
        eprintln!("round {round}: killed after {delay} ms, {tags} complete tag(s)");
    }
    let o = import(&slow.host(), &dst.host()).output().unwrap();
    assert!(
        o.status.success(),
        "the run after the kills completes: {}",
        stderr(&o)
    );
    assert_eq!(rt.block_on(tags_are_complete(&d, "app")), 1);
    assert_eq!(
        rt.block_on(s.get_manifest("app", "v1")).unwrap(),
        rt.block_on(d.get_manifest("app", "v1")).unwrap()
    );
}

#[test]
fn a_target_restart_mid_import_recovers_or_fails_cleanly() {
    let rt = rt();
    let Slow {
        _src, d, dst, slow, ..
    } = slow_source(&rt, 3, 200);
    let child = import(&slow.host(), &dst.host()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    rt.block_on(dst.restart()).unwrap();
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    match o.status.code() {
        Some(0) => eprintln!("the import rode through the restart"),
        Some(1) => assert!(err.starts_with("ERROR: "), "a clean, one-line error: {err}"),
        other => panic!("unexpected exit {other:?}: {err}"),
    }
    rt.block_on(tags_are_complete(&d, "app"));
    let o = import(&slow.host(), &dst.host()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(rt.block_on(tags_are_complete(&d, "app")), 1);
}

/// Peak RSS (VmHWM) of a running process and the most connections it held at once to
/// `port`, read until it exits.
fn watch(child: &mut std::process::Child, port: u16) -> (u64, usize) {
    let status = format!("/proc/{}/status", child.id());
    let (mut peak_kib, mut conns) = (0u64, 0usize);
    while child.try_wait().unwrap().is_none() {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak_kib = peak_kib.max(
                line.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            );
        }
        // Read from /proc: an error is a failure, except once the process has exited.
        match acr_import_testsupport::tcp_connections(child.id(), port) {
            Ok(n) => conns = conns.max(n),
            Err(e) => assert!(
                child.try_wait().unwrap().is_some(),
                "cannot count the connections of a running process: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (peak_kib, conns)
}

#[test]
fn fifty_images_in_one_batch_stay_bounded() {
    let rt = rt();
    let (src, dst) = pair(&rt);
    let mut yaml = String::new();
    for i in 0..50u64 {
        rt.block_on(seed(&src, &format!("img{i}"), 2, 100 + i));
        yaml.push_str(&format!(
            "- source: {{SRC}}/img{i}:v1\n  images: [mirror/img{i}:v1]\n"
        ));
    }
    let (sp, dp) = proxies(&rt, &src, &dst);
    let (_dir, file) = temp_file("mirror.yaml", &yaml.replace("{SRC}", &sp.host()));
    let mut child = Acr::batch(&dp.host(), &file).format("json").spawn();
    let (peak_kib, src_conns) = watch(&mut child, sp.addr().port());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report = json(&o);
    assert_eq!(
        report["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["copied"] == 1 && r["failed"] == 0)
            .count(),
        50
    );
    let t = Transport::builder().build().unwrap();
    let d = t.registry(&dst.url()).unwrap();
    for i in 0..50 {
        rt.block_on(tags_are_complete(&d, &format!("mirror/img{i}")));
    }
    eprintln!(
        "50 images: peak RSS {} MiB, at most {src_conns} connections to the source at once, {} + {} requests",
        peak_kib / 1024,
        sp.requests().len(),
        dp.requests().len()
    );
    assert!(
        peak_kib > 0 && peak_kib < 128 * 1024,
        "peak RSS {peak_kib} KiB"
    );
    assert!(
        (1..=32).contains(&src_conns),
        "{src_conns} connections to one registry (at least the one that copied)"
    );
}
