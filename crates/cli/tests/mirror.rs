//! `acr import --from-file` as a mirror, against real registries: repository entries with tag
//! filters, the unchanged re-run, the dry-run plan, shards, a run killed with SIGKILL and
//! started again, conflicts and `force`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use acr_import_tests::Names;
use acr_import_testsupport::{Proxy, ProxyOptions, Registry};
use acr_import_transfer::{Manifest, Transport, UploadStart, digest_of, manifest};
use bytes::Bytes;

mod common;
use common::{Acr, json, pair, proxies, rt, stalling_blobs, stderr, write_file};

fn bytes(seed: u64, len: usize) -> Bytes {
    acr_import_testsupport::seed::data(seed, len)
}

/// Seeds images in `reg`: for each (repository, tags), one image per tag made of a base layer
/// every image shares (mounted from the first repository), a layer of its own of
/// `own_size` bytes and a config. Returns (repository, tag) → digest.
async fn seed(
    reg: &Registry,
    repos: &[(&str, &[&str])],
    own_size: usize,
) -> BTreeMap<(String, String), String> {
    let t = Transport::builder().proxy_from_env(false).build().unwrap();
    let r = t.registry(&reg.url()).unwrap();
    let base = bytes(1, 64 << 10);
    let base_digest = digest_of(acr_import_reference::DigestAlgorithm::Sha256, &base);
    let first = repos[0].0;
    r.push_blob(&first.repo(), &base_digest, base.clone(), u64::MAX)
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for (n, (repo, tags)) in repos.iter().enumerate() {
        if let UploadStart::Session(_) = r
            .start_upload(&repo.repo(), Some((&base_digest, &first.repo())))
            .await
            .unwrap()
        {
            r.push_blob(&repo.repo(), &base_digest, base.clone(), u64::MAX)
                .await
                .unwrap();
        }
        for (i, tag) in tags.iter().enumerate() {
            let own = bytes(100 + (n * 50 + i) as u64, own_size);
            let own_digest = digest_of(acr_import_reference::DigestAlgorithm::Sha256, &own);
            r.push_blob(&repo.repo(), &own_digest, own.clone(), u64::MAX)
                .await
                .unwrap();
            let config = Bytes::from(format!(
                r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"tag":"{repo}:{tag}"}}"#
            ));
            let config_digest = digest_of(acr_import_reference::DigestAlgorithm::Sha256, &config);
            r.push_blob(&repo.repo(), &config_digest, config.clone(), u64::MAX)
                .await
                .unwrap();
            let body = serde_json::json!({
                "schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": base_digest.to_string(), "size": base.len()},
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": own_digest.to_string(), "size": own.len()},
                ],
            });
            let body = Bytes::from(serde_json::to_vec(&body).unwrap());
            let m = Manifest {
                digest: digest_of(acr_import_reference::DigestAlgorithm::Sha256, &body),
                bytes: body,
                media_type: manifest::OCI_MANIFEST.to_owned(),
            };
            r.put_manifest(&repo.repo(), &tag.at(), &m).await.unwrap();
            out.insert((repo.to_string(), tag.to_string()), m.digest.to_string());
        }
    }
    out
}

/// Every tag of `repo` in `reg` and the digest it names; each tag's manifest and blobs are
/// all there (no tag on incomplete content).
async fn complete_tags(reg: &Registry, repo: &str) -> BTreeMap<String, String> {
    let t = Transport::builder().proxy_from_env(false).build().unwrap();
    let r = t.registry(&reg.url()).unwrap();
    let mut out = BTreeMap::new();
    let tags = match r.list_tags(&repo.repo(), None).await {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return out,
        Err(e) => panic!("{e}"),
    };
    for tag in tags {
        let m = r.get_manifest(&repo.repo(), &tag.at()).await.unwrap();
        let content = m.parse().unwrap();
        for d in content.config.iter().chain(content.layers.iter()) {
            assert!(
                r.head_blob(&repo.repo(), &d.digest)
                    .await
                    .unwrap()
                    .is_some(),
                "{repo}:{tag} names {} which is not there",
                d.digest
            );
        }
        out.insert(tag, m.digest.to_string());
    }
    out
}

/// Writes the mirror file `text` into `dir`; returns its path.
fn write(dir: &Path, text: &str) -> String {
    write_file(dir, "mirror.yaml", text)
}

fn kinds(requests: &[acr_import_testsupport::RecordedRequest]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in requests {
        *out.entry(format!("{} {}", r.method, r.kind())).or_default() += 1;
    }
    out
}

#[test]
fn repository_entries_mirror_the_selected_tags_and_an_unchanged_rerun_only_looks() {
    let rt = rt();
    let (src, dst) = pair(&rt);
    let digests = rt.block_on(seed(
        &src,
        &[
            (
                "lib/app",
                &[
                    "v1.0.0",
                    "v1.1.0",
                    "1.1",
                    "v1.2.0-rc.1",
                    "v2.0.0",
                    "stable",
                    "latest",
                ],
            ),
            ("lib/tool", &["1.0", "1.1"]),
        ],
        2000,
    ));
    let (sp, dp) = proxies(&rt, &src, &dst);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &format!(
            r#"
- source: {h}/lib/app
  target: mirror/app
  tags:
    semver: ">=1.0, <2"
    include: ["^stable$"]
    exclude: ["^v1\\.0"]
- source: {h}/lib/tool
- source: {h}/lib/app:v2.0.0
  images: [mirror/app:two]
"#,
            h = sp.host()
        ),
    );
    let run = Acr::batch(&dp.host(), &file).format("json");
    let report = json(&run.run_ok());
    let want_app: BTreeMap<String, String> = [
        ("v1.1.0", "v1.1.0"),
        ("1.1", "1.1"),
        ("stable", "stable"),
        ("two", "v2.0.0"),
    ]
    .iter()
    .map(|(t, s)| {
        (
            t.to_string(),
            digests[&("lib/app".to_owned(), s.to_string())].clone(),
        )
    })
    .collect();
    assert_eq!(rt.block_on(complete_tags(&dst, "mirror/app")), want_app);
    assert_eq!(
        rt.block_on(complete_tags(&dst, "lib/tool")).len(),
        2,
        "no tags: filter means all tags"
    );
    let entries = report["entries"].as_array().unwrap();
    assert_eq!(entries[0]["listed"], 7);
    assert_eq!(entries[0]["selected"], 3);
    assert_eq!(entries[0]["copied"], 3);
    assert_eq!(entries[1]["copied"], 2);
    assert_eq!(entries[2]["copied"], 1);
    // The shared base layer left the source once for the whole file.
    let base = digest_of(
        acr_import_reference::DigestAlgorithm::Sha256,
        &bytes(1, 64 << 10),
    );
    let base_gets = sp.count_where(|r| r.method == "GET" && r.path.ends_with(base.as_str()));
    assert_eq!(base_gets, 1, "{:?}", kinds(&sp.requests()));
    // The copies of a repository entry find digest tags in the plan's listing: `lib/tool` is
    // listed once in all; `lib/app` once by the plan and once by the single image's copy.
    let listings = |repo: &str| {
        let path = format!("/v2/{repo}/tags/list");
        sp.count_where(|r| r.method == "GET" && r.path.starts_with(&path))
    };
    assert_eq!(listings("lib/tool"), 1, "{:?}", kinds(&sp.requests()));
    assert_eq!(listings("lib/app"), 2, "{:?}", kinds(&sp.requests()));

    // Nothing changed: the re-run lists each source repository once and looks at each tag.
    sp.clear_requests();
    dp.clear_requests();
    let report = json(&run.run_ok());
    for t in report["tags"].as_array().unwrap() {
        assert_eq!(t["result"], "up_to_date", "{t}");
    }
    let (s, d) = (kinds(&sp.requests()), kinds(&dp.requests()));
    assert_eq!(s.get("GET tags/list"), Some(&2), "{s:?}");
    let tag_heads = |p: &Proxy| {
        p.count_where(|r| {
            r.method == "HEAD" && r.path.contains("/manifests/") && !r.path.contains("sha256-")
        })
    };
    assert_eq!(tag_heads(&sp), 6, "one per selected tag: {s:?}");
    assert_eq!(tag_heads(&dp), 6, "{d:?}");
    for (k, _) in s.iter().chain(d.iter()) {
        assert!(
            !k.contains("blobs") && !k.contains("uploads") && !k.starts_with("PUT"),
            "the re-run moved something: {s:?} {d:?}"
        );
    }
    // Besides those: the referrers of the unchanged images, asked once of the source (a
    // registry without the referrers API answers 404 and is asked no more: a repository's
    // referrers tags are in its listing; the single image's is looked up by its tag), and one
    // probe of the target for ACR's tag listing.
    let extra = sp.requests().len() + dp.requests().len() - 2 - 12;
    assert!(extra <= 4, "{s:?} {d:?}");
    // No manifest GET at the source (what Docker Hub counts as a pull), and the report says so.
    let source_gets = sp.count_where(|r| r.method == "GET" && r.path.contains("/manifests/"));
    assert_eq!(source_gets, 0, "{s:?}");
    assert!(
        report["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["source_pulls"] == 0),
        "{report:#}"
    );
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let rt = rt();
    let (src, dst) = pair(&rt);
    let digests = rt.block_on(seed(&src, &[("lib/app", &["1.0", "1.1", "2.0"])], 3000));
    // The target has 1.0 already and 1.1 holding something else.
    rt.block_on(seed(&dst, &[("lib/app", &["1.1"])], 10));
    let dir = tempfile::tempdir().unwrap();
    Acr::import(&dst.host(), &format!("{}/lib/app:1.0", src.host())).run_ok();
    let file = write(
        dir.path(),
        &format!("- source: {}/lib/app\n  tags: {{latest: 3}}\n", src.host()),
    );
    let o = Acr::batch(&dst.host(), &file)
        .args(&["--dry-run"])
        .format("json")
        .run();
    // The conflict on 1.1 fails the entry, in the plan as in a run.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report = json(&o);
    assert_eq!(report["dry_run"], true);
    let tags: BTreeMap<String, (String, String, String)> = report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"]
                    .as_str()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .to_owned(),
                (
                    t["source_digest"].as_str().unwrap().to_owned(),
                    t["action"].as_str().unwrap().to_owned(),
                    t["result"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let d = |t: &str| digests[&("lib/app".to_owned(), t.to_owned())].clone();
    assert_eq!(
        tags["1.0"],
        (d("1.0"), "up_to_date".into(), "up_to_date".into())
    );
    assert_eq!(tags["1.1"], (d("1.1"), "conflict".into(), "failed".into()));
    assert_eq!(tags["2.0"], (d("2.0"), "copy".into(), "would_copy".into()));
    // What would move: 2.0's own layer and config (the base is there already).
    let copy = &report["copies"][0];
    assert_eq!(copy["blobs_copied"], 2, "{copy}");
    assert_eq!(
        rt.block_on(complete_tags(&dst, "lib/app")).len(),
        2,
        "nothing written"
    );
    // With force, the run replaces 1.1 and copies 2.0.
    let file = write(
        dir.path(),
        &format!(
            "- source: {}/lib/app\n  tags: {{latest: 3}}\n  force: true\n",
            src.host()
        ),
    );
    Acr::batch(&dst.host(), &file).run_ok();
    let now = rt.block_on(complete_tags(&dst, "lib/app"));
    assert_eq!(now["1.1"], d("1.1"));
    assert_eq!(now["2.0"], d("2.0"));
}

#[test]
fn shards_cover_the_plan_exactly_once() {
    let rt = rt();
    let (src, dst) = pair(&rt);
    let repos: Vec<String> = (0..6).map(|i| format!("lib/r{i}")).collect();
    let tags: &[&str] = &["1.0", "1.1", "1.2", "2.0"];
    let spec: Vec<(&str, &[&str])> = repos.iter().map(|r| (r.as_str(), tags)).collect();
    let digests = rt.block_on(seed(&src, &spec, 500));
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for r in &repos {
        text.push_str(&format!(
            "- source: {}/{r}\n  target: mirror/{r}\n",
            src.host()
        ));
    }
    text.push_str(&format!(
        "- source: {}/lib/r0:1.0\n  images: [single/a:x, single/b:y, single/c:z]\n",
        src.host()
    ));
    let file = write(dir.path(), &text);
    const N: usize = 3;
    let children: Vec<_> = (0..N)
        .map(|i| {
            Acr::batch(&dst.host(), &file)
                .args(&["--shard", &format!("{i}/{N}")])
                .format("json")
                .spawn()
        })
        .collect();
    let mut owned: Vec<String> = Vec::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let report = json(&o);
        for t in report["tags"].as_array().unwrap() {
            assert_eq!(t["result"], "copied", "{t}");
            owned.push(t["target"].as_str().unwrap().to_owned());
        }
    }
    let unique: BTreeSet<&String> = owned.iter().collect();
    assert_eq!(
        unique.len(),
        owned.len(),
        "a tag was owned twice: {owned:?}"
    );
    assert_eq!(owned.len(), repos.len() * tags.len() + 3, "{owned:?}");
    for r in &repos {
        let got = rt.block_on(complete_tags(&dst, &format!("mirror/{r}")));
        let want: BTreeMap<String, String> = tags
            .iter()
            .map(|t| (t.to_string(), digests[&(r.clone(), t.to_string())].clone()))
            .collect();
        assert_eq!(got, want, "{r}");
    }
    for repo in ["single/a", "single/b", "single/c"] {
        assert_eq!(rt.block_on(complete_tags(&dst, repo)).len(), 1, "{repo}");
    }
}

#[test]
fn a_batch_killed_with_sigkill_completes_when_started_again() {
    let rt = rt();
    let (src, dst) = pair(&rt);
    let repos: Vec<String> = (0..10).map(|i| format!("lib/k{i}")).collect();
    let tags: &[&str] = &["1", "2"];
    let spec: Vec<(&str, &[&str])> = repos.iter().map(|r| (r.as_str(), tags)).collect();
    let digests = rt.block_on(seed(&src, &spec, 400 << 10));
    // Blob downloads from the source take a while: the batch is mid-flight when killed.
    let slow = stalling_blobs(&rt, &src, Duration::from_millis(700), Some(100 << 10));
    let dir = tempfile::tempdir().unwrap();
    let text: String = repos
        .iter()
        .map(|r| format!("- source: {}/{r}\n", slow.host()))
        .collect();
    let file = write(dir.path(), &text);
    let mut child = Acr::batch(&dst.host(), &file)
        .args(&["--jobs", "2"])
        .format("json")
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some tags are in place and before all are.
    let started = Instant::now();
    let total = repos.len() * tags.len();
    loop {
        let done: usize = repos
            .iter()
            .map(|r| rt.block_on(complete_tags(&dst, r)).len())
            .sum();
        if done >= 3 {
            assert!(done < total, "the batch finished before it could be killed");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing finished in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    // No dangling tag: every tag there names content that is all there (complete_tags
    // checks), and names the source's digest.
    let mut finished = BTreeSet::new();
    for r in &repos {
        for (tag, digest) in rt.block_on(complete_tags(&dst, r)) {
            assert_eq!(digest, digests[&(r.clone(), tag.clone())]);
            finished.insert(format!("{}/{r}:{tag}", dst.host()));
        }
    }
    assert!(!finished.is_empty() && finished.len() < total);

    // Started again (through a counting proxy, no stalls): everything completes, and the
    // finished tags cost their look-ups only.
    let counting = rt
        .block_on(Proxy::start(src.addr(), ProxyOptions::default()))
        .unwrap();
    let text: String = repos
        .iter()
        .map(|r| format!("- source: {}/{r}\n  target: {r}\n", counting.host()))
        .collect();
    let file = write(dir.path(), &text);
    let report = json(&Acr::batch(&dst.host(), &file).format("json").run_ok());
    for t in report["tags"].as_array().unwrap() {
        let target = t["target"].as_str().unwrap();
        if finished.contains(target) {
            assert_eq!(t["result"], "up_to_date", "{t}");
            assert!(t["copy"].is_null(), "copied again: {t}");
        } else {
            assert_eq!(t["result"], "copied", "{t}");
        }
    }
    for r in &repos {
        assert_eq!(rt.block_on(complete_tags(&dst, r)).len(), tags.len(), "{r}");
    }
    // No manifest of a finished tag was read again.
    let finished_digests: BTreeSet<String> = finished
        .iter()
        .map(|t| {
            let (repo_tag, tag) = t.rsplit_once(':').unwrap();
            let repo = repo_tag.split_once('/').unwrap().1;
            digests[&(repo.to_owned(), tag.to_owned())].clone()
        })
        .collect();
    let reread = counting.count_where(|r| {
        r.method == "GET"
            && r.path.contains("/manifests/")
            && finished_digests
                .iter()
                .any(|d| r.path.ends_with(d.as_str()))
    });
    assert_eq!(reread, 0);
}
