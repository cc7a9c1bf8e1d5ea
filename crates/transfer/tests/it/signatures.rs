//! Signatures, attestations and SBOMs follow their image: cosign's digest tags and OCI
//! referrers, on every path (registry → registry, → OCI layout → registry, layouts written by
//! other tools), verified on the target with the signer's public key.

use crate::Names;
use acr_import_reference::Digest;
use acr_import_testsupport::cosign::{
    self, CosignArtifact, CosignKey, digest_tag, verify_signature,
};
use acr_import_testsupport::{
    FaultAction, FaultRule, Proxy, ProxyOptions, Registry as TestRegistry, seed,
};
use acr_import_transfer::copy::{FollowerAction, FollowerKind, FollowerLink};
use acr_import_transfer::{
    Copier, CopyOptions, CopyReport, Endpoint, Manifest, OciLayout, PlatformFilter, Registry,
    Source, Target, manifest,
};
use bytes::Bytes;

use crate::copy::{Copies, options, pair};
use crate::fixtures::*;
use crate::{source as at, target as to, transport};

async fn push_artifact(reg: &Registry, repo: &str, a: &CosignArtifact) -> Manifest {
    let m = seed::push_artifact(&reg.seeder().unwrap(), repo, a)
        .await
        .unwrap();
    typed(m).unwrap()
}

async fn blob(reg: &Registry, repo: &str, d: &acr_import_transfer::Descriptor) -> Vec<u8> {
    reg.get_blob(&repo.repo(), &d.digest, Some(d.size), true)
        .await
        .unwrap()
        .collect(1 << 20)
        .await
        .unwrap()
        .to_vec()
}

/// The manifest under the digest tag of `image` with `suffix`, and its first layer's bytes.
async fn tagged_and_layer(
    reg: &Registry,
    repo: &str,
    image: &Digest,
    suffix: &str,
) -> (Manifest, Vec<u8>) {
    let m = reg
        .get_manifest(&repo.repo(), &digest_tag(image.as_str(), suffix).at())
        .await
        .unwrap_or_else(|e| panic!("the .{suffix} of {image} in {repo}: {e}"));
    let layer = m.parse().unwrap().layers[0].clone();
    let bytes = blob(reg, repo, &layer).await;
    (m, bytes)
}

async fn signature_verifies(reg: &Registry, repo: &str, image: &Digest, key: &CosignKey) {
    let (sig, payload) = tagged_and_layer(reg, repo, image, "sig").await;
    verify_signature(&key.public_key(), &sig.bytes, &payload, image.as_str())
        .unwrap_or_else(|e| panic!("the signature of {image} in {repo}: {e:#}"));
}

async fn attestation_verifies(reg: &Registry, repo: &str, image: &Digest, key: &CosignKey) {
    let (att, envelope) = tagged_and_layer(reg, repo, image, "att").await;
    cosign::verify_attestation(&key.public_key(), &att.bytes, &envelope, image.as_str())
        .unwrap_or_else(|e| panic!("the attestation of {image} in {repo}: {e:#}"));
}

/// The same manifest under `tag` on both sides, byte for byte.
async fn same_tag(a: &Registry, a_repo: &str, b: &Registry, b_repo: &str, tag: &str) {
    let x = a.get_manifest(&a_repo.repo(), &tag.at()).await.unwrap();
    let y = b
        .get_manifest(&b_repo.repo(), &tag.at())
        .await
        .unwrap_or_else(|e| panic!("{b_repo} lacks {tag}: {e}"));
    assert_eq!(x, y, "{tag}: bytes, media type and digest");
}

/// A signed multi-arch image (`seed::cosign_signed`: the index with `.sig`, `.att`, `.sbom`
/// and a regclient-style `.meta` tag, an OCI-referrer signature of the index, and a `.sig`
/// for each platform) and its signer's key.
/// `app:v1`, a signed image, copied with changed options; the registries stay up as long
/// as this does.
struct SignedCopy {
    s: Signed,
    report: CopyReport,
    dst: Registry,
    _servers: (TestRegistry, TestRegistry),
}

/// Seeds a signed `app:v1` (see [`signed_image`]) and copies it to `app:v1` of a second
/// registry with the options `change` makes.
async fn copy_signed(seed: u64, change: impl FnOnce(&mut CopyOptions)) -> SignedCopy {
    let (sa, sb, src, dst) = pair().await;
    let s = signed_image(&src, "app", seed).await;
    let report = Copies::with(&src, &dst, options(change))
        .ok("app:v1", "app:v1")
        .await;
    SignedCopy {
        s,
        report,
        dst,
        _servers: (sa, sb),
    }
}

struct Signed {
    top: Manifest,
    children: Vec<Digest>,
    key: CosignKey,
    referrer: Manifest,
}

async fn signed_image(reg: &Registry, repo: &str, seed: u64) -> Signed {
    let key = CosignKey::generate().unwrap();
    let s = seed::cosign_signed(&reg.seeder().unwrap(), repo, "v1", seed, &key)
        .await
        .unwrap();
    Signed {
        children: s.signed[1..].iter().map(|d| d.parse().unwrap()).collect(),
        top: typed(s.top).unwrap(),
        key,
        referrer: typed(s.referrer).unwrap(),
    }
}

/// Everything of [`signed_image`] is on `dst_repo`, byte for byte, and verifies there.
async fn all_followed(src: &Registry, dst: &Registry, dst_repo: &str, s: &Signed) {
    let d = s.top.digest.as_str();
    for suffix in ["sig", "att", "sbom", "meta"] {
        same_tag(src, "app", dst, dst_repo, &digest_tag(d, suffix)).await;
    }
    signature_verifies(dst, dst_repo, &s.top.digest, &s.key).await;
    attestation_verifies(dst, dst_repo, &s.top.digest, &s.key).await;
    for c in &s.children {
        same_tag(src, "app", dst, dst_repo, &digest_tag(c.as_str(), "sig")).await;
        signature_verifies(dst, dst_repo, c, &s.key).await;
    }
    let listed = dst
        .referrers(&dst_repo.repo(), &s.top.digest, None)
        .await
        .unwrap();
    assert!(
        listed
            .descriptors
            .iter()
            .any(|r| r.digest == s.referrer.digest),
        "the referrer signature is listed under the index on {dst_repo}"
    );
    let referrer = dst
        .get_manifest(&dst_repo.repo(), &s.referrer.digest.clone().into())
        .await
        .unwrap();
    assert_eq!(referrer, s.referrer);
    let layer = referrer.parse().unwrap().layers[0].clone();
    let payload = blob(dst, dst_repo, &layer).await;
    verify_signature(&s.key.public_key(), &referrer.bytes, &payload, d).unwrap();
}

fn count(report: &CopyReport, kind: FollowerKind, link: FollowerLink) -> usize {
    report
        .followers
        .iter()
        .filter(|f| f.kind == kind && f.link == link && f.action != FollowerAction::LeftBehind)
        .count()
}

#[tokio::test]
async fn cosign_tags_and_referrers_follow_by_tag_by_digest_and_for_every_child() {
    let (sa, sb, _, _) = pair().await;
    let t = transport();
    let src = t.registry(&sa.url()).unwrap();
    let proxy = Proxy::start(sb.addr(), ProxyOptions::default())
        .await
        .unwrap();
    let dst = t.registry(&proxy.url()).unwrap();
    let s = signed_image(&src, "app", 300).await;

    let report = Copies::new(&src, &dst).ok("app:v1", "mirror/app:v1").await;
    all_followed(&src, &dst, "mirror/app", &s).await;
    // The index's .sig, one per platform, and the referrer; the .att, .sbom and .meta.
    assert_eq!(
        count(&report, FollowerKind::Signature, FollowerLink::DigestTag),
        1 + s.children.len()
    );
    assert_eq!(
        count(&report, FollowerKind::Signature, FollowerLink::Referrer),
        1
    );
    let f = &report.totals.followed;
    assert_eq!(
        (
            f.signatures,
            f.attestations,
            f.sboms,
            f.other,
            f.left_behind
        ),
        (2 + s.children.len(), 1, 1, 1, 0)
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["totals"]["followed"]["attestations"], 1);
    let tagged = json["followers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["link"] == "digest-tag" && f["action"] == "copied")
        .count();
    assert_eq!(tagged, 4 + s.children.len(), "{json}");
    let line = report.summary("x");
    let expected = format!(
        "followed: {} signatures, 1 attestation, 1 SBOM, 1 other artifact",
        2 + s.children.len()
    );
    assert!(line.contains(&expected), "{line}");
    // Each digest tag is written once the image it signs is in place on the target.
    let log = proxy.requests();
    let put_at = |suffix: &str| {
        log.iter()
            .position(|r| r.method == "PUT" && r.path.ends_with(suffix))
            .unwrap_or_else(|| panic!("no PUT of {suffix}"))
    };
    let index_in_place = put_at(&format!("/manifests/{}", s.top.digest));
    assert!(index_in_place < put_at(&digest_tag(s.top.digest.as_str(), "sig")));
    for c in &s.children {
        assert!(put_at(&format!("/manifests/{c}")) < put_at(&digest_tag(c.as_str(), "sig")));
    }

    // By digest, untagged (`--repository`): the same.
    let by_digest = format!("app@{}", s.top.digest);
    let pinned = Copies::new(&src, &dst).ok(&by_digest, "pinned").await;
    assert_eq!(pinned.totals.followed.signatures, 2 + s.children.len());
    all_followed(&src, &dst, "pinned", &s).await;

    // Again onto the complete target: everything is already there; nothing attached is
    // read from the source again, nothing is written.
    proxy.clear_requests();
    let again = Copies::new(&src, &dst).ok("app:v1", "mirror/app:v1").await;
    assert!(again.up_to_date);
    assert_eq!(again.followers.len(), report.followers.len());
    let there = again
        .followers
        .iter()
        .all(|f| f.action == FollowerAction::AlreadyThere);
    assert!(there, "{:?}", again.followers);
    assert_eq!(proxy.count("PUT", "/manifests/"), 0);
    assert_eq!(proxy.count("POST", "/blobs/"), 0);
}

/// A full first page of tags with a `Link` to the next, as a registry that paginates the tag
/// list answers (the distribution specification's `n`; the distribution registry 2.8 used
/// here returns every tag whatever `n` says).
fn first_page_of_many(repo: &str) -> FaultAction {
    let n = acr_import_transfer::copy::SMALL_REPOSITORY;
    let tags: Vec<String> = (0..n).map(|i| format!("old-{i:04}")).collect();
    FaultAction::Respond {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            (
                "Link".into(),
                format!(
                    "</v2/{repo}/tags/list?n={n}&last=old-{:04}>; rel=\"next\"",
                    n - 1
                ),
            ),
        ],
        body: Bytes::from(
            serde_json::to_vec(&serde_json::json!({"name": repo, "tags": tags})).unwrap(),
        ),
    }
}

#[tokio::test]
async fn small_repositories_are_listed_once_and_large_ones_probed_with_head() {
    let (sa, sb, _, _) = pair().await;
    let proxy = Proxy::start(
        sa.addr(),
        ProxyOptions::with_rules([FaultRule::new(first_page_of_many("large"))
            .method("GET")
            .path_contains("/v2/large/tags/list")]),
    )
    .await
    .unwrap();
    let t = transport();
    let (src, dst) = (
        t.registry(&proxy.url()).unwrap(),
        t.registry(&sb.url()).unwrap(),
    );
    let key = CosignKey::generate().unwrap();
    for repo in ["small", "large"] {
        let image = crate::push_image(&src, repo, "v1", 400, 2000).await;
        let d = image.digest.as_str();
        push_artifact(&src, repo, &cosign::signature(&key, repo, d).unwrap()).await;
        let meta = cosign::tagged_blob(d, "meta", "application/json", b"{}");
        push_artifact(&src, repo, &meta).await;
    }
    let large = src.get_manifest(&"large".repo(), &"v1".at()).await.unwrap();
    let copies = Copies::new(&src, &dst);

    proxy.clear_requests();
    let small = copies.ok("small:v1", "small:v1").await;
    assert_eq!(proxy.count("GET", "/v2/small/tags/list"), 1);
    assert_eq!(
        proxy.count("HEAD", ".att"),
        0,
        "the tag list said there is none"
    );
    assert_eq!(small.totals.followed.signatures, 1);
    assert_eq!(
        small.totals.followed.other, 1,
        "the .meta tag, from the list"
    );

    proxy.clear_requests();
    let large_report = copies.ok("large:v1", "large:v1").await;
    assert_eq!(proxy.count("GET", "/v2/large/tags/list"), 1, "one page");
    for suffix in [".sig", ".att", ".sbom"] {
        assert_eq!(proxy.count("HEAD", suffix), 1, "{suffix}");
    }
    assert_eq!(large_report.totals.followed.signatures, 1);
    assert_eq!(
        large_report.totals.followed.other, 0,
        "in a large repository only cosign's tags are asked for"
    );
    signature_verifies(&dst, "large", &large.digest, &key).await;
}

#[tokio::test]
async fn no_referrers_leaves_everything_behind_and_says_so() {
    let SignedCopy {
        s,
        report,
        dst,
        _servers,
    } = copy_signed(310, |o| o.referrers = false).await;
    assert!(report.followers_off);
    assert!(report.followers.is_empty());
    assert!(
        report.notes.iter().any(|n| n.starts_with("--no-referrers")),
        "{:?}",
        report.notes
    );
    assert!(report.summary("x").contains("left behind (--no-referrers)"));
    let sig = digest_tag(s.top.digest.as_str(), "sig");
    absent(&dst, "app", &sig).await;
    let listed = dst
        .referrers(&"app".repo(), &s.top.digest, None)
        .await
        .unwrap();
    assert!(listed.descriptors.is_empty());
}

#[tokio::test]
async fn a_rewritten_index_leaves_its_signatures_behind_and_children_keep_theirs() {
    let SignedCopy {
        s,
        report,
        dst,
        _servers,
    } = copy_signed(320, |o| {
        o.platforms = vec![
            "linux/amd64".parse::<PlatformFilter>().unwrap(),
            "linux/arm64".parse().unwrap(),
        ]
    })
    .await;
    let new: Digest = report.digest.parse().unwrap();
    assert_ne!(new, s.top.digest);
    for image in [&s.top.digest, &new] {
        let tag = digest_tag(image.as_str(), "sig");
        absent(&dst, "app", &tag).await;
    }
    let left: Vec<_> = report
        .followers
        .iter()
        .filter(|f| f.action == FollowerAction::LeftBehind)
        .collect();
    assert_eq!(
        left.len(),
        5,
        "sig, att, sbom, meta and the referrer: {left:?}"
    );
    assert!(left.iter().all(|f| f.subject == s.top.digest.as_str()));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("left behind") && n.contains(s.top.digest.as_str())),
        "{:?}",
        report.notes
    );
    assert_eq!(report.totals.followed.left_behind, 5);
    // The kept children have their own digests, so their signatures still hold.
    let kept = dst
        .get_manifest(&"app".repo(), &"v1".at())
        .await
        .unwrap()
        .parse()
        .unwrap();
    let mut signed = 0;
    for c in kept
        .manifests
        .iter()
        .filter(|c| s.children.contains(&c.digest))
    {
        signature_verifies(&dst, "app", &c.digest, &s.key).await;
        signed += 1;
    }
    assert_eq!(signed, 2);
}

#[tokio::test]
async fn a_dry_run_lists_the_followers_and_writes_nothing() {
    let SignedCopy {
        s,
        report,
        dst,
        _servers,
    } = copy_signed(330, |o| o.dry_run = true).await;
    let text = report.summary("x");
    let sig = digest_tag(s.top.digest.as_str(), "sig");
    assert!(
        text.contains(&format!("would copy signature {sig}")),
        "{text}"
    );
    assert!(text.contains("would copy attestation"), "{text}");
    assert!(text.contains("would copy SBOM"), "{text}");
    assert!(
        text.contains(&format!(
            "would copy signature referrer {}",
            s.referrer.digest
        )),
        "{text}"
    );
    absent(&dst, "app", &sig).await;
    absent(&dst, "app", "v1").await;
}

#[tokio::test]
async fn a_refused_artifact_is_left_behind_with_a_note_and_a_kept_tag_is_not_overwritten() {
    let (sa, sb, _, _) = pair().await;
    let body = Bytes::from_static(
        br#"{"errors":[{"code":"MANIFEST_INVALID","message":"artifact type not allowed"}]}"#,
    );
    let proxy = Proxy::start(
        sb.addr(),
        ProxyOptions::with_rules([FaultRule::new(FaultAction::Respond {
            status: 400,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
        })
        .method("PUT")
        .path_matches(|p| p.ends_with(".att"))]),
    )
    .await
    .unwrap();
    let t = transport();
    let (src, dst) = (
        t.registry(&sa.url()).unwrap(),
        t.registry(&proxy.url()).unwrap(),
    );
    let s = signed_image(&src, "app", 340).await;
    // The target already has a signature of its own under the index's .sig tag.
    let other_key = CosignKey::generate().unwrap();
    let own = cosign::signature(&other_key, "elsewhere", s.top.digest.as_str()).unwrap();
    let own = push_artifact(&dst, "app", &own).await;
    let report = Copies::new(&src, &dst).ok("app:v1", "app:v1").await;
    let att = digest_tag(s.top.digest.as_str(), "att");
    let sig = digest_tag(s.top.digest.as_str(), "sig");
    absent(&dst, "app", &att).await;
    assert_eq!(
        dst.get_manifest(&"app".repo(), &sig.at()).await.unwrap(),
        own,
        "kept"
    );
    assert_eq!(report.totals.followed.left_behind, 2);
    for tag in [&att, &sig] {
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.starts_with(&format!("left behind: {tag}"))),
            "{tag}: {:?}",
            report.notes
        );
    }
    assert!(
        report
            .summary("x")
            .contains("2 signatures, attestations or SBOMs left behind")
    );
    // Everything else followed, and the image is in place.
    assert_eq!(
        dst.get_manifest(&"app".repo(), &"v1".at()).await.unwrap(),
        s.top
    );
    same_tag(
        &src,
        "app",
        &dst,
        "app",
        &digest_tag(s.top.digest.as_str(), "sbom"),
    )
    .await;

    // With --force, the target's own signature is replaced by the source's.
    let force = options(|o| o.force = true);
    let forced = Copies::with(&src, &dst, force).ok("app:v1", "app:v1").await;
    assert_eq!(forced.totals.followed.left_behind, 1, "the refused .att");
    signature_verifies(&dst, "app", &s.top.digest, &s.key).await;
}

/// The `index.json` of a layout, parsed.
fn index_json(layout: &OciLayout) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(layout.path().join("index.json")).unwrap()).unwrap()
}

fn entry_named<'a>(index: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(name))
}

#[tokio::test]
async fn through_an_oci_layout_every_signature_and_referrer_survives_both_hops() {
    let (_sa, _sb, src, dst) = pair().await;
    let s = signed_image(&src, "app", 350).await;
    // A referrer of a referrer: an SBOM of the referrer signature.
    let sbom_of_sig = artifact(&src, "app", "application/spdx+json", 351, Some(&s.referrer))
        .await
        .unwrap();
    attach(
        &src,
        "app",
        &s.referrer,
        &[(&sbom_of_sig, "application/spdx+json")],
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path().join("export")).unwrap();
    let copier = Copier::new(CopyOptions::default());
    let out = copier
        .copy(
            &at(&src, "app", "v1"),
            &[Target {
                endpoint: Endpoint::Layout(layout.clone()),
                tag: Some("v1".parse().unwrap()),
            }],
        )
        .await
        .unwrap();
    assert_eq!(out.totals.followed.signatures, 2 + s.children.len());

    // The layout lists everything the way other tools look for it.
    let index = index_json(&layout);
    let d = s.top.digest.as_str();
    for suffix in ["sig", "att", "sbom", "meta"] {
        let tag = digest_tag(d, suffix);
        let e = entry_named(&index, &tag).unwrap_or_else(|| panic!("no entry named {tag}"));
        let m = src.get_manifest(&"app".repo(), &tag.at()).await.unwrap();
        assert_eq!(e["digest"], m.digest.as_str());
    }
    let fallback = entry_named(&index, s.top.digest.referrers_tag().as_str())
        .expect("the fallback index of the image is named in index.json");
    assert_eq!(fallback["mediaType"], manifest::OCI_INDEX);
    let referrer = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["digest"] == s.referrer.digest.as_str())
        .expect("an index.json entry for the referrer");
    assert_eq!(referrer["artifactType"], cosign::SIGNATURE_ARTIFACT_TYPE);
    assert!(referrer["annotations"]["org.opencontainers.image.ref.name"].is_null());
    let listed = layout.referrers(&s.top.digest).await.unwrap();
    assert!(listed.iter().any(|r| r.digest == s.referrer.digest));
    let listed = layout.referrers(&s.referrer.digest).await.unwrap();
    assert!(listed.iter().any(|r| r.digest == sbom_of_sig.digest));

    // The other side of the air gap.
    let back = Source {
        endpoint: Endpoint::Layout(layout.clone()),
        reference: "v1".parse().unwrap(),
    };
    let r = copier
        .copy(&back, &[to(&dst, "imported/app", Some("v1"))])
        .await
        .unwrap();
    assert_eq!(r.totals.followed.signatures, 2 + s.children.len());
    all_followed(&src, &dst, "imported/app", &s).await;
    assert_same(&src, "app", &dst, "imported/app", "v1", true).await;
    let listed = dst
        .referrers(&"imported/app".repo(), &s.referrer.digest, None)
        .await
        .unwrap();
    assert!(
        listed
            .descriptors
            .iter()
            .any(|r| r.digest == sbom_of_sig.digest)
    );
    assert_eq!(
        dst.get_manifest(&"imported/app".repo(), &sbom_of_sig.digest.clone().into())
            .await
            .unwrap(),
        sbom_of_sig
    );
}

/// A layout in regctl's format, written from regclient's documented format by test support
/// (not by our engine): referrers in a fallback index and as untagged entries, one found
/// only by its subject, and a cosign `.sig` tag.
#[tokio::test]
async fn a_layout_in_regctl_format_imports_with_all_its_referrers() {
    let sb = acr_import_testsupport::Registry::start().await.unwrap();
    let dst = transport().registry(&sb.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("regctl");
    let key = CosignKey::generate().unwrap();
    let written = acr_import_testsupport::regctl_layout::write(&root, &key).unwrap();
    let report = Copier::new(CopyOptions::default())
        .copy(
            &Source {
                endpoint: Endpoint::Layout(OciLayout::open(&root).unwrap()),
                reference: written.tag.parse().unwrap(),
            },
            &[to(&dst, "app", Some("v1"))],
        )
        .await
        .unwrap();
    let f = &report.totals.followed;
    assert_eq!(
        (f.signatures, f.sboms, f.other),
        (2, 1, 1),
        "{:?}",
        report.followers
    );
    let image: Digest = written.image.parse().unwrap();
    let found = dst.referrers(&"app".repo(), &image, None).await.unwrap();
    for (d, bytes) in written.listed.iter().chain([&written.by_subject]) {
        let d: Digest = d.parse().unwrap();
        assert!(
            found.descriptors.iter().any(|r| r.digest == d),
            "referrer {d} is listed on the target"
        );
        let copied = dst
            .get_manifest(&"app".repo(), &d.clone().into())
            .await
            .unwrap();
        assert_eq!(copied.bytes.as_ref(), bytes.as_slice(), "byte for byte");
    }
    signature_verifies(&dst, "app", &image, &key).await;
}

/// Asserts that `repo` of `registry` holds no manifest under `tag`.
async fn absent(registry: &Registry, repo: &str, tag: &str) {
    let head = registry
        .head_manifest(&repo.repo(), &tag.at())
        .await
        .unwrap();
    assert!(head.is_none(), "{repo}:{tag} is there: {head:?}");
}
