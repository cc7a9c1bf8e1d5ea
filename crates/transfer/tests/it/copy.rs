//! The copy engine between real registries (and OCI layouts), verified byte for byte.

use crate::Names;
use std::time::Duration;

use acr_import_testsupport::{
    FaultAction, FaultRule, Proxy, ProxyOptions, Registry as TestRegistry,
};
use acr_import_transfer::copy::{BlobAction, ManifestRole};
use acr_import_transfer::{Copier, CopyOptions, Endpoint, Source, Target, TransferError, manifest};

use crate::fixtures::*;
use crate::{data, sha256, source, target, transport};

pub(crate) async fn pair() -> (
    TestRegistry,
    TestRegistry,
    acr_import_transfer::Registry,
    acr_import_transfer::Registry,
) {
    let (a, b) = tokio::join!(TestRegistry::start(), TestRegistry::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    let t = transport();
    let (ra, rb) = (t.registry(&a.url()).unwrap(), t.registry(&b.url()).unwrap());
    (a, b, ra, rb)
}

#[tokio::test]
async fn multi_arch_index_with_attestations_and_referrers() {
    let (sa, sb, src, dst) = pair().await;
    let top = multi_arch(&src, "lib/app", "1.0", 1).await.unwrap();
    let sig = artifact(
        &src,
        "lib/app",
        "application/vnd.dev.cosign.simplesigning.v1+json",
        50,
        Some(&top),
    )
    .await
    .unwrap();
    let sbom = artifact(&src, "lib/app", "application/spdx+json", 51, Some(&top))
        .await
        .unwrap();
    attach(
        &src,
        "lib/app",
        &top,
        &[
            (&sig, "application/vnd.dev.cosign.simplesigning.v1+json"),
            (&sbom, "application/spdx+json"),
        ],
    )
    .await
    .unwrap();
    // A signature of the signature: referrers are followed recursively.
    let countersig = artifact(
        &src,
        "lib/app",
        "application/vnd.example.countersig",
        52,
        Some(&sig),
    )
    .await
    .unwrap();
    attach(
        &src,
        "lib/app",
        &sig,
        &[(&countersig, "application/vnd.example.countersig")],
    )
    .await
    .unwrap();

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
    assert_eq!(
        report.totals.platforms, 4,
        "three platforms and the attestation"
    );
    assert!(
        report
            .manifests
            .iter()
            .filter(|m| m.role == ManifestRole::Referrer)
            .count()
            >= 3
    );
    assert_eq!(report.tags.len(), 2);
    let blobs = assert_same(&src, "lib/app", &dst, "mirror/app", "1.0", true).await;
    assert!(blobs >= 8);
    assert_eq!(
        dst.get_manifest(&"mirror/app".repo(), &"stable".at())
            .await
            .unwrap()
            .digest,
        top.digest
    );
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
    let copier = Copier::new(CopyOptions::default());
    // Docker v2 image and list.
    let l = Blob {
        bytes: data(3, 20_000),
        media_type: DOCKER_LAYER,
    };
    let d1 = image(&src, "docker", "linux", "amd64", &[&l], true)
        .await
        .unwrap();
    let d2 = image(&src, "docker", "linux", "arm", &[&l], true)
        .await
        .unwrap();
    let list = index(
        &src,
        "docker",
        Some("list"),
        &[
            (&d1, Some("linux/amd64"), None),
            (&d2, Some("linux/arm"), None),
        ],
        true,
    )
    .await
    .unwrap();
    src.put_manifest(&"docker".repo(), &"single".at(), &d1)
        .await
        .unwrap();
    for tag in ["list", "single"] {
        copier
            .copy(
                &source(&src, "docker", tag),
                &[target(&dst, "docker", Some(tag))],
            )
            .await
            .unwrap();
        assert_same(&src, "docker", &dst, "docker", tag, false).await;
    }
    assert_eq!(
        dst.get_manifest(&"docker".repo(), &"list".at())
            .await
            .unwrap()
            .media_type,
        manifest::DOCKER_LIST
    );
    assert_eq!(list.media_type, manifest::DOCKER_LIST);

    // Nested index: an index whose child is an index.
    let inner = multi_arch(&src, "nested", "inner", 9).await.unwrap();
    let solo = image(
        &src,
        "nested",
        "linux",
        "riscv64",
        &[&Blob::layer(10, 100)],
        false,
    )
    .await
    .unwrap();
    index(
        &src,
        "nested",
        Some("outer"),
        &[(&inner, None, None), (&solo, Some("linux/riscv64"), None)],
        false,
    )
    .await
    .unwrap();
    copier
        .copy(
            &source(&src, "nested", "outer"),
            &[target(&dst, "nested", Some("outer"))],
        )
        .await
        .unwrap();
    assert_same(&src, "nested", &dst, "nested", "outer", false).await;

    // Helm chart and an empty-config artifact with a zero-byte layer.
    helm_chart(&src, "charts/demo", "0.1.0", "demo")
        .await
        .unwrap();
    copier
        .copy(
            &source(&src, "charts/demo", "0.1.0"),
            &[target(&dst, "charts/demo", Some("0.1.0"))],
        )
        .await
        .unwrap();
    assert_same(&src, "charts/demo", &dst, "charts/demo", "0.1.0", false).await;
    let empty_layer = Blob {
        bytes: bytes::Bytes::new(),
        media_type: OCI_LAYER,
    };
    let zero = image(&src, "zero", "linux", "amd64", &[&empty_layer], false)
        .await
        .unwrap();
    src.put_manifest(&"zero".repo(), &"v1".at(), &zero)
        .await
        .unwrap();
    copier
        .copy(
            &source(&src, "zero", "v1"),
            &[target(&dst, "zero", Some("v1"))],
        )
        .await
        .unwrap();
    assert_same(&src, "zero", &dst, "zero", "v1", false).await;
    let art = artifact(&src, "art", "application/vnd.example.thing", 11, None)
        .await
        .unwrap();
    src.put_manifest(&"art".repo(), &"v1".at(), &art)
        .await
        .unwrap();
    copier
        .copy(
            &source(&src, "art", "v1"),
            &[target(&dst, "art", Some("v1"))],
        )
        .await
        .unwrap();
    assert_same(&src, "art", &dst, "art", "v1", false).await;
}

#[tokio::test]
async fn digest_sources_untagged_targets_and_conflicts() {
    let (_sa, _sb, src, dst) = pair().await;
    let one = multi_arch(&src, "app", "v1", 20).await.unwrap();
    let two = multi_arch(&src, "app", "v2", 21).await.unwrap();
    let copier = Copier::new(CopyOptions::default());

    // By digest, to an untagged repository: reachable by digest, no tag created.
    copier
        .copy(
            &source(&src, "app", one.digest.as_str()),
            &[target(&dst, "untagged", None)],
        )
        .await
        .unwrap();
    assert_eq!(
        dst.get_manifest(&"untagged".repo(), &one.digest.clone().into())
            .await
            .unwrap(),
        one
    );
    match dst.list_tags(&"untagged".repo(), None).await {
        Ok(tags) => assert!(tags.is_empty(), "no tag: {tags:?}"),
        Err(e) => assert!(
            e.is_not_found(),
            "a repository without tags has no tag list: {e}"
        ),
    }

    copier
        .copy(
            &source(&src, "app", "v1"),
            &[target(&dst, "app", Some("prod"))],
        )
        .await
        .unwrap();
    // The same content again is a no-op success.
    let again = copier
        .copy(
            &source(&src, "app", "v1"),
            &[target(&dst, "app", Some("prod"))],
        )
        .await
        .unwrap();
    assert!(again.up_to_date);
    // Other content without force: refused before any byte moves.
    let before_blobs = dst
        .head_blob(&"app".repo(), &sha256(&data(21, 40_000)))
        .await
        .unwrap();
    let err = copier
        .copy(
            &source(&src, "app", "v2"),
            &[target(&dst, "app", Some("prod"))],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::TagConflict { .. }), "{err}");
    assert!(err.to_string().contains("--force"));
    assert_eq!(
        dst.head_blob(&"app".repo(), &sha256(&data(21, 40_000)))
            .await
            .unwrap(),
        before_blobs,
        "nothing moved"
    );
    assert_eq!(
        dst.get_manifest(&"app".repo(), &"prod".at())
            .await
            .unwrap()
            .digest,
        one.digest
    );
    // With force: overwritten.
    let forced = Copier::new(CopyOptions {
        force: true,
        ..CopyOptions::default()
    });
    forced
        .copy(
            &source(&src, "app", "v2"),
            &[target(&dst, "app", Some("prod"))],
        )
        .await
        .unwrap();
    assert_eq!(
        dst.get_manifest(&"app".repo(), &"prod".at())
            .await
            .unwrap()
            .digest,
        two.digest
    );
}

#[tokio::test]
async fn the_largest_blob_streams_first_even_when_its_session_opens_last() {
    let (_sa, sb, src, _dst) = pair().await;
    let big = Blob::layer(70, 1 << 20);
    let small: Vec<Blob> = (71..74).map(|seed| Blob::layer(seed, 4096)).collect();
    let layers: Vec<&Blob> = std::iter::once(&big).chain(&small).collect();
    let m = image(&src, "app", "linux", "amd64", &layers, false)
        .await
        .unwrap();
    push_manifest(&src, "app", Some("v1"), &m).await.unwrap();
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
    Copier::new(CopyOptions {
        jobs: 1,
        ..CopyOptions::default()
    })
    .copy(
        &source(&src, "app", "v1"),
        &[target(&dst, "app", Some("v1"))],
    )
    .await
    .unwrap();
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
    let src_proxy = Proxy::start(sa.addr(), ProxyOptions::default())
        .await
        .unwrap();
    let dst_proxy = Proxy::start(sb.addr(), ProxyOptions::default())
        .await
        .unwrap();
    let t = transport();
    let (src, dst) = (
        t.registry(&src_proxy.url()).unwrap(),
        t.registry(&dst_proxy.url()).unwrap(),
    );
    let top = multi_arch(&src, "app", "v1", 30).await.unwrap();
    let copier = Copier::new(CopyOptions::default());
    let first = copier
        .copy(
            &source(&src, "app", "v1"),
            &[target(&dst, "app", Some("v1"))],
        )
        .await
        .unwrap();
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
    let again = Copier::new(CopyOptions {
        referrers: false,
        ..CopyOptions::default()
    })
    .copy(
        &source(&src, "app", "v1"),
        &[target(&dst, "app", Some("v1"))],
    )
    .await
    .unwrap();
    assert!(again.up_to_date);
    assert_eq!(src_proxy.count("", "/blobs/"), 0);
    assert_eq!(dst_proxy.count("", "/blobs/"), 0);
    assert!(
        dst_proxy.requests().len() <= 1,
        "{:?}",
        dst_proxy.requests()
    );
    assert!(
        src_proxy.requests().len() <= 1,
        "{:?}",
        src_proxy.requests()
    );

    // A new tag of content the target has: blobs answer the self-mount at once (one POST each).
    dst_proxy.clear_requests();
    let retag = copier
        .copy(
            &source(&src, "app", "v1"),
            &[target(&dst, "app", Some("v1-again"))],
        )
        .await
        .unwrap();
    assert!(
        retag.blobs.iter().all(|b| b.action == BlobAction::Skipped),
        "{:?}",
        retag.blobs
    );
    assert_eq!(
        dst_proxy.count_where(|r| r.method == "PUT" && r.path.contains("/blobs/")),
        0
    );

    // Same registry, new repository: every blob mounted, nothing read from the source.
    src_proxy.clear_requests();
    let same = copier
        .copy(
            &source(&src, "app", "v1"),
            &[target(&src, "copy/app", Some("v1"))],
        )
        .await
        .unwrap();
    assert!(
        same.blobs.iter().all(|b| b.action == BlobAction::Mounted),
        "{:?}",
        same.blobs
    );
    assert_eq!(src_proxy.count("GET", "/blobs/"), 0);
    assert_same(&src, "app", &src, "copy/app", "v1", false).await;
    assert_eq!(
        src.get_manifest(&"copy/app".repo(), &"v1".at())
            .await
            .unwrap()
            .digest,
        top.digest
    );

    // A batch: a second image sharing layers, to another repository of the target, mounts
    // them from where this copier put them.
    let other = Copier::new(CopyOptions::default());
    other
        .copy(
            &source(&src, "app", "v1"),
            &[target(&dst, "team-a/app", Some("v1"))],
        )
        .await
        .unwrap();
    let second = other
        .copy(
            &source(&src, "app", "v1"),
            &[target(&dst, "team-b/app", Some("v1"))],
        )
        .await
        .unwrap();
    assert!(
        second.blobs.iter().all(|b| b.action == BlobAction::Mounted),
        "{:?}",
        second.blobs
    );
}

#[tokio::test]
async fn platform_filters_are_explicit() {
    let (_sa, _sb, src, dst) = pair().await;
    let top = multi_arch(&src, "app", "v1", 40).await.unwrap();
    let one = Copier::new(CopyOptions {
        platforms: vec!["linux/arm64".parse().unwrap()],
        ..CopyOptions::default()
    });
    let r = one
        .copy(
            &source(&src, "app", "v1"),
            &[target(&dst, "one", Some("v1"))],
        )
        .await
        .unwrap();
    let got = dst.get_manifest(&"one".repo(), &"v1".at()).await.unwrap();
    assert_eq!(
        got.media_type,
        manifest::OCI_MANIFEST,
        "the tag points at the platform manifest"
    );
    assert_eq!(r.index_rewritten_from.as_deref(), Some(top.digest.as_str()));

    let two = Copier::new(CopyOptions {
        platforms: vec![
            "linux/amd64".parse().unwrap(),
            "linux/s390x".parse().unwrap(),
        ],
        ..CopyOptions::default()
    });
    let r = two
        .copy(
            &source(&src, "app", "v1"),
            &[target(&dst, "two", Some("v1"))],
        )
        .await
        .unwrap();
    let got = dst.get_manifest(&"two".repo(), &"v1".at()).await.unwrap();
    assert_ne!(
        got.digest, top.digest,
        "a filtered index never claims the original digest"
    );
    assert!(
        r.notes.iter().any(|n| n.starts_with("index rewritten")),
        "{:?}",
        r.notes
    );
    let children = got.parse().unwrap().manifests;
    assert_eq!(
        children.len(),
        3,
        "two platforms and the attestation of amd64"
    );

    let none = Copier::new(CopyOptions {
        platforms: vec!["windows/amd64".parse().unwrap()],
        ..CopyOptions::default()
    });
    let err = none
        .copy(
            &source(&src, "app", "v1"),
            &[target(&dst, "none", Some("v1"))],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("linux/arm64"), "{err}");
    assert!(
        "linux"
            .parse::<acr_import_transfer::PlatformFilter>()
            .is_err()
    );
}

#[tokio::test]
async fn an_up_to_date_copy_says_so() {
    let (_sa, _sb, src, dst) = pair().await;
    multi_arch(&src, "app", "v1", 42).await.unwrap();
    let copier = Copier::new(CopyOptions::default());
    let (from, to) = (source(&src, "app", "v1"), [target(&dst, "app", Some("v1"))]);
    let first = copier.copy(&from, &to).await.unwrap();
    assert!(!first.up_to_date);
    let again = copier.copy(&from, &to).await.unwrap();
    assert!(again.up_to_date);
    let line = again.summary("dst/app:v1");
    assert!(
        line.ends_with("→ dst/app:v1: up to date (3 platforms already there)"),
        "{line}"
    );
    // A single-platform manifest names its blobs: they are all there.
    let index = src.get_manifest(&"app".repo(), &"v1".at()).await.unwrap();
    let child = index.parse().unwrap().manifests[0].digest.to_string();
    let (from, to) = (
        source(&src, "app", &child),
        [target(&dst, "one", Some("v1"))],
    );
    copier.copy(&from, &to).await.unwrap();
    let again = copier.copy(&from, &to).await.unwrap();
    let line = again.summary("dst/one:v1");
    assert!(
        line.ends_with("up to date (3 blobs already there)"),
        "{line}"
    );
    assert_eq!(again.totals.blobs_copied, 0);
}

#[tokio::test]
async fn naming_every_platform_keeps_the_index() {
    let (_sa, _sb, src, dst) = pair().await;
    let top = multi_arch(&src, "app", "v1", 41).await.unwrap();
    let all = Copier::new(CopyOptions {
        platforms: ["linux/amd64", "linux/arm64", "linux/s390x"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect(),
        ..CopyOptions::default()
    });
    let r = all
        .copy(
            &source(&src, "app", "v1"),
            &[target(&dst, "all", Some("v1"))],
        )
        .await
        .unwrap();
    assert_eq!(r.index_rewritten_from, None, "{:?}", r.notes);
    assert_eq!(r.digest, top.digest.to_string());
    let got = dst.get_manifest(&"all".repo(), &"v1".at()).await.unwrap();
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
    push_manifest(&src, "win", Some("ltsc"), &m).await.unwrap();
    let r = Copier::new(CopyOptions::default())
        .copy(
            &source(&src, "win", "ltsc"),
            &[target(&dst, "win", Some("ltsc"))],
        )
        .await
        .unwrap();
    assert_eq!(
        dst.get_manifest(&"win".repo(), &"ltsc".at()).await.unwrap(),
        m
    );
    assert_eq!(
        dst.head_blob(&"win".repo(), &sha256(&foreign.bytes))
            .await
            .unwrap(),
        None
    );
    assert!(r.notes.iter().any(|n| n.contains("foreign layer")));
    Copier::new(CopyOptions {
        foreign_layers: true,
        ..CopyOptions::default()
    })
    .copy(
        &source(&src, "win", "ltsc"),
        &[target(&dst, "win2", Some("ltsc"))],
    )
    .await
    .unwrap();
    assert_eq!(
        dst.head_blob(&"win2".repo(), &sha256(&foreign.bytes))
            .await
            .unwrap(),
        Some(5000)
    );
}

#[tokio::test]
async fn large_layer_and_dry_run() {
    let (_sa, _sb, src, dst) = pair().await;
    let big = Blob::layer(70, 64 * 1024 * 1024);
    let m = image(&src, "big", "linux", "amd64", &[&big], false)
        .await
        .unwrap();
    src.put_manifest(&"big".repo(), &"v1".at(), &m)
        .await
        .unwrap();
    let plan = Copier::new(CopyOptions {
        dry_run: true,
        ..CopyOptions::default()
    })
    .copy(
        &source(&src, "big", "v1"),
        &[target(&dst, "big", Some("v1"))],
    )
    .await
    .unwrap();
    assert!(plan.dry_run);
    assert!(plan.blobs.iter().all(|b| b.action == BlobAction::WouldCopy));
    assert_eq!(
        plan.totals.bytes_copied,
        64 * 1024 * 1024 + m.parse().unwrap().config.unwrap().size
    );
    assert!(
        dst.head_manifest(&"big".repo(), &"v1".at())
            .await
            .unwrap()
            .is_none(),
        "a dry run writes nothing"
    );
    let r = Copier::new(CopyOptions::default())
        .copy(
            &source(&src, "big", "v1"),
            &[target(&dst, "big", Some("v1"))],
        )
        .await
        .unwrap();
    assert_eq!(r.totals.blobs_copied, 2);
    assert_same(&src, "big", &dst, "big", "v1", false).await;
}

#[tokio::test]
async fn skopeo_seeded_docker_image_copies_exactly() {
    let skopeo = acr_import_testsupport::skopeo();
    let (sa, sb, src, dst) = pair().await;
    // Seed with our code into an OCI layout... via a registry: push OCI, let skopeo convert
    // it to Docker v2 schema 2 in another repository, then copy what skopeo wrote.
    let m = image(
        &src,
        "oci",
        "linux",
        "amd64",
        &[&Blob::layer(80, 10_000)],
        false,
    )
    .await
    .unwrap();
    src.put_manifest(&"oci".repo(), &"v1".at(), &m)
        .await
        .unwrap();
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
    Copier::new(CopyOptions::default())
        .copy(
            &source(&src, "byskopeo", "v1"),
            &[target(&dst, "byskopeo", Some("v1"))],
        )
        .await
        .unwrap();
    assert_same(&src, "byskopeo", &dst, "byskopeo", "v1", false).await;
    assert_eq!(
        skopeo_raw(&sa.host(), "byskopeo", "v1"),
        skopeo_raw(&sb.host(), "byskopeo", "v1")
    );
    assert_eq!(
        dst.get_manifest(&"byskopeo".repo(), &"v1".at())
            .await
            .unwrap()
            .media_type,
        manifest::DOCKER_MANIFEST
    );
}

#[tokio::test]
async fn through_an_oci_layout_and_back() {
    let (sa, sb, src, dst) = pair().await;
    let top = multi_arch(&src, "app", "v1", 90).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = acr_import_transfer::OciLayout::create(dir.path().join("export")).unwrap();
    let copier = Copier::new(CopyOptions::default());
    let out = Target {
        endpoint: Endpoint::Layout(layout.clone()),
        tag: Some("v1".parse().unwrap()),
    };
    copier
        .copy(&source(&src, "app", "v1"), &[out])
        .await
        .unwrap();
    assert_eq!(
        layout.tags().await.unwrap(),
        ["v1"],
        "only the top manifest is listed in index.json"
    );
    assert_eq!(layout.get_manifest("v1").await.unwrap(), top);
    // Re-export is a no-op.
    let again = copier
        .copy(
            &source(&src, "app", "v1"),
            &[Target {
                endpoint: Endpoint::Layout(layout.clone()),
                tag: Some("v1".parse().unwrap()),
            }],
        )
        .await
        .unwrap();
    assert!(again.up_to_date);
    // The air-gapped side: layout → another registry.
    let back = Source {
        endpoint: Endpoint::Layout(layout.clone()),
        reference: "v1".parse().unwrap(),
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
    let sig = artifact(
        &src,
        "app",
        "application/vnd.example.sig",
        96,
        Some(&subject),
    )
    .await
    .unwrap();
    src.put_manifest(&"app".repo(), &"sig".at(), &sig)
        .await
        .unwrap();
    let copier = Copier::new(CopyOptions::default());
    copier
        .copy(
            &source(&src, "app", "v1"),
            &[target(&dst, "app", Some("v1"))],
        )
        .await
        .unwrap();
    copier
        .copy(
            &source(&src, "app", "sig"),
            &[target(&dst, "app", Some("sig"))],
        )
        .await
        .unwrap();
    let found = dst
        .referrers(&"app".repo(), &subject.digest, None)
        .await
        .unwrap();
    assert_eq!(found.descriptors.len(), 1, "{:?}", found.descriptors);
    assert_eq!(found.descriptors[0].digest, sig.digest);
    assert_eq!(
        found.descriptors[0].artifact_type.as_deref(),
        Some("application/vnd.example.sig")
    );
    // Copying it again adds nothing twice.
    copier
        .copy(
            &source(&src, "app", "sig"),
            &[target(&dst, "app", Some("sig"))],
        )
        .await
        .unwrap();
    assert_eq!(
        dst.referrers(&"app".repo(), &subject.digest, None)
            .await
            .unwrap()
            .descriptors
            .len(),
        1
    );
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
            let repo = format!("lib/r{r}");
            let m = image(&src, &repo, "linux", "amd64", &[&base, &own], false)
                .await
                .unwrap();
            push_manifest(&src, &repo, Some(&format!("t{t}")), &m)
                .await
                .unwrap();
            images.push((repo, format!("t{t}"), m.digest));
        }
    }
    let (src_proxy, dst_proxy) = tokio::join!(
        Proxy::start(sa.addr(), ProxyOptions::default()),
        Proxy::start(sb.addr(), ProxyOptions::default())
    );
    let (src_proxy, dst_proxy) = (src_proxy.unwrap(), dst_proxy.unwrap());
    let t = transport();
    let (src, dst) = (
        t.registry(&src_proxy.url()).unwrap(),
        t.registry(&dst_proxy.url()).unwrap(),
    );
    let copier = Copier::new(CopyOptions::default());
    let results = futures_util::future::join_all(images.iter().map(|(repo, tag, _)| {
        let (copier, src, dst) = (&copier, &src, &dst);
        async move {
            copier
                .copy(
                    &source(src, repo, tag),
                    &[target(dst, &format!("mirror/{repo}"), Some(tag))],
                )
                .await
        }
    }))
    .await;
    for (r, (repo, tag, digest)) in results.into_iter().zip(&images) {
        let report = r.unwrap_or_else(|e| panic!("{repo}:{tag}: {e}"));
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
    for (repo, tag, digest) in &images {
        let head = dst
            .head_manifest(&format!("mirror/{repo}").repo(), &tag.at())
            .await
            .unwrap();
        assert_eq!(head.and_then(|h| h.digest).as_ref(), Some(digest));
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
    let options = CopyOptions {
        progress: Some(Arc::new(move |p: Progress| {
            let mut seen = seen.lock().unwrap();
            match p {
                Progress::BlobBytes { bytes, .. } => seen.0 += bytes,
                Progress::Planned { .. } => seen.1 += 1,
                _ => {}
            }
        })),
        ..CopyOptions::default()
    };
    let report = Copier::new(options)
        .copy(
            &source(&src, "lib/app", "1.0"),
            &[target(&dst, "mirror/app", Some("1.0"))],
        )
        .await
        .unwrap();
    let (bytes, plans) = *moved.lock().unwrap();
    assert!(report.totals.bytes_copied > 0);
    assert_eq!(
        bytes, report.totals.bytes_copied,
        "every byte copied was reported"
    );
    assert_eq!(plans, 1, "one plan announced");
}
