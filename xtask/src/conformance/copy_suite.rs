//! The copy suite: every kind of image, copied every way, verified byte for byte.
//!
//! Each case of [`CASES`] is pushed to a local source registry, then copied along each of
//! [`ROUTES`] by our copy engine ([`Copier`]):
//!
//! - `registry-to-registry`: source → the target registry;
//! - `via-oci-layout`: source → an OCI image layout on disk → the target registry;
//! - `same-registry`: the target's copy → another repository of the target (blobs mounted).
//!
//! Every copy is compared with the source by our client — each manifest by its bytes, media
//! type and digest; each blob by digest and size; foreign layers left out; referrers listed
//! on the target (through the OCI layout too); every digest tag (`sha256-<hex>.sig`, …) of a
//! copied manifest under the same tag; cosign signatures verified on the target with the
//! signer's public key — and its top manifest is fetched again by `skopeo inspect --raw` and
//! compared byte for byte. Without skopeo on `PATH` a case with a registry target fails (its
//! cross-check cannot run), never a pass.

use acr_import_tests::Names;
use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use acr_import_reference::Digest;
use acr_import_testsupport::cosign::CosignKey;
use acr_import_transfer::copy::BlobAction;
use acr_import_transfer::{
    Copier, CopyOptions, CopyReport, Descriptor, Endpoint, Manifest, OciLayout, ReferrersSource,
    Registry, Source, Target,
};
use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt as _;

use super::{Outcome, Setup};
use acr_import_testsupport::seed::{self as fixtures, Blob, Signatures, data};

mod signatures;

/// The images of the matrix.
pub const CASES: &[&str] = &[
    "docker-v2",
    "docker-list",
    "oci-manifest",
    "oci-index-attestations",
    "nested-index",
    "helm-chart",
    "empty-config-artifact",
    "referrers",
    "artifact-with-subject",
    "foreign-layers",
    "zero-byte-blob",
    "64mib-blob",
    "cosign-signed",
];

/// The ways each image is copied.
pub const ROUTES: &[&str] = &["registry-to-registry", "via-oci-layout", "same-registry"];

/// The ways each image is copied against a registry personality: the routes above (the
/// personality as the target), and out of it (the personality as the source, a local
/// registry as the target: how users meet the registries they import from).
pub const PERSONALITY_ROUTES: &[&str] = &[
    "registry-to-registry",
    "via-oci-layout",
    "same-registry",
    "out-of-registry",
];

/// A registry personality under test: who publishes to it, who reads from it, and the local
/// registry the out-of-registry route copies to.
pub struct PersonalityCtx {
    /// Signed in where it must be, where the registry's publishers push: reads what was
    /// published.
    pub publisher: Registry,
    /// Seeds where the registry's publishers push, signed in where it must be.
    pub seeder: fixtures::Seeder,
    /// Reads as users do: anonymously where the registry allows it.
    pub reader: Registry,
    /// The local target of the out-of-registry route.
    pub out: Registry,
}

/// A registry manner that the copy coped with, but that the spec or the engine's usual path
/// would not have it do (uploads where a mount was asked for, a refused push): reported as
/// a deviation, expected or not per registry kind.
#[derive(Debug)]
pub struct Deviation(pub String);

impl std::fmt::Display for Deviation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Deviation {}

/// A failure that is a registry's known manner: a [`Deviation`], or a push refused with
/// `405` (a read-only registry).
fn deviation_of(e: &anyhow::Error) -> Option<String> {
    for cause in e.chain() {
        if let Some(d) = cause.downcast_ref::<Deviation>() {
            return Some(d.0.clone());
        }
        if let Some(t) = cause.downcast_ref::<acr_import_transfer::TransferError>()
            && t.status() == Some(405)
        {
            return Some(format!("the registry refuses writes: {t}"));
        }
    }
    None
}

const TAG: &str = "v1";
const SBOM: &str = "application/spdx+json";
const SIGNATURE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// What was pushed to the source for a case.
struct Seeded {
    /// Referrers reachable from the top (recursively).
    referrers: usize,
    /// Digest tags of the copied manifests.
    digest_tags: usize,
    /// The signer's key and the manifests it signed (`.sig`), to verify on the target.
    signed: Option<(&'static CosignKey, Vec<String>)>,
}

impl Seeded {
    /// Checks the counts a comparison found against what was seeded, and the signatures on
    /// a registry target.
    async fn check(&self, tally: &Tally, to: &Place) -> anyhow::Result<()> {
        anyhow::ensure!(
            tally.referrers == self.referrers,
            "{} referrers on the target, the source has {}",
            tally.referrers,
            self.referrers
        );
        anyhow::ensure!(
            tally.digest_tags == self.digest_tags,
            "{} digest tags on the target, the source has {}",
            tally.digest_tags,
            self.digest_tags
        );
        if let (Some((key, signed)), Place::Registry(reg, repo)) = (&self.signed, to) {
            for d in signed {
                acr_import_tests::signatures::signature_verifies(reg, repo, d, key)
                    .await
                    .with_context(|| format!("the signature of {d} on the target"))?;
            }
        }
        Ok(())
    }
}

/// Where content is, for the comparisons.
enum Place {
    Registry(Registry, String),
    Layout(OciLayout),
}

impl Place {
    async fn manifest(&self, reference: &str) -> anyhow::Result<Manifest> {
        Ok(match self {
            Place::Registry(r, repo) => r.get_manifest(&repo.repo(), &reference.at()).await?,
            Place::Layout(l) => l.get_manifest(&reference.at()).await?,
        })
    }

    async fn blob_size(&self, digest: &Digest) -> anyhow::Result<Option<u64>> {
        Ok(match self {
            Place::Registry(r, repo) => r.head_blob(&repo.repo(), digest).await?,
            Place::Layout(l) => l.blob_size(digest).await?,
        })
    }

    async fn referrers(&self, digest: &Digest) -> anyhow::Result<Vec<Descriptor>> {
        Ok(match self {
            Place::Registry(r, repo) => r.referrers(&repo.repo(), digest, None).await?.descriptors,
            Place::Layout(l) => l.referrers(digest).await?,
        })
    }

    async fn tags(&self) -> anyhow::Result<Vec<String>> {
        Ok(match self {
            Place::Registry(r, repo) => r.list_tags(&repo.repo(), None).await?,
            Place::Layout(l) => l.tags().await?,
        })
    }

    fn endpoint(&self) -> Endpoint {
        match self {
            Place::Registry(r, repo) => Endpoint::registry(r.clone(), repo.repo()),
            Place::Layout(l) => Endpoint::Layout(l.clone()),
        }
    }
}

/// What a comparison saw.
#[derive(Debug, Default)]
struct Tally {
    manifests: usize,
    blobs: usize,
    foreign: usize,
    referrers: usize,
    digest_tags: usize,
}

impl Tally {
    fn describe(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut s = format!(
            "{} and {} byte-equal",
            plural(self.manifests, "manifest", "manifests"),
            plural(self.blobs, "blob", "blobs")
        );
        if self.referrers > 0 {
            s.push_str(&format!(
                ", {} listed",
                plural(self.referrers, "referrer", "referrers")
            ));
        }
        if self.digest_tags > 0 {
            s.push_str(&format!(
                ", {} byte-equal",
                plural(self.digest_tags, "digest tag", "digest tags")
            ));
        }
        if self.foreign > 0 {
            s.push_str(&format!(
                ", {} left out",
                plural(self.foreign, "foreign layer", "foreign layers")
            ));
        }
        s
    }
}

struct Ctx<'a> {
    src: Registry,
    dst: Registry,
    routes: &'static [&'static str],
    personality: Option<&'a PersonalityCtx>,
    /// Prefix of the target repositories (`REPO/copy/` on a remote registry).
    prefix: String,
    layouts: &'a Path,
    skopeo: Option<Skopeo>,
}

/// `skopeo inspect --raw`, with an auth file when the target needs credentials.
struct Skopeo {
    path: std::path::PathBuf,
    host: String,
    authfile: Option<tempfile::NamedTempFile>,
}

/// A case whose skopeo cross-check cannot run: skopeo is not on `PATH`.
#[derive(Debug)]
struct NoSkopeo;

impl std::fmt::Display for NoSkopeo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the skopeo cross-check cannot run: skopeo is not on PATH (apt-get install -y skopeo)",
        )
    }
}

impl std::error::Error for NoSkopeo {}

impl Skopeo {
    async fn raw(&self, repo: &str, tag: &str) -> anyhow::Result<Vec<u8>> {
        let mut cmd = tokio::process::Command::new(&self.path);
        cmd.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some(f) = &self.authfile {
            cmd.arg("--authfile").arg(f.path());
        }
        cmd.arg(format!("docker://{}/{repo}:{tag}", self.host));
        let out = cmd.output().await.context("running skopeo")?;
        anyhow::ensure!(
            out.status.success(),
            "skopeo inspect --raw failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(out.stdout)
    }
}

/// Every check name of the suite, along `routes`.
pub fn check_names_of(routes: &[&str]) -> Vec<String> {
    routes
        .iter()
        .flat_map(|r| CASES.iter().map(move |c| format!("copy/{r}/{c}")))
        .chain(signatures::CHECKS.iter().map(|c| format!("signatures/{c}")))
        .collect()
}

/// Every check name of the suite.
pub fn check_names() -> Vec<String> {
    check_names_of(ROUTES)
}

/// Runs the matrix; results ordered by route, then case.
pub async fn run(
    setup: &Setup,
    source_url: &str,
    layouts: &Path,
) -> Vec<(String, Outcome, Duration)> {
    run_along(setup, source_url, layouts, ROUTES, None).await
}

/// Runs the matrix along `routes`, against a registry personality when one is given;
/// results ordered by route, then case.
pub async fn run_along(
    setup: &Setup,
    source_url: &str,
    layouts: &Path,
    routes: &'static [&'static str],
    personality: Option<&PersonalityCtx>,
) -> Vec<(String, Outcome, Duration)> {
    let names: Vec<(usize, usize, String)> = routes
        .iter()
        .enumerate()
        .flat_map(|(ri, r)| {
            CASES
                .iter()
                .enumerate()
                .map(move |(ci, c)| (ri, ci, format!("copy/{r}/{c}")))
        })
        .filter(|(_, _, n)| setup.selected(n))
        .collect();
    let checks: Vec<String> = signatures::CHECKS
        .iter()
        .map(|c| format!("signatures/{c}"))
        .filter(|n| setup.selected(n))
        .collect();
    if names.is_empty() && checks.is_empty() {
        return Vec::new();
    }
    let every = || {
        names
            .iter()
            .map(|(_, _, n)| n.clone())
            .chain(checks.iter().cloned())
    };
    let prepared = prepare(setup, source_url, layouts, routes, personality).await;
    let ctx = match prepared {
        Ok(Some(ctx)) => ctx,
        Ok(None) => {
            return every()
                .map(|n| {
                    (
                        n,
                        Outcome::Skip(
                            "needs writes: pass --allow-writes REPO to run it".to_owned(),
                        ),
                        Duration::ZERO,
                    )
                })
                .collect();
        }
        Err(e) => {
            return every()
                .map(|n| {
                    (
                        n,
                        Outcome::Fail(format!("cannot set up: {e:#}")),
                        Duration::ZERO,
                    )
                })
                .collect();
        }
    };
    let wanted_cases: Vec<usize> = (0..CASES.len())
        .filter(|ci| names.iter().any(|(_, c, _)| c == ci))
        .collect();
    let ctx = &ctx;
    let names = &names;
    let mut results: Vec<(usize, usize, String, Outcome, Duration)> =
        futures_util::stream::iter(wanted_cases.into_iter().map(|ci| async move {
            let routes: Vec<usize> = names
                .iter()
                .filter(|(_, c, _)| *c == ci)
                .map(|(r, _, _)| *r)
                .collect();
            ctx.run_case(ci, &routes).await
        }))
        .buffer_unordered(3)
        .flat_map(futures_util::stream::iter)
        .collect()
        .await;
    results.sort_by_key(|(r, c, ..)| (*r, *c));
    let mut out: Vec<(String, Outcome, Duration)> = results
        .into_iter()
        .map(|(_, _, n, o, d)| (n, o, d))
        .collect();
    out.extend(signatures::run(ctx, &checks).await);
    out
}

async fn prepare<'a>(
    setup: &'a Setup,
    source_url: &str,
    layouts: &'a Path,
    routes: &'static [&'static str],
    personality: Option<&'a PersonalityCtx>,
) -> anyhow::Result<Option<Ctx<'a>>> {
    let src = setup.local_transport.registry(source_url)?;
    let dst = setup.transport.registry(&setup.address)?;
    let prefix = match (&setup.write_repo, setup.local) {
        (_, true) => String::new(),
        (Some(r), false) => format!("{r}/copy/"),
        (None, false) => return Ok(None),
    };
    let skopeo = if let Some(path) = acr_import_testsupport::find_tool("skopeo") {
        let authfile = match &setup.basic {
            Some((user, password)) => {
                use base64::Engine as _;
                let auth =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                let file = tempfile::NamedTempFile::new()?;
                let json = serde_json::json!({"auths": {dst.host(): {"auth": auth}}});
                std::fs::write(file.path(), serde_json::to_vec(&json)?)?;
                Some(file)
            }
            None => None,
        };
        Some(Skopeo {
            path,
            host: dst.host().to_owned(),
            authfile,
        })
    } else {
        None
    };
    Ok(Some(Ctx {
        src,
        dst,
        routes,
        personality,
        prefix,
        layouts,
        skopeo,
    }))
}

impl Ctx<'_> {
    fn source_repo(case: &str) -> String {
        format!("cases/{case}")
    }

    fn target(&self, route: &str, case: &str) -> Place {
        let short = match route {
            "registry-to-registry" => "r2r",
            "via-oci-layout" => "layout",
            _ => "same",
        };
        Place::Registry(self.dst.clone(), format!("{}{short}/{case}", self.prefix))
    }

    /// Seeds the case, then runs its routes in order (same-registry starts from the
    /// registry-to-registry copy).
    async fn run_case(
        &self,
        ci: usize,
        routes: &[usize],
    ) -> Vec<(usize, usize, String, Outcome, Duration)> {
        let case = CASES[ci];
        let mut out = Vec::new();
        let mut seeded = match fixtures::Seeder::new(self.src.host()) {
            Ok(src) => seed(case, &src, &Self::source_repo(case)).await,
            Err(e) => Err(e),
        };
        // The personality serves the case too, pushed as its publishers push.
        if let (Ok(_), Some(p)) = (&seeded, self.personality)
            && routes.iter().any(|&r| self.routes[r] == "out-of-registry")
            && let Err(e) = seed(case, &p.seeder, &Self::source_repo(case)).await
        {
            seeded = Err(e.context("publishing the case to the registry under test"));
        }
        // How the registry-to-registry copy went: the same-registry route starts from it.
        let mut r2r: Option<Result<(), Option<String>>> = None;
        for &ri in routes {
            let route = self.routes[ri];
            let name = format!("copy/{route}/{case}");
            let started = Instant::now();
            let outcome = match (&seeded, route, &r2r) {
                (Err(e), ..) => Outcome::Fail(format!("seeding the source failed: {e:#}")),
                (Ok(_), "same-registry", Some(Err(Some(refused)))) => Outcome::Deviation(format!(
                    "not run: the registry-to-registry copy it starts from deviated ({refused})"
                )),
                (Ok(seeded), ..) => {
                    let result = match route {
                        "registry-to-registry" => self.registry_to_registry(case, seeded).await,
                        "via-oci-layout" => self.via_layout(case, seeded).await,
                        "out-of-registry" => self.out_of_registry(case, seeded).await,
                        _ if matches!(r2r, Some(Err(_))) => {
                            self.same_registry(case, seeded).await.context(
                                "this copies the registry-to-registry copy, whose check failed",
                            )
                        }
                        _ => self.same_registry(case, seeded).await,
                    };
                    let no_skopeo = result.as_ref().is_err_and(|e| e.is::<NoSkopeo>());
                    let outcome = match result {
                        Ok(note) => Outcome::Pass(note),
                        Err(e) => match deviation_of(&e) {
                            Some(text) => Outcome::Deviation(text),
                            None => Outcome::Fail(format!("{e:#}")),
                        },
                    };
                    if route == "registry-to-registry" {
                        r2r = Some(match &outcome {
                            // The copy is there even when only its skopeo cross-check could
                            // not run.
                            _ if no_skopeo => Ok(()),
                            Outcome::Pass(_) => Ok(()),
                            Outcome::Deviation(text) => Err(Some(text.clone())),
                            _ => Err(None),
                        });
                    }
                    outcome
                }
            };
            out.push((ri, ci, name, outcome, started.elapsed()));
        }
        out
    }

    async fn copy(
        &self,
        from: &Place,
        to: &Place,
        options: CopyOptions,
    ) -> anyhow::Result<CopyReport> {
        let report = Copier::new(options)
            .copy(
                &Source {
                    endpoint: from.endpoint(),
                    reference: TAG.parse()?,
                },
                &[Target {
                    endpoint: to.endpoint(),
                    tag: Some(TAG.parse()?),
                }],
            )
            .await
            .context("the copy failed")?;
        Ok(report)
    }

    async fn skopeo_note(&self, to: &Place, top: &Manifest) -> anyhow::Result<String> {
        let Place::Registry(_, repo) = to else {
            return Ok(String::new());
        };
        let Some(skopeo) = &self.skopeo else {
            return Err(NoSkopeo.into());
        };
        let raw = skopeo.raw(repo, TAG).await?;
        anyhow::ensure!(
            raw == top.bytes,
            "skopeo inspect --raw of the target tag: {} bytes that differ from the source's \
             {}-byte manifest",
            raw.len(),
            top.bytes.len()
        );
        Ok("; skopeo --raw: same bytes".to_owned())
    }

    async fn registry_to_registry(&self, case: &str, seeded: &Seeded) -> anyhow::Result<String> {
        let from = Place::Registry(self.src.clone(), Self::source_repo(case));
        let to = self.target("registry-to-registry", case);
        let report = self.copy(&from, &to, CopyOptions::default()).await?;
        let tally = compare(&from, &to, true).await?;
        seeded.check(&tally, &to).await?;
        self.copied_note(&from, &to, &tally, &report, seeded).await
    }

    async fn via_layout(&self, case: &str, seeded: &Seeded) -> anyhow::Result<String> {
        let from = Place::Registry(self.src.clone(), Self::source_repo(case));
        let layout = Place::Layout(OciLayout::create(self.layouts.join(case))?);
        self.copy(&from, &layout, CopyOptions::default())
            .await
            .context("registry → layout")?;
        let in_layout = compare(&from, &layout, true)
            .await
            .context("in the layout")?;
        seeded
            .check(&in_layout, &layout)
            .await
            .context("in the layout")?;
        let to = self.target("via-oci-layout", case);
        self.copy(&layout, &to, CopyOptions::default())
            .await
            .context("layout → registry")?;
        let tally = compare(&from, &to, true).await.context("on the target")?;
        seeded.check(&tally, &to).await.context("on the target")?;
        anyhow::ensure!(
            in_layout.manifests == tally.manifests && in_layout.blobs == tally.blobs,
            "the layout holds {}, the target {}",
            in_layout.describe(),
            tally.describe()
        );
        let top = from.manifest(TAG).await?;
        let skopeo = self.skopeo_note(&to, &top).await?;
        Ok(format!(
            "layout and target: {}{}{skopeo}",
            tally.describe(),
            signatures_note(seeded)
        ))
    }

    async fn same_registry(&self, case: &str, seeded: &Seeded) -> anyhow::Result<String> {
        let source = Place::Registry(self.src.clone(), Self::source_repo(case));
        let from = self.target("registry-to-registry", case);
        let to = self.target("same-registry", case);
        let report = self.copy(&from, &to, CopyOptions::default()).await?;
        let tally = compare(&source, &to, true).await?;
        seeded.check(&tally, &to).await?;
        let uploaded = report
            .blobs
            .iter()
            .filter(|b| b.action == BlobAction::Copied)
            .count();
        if uploaded > 0 {
            return Err(Deviation(format!(
                "{}, but {uploaded} blobs were uploaded again instead of mounted: the \
                 registry answered the mounts with upload sessions",
                tally.describe()
            ))
            .into());
        }
        self.copied_note(&source, &to, &tally, &report, seeded)
            .await
    }

    /// What a copy from `from` to `to` did: the comparison, the blob transfers, the
    /// signatures, and skopeo's reading of the target.
    async fn copied_note(
        &self,
        from: &Place,
        to: &Place,
        tally: &Tally,
        report: &CopyReport,
        seeded: &Seeded,
    ) -> anyhow::Result<String> {
        let top = from.manifest(TAG).await?;
        let skopeo = self.skopeo_note(to, &top).await?;
        Ok(format!(
            "{}; {}{}{skopeo}",
            tally.describe(),
            blob_actions(report),
            signatures_note(seeded)
        ))
    }
}

/// `; 4 cosign signatures verify on the target`, when the case is signed.
fn signatures_note(seeded: &Seeded) -> String {
    match &seeded.signed {
        Some((_, signed)) => format!("; {} cosign signatures verify on the target", signed.len()),
        None => String::new(),
    }
}

impl Ctx<'_> {
    /// The personality's copy of the case (as its publisher pushed it) → a local registry,
    /// read as users read it (anonymously where the registry allows), compared with the
    /// source byte for byte, referrers included.
    async fn out_of_registry(&self, case: &str, seeded: &Seeded) -> anyhow::Result<String> {
        let p = self
            .personality
            .context("the out-of-registry route needs a registry personality")?;
        let from = Place::Registry(p.reader.clone(), Self::source_repo(case));
        let to = Place::Registry(p.out.clone(), format!("out/{case}"));
        let report = self.copy(&from, &to, CopyOptions::default()).await?;
        let source = Place::Registry(self.src.clone(), Self::source_repo(case));
        let tally = compare(&source, &to, true).await?;
        seeded.check(&tally, &to).await?;
        Ok(format!(
            "{}; {}; {} source manifest pull{}",
            tally.describe(),
            blob_actions(&report),
            report.source_pulls,
            if report.source_pulls == 1 { "" } else { "s" }
        ))
    }
}

fn blob_actions(report: &CopyReport) -> String {
    let count = |a: BlobAction| report.blobs.iter().filter(|b| b.action == a).count();
    let (copied, mounted, skipped) = (
        count(BlobAction::Copied),
        count(BlobAction::Mounted),
        count(BlobAction::Skipped),
    );
    let mut parts = Vec::new();
    if copied > 0 {
        parts.push(format!("{copied} uploaded"));
    }
    if mounted > 0 {
        parts.push(format!("{mounted} mounted"));
    }
    if skipped > 0 {
        parts.push(format!("{skipped} already there"));
    }
    if parts.is_empty() {
        "no blob transfers".to_owned()
    } else {
        format!("blob transfers: {}", parts.join(", "))
    }
}

/// Compares everything reachable from the tag on `to` with `from`: manifests by bytes, media
/// type and digest; blobs by digest and size (foreign layers must stay out); referrers when
/// `referrers` is set and both are registries. A manifest with a `subject` must be listed
/// among its subject's referrers on a registry target (the registry's index, or the fallback
/// tag a client keeps when the registry has none).
async fn compare(from: &Place, to: &Place, referrers: bool) -> anyhow::Result<Tally> {
    let a = from.manifest(TAG).await?;
    let b = to
        .manifest(TAG)
        .await
        .context("the target tag does not resolve")?;
    anyhow::ensure!(
        a == b,
        "the target tag serves {} ({}), the source {} ({})",
        b.digest,
        b.media_type,
        a.digest,
        a.media_type
    );
    let mut tally = Tally::default();
    let source_tags = from.tags().await?;
    let mut queue: VecDeque<Digest> = VecDeque::from([a.digest.clone()]);
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut blobs: HashSet<Digest> = HashSet::new();
    while let Some(d) = queue.pop_front() {
        if !seen.insert(d.clone()) {
            continue;
        }
        let ma = from.manifest(d.as_str()).await?;
        let mb = to
            .manifest(d.as_str())
            .await
            .with_context(|| format!("the target lacks manifest {d}"))?;
        anyhow::ensure!(
            ma == mb,
            "manifest {d}: the target has {} bytes of {} hashing to {}, the source {} bytes of {}",
            mb.bytes.len(),
            mb.media_type,
            mb.digest,
            ma.bytes.len(),
            ma.media_type
        );
        tally.manifests += 1;
        let prefix = format!("{}-{}.", d.algorithm(), d.encoded());
        for tag in source_tags.iter().filter(|t| t.starts_with(&prefix)) {
            let (x, y) = (from.manifest(tag).await?, to.manifest(tag).await);
            let y = y.with_context(|| format!("the target lacks the digest tag {tag}"))?;
            anyhow::ensure!(
                x == y,
                "digest tag {tag}: the target holds {}, the source {}",
                y.digest,
                x.digest
            );
            tally.digest_tags += 1;
        }
        let content = ma.parse().map_err(anyhow::Error::msg)?;
        queue.extend(content.manifests.iter().map(|c| c.digest.clone()));
        for blob in content.config.iter().chain(content.layers.iter()) {
            if !blobs.insert(blob.digest.clone()) {
                continue;
            }
            let size = to.blob_size(&blob.digest).await?;
            if blob.is_foreign() {
                anyhow::ensure!(
                    size.is_none(),
                    "foreign layer {} was copied to the target",
                    blob.digest
                );
                tally.foreign += 1;
            } else {
                anyhow::ensure!(
                    size == Some(blob.size),
                    "blob {} ({} bytes): the target has {size:?}",
                    blob.digest,
                    blob.size
                );
                tally.blobs += 1;
            }
        }
        if let (Some(subject), Place::Registry(reg, repo)) = (&content.subject, to) {
            let listed = reg.referrers(&repo.repo(), &subject.digest, None).await?;
            anyhow::ensure!(
                listed.descriptors.iter().any(|r| r.digest == d),
                "manifest {d} has subject {} but is not among that subject's referrers on the \
                 target ({})",
                subject.digest,
                match listed.source {
                    ReferrersSource::Api =>
                        "the registry's referrers API does not list it".to_owned(),
                    ReferrersSource::TagSchema => format!(
                        "the target has no referrers API, and no client recorded it in the `{}` \
                         fallback tag",
                        subject.digest.referrers_tag()
                    ),
                }
            );
        }
        if referrers {
            let (src, dst) = (from.referrers(&d).await?, to.referrers(&d).await?);
            for r in src {
                anyhow::ensure!(
                    dst.iter().any(|x| x.digest == r.digest),
                    "referrer {} of {d} is not listed on the target",
                    r.digest
                );
                tally.referrers += 1;
                queue.push_back(r.digest.clone());
            }
        }
    }
    Ok(tally)
}

/// An untagged index of `linux/amd64` (`base` and `x`) and `linux/arm64` (`base` and `y`).
async fn two_platforms(
    reg: &fixtures::Seeder,
    repo: &str,
    [base, x, y]: [&Blob; 3],
    docker: bool,
) -> anyhow::Result<fixtures::Manifest> {
    use fixtures::{image, index};
    let amd = image(reg, repo, "linux", "amd64", &[base, x], docker).await?;
    let arm = image(reg, repo, "linux", "arm64", &[base, y], docker).await?;
    let platforms = [
        (&amd, Some("linux/amd64"), None),
        (&arm, Some("linux/arm64"), None),
    ];
    index(reg, repo, None, &platforms, docker).await
}

/// Pushes a case's image to `repo` of the source, tagged [`TAG`].
async fn seed(case: &str, reg: &fixtures::Seeder, repo: &str) -> anyhow::Result<Seeded> {
    use fixtures::{DOCKER_LAYER, artifact, attach, image, index};
    let docker_layer = |seed: u64, len: usize| Blob {
        bytes: data(seed, len),
        media_type: DOCKER_LAYER,
    };
    let mut referrers = 0;
    let mut digest_tags = 0;
    let mut signed = None;
    let top = match case {
        "docker-v2" => {
            let (a, b) = (docker_layer(201, 30_000), docker_layer(202, 20_000));
            image(reg, repo, "linux", "amd64", &[&a, &b], true).await?
        }
        "docker-list" => {
            let base = docker_layer(210, 30_000);
            let (x, y) = (docker_layer(211, 8_000), docker_layer(212, 9_000));
            two_platforms(reg, repo, [&base, &x, &y], true).await?
        }
        "oci-manifest" => {
            let (a, b) = (Blob::layer(221, 30_000), Blob::layer(222, 5_000));
            image(reg, repo, "linux", "amd64", &[&a, &b], false).await?
        }
        "oci-index-attestations" => fixtures::multi_arch(reg, repo, TAG, 3).await?,
        "nested-index" => {
            let base = Blob::layer(230, 20_000);
            let (x, y, z) = (
                Blob::layer(231, 4_000),
                Blob::layer(232, 5_000),
                Blob::layer(233, 6_000),
            );
            let s390 = image(reg, repo, "linux", "s390x", &[&base, &z], false).await?;
            let inner = two_platforms(reg, repo, [&base, &x, &y], false).await?;
            index(
                reg,
                repo,
                None,
                &[(&inner, None, None), (&s390, Some("linux/s390x"), None)],
                false,
            )
            .await?
        }
        "helm-chart" => fixtures::helm_chart(reg, repo, TAG, "demo").await?,
        "empty-config-artifact" => {
            artifact(reg, repo, "application/vnd.example.data.v1", 241, None).await?
        }
        "referrers" => {
            let layer = Blob::layer(250, 10_000);
            let subject = image(reg, repo, "linux", "amd64", &[&layer], false).await?;
            let sbom = artifact(reg, repo, SBOM, 251, Some(&subject)).await?;
            let sig = artifact(reg, repo, SIGNATURE, 252, Some(&subject)).await?;
            let sbom_sig = artifact(reg, repo, SIGNATURE, 253, Some(&sbom)).await?;
            attach(reg, repo, &subject, &[(&sbom, SBOM), (&sig, SIGNATURE)]).await?;
            attach(reg, repo, &sbom, &[(&sbom_sig, SIGNATURE)]).await?;
            referrers = 3;
            subject
        }
        "artifact-with-subject" => {
            let layer = Blob::layer(260, 10_000);
            let subject = image(reg, repo, "linux", "amd64", &[&layer], false).await?;
            let sbom = artifact(reg, repo, SBOM, 261, Some(&subject)).await?;
            attach(reg, repo, &subject, &[(&sbom, SBOM)]).await?;
            sbom
        }
        "foreign-layers" => fixtures::foreign_layers(reg, repo, TAG).await?.0,
        "zero-byte-blob" => {
            let empty = Blob {
                bytes: Bytes::new(),
                media_type: fixtures::OCI_LAYER,
            };
            let other = Blob::layer(271, 1_000);
            image(reg, repo, "linux", "amd64", &[&empty, &other], false).await?
        }
        "64mib-blob" => {
            let big = Blob::layer(281, 64 * 1024 * 1024);
            image(reg, repo, "linux", "amd64", &[&big], false).await?
        }
        "cosign-signed" => {
            // Signed once per run: a registry personality that serves the case too gets the
            // same signature bytes as the source.
            static SIGNED: std::sync::OnceLock<Result<(CosignKey, Signatures), String>> =
                std::sync::OnceLock::new();
            let top = fixtures::multi_arch(reg, repo, TAG, 290).await?;
            let made = SIGNED.get_or_init(|| {
                let key = CosignKey::generate().map_err(|e| format!("{e:#}"))?;
                let signatures = fixtures::sign_image(&key, "cases/cosign-signed", &top)
                    .map_err(|e| format!("{e:#}"))?;
                Ok((key, signatures))
            });
            let (key, signatures) = made.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
            let s = fixtures::push_signatures(reg, repo, top, signatures).await?;
            referrers = 1;
            digest_tags = s.digest_tags.len();
            signed = Some((key, s.signed));
            s.top
        }
        other => anyhow::bail!("no such case: {other}"),
    };
    fixtures::push_manifest(reg, repo, Some(TAG), &top).await?;
    Ok(Seeded {
        referrers,
        digest_tags,
        signed,
    })
}
