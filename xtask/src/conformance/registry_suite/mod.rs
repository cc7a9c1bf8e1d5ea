//! The registry suite: the OCI distribution specification, checked through our transport.
//!
//! Each check is named after the part of the spec it covers (`pull/…`, `push/…`,
//! `discovery/…`, `management/…`; the spec's endpoint ids are in [`CHECKS`]). Checks use
//! the typed [`Registry`] API wherever it can express the request, so they also check that
//! our transport reads every answer right; the few requests it has no method for go through
//! [`Raw`] (our connections and authenticator, hand-built requests).

use acr_import_tests::Names;
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

mod discovery;
mod management;
mod pull;
mod push;

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

/// A check that only reads.
const fn read(name: &'static str, spec: &'static str) -> Check {
    Check {
        name,
        access: Access::Read,
        spec,
    }
}

/// A check that needs `--allow-writes`.
const fn write(name: &'static str, spec: &'static str) -> Check {
    Check {
        name,
        access: Access::Write,
        spec,
    }
}

/// Every check, in the order they run and print.
pub const CHECKS: &[Check] = &[
    read("api/version-check", "end-1"),
    read("pull/manifest-by-tag", "end-3"),
    read("pull/manifest-by-digest", "end-3"),
    read("pull/manifest-head", "end-3"),
    read("pull/manifest-unknown", "end-3 MANIFEST_UNKNOWN"),
    read("pull/blob-head", "end-2"),
    read("pull/blob-get", "end-2"),
    read("pull/blob-range", "end-2 Range"),
    read("pull/blob-unknown", "end-2 BLOB_UNKNOWN"),
    read("pull/name-unknown", "end-8a NAME_UNKNOWN"),
    read("pull/name-invalid", "end-8a NAME_INVALID"),
    write("push/blob-post-put", "end-4a end-6"),
    write("push/blob-single-post", "end-4b"),
    write("push/blob-chunked", "end-4a end-5 end-13 end-6"),
    write("push/blob-chunk-out-of-order", "end-5 416"),
    write("push/blob-digest-invalid", "end-6 DIGEST_INVALID"),
    write("push/blob-mount", "end-11"),
    write("push/blob-mount-missing", "end-11 202"),
    write("push/upload-cancel", "BLOB_UPLOAD_UNKNOWN"),
    write("push/manifest-by-tag", "end-7"),
    write("push/manifest-by-digest", "end-7"),
    write("push/manifest-blob-unknown", "end-7 MANIFEST_BLOB_UNKNOWN"),
    write("push/manifest-invalid", "end-7 MANIFEST_INVALID"),
    write("push/manifest-with-subject", "end-7 OCI-Subject"),
    read("discovery/tags-list", "end-8a"),
    read("discovery/tags-list-pagination", "end-8b"),
    read("discovery/referrers", "end-12a"),
    write("discovery/referrers-filter", "end-12b"),
    write("discovery/referrers-fallback", "referrers tag schema"),
    write("management/delete-tag", "end-9"),
    write("management/delete-manifest", "end-9"),
    write("management/delete-blob", "end-10"),
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
            ctx.reg.put_manifest(&repo.repo(), &"v1".at(), &m).await?;
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
    let top = reg.get_manifest(&repo.repo(), &reference.at()).await?;
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
        image = reg
            .get_manifest(&repo.repo(), &child.digest.clone().into())
            .await?;
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

/// The error of a request that must be refused with `status` and `code`; a success is a
/// failure of the check, described by `accepted`.
fn refused<T>(
    result: Result<T, TransferError>,
    status: u16,
    code: &str,
    accepted: impl FnOnce(T) -> String,
) -> anyhow::Result<TransferError> {
    let e = match result {
        Ok(v) => anyhow::bail!("{}", accepted(v)),
        Err(e) => e,
    };
    expect_error(&e, status, code)?;
    Ok(e)
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
        .get_blob(&repo.repo(), &desc.digest, Some(desc.size), true)
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
            if self.reg.head_blob(&repo.repo(), &d).await?.is_none() {
                self.reg
                    .push_blob(&repo.repo(), &d, b.bytes.clone(), u64::MAX)
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
        self.reg
            .put_manifest(&repo.repo(), &m.digest.clone().into(), &m)
            .await?;
        Ok(m)
    }

    /// `len` bytes of `seed` made new for this run (see `salt`), and their digest.
    fn salted(&self, seed: u64, len: usize) -> (Bytes, Digest) {
        let blob = data(seed + self.salt, len);
        let d = sha256(&blob);
        (blob, d)
    }

    /// A new upload session (a `POST` without mount) in `repo`.
    async fn new_session(&self, repo: &str) -> anyhow::Result<acr_import_transfer::UploadSession> {
        match self.reg.start_upload(&repo.repo(), None).await? {
            UploadStart::Session(session) => Ok(session),
            UploadStart::Mounted => anyhow::bail!("POST without mount answered 201"),
        }
    }

    /// A variant of the seeded image (made distinct by `label`), pushed by digest: a subject
    /// for artifacts.
    async fn push_subject(&self, label: &str) -> anyhow::Result<Manifest> {
        let s = self.seeded()?;
        let subject = s.variant(label)?;
        self.reg
            .put_manifest(&s.repo.repo(), &subject.digest.clone().into(), &subject)
            .await?;
        Ok(subject)
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
        self.reg
            .put_manifest(&repo.repo(), &tag.clone().into(), &m)
            .await?;
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
}

/// An upload `Location` (absolute or relative) as an absolute URL.
fn resolve(base: &str, location: &str) -> anyhow::Result<String> {
    Ok(url::Url::parse(&format!("{base}/"))?
        .join(location)?
        .to_string())
}
