//! The copy engine between real registries (and OCI layouts), verified byte for byte.

use std::time::Duration;

use acr_import_testsupport::{
    FaultAction, FaultRule, Proxy, ProxyOptions, Registry as TestRegistry,
};
use acr_import_transfer::copy::{BlobAction, ManifestRole};
use acr_import_transfer::{
    Copier, CopyOptions, CopyReport, Endpoint, Manifest, Registry, Source, Target, TransferError,
    manifest,
};

use crate::Names;
use crate::fixtures::*;
use crate::{data, sha256, source, target, transport};

pub(crate) async fn pair() -> (TestRegistry, TestRegistry, Registry, Registry) {
    let (a, b) = tokio::join!(TestRegistry::start(), TestRegistry::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    let t = transport();
    let (ra, rb) = (t.registry(&a.url()).unwrap(), t.registry(&b.url()).unwrap());
    (a, b, ra, rb)
}

/// Proxies that record the requests to `a` and `b`, and handles on `a` and `b` through them.
async fn proxied(a: &TestRegistry, b: &TestRegistry) -> (Proxy, Proxy, Registry, Registry) {
    let (pa, pb) = tokio::join!(
        Proxy::start(a.addr(), ProxyOptions::default()),
        Proxy::start(b.addr(), ProxyOptions::default())
    );
    let (pa, pb) = (pa.unwrap(), pb.unwrap());
    let t = transport();
    let (ra, rb) = (
        t.registry(&pa.url()).unwrap(),
        t.registry(&pb.url()).unwrap(),
    );
    (pa, pb, ra, rb)
}

/// `repo:tag` or `repo@digest` as (repository, reference); a bare `repo` has no reference.
fn split(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@').or_else(|| name.rsplit_once(':')) {
        Some((repo, reference)) => (repo, Some(reference)),
        None => (name, None),
    }
}

/// The copies of a test: from `src` to `dst`, with one copier.
pub(crate) struct Copies<'a> {
    pub(crate) copier: Copier,
    src: &'a Registry,
    dst: &'a Registry,
}

impl<'a> Copies<'a> {
    /// Copies with the default options.
    pub(crate) fn new(src: &'a Registry, dst: &'a Registry) -> Self {
        Self::with(src, dst, CopyOptions::default())
    }

    /// Copies with `options`.
    pub(crate) fn with(src: &'a Registry, dst: &'a Registry, options: CopyOptions) -> Self {
        Self {
            copier: Copier::new(options),
            src,
            dst,
        }
    }

    /// Copies `from` of the source (`repo:tag` or `repo@digest`) to `to` of the target
    /// (`repo:tag`, or a bare `repo` for an untagged copy).
    pub(crate) async fn run(&self, from: &str, to: &str) -> Result<CopyReport, TransferError> {
        let (repo, reference) = split(from);
        let (to_repo, tag) = split(to);
        let reference = reference.expect("a source names a tag or a digest");
        self.copier
            .copy(
                &source(self.src, repo, reference),
                &[target(self.dst, to_repo, tag)],
            )
            .await
    }

    /// [`Self::run`], which must succeed.
    pub(crate) async fn ok(&self, from: &str, to: &str) -> CopyReport {
        let report = self.run(from, to).await;
        report.unwrap_or_else(|e| panic!("{from} → {to}: {e}"))
    }

    /// [`Self::ok`], then every manifest and blob the target got compared with the source's.
    pub(crate) async fn same(&self, from: &str, to: &str) -> CopyReport {
        let report = self.ok(from, to).await;
        let ((repo, reference), (to_repo, _)) = (split(from), split(to));
        let reference = reference.expect("a source names a tag or a digest");
        assert_same(self.src, repo, self.dst, to_repo, reference, false).await;
        report
    }
}

/// The manifest `name` (`repo:tag` or `repo@digest`) of `reg`.
async fn read(reg: &Registry, name: &str) -> Manifest {
    let (repo, reference) = split(name);
    let reference = reference.expect("a tag or a digest").at();
    let read = reg.get_manifest(&repo.repo(), &reference).await;
    read.unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `m` tagged `name` (`repo:tag`) in `reg` (by the seeding client).
async fn tag(reg: &Registry, name: &str, m: &Manifest) {
    let (repo, tag) = split(name);
    push_manifest(reg, repo, tag, m).await.unwrap();
}

/// A linux/amd64 image of `layers` in `repo` of `reg`, tagged `tag`.
async fn tagged_image(reg: &Registry, repo: &str, tag: &str, layers: &[&Blob]) -> Manifest {
    let m = image(reg, repo, "linux", "amd64", layers, false).await;
    let m = m.unwrap();
    push_manifest(reg, repo, Some(tag), &m).await.unwrap();
    m
}

/// Copies with every option default but `options` changes.
pub(crate) fn options(change: impl FnOnce(&mut CopyOptions)) -> CopyOptions {
    let mut options = CopyOptions::default();
    change(&mut options);
    options
}

#[tokio::test]
async fn multi_arch_index_with_attestations_and_referrers() {
    let (sa, sb, src, dst) = pair().await;
    let top = multi_arch(&src, "lib/app", "1.0", 1).await.unwrap();
    let cosign = "application/vnd.dev.cosign.simplesigning.v1+json";
    let sig = artifact(&src, "lib/app", cosign, 50, Some(&top));
    let sig = sig.await.unwrap();
    let spdx = "application/spdx+json";
    let sbom = artifact(&src, "lib/app", spdx, 51, Some(&top));
    let sbom = sbom.await.unwrap();
    let referrers = [(&sig, cosign), (&sbom, spdx)];
    attach(&src, "lib/app", &top, &referrers).await.unwrap();
    // A signature of the signature: referrers are followed recursively.
    let counter = "application/vnd.example.countersig";
    let countersig = artifact(&src, "lib/app", counter, 52, Some(&sig));
    let countersig = countersig.await.unwrap();
    let referrers = [(&countersig, counter)];
    attach(&src, "lib/app", &sig, &referrers).await.unwrap();

    let report = Copier::new(CopyOptions::default())
        .copy(
            &source(&src, "lib/app", "1.0"),
            &[
                target(&dst, "mirror/app", Some("1.0")),
                target(&dst, "mirror/app", Some("stable")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        report.digest,
        top.digest.to_string(),
        "digests never change"
    );
    let platforms = report.totals.platforms;
    assert_eq!(platforms, 4, "three platforms and the attestation");
    let roles = report.manifests.iter().map(|m| m.role);
    assert!(roles.filter(|r| *r == ManifestRole::Referrer).count() >= 3);
    assert_eq!(report.tags.len(), 2);
    let blobs = assert_same(&src, "lib/app", &dst, "mirror/app", "1.0", true).await;
    assert!(blobs >= 8);
    assert_eq!(read(&dst, "mirror/app:stable").await.digest, top.digest);
    // The shared base layer moved once.
    let base = sha256(&data(1, 40_000)).to_string();
    assert_eq!(report.blobs.iter().filter(|b| b.digest == base).count(), 1);
    let a = skopeo_raw(&sa.host(), "lib/app", "1.0");
    assert_eq!(a, skopeo_raw(&sb.host(), "mirror/app", "1.0"));
    assert_eq!(a, top.bytes.to_vec());
    // JSON report serializes.
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"action\":\"copied\""));
}

#[tokio::test]
async fn docker_formats_nested_indexes_helm_and_artifacts() {
    let (_sa, _sb, src, dst) = pair().await;
    let copies = Copies::new(&src, &dst);
    // Docker v2 image and list.
    let l = Blob {
        bytes: data(3, 20_000),
        media_type: DOCKER_LAYER,
    };
    let layers = [&l];
    let d1 = image(&src, "docker", "linux", "amd64", &layers, true);
    let d1 = d1.await.unwrap();
    let d2 = image(&src, "docker", "linux", "arm", &layers, true);
    let d2 = d2.await.unwrap();
    let children = [
        (&d1, Some("linux/amd64"), None),
        (&d2, Some("linux/arm"), None),
    ];
    let list = index(&src, "docker", Some("list"), &children, true);
    let list = list.await.unwrap();
    tag(&src, "docker:single", &d1).await;
    for name in ["docker:list", "docker:single"] {
        copies.same(name, name).await;
    }
    let copied = read(&dst, "docker:list").await;
    assert_eq!(copied.media_type, manifest::DOCKER_LIST);
    assert_eq!(list.media_type, manifest::DOCKER_LIST);

    // Nested index: an index whose child is an index.
    let inner = multi_arch(&src, "nested", "inner", 9).await.unwrap();
    let riscv = [&Blob::layer(10, 100)];
    let solo = image(&src, "nested", "linux", "riscv64", &riscv, false);
    let solo = solo.await.unwrap();
    let children = [(&inner, None, None), (&solo, Some("linux/riscv64"), None)];
    let outer = index(&src, "nested", Some("outer"), &children, false);
    outer.await.unwrap();
    copies.same("nested:outer", "nested:outer").await;

    // Helm chart and an empty-config artifact with a zero-byte layer.
    let chart = helm_chart(&src, "charts/demo", "0.1.0", "demo");
    chart.await.unwrap();
    copies.same("charts/demo:0.1.0", "charts/demo:0.1.0").await;
    let empty_layer = Blob {
        bytes: bytes::Bytes::new(),
        media_type: OCI_LAYER,
    };
    tagged_image(&src, "zero", "v1", &[&empty_layer]).await;
    copies.same("zero:v1", "zero:v1").await;
    let art = artifact(&src, "art", "application/vnd.example.thing", 11, None);
    tag(&src, "art:v1", &art.await.unwrap()).await;
    copies.same("art:v1", "art:v1").await;
}

#[tokio::test]
async fn digest_sources_untagged_targets_and_conflicts() {
    let (_sa, _sb, src, dst) = pair().await;
    let one = multi_arch(&src, "app", "v1", 20).await.unwrap();
    let two = multi_arch(&src, "app", "v2", 21).await.unwrap();
    let copies = Copies::new(&src, &dst);

    // By digest, to an untagged repository: reachable by digest, no tag created.
    copies.ok(&format!("app@{}", one.digest), "untagged").await;
    assert_eq!(read(&dst, &format!("untagged@{}", one.digest)).await, one);
    match dst.list_tags(&"untagged".repo(), None).await {
        Ok(tags) => assert!(tags.is_empty(), "no tag: {tags:?}"),
        Err(e) => assert!(
            e.is_not_found(),
            "a repository without tags has no tag list: {e}"
        ),
    }

    copies.ok("app:v1", "app:prod").await;
    // The same content again is a no-op success.
    assert!(copies.ok("app:v1", "app:prod").await.up_to_date);
    // Other content without force: refused before any byte moves.
    let v2_layer = sha256(&data(21, 40_000));
    let before_blobs = dst.head_blob(&"app".repo(), &v2_layer).await.unwrap();
    let err = copies.run("app:v2", "app:prod").await.unwrap_err();
    assert!(matches!(err, TransferError::TagConflict { .. }), "{err}");
    assert!(err.to_string().contains("--force"));
    let after_blobs = dst.head_blob(&"app".repo(), &v2_layer).await.unwrap();
    assert_eq!(after_blobs, before_blobs, "nothing moved");
    assert_eq!(read(&dst, "app:prod").await.digest, one.digest);
    // With force: overwritten.
    let forced = Copies::with(&src, &dst, options(|o| o.force = true));
    forced.ok("app:v2", "app:prod").await;
    assert_eq!(read(&dst, "app:prod").await.digest, two.digest);
}

#[tokio::test]
async fn the_largest_blob_streams_first_even_when_its_session_opens_last() {
    let (_sa, sb, src, _dst) = pair().await;
    let big = Blob::layer(70, 1 << 20);
    let small: Vec<Blob> = (71..74).map(|seed| Blob::layer(seed, 4096)).collect();
    let layers: Vec<&Blob> = std::iter::once(&big).chain(&small).collect();
    tagged_image(&src, "app", "v1", &layers).await;
    // The target opens the big blob's upload session last: its POST is held 400 ms.
    let big_hex = sha256(&big.bytes).to_string().replace("sha256:", "");
    let dst_proxy = Proxy::start(
        sb.addr(),
        ProxyOptions::with_rules([FaultRule::new(FaultAction::Stall {
            duration: Duration::from_millis(400),
            after_bytes: None,
        })
        .method("POST")
        .path_contains(&big_hex)]),
    )
    .await
    .unwrap();
    let dst = transport().registry(&dst_proxy.url()).unwrap();
    let one_slot = Copies::with(&src, &dst, options(|o| o.jobs = 1));
    one_slot.ok("app:v1", "app:v1").await;
    assert_eq!(
        dst_proxy.count_where(|r| r.method == "POST" && r.fault.is_some()),
        1,
        "the big blob's session was not held"
    );
    // One slot: the small blobs, ready long before, still wait for the big one's turn.
    let puts: Vec<String> = dst_proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/"))
        .map(|r| {
            r.path
                .split("digest=")
                .nth(1)
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(puts.len(), 5, "{puts:?}");
    assert!(
        puts[0].contains(&big_hex),
        "the first upload is not the largest blob: {puts:?}"
    );
}

#[tokio::test]
async fn recopy_moves_no_blob_and_same_registry_only_mounts() {
    let (sa, sb, _src, _dst) = pair().await;
    let (src_proxy, dst_proxy, src, dst) = proxied(&sa, &sb).await;
    let top = multi_arch(&src, "app", "v1", 30).await.unwrap();
    let copies = Copies::new(&src, &dst);
    let first = copies.ok("app:v1", "app:v1").await;
    let new_blobs = first
        .blobs
        .iter()
        .filter(|b| b.action == BlobAction::Copied)
        .count();
    assert!(new_blobs >= 8);
    // Two round trips per new blob on the target: the mount-or-upload POST and the PUT.
    let posts = dst_proxy.count("POST", "/blobs/uploads/");
    let puts = dst_proxy.count_where(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/"));
    assert_eq!((posts, puts), (new_blobs, new_blobs));
    assert_eq!(dst_proxy.count("HEAD", "/blobs/"), 0);
    // The target's scheme came from the first real request (no separate `GET /v2/`), and
    // the top manifest arrived with its tag: one PUT, not one by digest and one by tag.
    assert_eq!(
        dst_proxy.count_where(|r| r.method == "GET" && r.path == "/v2/"),
        0
    );
    let top_puts: Vec<String> = dst_proxy
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "PUT"
                && (r.path.ends_with("/manifests/v1")
                    || r.path.ends_with(&format!("/manifests/{}", top.digest)))
        })
        .map(|r| r.path)
        .collect();
    assert_eq!(top_puts, vec!["/v2/app/manifests/v1".to_owned()]);

    // Re-copy onto the complete target: no blob moves, no blob request at all.
    src_proxy.clear_requests();
    dst_proxy.clear_requests();
    let no_referrers = Copies::with(&src, &dst, options(|o| o.referrers = false));
    let again = no_referrers.ok("app:v1", "app:v1").await;
    assert!(again.up_to_date);
    assert_eq!(src_proxy.count("", "/blobs/"), 0);
    assert_eq!(dst_proxy.count("", "/blobs/"), 0);
    let (dst_seen, src_seen) = (dst_proxy.requests(), src_proxy.requests());
    assert!(dst_seen.len() <= 1, "{dst_seen:?}");
    assert!(src_seen.len() <= 1, "{src_seen:?}");

    // A new tag of content the target has: blobs answer the self-mount at once (one POST each).
    dst_proxy.clear_requests();
    let retag = copies.ok("app:v1", "app:v1-again").await;
    let skipped = retag.blobs.iter().all(|b| b.action == BlobAction::Skipped);
    assert!(skipped, "{:?}", retag.blobs);
    assert_eq!(
        dst_proxy.count_where(|r| r.method == "PUT" && r.path.contains("/blobs/")),
        0
    );

    // Same registry, new repository: every blob mounted, nothing read from the source.
    src_proxy.clear_requests();
    let within = Copies {
        copier: copies.copier,
        src: &src,
        dst: &src,
    };
    let same = within.same("app:v1", "copy/app:v1").await;
    let mounted = same.blobs.iter().all(|b| b.action == BlobAction::Mounted);
    assert!(mounted, "{:?}", same.blobs);
    assert_eq!(src_proxy.count("GET", "/blobs/"), 0);
    assert_eq!(read(&src, "copy/app:v1").await.digest, top.digest);

    // A batch: a second image sharing layers, to another repository of the target, mounts
    // them from where this copier put them.
    let other = Copies::new(&src, &dst);
    other.ok("app:v1", "team-a/app:v1").await;
    let second = other.ok("app:v1", "team-b/app:v1").await;
    let mounted = second.blobs.iter().all(|b| b.action == BlobAction::Mounted);
    assert!(mounted, "{:?}", second.blobs);
}

/// Copies with `--platform` set to each of `platforms`.
fn platforms(platforms: &[&str]) -> CopyOptions {
    options(|o| o.platforms = platforms.iter().map(|p| p.parse().unwrap()).collect())
}

#[tokio::test]
async fn platform_filters_are_explicit() {
    let (_sa, _sb, src, dst) = pair().await;
    let top = multi_arch(&src, "app", "v1", 40).await.unwrap();
    let one = Copies::with(&src, &dst, platforms(&["linux/arm64"]));
    let r = one.ok("app:v1", "one:v1").await;
    let got = read(&dst, "one:v1").await;
    assert_eq!(
        got.media_type,
        manifest::OCI_MANIFEST,
        "the tag points at the platform manifest"
    );
    assert_eq!(r.index_rewritten_from.as_deref(), Some(top.digest.as_str()));

    let two = Copies::with(&src, &dst, platforms(&["linux/amd64", "linux/s390x"]));
    let r = two.ok("app:v1", "two:v1").await;
    let got = read(&dst, "two:v1").await;
    assert_ne!(
        got.digest, top.digest,
        "a filtered index never claims the original digest"
    );
    let rewritten = r.notes.iter().any(|n| n.starts_with("index rewritten"));
    assert!(rewritten, "{:?}", r.notes);
    let children = got.parse().unwrap().manifests;
    let kept = children.len();
    assert_eq!(kept, 3, "two platforms and the attestation of amd64");

    let none = Copies::with(&src, &dst, platforms(&["windows/amd64"]));
    let err = none.run("app:v1", "none:v1").await.unwrap_err();
    assert!(err.to_string().contains("linux/arm64"), "{err}");
    let bare = "linux".parse::<acr_import_transfer::PlatformFilter>();
    assert!(bare.is_err());
}

#[tokio::test]
async fn an_up_to_date_copy_says_so() {
    let (_sa, _sb, src, dst) = pair().await;
    multi_arch(&src, "app", "v1", 42).await.unwrap();
    let copies = Copies::new(&src, &dst);
    let first = copies.ok("app:v1", "app:v1").await;
    assert!(!first.up_to_date);
    let again = copies.ok("app:v1", "app:v1").await;
    assert!(again.up_to_date);
    let line = again.summary("dst/app:v1");
    assert!(
        line.ends_with("→ dst/app:v1: up to date (3 platforms already there)"),
        "{line}"
    );
    // A single-platform manifest names its blobs: they are all there.
    let index = read(&src, "app:v1").await;
    let child = &index.parse().unwrap().manifests[0].digest;
    let from = format!("app@{child}");
    copies.ok(&from, "one:v1").await;
    let again = copies.ok(&from, "one:v1").await;
    let line = again.summary("dst/one:v1");
    let all_there = line.ends_with("up to date (3 blobs already there)");
    assert!(all_there, "{line}");
    assert_eq!(again.totals.blobs_copied, 0);
}

#[tokio::test]
async fn naming_every_platform_keeps_the_index() {
    let (_sa, _sb, src, dst) = pair().await;
    let top = multi_arch(&src, "app", "v1", 41).await.unwrap();
    let every = platforms(&["linux/amd64", "linux/arm64", "linux/s390x"]);
    let r = Copies::with(&src, &dst, every).ok("app:v1", "all:v1").await;
    assert_eq!(r.index_rewritten_from, None, "{:?}", r.notes);
    assert_eq!(r.digest, top.digest.to_string());
    let got = read(&dst, "all:v1").await;
    assert_eq!(got.digest, top.digest, "the original index, not a rewrite");
    assert_eq!(got.bytes, top.bytes);
}

#[tokio::test]
async fn foreign_layers_stay_foreign_unless_asked() {
    let (_sa, _sb, src, dst) = pair().await;
    let foreign = Blob {
        bytes: data(60, 5000),
        media_type: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    };
    let normal = Blob {
        bytes: data(61, 5000),
        media_type: DOCKER_LAYER,
    };
    push_blobs(&src, "win", &[&normal, &foreign]).await.unwrap();
    let config = Blob {
        bytes: bytes::Bytes::from_static(br#"{"os":"windows","architecture":"amd64"}"#),
        media_type: "application/vnd.docker.container.image.v1+json",
    };
    push_blobs(&src, "win", &[&config]).await.unwrap();
    let mut fd = foreign.descriptor();
    fd["urls"] = serde_json::json!(["https://mcr.microsoft.com/v2/windows/blobs/x"]);
    let value = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::DOCKER_MANIFEST, "config": config.descriptor(), "layers": [fd, normal.descriptor()]});
    let m = manifest_of(&value, manifest::DOCKER_MANIFEST).unwrap();
    tag(&src, "win:ltsc", &m).await;
    let r = Copies::new(&src, &dst).ok("win:ltsc", "win:ltsc").await;
    assert_eq!(read(&dst, "win:ltsc").await, m);
    let foreign_digest = sha256(&foreign.bytes);
    let left_out = dst.head_blob(&"win".repo(), &foreign_digest).await;
    assert_eq!(left_out.unwrap(), None);
    assert!(r.notes.iter().any(|n| n.contains("foreign layer")));
    let asked = Copies::with(&src, &dst, options(|o| o.foreign_layers = true));
    asked.ok("win:ltsc", "win2:ltsc").await;
    let copied = dst.head_blob(&"win2".repo(), &foreign_digest).await;
    assert_eq!(copied.unwrap(), Some(5000));
}

#[tokio::test]
async fn large_layer_and_dry_run() {
    let (_sa, _sb, src, dst) = pair().await;
    let big = Blob::layer(70, 64 * 1024 * 1024);
    let m = tagged_image(&src, "big", "v1", &[&big]).await;
    let dry_run = Copies::with(&src, &dst, options(|o| o.dry_run = true));
    let plan = dry_run.ok("big:v1", "big:v1").await;
    assert!(plan.dry_run);
    assert!(plan.blobs.iter().all(|b| b.action == BlobAction::WouldCopy));
    assert_eq!(
        plan.totals.bytes_copied,
        64 * 1024 * 1024 + m.parse().unwrap().config.unwrap().size
    );
    let written = dst.head_manifest(&"big".repo(), &"v1".at()).await;
    assert!(written.unwrap().is_none(), "a dry run writes nothing");
    let r = Copies::new(&src, &dst).same("big:v1", "big:v1").await;
    assert_eq!(r.totals.blobs_copied, 2);
}

#[tokio::test]
async fn skopeo_seeded_docker_image_copies_exactly() {
    let skopeo = acr_import_testsupport::skopeo();
    let (sa, sb, src, dst) = pair().await;
    // An OCI image in one repository; skopeo converts it to Docker v2 schema 2 in another,
    // and what skopeo wrote is copied.
    tagged_image(&src, "oci", "v1", &[&Blob::layer(80, 10_000)]).await;
    acr_import_testsupport::run_tool(
        &skopeo,
        [
            "copy",
            "--format",
            "v2s2",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{}/oci:v1", sa.host()),
            &format!("docker://{}/byskopeo:v1", sa.host()),
        ],
    );
    Copies::new(&src, &dst)
        .same("byskopeo:v1", "byskopeo:v1")
        .await;
    assert_eq!(
        skopeo_raw(&sa.host(), "byskopeo", "v1"),
        skopeo_raw(&sb.host(), "byskopeo", "v1")
    );
    let copied = read(&dst, "byskopeo:v1").await;
    assert_eq!(copied.media_type, manifest::DOCKER_MANIFEST);
}

#[tokio::test]
async fn through_an_oci_layout_and_back() {
    let (sa, sb, src, dst) = pair().await;
    let top = multi_arch(&src, "app", "v1", 90).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = acr_import_transfer::OciLayout::create(dir.path().join("export")).unwrap();
    let copier = Copier::new(CopyOptions::default());
    let out = [Target {
        endpoint: Endpoint::Layout(layout.clone()),
        tag: Some("v1".parse().unwrap()),
    }];
    let from = source(&src, "app", "v1");
    copier.copy(&from, &out).await.unwrap();
    assert_eq!(
        layout.tags().await.unwrap(),
        ["v1"],
        "only the top manifest is listed in index.json"
    );
    assert_eq!(layout.get_manifest(&"v1".at()).await.unwrap(), top);
    // Re-export is a no-op.
    let again = copier.copy(&from, &out).await.unwrap();
    assert!(again.up_to_date);
    // The air-gapped side: layout → another registry.
    let back = Source {
        endpoint: Endpoint::Layout(layout.clone()),
        reference: "v1".at(),
    };
    let r = copier
        .copy(&back, &[target(&dst, "imported/app", Some("v1"))])
        .await
        .unwrap();
    assert_eq!(r.digest, top.digest.to_string());
    assert_same(&src, "app", &dst, "imported/app", "v1", false).await;
    assert_eq!(
        skopeo_raw(&sa.host(), "app", "v1"),
        skopeo_raw(&sb.host(), "imported/app", "v1")
    );
}

#[tokio::test]
async fn a_signature_copied_alone_is_listed_under_its_subject() {
    let (_sa, _sb, src, dst) = pair().await;
    let subject = multi_arch(&src, "app", "v1", 95).await.unwrap();
    let sig_type = "application/vnd.example.sig";
    let sig = artifact(&src, "app", sig_type, 96, Some(&subject));
    let sig = sig.await.unwrap();
    tag(&src, "app:sig", &sig).await;
    let copies = Copies::new(&src, &dst);
    copies.ok("app:v1", "app:v1").await;
    copies.ok("app:sig", "app:sig").await;
    let listed = || async {
        let found = dst.referrers(&"app".repo(), &subject.digest, None).await;
        found.unwrap().descriptors
    };
    let found = listed().await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].digest, sig.digest);
    assert_eq!(found[0].artifact_type.as_deref(), Some(sig_type));
    // Copying it again adds nothing twice.
    copies.ok("app:sig", "app:sig").await;
    assert_eq!(listed().await.len(), 1);
}

/// A batch: sixteen copies at once on one `Copier`, four tags in each of four repositories, all
/// images sharing a base layer and a config. Each shared blob leaves the source once, is
/// uploaded to the target registry once and goes into each target repository once (the
/// others wait, then mount or skip it): no repository gets a blob again while another copy's
/// manifest `PUT` is checked against it.
#[tokio::test]
async fn concurrent_copies_move_a_shared_blob_once_per_place() {
    let (sa, sb, src, _) = pair().await;
    let base = Blob::layer(900, 256 << 10);
    let mut images = Vec::new();
    for r in 0..4 {
        for t in 0..4 {
            let own = Blob::layer(1000 + r * 10 + t, 4 << 10);
            let (repo, tag) = (format!("lib/r{r}"), format!("t{t}"));
            let m = tagged_image(&src, &repo, &tag, &[&base, &own]).await;
            images.push((format!("{repo}:{tag}"), m.digest));
        }
    }
    let (src_proxy, dst_proxy, src, dst) = proxied(&sa, &sb).await;
    let copies = Copies::new(&src, &dst);
    let targets: Vec<String> = images.iter().map(|(n, _)| format!("mirror/{n}")).collect();
    let runs = images.iter().zip(&targets);
    let results =
        futures_util::future::join_all(runs.map(|((name, _), to)| copies.run(name, to))).await;
    for (r, (name, digest)) in results.into_iter().zip(&images) {
        let report = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(report.digest, digest.to_string());
    }
    let base_digest = sha256(&base.bytes).to_string();
    let got = src_proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&format!("/blobs/{base_digest}")))
        .count();
    assert_eq!(got, 1, "the base layer left the source {got} times");
    let dst_seen = dst_proxy.requests();
    let uploads = dst_seen
        .iter()
        .filter(|r| {
            r.method == "PUT"
                && r.path
                    .replace("%3A", ":")
                    .contains(&format!("digest={base_digest}"))
        })
        .count();
    assert_eq!(uploads, 1, "the base layer was uploaded {uploads} times");
    for r in 0..4 {
        let posts = dst_seen
            .iter()
            .filter(|q| {
                q.method == "POST"
                    && q.path
                        .starts_with(&format!("/v2/mirror/lib/r{r}/blobs/uploads/"))
                    && q.path
                        .replace("%3A", ":")
                        .contains(&format!("mount={base_digest}"))
            })
            .count();
        assert_eq!(posts, 1, "the base went into mirror/lib/r{r} {posts} times");
    }
    for (name, digest) in &images {
        let (repo, tag) = split(name);
        let target = format!("mirror/{repo}").repo();
        let head = dst.head_manifest(&target, &tag.unwrap().at()).await;
        assert_eq!(head.unwrap().and_then(|h| h.digest).as_ref(), Some(digest));
    }
}

#[tokio::test]
async fn a_closure_takes_the_progress_of_a_copy() {
    use std::sync::{Arc, Mutex};

    use acr_import_transfer::copy::Progress;

    let (_sa, _sb, src, dst) = pair().await;
    multi_arch(&src, "lib/app", "1.0", 7).await.unwrap();
    let moved = Arc::new(Mutex::new((0u64, 0usize)));
    let seen = moved.clone();
    let options = options(|o| {
        o.progress = Some(Arc::new(move |p: Progress| {
            let mut seen = seen.lock().unwrap();
            match p {
                Progress::BlobBytes { bytes, .. } => seen.0 += bytes,
                Progress::Planned { .. } => seen.1 += 1,
                _ => {}
            }
        }))
    });
    let copies = Copies::with(&src, &dst, options);
    let report = copies.ok("lib/app:1.0", "mirror/app:1.0").await;
    let (bytes, plans) = *moved.lock().unwrap();
    assert!(report.totals.bytes_copied > 0);
    assert_eq!(
        bytes, report.totals.bytes_copied,
        "every byte copied was reported"
    );
    assert_eq!(plans, 1, "one plan announced");
}
