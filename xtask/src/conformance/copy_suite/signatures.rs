//! Signatures follow their image, on every path the matrix does not cover: by digest to an
//! untagged target, from an OCI layout written in regctl's format, after a server-side
//! import, and the two ways they do not follow (`--no-referrers`, an index `--platform`
//! rewrote), each saying so. (Copies by tag, of a multi-arch index and through an OCI
//! layout are the matrix's `cosign-signed` case.)

use acr_import_tests::Names;
use std::time::{Duration, Instant};

use acr_import_reference::Digest;
use acr_import_tests::signatures::signature_verifies;
use acr_import_testsupport::cosign::{CosignKey, digest_tag};
use acr_import_testsupport::seed::{Seeder, Signed, cosign_signed};
use acr_import_transfer::copy::{BlobAction, FollowerAction};
use acr_import_transfer::{
    Copier, CopyOptions, CopyReport, Endpoint, OciLayout, PlatformFilter, Source, Target,
};
use anyhow::Context as _;

use super::super::Outcome;
use super::Ctx;

/// The checks, named `signatures/<name>`.
pub const CHECKS: &[&str] = &[
    "by-digest-untagged",
    "regctl-layout",
    "after-server-side-import",
    "no-referrers",
    "platform-rewrite",
    "dry-run",
];

/// Runs the selected checks (full names), one after another.
pub async fn run(ctx: &Ctx<'_>, selected: &[String]) -> Vec<(String, Outcome, Duration)> {
    let mut out = Vec::new();
    for (i, name) in CHECKS.iter().enumerate() {
        let full = format!("signatures/{name}");
        if !selected.contains(&full) {
            continue;
        }
        let started = Instant::now();
        let outcome = match check(ctx, name, 500 + 10 * i as u64).await {
            Ok(note) => Outcome::Pass(note),
            Err(e) => match super::deviation_of(&e) {
                Some(text) => Outcome::Deviation(text),
                None => Outcome::Fail(format!("{e:#}")),
            },
        };
        out.push((full, outcome, started.elapsed()));
    }
    out
}

async fn check(ctx: &Ctx<'_>, name: &str, seed: u64) -> anyhow::Result<String> {
    let repo = format!("signatures/{name}");
    let target = format!("{}signatures/{name}", ctx.prefix);
    if name == "regctl-layout" {
        return regctl_layout(ctx, &target).await;
    }
    let key = CosignKey::generate()?;
    let s = cosign_signed(&Seeder::new(ctx.src.host())?, &repo, "v1", seed, &key).await?;
    let top: Digest = s.top.digest.parse()?;
    let src = |reference: &str| Source {
        endpoint: Endpoint::registry(ctx.src.clone(), repo.repo()),
        // The callers below name tags and digests of their own making.
        reference: reference.parse().expect("a tag or a digest"),
    };
    let to = |tag: Option<&str>| Target {
        endpoint: Endpoint::registry(ctx.dst.clone(), target.repo()),
        tag: tag.map(|t| t.parse().expect("a tag")),
    };
    let copy = |options: CopyOptions, source: Source, t: Target| async move {
        Copier::new(options)
            .copy(&source, &[t])
            .await
            .context("the copy failed")
    };
    match name {
        "by-digest-untagged" => {
            let r = copy(CopyOptions::default(), src(s.top.digest.as_str()), to(None)).await?;
            all_followed(ctx, &repo, &target, &s, &key).await?;
            Ok(format!("untagged target: {}", followed(&r)))
        }
        "after-server-side-import" => {
            // importImage is emulated by a copy that leaves everything attached behind; the
            // follow-up is the copy the importer then runs client-side.
            let image_only = CopyOptions {
                referrers: false,
                ..CopyOptions::default()
            };
            copy(image_only, src("v1"), to(Some("v1"))).await?;
            let r = copy(CopyOptions::default(), src("v1"), to(Some("v1"))).await?;
            anyhow::ensure!(r.up_to_date, "the follow-up found the image missing");
            let moved = r
                .blobs
                .iter()
                .filter(|b| b.action == BlobAction::Copied)
                .count();
            all_followed(ctx, &repo, &target, &s, &key).await?;
            Ok(format!(
                "the image in place, the follow-up uploaded only the followers' {moved} blobs: {}",
                followed(&r)
            ))
        }
        "no-referrers" => {
            let off = CopyOptions {
                referrers: false,
                ..CopyOptions::default()
            };
            let r = copy(off, src("v1"), to(Some("v1"))).await?;
            for tag in &s.digest_tags {
                anyhow::ensure!(
                    ctx.dst
                        .head_manifest(&target.repo(), &tag.at())
                        .await?
                        .is_none(),
                    "{tag} was copied with referrers off"
                );
            }
            let listed = ctx.dst.referrers(&target.repo(), &top, None).await?;
            anyhow::ensure!(listed.descriptors.is_empty(), "a referrer was copied");
            let note = r.notes.iter().find(|n| n.starts_with("--no-referrers"));
            let note = note.context("no note says what stayed behind")?;
            Ok(format!("nothing followed; the report says `{note}`"))
        }
        "platform-rewrite" => platform_rewrite(ctx, &repo, &target, &s, &key).await,
        "dry-run" => {
            let dry = CopyOptions {
                dry_run: true,
                ..CopyOptions::default()
            };
            let r = copy(dry, src("v1"), to(Some("v1"))).await?;
            let text = r.summary("target");
            let sig = digest_tag(s.top.digest.as_str(), "sig");
            anyhow::ensure!(
                text.contains(&format!("would copy signature {sig}")),
                "the dry run does not list {sig}: {text}"
            );
            anyhow::ensure!(
                ctx.dst
                    .head_manifest(&target.repo(), &sig.at())
                    .await?
                    .is_none(),
                "the dry run wrote {sig}"
            );
            Ok(format!(
                "{} followers listed, nothing written",
                text.lines().count() - 1
            ))
        }
        other => anyhow::bail!("no such check: {other}"),
    }
}

/// `followed: 5 signatures, …`.
fn followed(r: &CopyReport) -> String {
    r.followers_summary()
        .unwrap_or_else(|| "nothing followed".to_owned())
}

/// Every digest tag and the referrer of `s` on the target, byte for byte, and every
/// signature verifies there.
async fn all_followed(
    ctx: &Ctx<'_>,
    repo: &str,
    target: &str,
    s: &Signed,
    key: &CosignKey,
) -> anyhow::Result<()> {
    for tag in &s.digest_tags {
        let a = ctx.src.get_manifest(&repo.repo(), &tag.at()).await?;
        let b = ctx
            .dst
            .get_manifest(&target.repo(), &tag.at())
            .await
            .with_context(|| format!("the target lacks {tag}"))?;
        anyhow::ensure!(a == b, "{tag}: the target holds other bytes");
    }
    let listed = ctx
        .dst
        .referrers(&target.repo(), &s.top.digest.parse()?, None)
        .await?;
    anyhow::ensure!(
        listed
            .descriptors
            .iter()
            .any(|r| r.digest.as_str() == s.referrer.digest),
        "the referrer signature is not listed under the image on the target"
    );
    for d in &s.signed {
        signature_verifies(&ctx.dst, target, d, key)
            .await
            .with_context(|| format!("the signature of {d}"))?;
    }
    Ok(())
}

async fn platform_rewrite(
    ctx: &Ctx<'_>,
    repo: &str,
    target: &str,
    s: &Signed,
    key: &CosignKey,
) -> anyhow::Result<String> {
    let two = CopyOptions {
        platforms: vec![
            "linux/amd64".parse::<PlatformFilter>()?,
            "linux/arm64".parse()?,
        ],
        ..CopyOptions::default()
    };
    let r = Copier::new(two)
        .copy(
            &Source {
                endpoint: Endpoint::registry(ctx.src.clone(), repo.repo()),
                reference: "v1".parse()?,
            },
            &[Target {
                endpoint: Endpoint::registry(ctx.dst.clone(), target.repo()),
                tag: Some("v1".parse()?),
            }],
        )
        .await
        .context("the copy failed")?;
    let new: Digest = r.digest.parse()?;
    for image in [s.top.digest.as_str(), new.as_str()] {
        let tag = digest_tag(image, "sig");
        anyhow::ensure!(
            ctx.dst
                .head_manifest(&target.repo(), &tag.at())
                .await?
                .is_none(),
            "{tag} is on the target: the index's signature does not hold for the rewritten one"
        );
    }
    let left = r
        .followers
        .iter()
        .filter(|f| f.action == FollowerAction::LeftBehind)
        .count();
    anyhow::ensure!(left == 5, "{left} followers left behind, expected 5");
    anyhow::ensure!(
        r.notes.iter().any(|n| n.starts_with("left behind")),
        "no note says what stayed behind"
    );
    let kept = ctx.dst.get_manifest(&target.repo(), &"v1".at()).await?;
    let mut verified = 0;
    for c in kept.parse().map_err(anyhow::Error::msg)?.manifests {
        if s.signed.iter().any(|d| d == c.digest.as_str()) {
            signature_verifies(&ctx.dst, target, c.digest.as_str(), key).await?;
            verified += 1;
        }
    }
    anyhow::ensure!(
        verified == 2,
        "{verified} platform signatures verify, expected 2"
    );
    Ok(format!(
        "index {} → {new}: its 5 followers left behind with a note; both kept platforms' signatures verify",
        s.top.digest
    ))
}

/// A layout written in regctl's format (by test support, file by file) imports with all its
/// referrers and its cosign signature.
async fn regctl_layout(ctx: &Ctx<'_>, target: &str) -> anyhow::Result<String> {
    let key = CosignKey::generate()?;
    let root = ctx.layouts.join("regctl");
    let written = acr_import_testsupport::regctl_layout::write(&root, &key)?;
    let r = Copier::new(CopyOptions::default())
        .copy(
            &Source {
                endpoint: Endpoint::Layout(OciLayout::open(&root)?),
                reference: written.tag.parse()?,
            },
            &[Target {
                endpoint: Endpoint::registry(ctx.dst.clone(), target.repo()),
                tag: Some(written.tag.parse()?),
            }],
        )
        .await
        .context("the copy failed")?;
    let image: Digest = written.image.parse()?;
    let listed = ctx.dst.referrers(&target.repo(), &image, None).await?;
    for (d, bytes) in written.listed.iter().chain([&written.by_subject]) {
        let d: Digest = d.parse()?;
        anyhow::ensure!(
            listed.descriptors.iter().any(|r| r.digest == d),
            "referrer {d} is not listed on the target"
        );
        let m = ctx
            .dst
            .get_manifest(&target.repo(), &d.clone().into())
            .await?;
        anyhow::ensure!(m.bytes.as_ref() == bytes.as_slice(), "{d}: other bytes");
    }
    signature_verifies(&ctx.dst, target, image.as_str(), &key).await?;
    Ok(format!(
        "3 referrers (fallback index and subject entries) and the cosign signature: {}",
        followed(&r)
    ))
}
