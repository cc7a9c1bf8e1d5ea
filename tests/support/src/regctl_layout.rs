//! An OCI image layout in regctl's format, written file by file from the format regclient
//! documents and implements (`scheme/ocidir`), never by the code under test.
//!
//! What regclient writes when it copies an image with its referrers into a layout
//! (`regctl image copy --referrers … ocidir://DIR:TAG`):
//!
//! - `oci-layout` and `blobs/sha256/<hex>` for every blob and manifest;
//! - in `index.json`, the image's entry named by `org.opencontainers.image.ref.name`;
//! - each referrer pushed by digest: an untagged entry of `index.json`;
//! - the subject's referrers list, an image index whose descriptors carry the referrers'
//!   `artifactType` and annotations, tagged with the fallback tag `sha256-<hex>`.
//!
//! Besides those, [`write()`] adds what other writers leave in the same folder: a referrer
//! that is only an untagged entry with a `subject` (oras, buildx), and a cosign signature
//! tagged `sha256-<hex>.sig`.

use std::path::Path;

use anyhow::Context as _;

use crate::cosign::{self, CosignKey};
use crate::util::sha256_digest;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What [`write()`] put in the layout.
#[derive(Debug, Clone)]
pub struct RegctlLayout {
    /// The image's tag in `index.json`.
    pub tag: String,
    /// The image manifest's digest.
    pub image: String,
    /// Referrers listed in the fallback index (and untagged entries): an SPDX SBOM and a
    /// Notary signature, in that order, as `(digest, manifest bytes)`.
    pub listed: Vec<(String, Vec<u8>)>,
    /// A referrer found only by its `subject` (an untagged entry, as oras writes it).
    pub by_subject: (String, Vec<u8>),
    /// The cosign signature's manifest bytes, under `sha256-<hex>.sig`.
    pub signature: Vec<u8>,
}

fn write_blob(root: &Path, bytes: &[u8]) -> anyhow::Result<String> {
    let digest = sha256_digest(bytes);
    let dir = root.join("blobs/sha256");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(dir.join(hex), bytes)?;
    Ok(digest)
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": sha256_digest(bytes), "size": bytes.len()})
}

/// Writes the layout into `root` (created), the signature made with `key`.
pub fn write(root: &Path, key: &CosignKey) -> anyhow::Result<RegctlLayout> {
    std::fs::create_dir_all(root)?;
    std::fs::write(
        root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let layer = b"layer bytes of the image".to_vec();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    write_blob(root, &layer)?;
    write_blob(root, config)?;
    let image = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    }))?;
    let image_digest = write_blob(root, &image)?;
    let subject = descriptor(OCI_MANIFEST, &image);
    write_blob(root, b"{}")?;
    let created = serde_json::json!({"org.opencontainers.image.created": "2026-01-01T00:00:00Z"});
    let referrer = |artifact_type: &str, payload: &[u8]| -> anyhow::Result<Vec<u8>> {
        write_blob(root, payload)?;
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor(OCI_EMPTY, b"{}"),
            "layers": [descriptor("application/octet-stream", payload)],
            "subject": subject,
            "annotations": created,
        }))?;
        write_blob(root, &m)?;
        Ok(m)
    };
    let sbom = referrer("application/spdx+json", b"regctl sbom")?;
    let notation = referrer(
        "application/vnd.cncf.notary.signature",
        b"notation signature",
    )?;
    let oras = referrer("application/vnd.example.oras+json", b"oras artifact")?;
    let listed = |m: &[u8], artifact_type: &str| {
        let mut d = descriptor(OCI_MANIFEST, m);
        d["artifactType"] = artifact_type.into();
        d["annotations"] = created.clone();
        d
    };
    let fallback = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            listed(&sbom, "application/spdx+json"),
            listed(&notation, "application/vnd.cncf.notary.signature"),
        ],
    }))?;
    write_blob(root, &fallback)?;
    let sig = cosign::signature(key, "regctl/app", &image_digest)?;
    for b in &sig.blobs {
        write_blob(root, &b.bytes)?;
    }
    write_blob(root, &sig.manifest)?;
    let named = |mut d: serde_json::Value, name: &str| {
        d["annotations"] = serde_json::json!({REF_NAME: name});
        d
    };
    let fallback_tag = image_digest.replacen(':', "-", 1);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            named(descriptor(OCI_MANIFEST, &image), "v1"),
            descriptor(OCI_MANIFEST, &sbom),
            descriptor(OCI_MANIFEST, &notation),
            named(descriptor(OCI_INDEX, &fallback), &fallback_tag),
            descriptor(OCI_MANIFEST, &oras),
            named(descriptor(OCI_MANIFEST, &sig.manifest), &format!("{fallback_tag}.sig")),
        ],
        "annotations": {},
    });
    std::fs::write(root.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(RegctlLayout {
        tag: "v1".to_owned(),
        image: image_digest,
        listed: vec![
            (sha256_digest(&sbom), sbom),
            (sha256_digest(&notation), notation),
        ],
        by_subject: (sha256_digest(&oras), oras),
        signature: sig.manifest,
    })
}
