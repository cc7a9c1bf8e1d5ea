//! The registry suite: the OCI distribution specification, checked through our transport.
//!
//! Each check is named after the part of the spec it covers (`pull/…`, `push/…`,
//! `discovery/…`, `management/…`; the spec's endpoint ids are in [`CHECKS`]). Checks use
//! the typed [`Registry`] API wherever it can express the request, so they also check that
//! our transport reads every answer right; the few requests it has no method for go through
//! [`Raw`] (our connections and authenticator, hand-built requests).

use std::time::Duration;

use acr_import_auth::{Scope, ScopeSet};
use acr_import_reference::{Digest, Repository};
use acr_import_transfer::manifest::{self, OCI_INDEX};
use acr_import_transfer::{
    Descriptor, Manifest, ReferrersSource, Registry, TransferError, UploadStart,
};
use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Method, header};
use tokio::sync::OnceCell;

use super::raw::{Raw, RawResponse};
use super::{Outcome, Setup, timed};
use acr_import_testsupport::seed::{self as fixtures, Blob, data};

/// Whether a check only reads, or needs `--allow-writes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// One check of the suite.
#[derive(Debug)]
pub struct Check {
    pub name: &'static str,
    pub access: Access,
    /// The spec's endpoint id(s).
    #[allow(dead_code)]
    pub spec: &'static str,
}

const fn check(name: &'static str, access: Access, spec: &'static str) -> Check {
    Check { name, access, spec }
}

/// Every check, in the order they run and print.
pub const CHECKS: &[Check] = &[
    check("api/version-check", Access::Read, "end-1"),
    check("pull/manifest-by-tag", Access::Read, "end-3"),
    check("pull/manifest-by-digest", Access::Read, "end-3"),
    check("pull/manifest-head", Access::Read, "end-3"),
    check(
        "pull/manifest-unknown",
        Access::Read,
        "end-3 MANIFEST_UNKNOWN",
    ),
    check("pull/blob-head", Access::Read, "end-2"),
    check("pull/blob-get", Access::Read, "end-2"),
    check("pull/blob-range", Access::Read, "end-2 Range"),
    check("pull/blob-unknown", Access::Read, "end-2 BLOB_UNKNOWN"),
    check("pull/name-unknown", Access::Read, "end-8a NAME_UNKNOWN"),
    check("pull/name-invalid", Access::Read, "end-8a NAME_INVALID"),
    check("push/blob-post-put", Access::Write, "end-4a end-6"),
    check("push/blob-single-post", Access::Write, "end-4b"),
    check(
        "push/blob-chunked",
        Access::Write,
        "end-4a end-5 end-13 end-6",
    ),
    check("push/blob-chunk-out-of-order", Access::Write, "end-5 416"),
    check(
        "push/blob-digest-invalid",
        Access::Write,
        "end-6 DIGEST_INVALID",
    ),
    check("push/blob-mount", Access::Write, "end-11"),
    check("push/blob-mount-missing", Access::Write, "end-11 202"),
    check("push/upload-cancel", Access::Write, "BLOB_UPLOAD_UNKNOWN"),
    check("push/manifest-by-tag", Access::Write, "end-7"),
    check("push/manifest-by-digest", Access::Write, "end-7"),
    check(
        "push/manifest-blob-unknown",
        Access::Write,
        "end-7 MANIFEST_BLOB_UNKNOWN",
    ),
    check(
        "push/manifest-invalid",
        Access::Write,
        "end-7 MANIFEST_INVALID",
    ),
    check(
        "push/manifest-with-subject",
        Access::Write,
        "end-7 OCI-Subject",
    ),
    check("discovery/tags-list", Access::Read, "end-8a"),
    check("discovery/tags-list-pagination", Access::Read, "end-8b"),
    check("discovery/referrers", Access::Read, "end-12a"),
    check("discovery/referrers-filter", Access::Write, "end-12b"),
    check(
        "discovery/referrers-fallback",
        Access::Write,
        "referrers tag schema",
    ),
    check("management/delete-tag", Access::Write, "end-9"),
    check("management/delete-manifest", Access::Write, "end-9"),
    check("management/delete-blob", Access::Write, "end-10"),
];

/// The image the write checks push first and the read checks read.
struct Seeded {
    repo: String,
    config: Blob,
    layer: Blob,
}

/// What the read checks read: a tag (or digest) of a repository, the image manifest below
/// it, and one of its blobs.
struct Image {
    repo: String,
    /// The tag, when the reference is one.
    tag: Option<String>,
    /// The manifest the reference names.
    top: Manifest,
    /// A blob of the image.
    blob: Descriptor,
    /// Its bytes, when we pushed it.
    blob_bytes: Option<Bytes>,
}

/// The referrers the discovery checks look for.
struct ReferrersSeed {
    subject: Manifest,
    /// (artifact, artifactType)
    artifacts: Vec<(Manifest, &'static str)>,
}

struct Ctx {
    reg: Registry,
    /// The scheme the registry answers on.
    scheme: &'static str,
    raw: Raw,
    seeded: Option<Seeded>,
    image: Result<Image, String>,
    /// Whether `image` is an error because pushing or reading it failed (the read checks
    /// fail), rather than because there is nothing to read (they are skipped).
    image_failed: bool,
    referrers: OnceCell<Result<ReferrersSeed, String>>,
    /// Added to the seeds of content that must be new on every run (0 on the local
    /// registry, which starts empty; the clock on a registry that keeps content).
    salt: u64,
}

const SBOM: &str = "application/spdx+json";
const SIGNATURE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// Runs the selected checks in order.
pub async fn run(setup: &Setup) -> Vec<(&'static str, Outcome, Duration)> {
    let selected: Vec<&Check> = CHECKS.iter().filter(|c| setup.selected(c.name)).collect();
    let ctx = match prepare(setup).await {
        Ok(ctx) => ctx,
        Err(e) => {
            let why = format!("cannot set up the registry: {e:#}");
            return selected
                .iter()
                .map(|c| (c.name, Outcome::Fail(why.clone()), Duration::ZERO))
                .collect();
        }
    };
    let mut out = Vec::new();
    for c in selected {
        let (outcome, elapsed) = if c.access == Access::Write && ctx.seeded.is_none() {
            (
                Outcome::Skip("needs writes: pass --allow-writes REPO to run it".to_owned()),
                Duration::ZERO,
            )
        } else if c.access == Access::Read
            && c.name != "api/version-check"
            && let Err(why) = &ctx.image
        {
            let outcome = if ctx.image_failed {
                Outcome::Fail(why.clone())
            } else {
                Outcome::Skip(why.clone())
            };
            (outcome, Duration::ZERO)
        } else {
            timed(ctx.run_check(c.name)).await
        };
        out.push((c.name, outcome, elapsed));
    }
    out
}

async fn prepare(setup: &Setup) -> anyhow::Result<Ctx> {
    let reg = setup.transport.registry(&setup.address)?;
    let scheme = if setup.address.starts_with("http://") {
        "http"
    } else if setup.address.starts_with("https://") {
        "https"
    } else {
        reg.ping().await.map(|p| p.scheme).unwrap_or("https")
    };
    let raw = Raw::new(
        &setup.transport,
        setup.credentials.clone(),
        reg.host(),
        scheme,
        &setup.insecure_hosts,
    );
    let salt = if setup.local {
        0
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    };
    let mut ctx = Ctx {
        reg,
        scheme,
        raw,
        seeded: None,
        image: Err(String::new()),
        image_failed: false,
        referrers: OnceCell::new(),
        salt,
    };
    if let Some(repo) = &setup.write_repo {
        let seeded = Seeded {
            repo: repo.clone(),
            config: Blob {
                bytes: Bytes::from_static(
                    br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
                ),
                media_type: fixtures::OCI_CONFIG,
            },
            layer: Blob::layer(11, 100_000),
        };
        let seeded_image = async {
            ctx.push_blobs(repo, &[&seeded.config, &seeded.layer])
                .await?;
            let m = seeded.variant("image")?;
            ctx.reg.put_manifest(repo, "v1", &m).await?;
            anyhow::Ok(Image {
                repo: repo.clone(),
                tag: Some("v1".to_owned()),
                top: m,
                blob: descriptor(&seeded.layer),
                blob_bytes: Some(seeded.layer.bytes.clone()),
            })
        }
        .await;
        ctx.image = seeded_image.map_err(|e| format!("pushing the test image failed: {e:#}"));
        ctx.image_failed = ctx.image.is_err();
        ctx.seeded = Some(seeded);
    }
    if let Some((repo, reference)) = &setup.read_image {
        ctx.image = read_image(&ctx.reg, repo, reference)
            .await
            .map_err(|e| format!("cannot read {repo}:{reference}: {e:#}"));
        ctx.image_failed = ctx.image.is_err();
    } else if ctx.seeded.is_none() {
        ctx.image = Err(
            "nothing to read: pass --repository and --reference (or --allow-writes REPO)"
                .to_owned(),
        );
    }
    Ok(ctx)
}

/// Resolves an existing image for the read checks: the manifest, and a blob of the first
/// platform's image when the reference is an index.
async fn read_image(reg: &Registry, repo: &str, reference: &str) -> anyhow::Result<Image> {
    let top = reg.get_manifest(repo, reference).await?;
    let mut image = top.clone();
    for _ in 0..4 {
        if !image.is_index() {
            break;
        }
        let content = image.parse().map_err(anyhow::Error::msg)?;
        let child = content
            .manifests
            .iter()
            .find(|d| d.platform.as_ref().is_none_or(|p| p.os != "unknown"))
            .or(content.manifests.first())
            .context("the index lists no manifests")?;
        image = reg.get_manifest(repo, child.digest.as_str()).await?;
    }
    let content = image.parse().map_err(anyhow::Error::msg)?;
    let blob = content
        .layers
        .iter()
        .find(|l| !l.is_foreign())
        .or(content.config.as_ref())
        .cloned()
        .context("the image has no blob")?;
    Ok(Image {
        repo: repo.to_owned(),
        tag: (!reference.contains(':')).then(|| reference.to_owned()),
        top,
        blob,
        blob_bytes: None,
    })
}

fn descriptor(b: &Blob) -> Descriptor {
    Descriptor {
        media_type: b.media_type.to_owned(),
        digest: sha256(&b.bytes),
        size: b.bytes.len() as u64,
        urls: Vec::new(),
        platform: None,
        artifact_type: None,
        annotations: Default::default(),
    }
}

impl Seeded {
    /// An image manifest of the seeded config and layer, made distinct by an annotation.
    fn variant(&self, label: &str) -> anyhow::Result<Manifest> {
        let value = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": self.config.descriptor(),
            "layers": [self.layer.descriptor()],
            "annotations": {"org.example.conformance": label},
        });
        ours(fixtures::manifest_of(&value, manifest::OCI_MANIFEST)?)
    }
}

/// The sha256 digest of `bytes`.
fn sha256(bytes: &[u8]) -> Digest {
    acr_import_transfer::digest_of(acr_import_reference::DigestAlgorithm::Sha256, bytes)
}

/// A manifest made by the seeding helpers, as our transport's type.
fn ours(m: fixtures::Manifest) -> anyhow::Result<Manifest> {
    Ok(Manifest {
        digest: m.digest.parse()?,
        bytes: m.bytes,
        media_type: m.media_type,
    })
}

/// A manifest's descriptor as JSON (`mediaType`, `digest`, `size`).
fn descriptor_json(m: &Manifest) -> serde_json::Value {
    serde_json::json!({"mediaType": m.media_type, "digest": m.digest.as_str(), "size": m.bytes.len()})
}

/// The registry's error codes in a transport error.
fn codes(e: &TransferError) -> Vec<String> {
    e.details()
        .map(|d| d.errors.iter().map(|e| e.code.clone()).collect())
        .unwrap_or_default()
}

/// Passes when `e` is `status` with `code` among its error codes.
fn expect_error(e: &TransferError, status: u16, code: &str) -> anyhow::Result<()> {
    let got = codes(e);
    anyhow::ensure!(
        e.status() == Some(status) && got.iter().any(|c| c == code),
        "expected HTTP {status} with {code}, got: {e}"
    );
    Ok(())
}

fn pull(repo: &str) -> ScopeSet {
    ScopeSet::new().with(Scope::pull(repo))
}

fn push(repo: &str) -> ScopeSet {
    ScopeSet::new().with(Scope::push(repo))
}

/// Appends `digest=` to an upload `Location` (which may have a query already).
fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

fn octet_stream(len: usize) -> Vec<(header::HeaderName, String)> {
    vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (header::CONTENT_LENGTH, len.to_string()),
    ]
}

/// Reads a blob through the transport, checking size and digest; returns its first
/// `prefix` bytes and its length.
async fn read_blob(
    reg: &Registry,
    repo: &str,
    desc: &Descriptor,
    prefix: usize,
) -> anyhow::Result<(Bytes, u64)> {
    let mut stream = reg
        .get_blob(repo, &desc.digest, Some(desc.size), true)
        .await?;
    let mut head = Vec::new();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if head.len() < prefix {
            let take = (prefix - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        total += chunk.len() as u64;
    }
    Ok((Bytes::from(head), total))
}

/// Content the write checks push through our transport (what the registry answers to it is
/// part of what they check), made by the shared seeding helpers.
impl Ctx {
    /// Pushes each blob the repository does not hold yet.
    async fn push_blobs(&self, repo: &str, blobs: &[&Blob]) -> anyhow::Result<()> {
        for b in blobs {
            let d = sha256(&b.bytes);
            if self.reg.head_blob(repo, &d).await?.is_none() {
                self.reg
                    .push_blob(repo, &d, b.bytes.clone(), u64::MAX)
                    .await?;
            }
        }
        Ok(())
    }

    /// An artifact of `artifact_type` (empty config, an example payload of `seed`), with
    /// `subject`, pushed by digest.
    async fn push_artifact(
        &self,
        repo: &str,
        artifact_type: &str,
        seed: u64,
        subject: Option<&Manifest>,
    ) -> anyhow::Result<Manifest> {
        let payload = fixtures::example_payload(seed);
        self.push_blobs(repo, &[&fixtures::empty_config(), &payload])
            .await?;
        let m = ours(fixtures::artifact_manifest(
            artifact_type,
            &payload,
            subject.map(descriptor_json),
        )?)?;
        self.reg.put_manifest(repo, m.digest.as_str(), &m).await?;
        Ok(m)
    }

    /// Records `referrers` of `subject` in the `<alg>-<hex>` tag-schema index, returned.
    async fn attach(
        &self,
        repo: &str,
        subject: &Manifest,
        referrers: &[(&Manifest, &str)],
    ) -> anyhow::Result<Manifest> {
        let m = ours(fixtures::referrers_index(
            referrers
                .iter()
                .map(|(m, t)| (descriptor_json(m), (*t).to_owned())),
        )?)?;
        let tag = subject.digest.referrers_tag();
        self.reg.put_manifest(repo, tag.as_str(), &m).await?;
        Ok(m)
    }

    fn image(&self) -> anyhow::Result<&Image> {
        self.image.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn seeded(&self) -> anyhow::Result<&Seeded> {
        self.seeded.as_ref().context("writes are not allowed")
    }

    async fn run_check(&self, name: &str) -> anyhow::Result<Outcome> {
        match name {
            "api/version-check" => self.version_check().await,
            "pull/manifest-by-tag" => self.manifest_by_tag().await,
            "pull/manifest-by-digest" => self.manifest_by_digest().await,
            "pull/manifest-head" => self.manifest_head().await,
            "pull/manifest-unknown" => self.manifest_unknown().await,
            "pull/blob-head" => self.blob_head().await,
            "pull/blob-get" => self.blob_get().await,
            "pull/blob-range" => self.blob_range().await,
            "pull/blob-unknown" => self.blob_unknown().await,
            "pull/name-unknown" => self.name_unknown().await,
            "pull/name-invalid" => self.name_invalid().await,
            "push/blob-post-put" => self.blob_post_put().await,
            "push/blob-single-post" => self.blob_single_post().await,
            "push/blob-chunked" => self.blob_chunked().await,
            "push/blob-chunk-out-of-order" => self.blob_chunk_out_of_order().await,
            "push/blob-digest-invalid" => self.blob_digest_invalid().await,
            "push/blob-mount" => self.blob_mount().await,
            "push/blob-mount-missing" => self.blob_mount_missing().await,
            "push/upload-cancel" => self.upload_cancel().await,
            "push/manifest-by-tag" => self.push_manifest_by_tag().await,
            "push/manifest-by-digest" => self.push_manifest_by_digest().await,
            "push/manifest-blob-unknown" => self.manifest_blob_unknown().await,
            "push/manifest-invalid" => self.manifest_invalid().await,
            "push/manifest-with-subject" => self.manifest_with_subject().await,
            "discovery/tags-list" => self.tags_list().await,
            "discovery/tags-list-pagination" => self.tags_list_pagination().await,
            "discovery/referrers" => self.referrers_api().await,
            "discovery/referrers-filter" => self.referrers_filter().await,
            "discovery/referrers-fallback" => self.referrers_fallback().await,
            "management/delete-tag" => self.delete_tag().await,
            "management/delete-manifest" => self.delete_manifest().await,
            "management/delete-blob" => self.delete_blob().await,
            other => anyhow::bail!("no such check: {other}"),
        }
    }

    // ---- API version --------------------------------------------------------------------

    async fn version_check(&self) -> anyhow::Result<Outcome> {
        let ping = self.reg.ping().await?;
        Ok(Outcome::Pass(match ping.api_version {
            Some(v) => format!("GET /v2/ answered 200 ({v})"),
            None => "GET /v2/ answered 200 (no Docker-Distribution-API-Version)".to_owned(),
        }))
    }

    // ---- Pull ---------------------------------------------------------------------------

    async fn manifest_by_tag(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let Some(tag) = &img.tag else {
            return Ok(Outcome::Skip("--reference is a digest".to_owned()));
        };
        let m = self.reg.get_manifest(&img.repo, tag).await?;
        anyhow::ensure!(
            m == img.top,
            "the tag served {} ({}), expected {}",
            m.digest,
            m.media_type,
            img.top.digest
        );
        Ok(Outcome::Pass(format!(
            "{} bytes of {}, hashing to the digest announced",
            m.bytes.len(),
            m.media_type
        )))
    }

    async fn manifest_by_digest(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let m = self
            .reg
            .get_manifest(&img.repo, img.top.digest.as_str())
            .await?;
        anyhow::ensure!(m == img.top, "served other bytes than by tag");
        Ok(Outcome::Pass(String::new()))
    }

    async fn manifest_head(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let reference = img.tag.clone().unwrap_or(img.top.digest.to_string());
        let head = self
            .reg
            .head_manifest(&img.repo, &reference)
            .await?
            .context("HEAD answered 404 for a manifest GET serves")?;
        anyhow::ensure!(
            head.size == Some(img.top.bytes.len() as u64),
            "Content-Length {:?}, the manifest has {} bytes",
            head.size,
            img.top.bytes.len()
        );
        anyhow::ensure!(
            head.media_type.as_deref() == Some(img.top.media_type.as_str()),
            "Content-Type {:?}, GET serves {}",
            head.media_type,
            img.top.media_type
        );
        match head.digest {
            Some(d) if d == img.top.digest => Ok(Outcome::Pass(
                "Docker-Content-Digest, Content-Type and Content-Length as GET".to_owned(),
            )),
            Some(d) => anyhow::bail!(
                "Docker-Content-Digest {d}, the manifest is {}",
                img.top.digest
            ),
            None => Ok(Outcome::Pass(
                "no Docker-Content-Digest on HEAD (a SHOULD); our copy engine then reads the manifest"
                    .to_owned(),
            )),
        }
    }

    async fn manifest_unknown(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let tag = "conformance-absent-tag";
        let e = match self.reg.get_manifest(&img.repo, tag).await {
            Ok(_) => anyhow::bail!("a tag never pushed was served"),
            Err(e) => e,
        };
        expect_error(&e, 404, "MANIFEST_UNKNOWN")?;
        anyhow::ensure!(e.is_not_found(), "not classified as not found: {e}");
        anyhow::ensure!(
            self.reg.head_manifest(&img.repo, tag).await?.is_none(),
            "HEAD found it"
        );
        Ok(Outcome::Pass("404 MANIFEST_UNKNOWN".to_owned()))
    }

    async fn blob_head(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let size = self.reg.head_blob(&img.repo, &img.blob.digest).await?;
        anyhow::ensure!(
            size == Some(img.blob.size),
            "HEAD told {size:?}, the descriptor says {}",
            img.blob.size
        );
        Ok(Outcome::Pass(String::new()))
    }

    async fn blob_get(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let (head, total) = read_blob(&self.reg, &img.repo, &img.blob, 1 << 20).await?;
        anyhow::ensure!(total == img.blob.size, "{total} bytes");
        if let Some(b) = &img.blob_bytes {
            anyhow::ensure!(head == b.slice(..head.len()), "other bytes than pushed");
        }
        Ok(Outcome::Pass(format!(
            "{total} bytes, digest verified while streaming"
        )))
    }

    async fn blob_range(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        if img.blob.size < 2 {
            return Ok(Outcome::Skip(
                "the blob is too small for a range".to_owned(),
            ));
        }
        let last = img.blob.size.min(4096) - 1;
        let first = last / 2;
        let (prefix, _) = read_blob(&self.reg, &img.repo, &img.blob, last as usize + 1).await?;
        let want = prefix.slice(first as usize..=last as usize);
        let resp = self
            .raw
            .send(
                Method::GET,
                &format!("/v2/{}/blobs/{}", img.repo, img.blob.digest),
                &[(header::RANGE, format!("bytes={first}-{last}"))],
                Bytes::new(),
                &pull(&img.repo),
            )
            .await?;
        match resp.status {
            206 => {
                let expected_range = format!("bytes {first}-{last}/{}", img.blob.size);
                anyhow::ensure!(
                    resp.header("content-range") == Some(expected_range.as_str()),
                    "Content-Range {:?}, expected `{expected_range}`",
                    resp.header("content-range")
                );
                anyhow::ensure!(resp.body == want, "the range holds other bytes");
                Ok(Outcome::Pass(format!(
                    "206 with Content-Range: bytes {first}-{last}/{} and those bytes",
                    img.blob.size
                )))
            }
            200 => Ok(Outcome::Deviation(format!(
                "registry deviation: ignored `Range: bytes={first}-{last}` and sent the whole \
                 blob (200); our blob reader copes: a download resumed with Range skips the bytes \
                 it already has when the answer is 200"
            ))),
            _ => anyhow::bail!("a Range GET answered {}", resp.describe()),
        }
    }

    async fn blob_unknown(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let absent = sha256(b"acr-import conformance: a blob nobody pushed");
        let e = match self.reg.get_blob(&img.repo, &absent, None, true).await {
            Ok(_) => anyhow::bail!("a blob never pushed was served"),
            Err(e) => e,
        };
        expect_error(&e, 404, "BLOB_UNKNOWN")?;
        anyhow::ensure!(
            self.reg.head_blob(&img.repo, &absent).await?.is_none(),
            "HEAD found it"
        );
        Ok(Outcome::Pass("404 BLOB_UNKNOWN; HEAD 404".to_owned()))
    }

    async fn name_unknown(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let repo = format!("{}/conformance-absent", img.repo);
        let e = match self.reg.list_tags(&repo, None).await {
            Ok(tags) => anyhow::bail!("a repository never pushed lists tags {tags:?}"),
            Err(e) => e,
        };
        expect_error(&e, 404, "NAME_UNKNOWN")?;
        Ok(Outcome::Pass(
            "404 NAME_UNKNOWN for the tags of a repository never pushed".to_owned(),
        ))
    }

    async fn name_invalid(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let name = format!("{}/Invalid_Name-", img.repo);
        let parsed = name.parse::<Repository>();
        let resp = self
            .raw
            .send(
                Method::GET,
                &format!("/v2/{name}/tags/list"),
                &[],
                Bytes::new(),
                &pull(&img.repo),
            )
            .await?;
        if resp.status == 400 && resp.codes().iter().any(|c| c == "NAME_INVALID") {
            return Ok(Outcome::Pass("400 NAME_INVALID".to_owned()));
        }
        let refused = match parsed {
            Ok(_) => anyhow::bail!(
                "the registry answered {} and our reference parser accepts `{name}`",
                resp.describe()
            ),
            Err(e) => e,
        };
        Ok(Outcome::Deviation(format!(
            "registry deviation: a repository name outside the spec's grammar \
             (uppercase, trailing separator) answered {} instead of 400 NAME_INVALID; our client \
             never sends one: the reference parser refuses it ({refused})",
            resp.describe()
        )))
    }

    // ---- Push: blobs --------------------------------------------------------------------

    async fn blob_post_put(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let blob = data(1001 + self.salt, 4096);
        let d = sha256(&blob);
        let UploadStart::Session(session) = self.reg.start_upload(&s.repo, None).await? else {
            anyhow::bail!("POST without mount answered 201");
        };
        self.reg.put_blob_bytes(session, &d, blob.clone()).await?;
        anyhow::ensure!(
            self.reg.head_blob(&s.repo, &d).await? == Some(4096),
            "the blob is not there after 201"
        );
        let back = self
            .reg
            .get_blob(&s.repo, &d, Some(4096), true)
            .await?
            .collect(1 << 20)
            .await?;
        anyhow::ensure!(back == blob, "other bytes came back");
        Ok(Outcome::Pass(
            "POST → 202 + Location, PUT ?digest= → 201; same bytes back".to_owned(),
        ))
    }

    async fn blob_single_post(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let blob = data(1002 + self.salt, 2048);
        let d = sha256(&blob);
        let resp = self
            .raw
            .send(
                Method::POST,
                &format!("/v2/{}/blobs/uploads/?digest={d}", s.repo),
                &octet_stream(blob.len()),
                blob.clone(),
                &push(&s.repo),
            )
            .await?;
        match resp.status {
            201 => {
                anyhow::ensure!(
                    resp.header("location").is_some(),
                    "201 without a Location header"
                );
                anyhow::ensure!(
                    self.reg.head_blob(&s.repo, &d).await? == Some(2048),
                    "201, but the blob is not there"
                );
                Ok(Outcome::Pass(
                    "one POST ?digest= with the bytes → 201; blob present".to_owned(),
                ))
            }
            202 => {
                let stored = self.reg.head_blob(&s.repo, &d).await?;
                let location = resp
                    .header("location")
                    .context("202 without a Location header")?
                    .to_owned();
                // The spec's fallback: finish the session it opened with PUT ?digest=, which
                // is how our push_blob always uploads.
                let put = self
                    .raw
                    .send(
                        Method::PUT,
                        &with_digest(&resolve(&self.raw_base(), &location)?, &d),
                        &octet_stream(blob.len()),
                        blob.clone(),
                        &push(&s.repo),
                    )
                    .await?;
                anyhow::ensure!(
                    self.reg.head_blob(&s.repo, &d).await? == Some(2048) && put.status == 201,
                    "completing the session it opened failed: {}",
                    put.describe()
                );
                Ok(Outcome::Deviation(format!(
                    "registry deviation: answered 202 (an upload session) to a one-request \
                     `POST ?digest=` upload and {}; our push_blob never relies on the \
                     one-request form: it always sends POST then PUT ?digest=, and completing the \
                     session this way stored the blob",
                    if stored.is_some() {
                        "stored it anyway"
                    } else {
                        "stored nothing"
                    }
                )))
            }
            _ => anyhow::bail!("answered {}", resp.describe()),
        }
    }

    /// `scheme://host[:port]` of the registry, to resolve relative upload locations.
    fn raw_base(&self) -> String {
        format!("{}://{}", self.scheme, self.reg.host())
    }

    async fn blob_chunked(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        // Through push_blob: four PATCH chunks and a closing PUT.
        let blob = data(1003 + self.salt, 200_000);
        let d = sha256(&blob);
        self.reg
            .push_blob(&s.repo, &d, blob.clone(), 64 * 1024)
            .await?;
        let back = self
            .reg
            .get_blob(&s.repo, &d, Some(200_000), true)
            .await?
            .collect(1 << 20)
            .await?;
        anyhow::ensure!(back == blob, "other bytes came back");
        // Step by step: the status of a session tells the offset to resume from.
        let other = data(1004 + self.salt, 100_000);
        let od = sha256(&other);
        let UploadStart::Session(session) = self.reg.start_upload(&s.repo, None).await? else {
            anyhow::bail!("POST without mount answered 201");
        };
        let session = self
            .reg
            .upload_chunk(session, other.slice(..60_000))
            .await?;
        anyhow::ensure!(
            session.offset() == 60_000,
            "offset {} after 60000 bytes",
            session.offset()
        );
        let status = self.reg.upload_status(&session).await?;
        anyhow::ensure!(
            status.offset() == 60_000,
            "GET on the session: Range ends at {} for 60000 bytes",
            status.offset()
        );
        let session = self.reg.upload_chunk(status, other.slice(60_000..)).await?;
        self.reg.put_blob_bytes(session, &od, Bytes::new()).await?;
        anyhow::ensure!(
            self.reg.head_blob(&s.repo, &od).await? == Some(100_000),
            "the blob is not there after the closing PUT"
        );
        Ok(Outcome::Pass(
            "PATCH chunks with Content-Range, GET status (204, Range: 0-59999), closing PUT ?digest="
                .to_owned(),
        ))
    }

    async fn blob_chunk_out_of_order(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let blob = data(1005 + self.salt, 3072);
        let scopes = push(&s.repo);
        let start = self
            .raw
            .send(
                Method::POST,
                &format!("/v2/{}/blobs/uploads/", s.repo),
                &[(header::CONTENT_LENGTH, "0".to_owned())],
                Bytes::new(),
                &scopes,
            )
            .await?;
        anyhow::ensure!(start.status == 202, "POST answered {}", start.describe());
        let location = resolve(
            &self.raw_base(),
            start.header("location").context("no Location")?,
        )?;
        let mut headers = octet_stream(1024);
        headers.push((header::CONTENT_RANGE, "0-1023".to_owned()));
        let first = self
            .raw
            .send(
                Method::PATCH,
                &location,
                &headers,
                blob.slice(..1024),
                &scopes,
            )
            .await?;
        anyhow::ensure!(
            first.status == 202,
            "the first chunk answered {}",
            first.describe()
        );
        let location = resolve(
            &self.raw_base(),
            first.header("location").context("no Location")?,
        )?;
        let mut headers = octet_stream(1024);
        headers.push((header::CONTENT_RANGE, "2048-3071".to_owned()));
        let skipped = self
            .raw
            .send(
                Method::PATCH,
                &location,
                &headers,
                blob.slice(2048..),
                &scopes,
            )
            .await?;
        let cancel_at = skipped
            .header("location")
            .and_then(|l| resolve(&self.raw_base(), l).ok())
            .unwrap_or(location);
        let _ = self
            .raw
            .send(Method::DELETE, &cancel_at, &[], Bytes::new(), &scopes)
            .await;
        match skipped.status {
            416 => Ok(Outcome::Pass(
                "a chunk starting past the offset answered 416".to_owned(),
            )),
            202 => Ok(Outcome::Deviation(format!(
                "registry deviation: accepted a chunk whose Content-Range (2048-3071) does not \
                 start at the session's offset (1024) and appended it (Range: {}) instead of \
                 answering 416; our upload_chunk never sends one: each chunk starts at the offset \
                 the registry last reported, and the closing PUT ?digest= refuses mangled content",
                skipped.header("range").unwrap_or("none")
            ))),
            _ => anyhow::bail!("an out-of-order chunk answered {}", skipped.describe()),
        }
    }

    async fn blob_digest_invalid(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let blob = data(1006 + self.salt, 1000);
        let wrong = sha256(b"not the content");
        let UploadStart::Session(session) = self.reg.start_upload(&s.repo, None).await? else {
            anyhow::bail!("POST without mount answered 201");
        };
        let e = match self.reg.put_blob_bytes(session, &wrong, blob).await {
            Ok(()) => anyhow::bail!("a PUT ?digest= with the wrong digest was accepted"),
            Err(e) => e,
        };
        expect_error(&e, 400, "DIGEST_INVALID")?;
        anyhow::ensure!(
            self.reg.head_blob(&s.repo, &wrong).await?.is_none(),
            "stored under the wrong digest"
        );
        Ok(Outcome::Pass(
            "400 DIGEST_INVALID; nothing stored under the digest claimed".to_owned(),
        ))
    }

    async fn blob_mount(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let to = format!("{}/mount", s.repo);
        let d = sha256(&s.layer.bytes);
        match self.reg.start_upload(&to, Some((&d, &s.repo))).await? {
            UploadStart::Mounted => {
                anyhow::ensure!(
                    self.reg.head_blob(&to, &d).await? == Some(s.layer.bytes.len() as u64),
                    "201, but the blob is not in the target repository"
                );
                Ok(Outcome::Pass(
                    "POST ?mount=&from= → 201; the blob is in the other repository".to_owned(),
                ))
            }
            UploadStart::Session(session) => {
                self.reg.cancel_upload(&session).await;
                Ok(Outcome::Deviation(
                    "registry deviation: does not mount across repositories (202, an upload \
                     session); our copy engine then streams the blob into that session"
                        .to_owned(),
                ))
            }
        }
    }

    async fn blob_mount_missing(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let to = format!("{}/mount", s.repo);
        let absent = sha256(b"acr-import conformance: a blob nobody pushed");
        match self.reg.start_upload(&to, Some((&absent, &s.repo))).await? {
            UploadStart::Mounted => anyhow::bail!("claimed to mount a blob that does not exist"),
            UploadStart::Session(session) => {
                self.reg.cancel_upload(&session).await;
                Ok(Outcome::Pass(
                    "202 and an upload session for a blob the source lacks".to_owned(),
                ))
            }
        }
    }

    async fn upload_cancel(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let UploadStart::Session(session) = self.reg.start_upload(&s.repo, None).await? else {
            anyhow::bail!("POST without mount answered 201");
        };
        let session = self
            .reg
            .upload_chunk(session, data(1007 + self.salt, 100))
            .await?;
        self.reg.cancel_upload(&session).await;
        let e = match self.reg.upload_status(&session).await {
            Ok(s) => anyhow::bail!(
                "the session is still there after DELETE (offset {})",
                s.offset()
            ),
            Err(e) => e,
        };
        expect_error(&e, 404, "BLOB_UPLOAD_UNKNOWN")?;
        Ok(Outcome::Pass(
            "DELETE on the session, then its status: 404 BLOB_UPLOAD_UNKNOWN".to_owned(),
        ))
    }

    // ---- Push: manifests ----------------------------------------------------------------

    async fn push_manifest_by_tag(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let m = s.variant("pushed by tag")?;
        let pushed = self.reg.push_manifest(&s.repo, "by-tag", &m).await?;
        anyhow::ensure!(pushed.digest == m.digest, "stored as {}", pushed.digest);
        let back = self.reg.get_manifest(&s.repo, "by-tag").await?;
        anyhow::ensure!(back == m, "the tag serves other bytes");
        Ok(Outcome::Pass(
            "201 with Docker-Content-Digest of the bytes sent; the tag serves them".to_owned(),
        ))
    }

    async fn push_manifest_by_digest(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let m = s.variant("pushed by digest")?;
        self.reg
            .push_manifest(&s.repo, m.digest.as_str(), &m)
            .await?;
        let back = self.reg.get_manifest(&s.repo, m.digest.as_str()).await?;
        anyhow::ensure!(back == m, "the digest serves other bytes");
        Ok(Outcome::Pass(String::new()))
    }

    async fn manifest_blob_unknown(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let missing = Blob::layer(1008 + self.salt, 512);
        let value = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": s.config.descriptor(),
            "layers": [missing.descriptor()],
        });
        let m = ours(fixtures::manifest_of(&value, manifest::OCI_MANIFEST)?)?;
        let e = match self.reg.put_manifest(&s.repo, "blob-unknown", &m).await {
            Ok(_) => anyhow::bail!("a manifest whose layer is missing was accepted"),
            Err(e) => e,
        };
        expect_error(&e, 400, "MANIFEST_BLOB_UNKNOWN")?;
        Ok(Outcome::Pass("400 MANIFEST_BLOB_UNKNOWN".to_owned()))
    }

    async fn manifest_invalid(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let bytes = Bytes::from_static(b"{\"schemaVersion\": 2, \"config\": not json");
        let m = Manifest {
            digest: sha256(&bytes),
            bytes,
            media_type: manifest::OCI_MANIFEST.to_owned(),
        };
        let e = match self.reg.put_manifest(&s.repo, "invalid", &m).await {
            Ok(_) => anyhow::bail!("a manifest that is not JSON was accepted"),
            Err(e) => e,
        };
        expect_error(&e, 400, "MANIFEST_INVALID")?;
        Ok(Outcome::Pass("400 MANIFEST_INVALID".to_owned()))
    }

    async fn manifest_with_subject(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let subject = s.variant("subject of a pushed artifact")?;
        self.reg
            .put_manifest(&s.repo, subject.digest.as_str(), &subject)
            .await?;
        let a = self
            .push_artifact(&s.repo, SBOM, 1009 + self.salt, None)
            .await?;
        // The same artifact with a subject.
        let mut value: serde_json::Value = serde_json::from_slice(&a.bytes)?;
        value["subject"] = descriptor_json(&subject);
        let m = ours(fixtures::manifest_of(&value, manifest::OCI_MANIFEST)?)?;
        let pushed = self
            .reg
            .push_manifest(&s.repo, m.digest.as_str(), &m)
            .await?;
        match pushed.oci_subject {
            Some(d) if d == subject.digest => Ok(Outcome::Pass(
                "201 with OCI-Subject naming the subject".to_owned(),
            )),
            Some(d) => anyhow::bail!("OCI-Subject names {d}, the subject is {}", subject.digest),
            None => Ok(Outcome::Deviation(
                "registry deviation: no OCI-Subject header on a manifest with a subject (the \
                 registry does not index referrers); as the spec then asks of clients, our copy \
                 engine records the referrers it discovers and copies in the `<alg>-<hex>` \
                 fallback tag (see discovery/referrers-fallback; copy/*/artifact-with-subject \
                 covers a copied manifest that has a subject itself)"
                    .to_owned(),
            )),
        }
    }

    // ---- Content discovery --------------------------------------------------------------

    /// The repository and the tags the tag checks list: pushed ones, or the given image's.
    async fn tag_repo(&self) -> anyhow::Result<(String, Option<Vec<String>>)> {
        let Some(s) = &self.seeded else {
            return Ok((self.image()?.repo.clone(), None));
        };
        let repo = format!("{}/tags", s.repo);
        let m = s.variant("tagged")?;
        self.push_blobs(&repo, &[&s.config, &s.layer]).await?;
        // Pushed in no particular order, so that storage order is not lexical order.
        let tags = ["b1", "a2", "c0", "0z", "b0", "a10", "z9", "a1"];
        for t in tags {
            self.reg.put_manifest(&repo, t, &m).await?;
        }
        let mut sorted: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
        sorted.sort();
        Ok((repo, Some(sorted)))
    }

    async fn tags_list(&self) -> anyhow::Result<Outcome> {
        let (repo, pushed) = self.tag_repo().await?;
        let tags = self.reg.list_tags(&repo, None).await?;
        if pushed.is_none() && tags.len() < 2 {
            return Ok(Outcome::Skip(format!(
                "{repo} has {} tag(s); the order needs 2",
                tags.len()
            )));
        }
        let mut sorted = tags.clone();
        sorted.sort();
        match &pushed {
            Some(p) => anyhow::ensure!(&sorted == p, "listed {tags:?}, pushed {p:?}"),
            None => {
                if let Some(t) = &self.image()?.tag {
                    anyhow::ensure!(tags.contains(t), "{t} is not listed");
                }
            }
        }
        if sorted != tags {
            return Ok(Outcome::Deviation(format!(
                "registry deviation: the {} tags are listed in storage order, not in the \
                 lexical order the spec requires; our client does not rely on the order \
                 (`acr repository show-tags` sorts the tags list_tags collects)",
                tags.len()
            )));
        }
        Ok(Outcome::Pass(format!(
            "all {} tags, in lexical order",
            tags.len()
        )))
    }

    async fn tags_list_pagination(&self) -> anyhow::Result<Outcome> {
        let (repo, pushed) = self.tag_repo().await?;
        let mut all = self.reg.list_tags(&repo, None).await?;
        all.sort();
        if let Some(p) = &pushed {
            anyhow::ensure!(&all == p, "listed {all:?}, pushed {p:?}");
        }
        if all.len() < 3 {
            return Ok(Outcome::Skip(format!(
                "{repo} has {} tags; pagination needs 3",
                all.len()
            )));
        }
        // Through the transport: n=2, following Link to the end.
        let mut paged = self.reg.list_tags(&repo, Some(2)).await?;
        paged.sort();
        anyhow::ensure!(
            paged == all,
            "list_tags with n=2 collected {paged:?}, the repository has {all:?}"
        );
        // By hand: what each page holds.
        let scopes = pull(&repo);
        let page = |query: String| {
            let scopes = scopes.clone();
            async move {
                let resp = self
                    .raw
                    .send(Method::GET, &query, &[], Bytes::new(), &scopes)
                    .await?;
                anyhow::ensure!(resp.status == 200, "{query}: {}", resp.describe());
                #[derive(serde::Deserialize)]
                struct Page {
                    #[serde(default)]
                    tags: Option<Vec<String>>,
                }
                let p: Page = serde_json::from_slice(&resp.body)?;
                anyhow::Ok((p.tags.unwrap_or_default(), resp))
            }
        };
        let (first, resp) = page(format!("/v2/{repo}/tags/list?n=2")).await?;
        if first.len() > 2 {
            return Ok(Outcome::Deviation(format!(
                "registry deviation: ignores `n` (asked for 2 tags, got all {} in one page{}); \
                 our list_tags asks with n and follows Link only when there is one, so it still \
                 collected every tag",
                first.len(),
                if resp.header("link").is_some() {
                    ""
                } else {
                    ", no Link header"
                }
            )));
        }
        anyhow::ensure!(
            first == all[..2],
            "the first page is {first:?}, expected {:?} (lexical order)",
            &all[..2]
        );
        let link = resp
            .header("link")
            .context("a first page of 2 tags out of more has no Link header")?;
        anyhow::ensure!(
            link.contains("rel=\"next\""),
            "the Link header `{link}` has no rel=\"next\""
        );
        let (after, _) = page(format!("/v2/{repo}/tags/list?n=2&last={}", all[1])).await?;
        anyhow::ensure!(
            after == all[2..all.len().min(4)],
            "n=2&last={} gave {after:?}, expected {:?}",
            all[1],
            &all[2..all.len().min(4)]
        );
        Ok(Outcome::Pass(format!(
            "n=2 pages in lexical order with Link rel=\"next\"; last= continues; list_tags \
             followed {} pages",
            all.len().div_ceil(2)
        )))
    }

    /// The subject and referrers the referrer checks look for (pushed once), or `None` when
    /// reading only.
    async fn referrers_seed(&self) -> anyhow::Result<Option<&ReferrersSeed>> {
        let Some(s) = &self.seeded else {
            return Ok(None);
        };
        let seed = self
            .referrers
            .get_or_init(|| async {
                let subject = s
                    .variant("subject with referrers")
                    .map_err(|e| e.to_string())?;
                let make = async {
                    self.reg
                        .put_manifest(&s.repo, subject.digest.as_str(), &subject)
                        .await?;
                    let sbom = self
                        .push_artifact(&s.repo, SBOM, 1010, Some(&subject))
                        .await?;
                    let sig = self
                        .push_artifact(&s.repo, SIGNATURE, 1011, Some(&subject))
                        .await?;
                    anyhow::Ok(vec![(sbom, SBOM), (sig, SIGNATURE)])
                };
                let artifacts = make.await.map_err(|e| format!("{e:#}"))?;
                Ok(ReferrersSeed { subject, artifacts })
            })
            .await;
        seed.as_ref()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("pushing the referrers failed: {e}"))
    }

    async fn get_referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> anyhow::Result<RawResponse> {
        let mut path = format!("/v2/{repo}/referrers/{subject}");
        if let Some(t) = artifact_type {
            path.push_str(&format!("?artifactType={}", t.replace('+', "%2B")));
        }
        self.raw
            .send(
                Method::GET,
                &path,
                &[(header::ACCEPT, OCI_INDEX.to_owned())],
                Bytes::new(),
                &pull(repo),
            )
            .await
    }

    /// On a registry without the referrers API, records the seeded referrers in the fallback
    /// tag, as our copy engine does (and as the spec asks of clients).
    async fn ensure_fallback(&self, seed: &ReferrersSeed) -> anyhow::Result<()> {
        let s = self.seeded()?;
        let list: Vec<(&Manifest, &str)> = seed.artifacts.iter().map(|(m, t)| (m, *t)).collect();
        self.attach(&s.repo, &seed.subject, &list).await?;
        Ok(())
    }

    async fn referrers_api(&self) -> anyhow::Result<Outcome> {
        let (repo, subject, expected) = match self.referrers_seed().await? {
            Some(seed) => (
                self.seeded()?.repo.clone(),
                seed.subject.digest.clone(),
                Some(seed),
            ),
            None => {
                let img = self.image()?;
                (img.repo.clone(), img.top.digest.clone(), None)
            }
        };
        let resp = self.get_referrers(&repo, &subject, None).await?;
        if resp.status == 200 {
            let ct = resp.header("content-type").unwrap_or_default();
            anyhow::ensure!(
                ct.starts_with(OCI_INDEX),
                "200 with Content-Type `{ct}`, expected {OCI_INDEX}"
            );
            let index = acr_import_transfer::ManifestContent::parse(&resp.body)
                .map_err(|e| anyhow::anyhow!("the referrers response: {e}"))?;
            if let Some(seed) = expected {
                for (m, t) in &seed.artifacts {
                    let found = index
                        .manifests
                        .iter()
                        .find(|d| d.digest == m.digest)
                        .with_context(|| format!("the {t} referrer is not listed"))?;
                    anyhow::ensure!(
                        found.artifact_type.as_deref() == Some(*t),
                        "the {t} referrer is listed with artifactType {:?}",
                        found.artifact_type
                    );
                }
            }
            let ours = self.reg.referrers(&repo, &subject, None).await?;
            anyhow::ensure!(
                ours.source == ReferrersSource::Api,
                "our transport did not use the API"
            );
            return Ok(Outcome::Pass(format!(
                "200, an OCI index of {} referrer{} with their artifactType",
                index.manifests.len(),
                if index.manifests.len() == 1 { "" } else { "s" }
            )));
        }
        anyhow::ensure!(
            resp.status == 404 && !resp.codes().iter().any(|c| c == "NAME_UNKNOWN"),
            "GET …/referrers/<digest> answered {}",
            resp.describe()
        );
        // No API: our transport falls back to the tag schema.
        if let Some(seed) = expected {
            self.ensure_fallback(seed).await?;
        }
        let ours = self.reg.referrers(&repo, &subject, None).await?;
        anyhow::ensure!(
            ours.source == ReferrersSource::TagSchema,
            "our transport did not fall back to the tag schema"
        );
        if let Some(seed) = expected {
            for (m, t) in &seed.artifacts {
                anyhow::ensure!(
                    ours.descriptors.iter().any(|d| d.digest == m.digest),
                    "the {t} referrer is not found through the fallback tag"
                );
            }
        }
        Ok(Outcome::Deviation(format!(
            "registry deviation: no referrers API (GET /v2/<name>/referrers/<digest> answered \
             {}); our transport falls back to the `<alg>-<hex>` tag schema and found the {} \
             referrer{} there",
            resp.describe(),
            ours.descriptors.len(),
            if ours.descriptors.len() == 1 { "" } else { "s" }
        )))
    }

    async fn referrers_filter(&self) -> anyhow::Result<Outcome> {
        let seed = self
            .referrers_seed()
            .await?
            .context("writes are not allowed")?;
        let repo = self.seeded()?.repo.clone();
        let resp = self
            .get_referrers(&repo, &seed.subject.digest, Some(SBOM))
            .await?;
        let sbom = &seed.artifacts[0].0;
        if resp.status == 200 {
            let index = acr_import_transfer::ManifestContent::parse(&resp.body)
                .map_err(|e| anyhow::anyhow!("the referrers response: {e}"))?;
            let ours = self
                .reg
                .referrers(&repo, &seed.subject.digest, Some(SBOM))
                .await?;
            anyhow::ensure!(
                ours.descriptors.len() == 1 && ours.descriptors[0].digest == sbom.digest,
                "our transport returned {} referrers for artifactType {SBOM}",
                ours.descriptors.len()
            );
            let applied = resp
                .header("oci-filters-applied")
                .is_some_and(|f| f.contains("artifactType"));
            if applied {
                anyhow::ensure!(
                    index.manifests.len() == 1 && index.manifests[0].digest == sbom.digest,
                    "OCI-Filters-Applied: artifactType, but {} entries",
                    index.manifests.len()
                );
                return Ok(Outcome::Pass(
                    "filtered by the registry (OCI-Filters-Applied: artifactType)".to_owned(),
                ));
            }
            return Ok(Outcome::Pass(
                "not filtered by the registry (allowed: no OCI-Filters-Applied); our transport \
                 filters the list itself"
                    .to_owned(),
            ));
        }
        anyhow::ensure!(
            resp.status == 404,
            "GET …/referrers/<digest>?artifactType= answered {}",
            resp.describe()
        );
        self.ensure_fallback(seed).await?;
        let ours = self
            .reg
            .referrers(&repo, &seed.subject.digest, Some(SBOM))
            .await?;
        anyhow::ensure!(
            ours.descriptors.len() == 1 && ours.descriptors[0].digest == sbom.digest,
            "filtering the fallback index gave {} referrers, expected the one {SBOM}",
            ours.descriptors.len()
        );
        Ok(Outcome::Deviation(format!(
            "registry deviation: no referrers API, so no artifactType filter ({}); our transport \
             filters the fallback tag's index itself: 1 of 2 referrers is {SBOM}",
            resp.describe()
        )))
    }

    async fn referrers_fallback(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let subject = s.variant("subject of the fallback tag")?;
        self.reg
            .put_manifest(&s.repo, subject.digest.as_str(), &subject)
            .await?;
        let sig = self
            .push_artifact(&s.repo, SIGNATURE, 1012 + self.salt, Some(&subject))
            .await?;
        let index = self.attach(&s.repo, &subject, &[(&sig, SIGNATURE)]).await?;
        let tag = subject.digest.referrers_tag();
        let back = self.reg.get_manifest(&s.repo, tag.as_str()).await?;
        anyhow::ensure!(back == index, "the fallback tag serves other bytes");
        let ours = self.reg.referrers(&s.repo, &subject.digest, None).await?;
        let found = ours
            .descriptors
            .iter()
            .find(|d| d.digest == sig.digest)
            .context("the referrer is not found")?;
        anyhow::ensure!(
            found.artifact_type.as_deref() == Some(SIGNATURE),
            "found with artifactType {:?}",
            found.artifact_type
        );
        Ok(Outcome::Pass(format!(
            "an OCI index under the tag `{}-<hex>`; our transport finds the referrer ({})",
            subject.digest.algorithm().as_str(),
            match ours.source {
                ReferrersSource::Api => "through the referrers API",
                ReferrersSource::TagSchema => "through the tag",
            }
        )))
    }

    // ---- Content management -------------------------------------------------------------

    async fn delete_tag(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let m = s.variant("deleted by tag")?;
        self.reg.put_manifest(&s.repo, "delete-me", &m).await?;
        let resp = self
            .raw
            .send(
                Method::DELETE,
                &format!("/v2/{}/manifests/delete-me", s.repo),
                &[],
                Bytes::new(),
                &ScopeSet::new().with(Scope::repository(&s.repo, ["pull", "delete"])),
            )
            .await?;
        match resp.status {
            202 => {
                anyhow::ensure!(
                    self.reg
                        .head_manifest(&s.repo, "delete-me")
                        .await?
                        .is_none(),
                    "202, but the tag is still there"
                );
                Ok(Outcome::Pass("202; the tag is gone".to_owned()))
            }
            400 | 405 => {
                anyhow::ensure!(
                    self.reg
                        .head_manifest(&s.repo, "delete-me")
                        .await?
                        .is_some(),
                    "refused ({}), but the tag is gone",
                    resp.describe()
                );
                Ok(Outcome::Pass(format!(
                    "refuses to delete a tag ({}), which the spec allows (400 or 405); our client \
                     deletes manifests by digest only",
                    resp.describe()
                )))
            }
            _ => anyhow::bail!("DELETE of a tag answered {}", resp.describe()),
        }
    }

    async fn delete_manifest(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let m = s.variant(&format!("deleted by digest {}", self.salt))?;
        self.reg
            .put_manifest(&s.repo, "delete-by-digest", &m)
            .await?;
        match self.reg.delete_manifest(&s.repo, &m.digest).await {
            Ok(()) => {}
            Err(e) if matches!(e.status(), Some(400 | 405)) => {
                return Ok(Outcome::Pass(format!(
                    "manifest deletes are disabled ({e}), which the spec allows"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let e = match self.reg.get_manifest(&s.repo, m.digest.as_str()).await {
            Ok(_) => anyhow::bail!("still served by digest after the DELETE"),
            Err(e) => e,
        };
        expect_error(&e, 404, "MANIFEST_UNKNOWN")?;
        anyhow::ensure!(
            self.reg
                .head_manifest(&s.repo, "delete-by-digest")
                .await?
                .is_none(),
            "its tag still resolves"
        );
        Ok(Outcome::Pass(
            "202; then 404 MANIFEST_UNKNOWN by digest, and its tag is gone".to_owned(),
        ))
    }

    async fn delete_blob(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let blob = data(1013 + self.salt, 1500);
        let d = sha256(&blob);
        self.reg.push_blob(&s.repo, &d, blob, u64::MAX).await?;
        let resp = self
            .raw
            .send(
                Method::DELETE,
                &format!("/v2/{}/blobs/{d}", s.repo),
                &[],
                Bytes::new(),
                &ScopeSet::new().with(Scope::repository(&s.repo, ["pull", "delete"])),
            )
            .await?;
        match resp.status {
            202 => {
                anyhow::ensure!(
                    self.reg.head_blob(&s.repo, &d).await?.is_none(),
                    "202, but HEAD still finds the blob"
                );
                Ok(Outcome::Pass("202; then HEAD 404".to_owned()))
            }
            405 => Ok(Outcome::Pass(format!(
                "blob deletes are disabled ({}), which the spec allows",
                resp.describe()
            ))),
            _ => anyhow::bail!("DELETE of a blob answered {}", resp.describe()),
        }
    }
}

/// An upload `Location` (absolute or relative) as an absolute URL.
fn resolve(base: &str, location: &str) -> anyhow::Result<String> {
    Ok(url::Url::parse(&format!("{base}/"))?
        .join(location)?
        .to_string())
}
