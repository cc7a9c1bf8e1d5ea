//! Signed images in real registries: cosign-format artifacts (see
//! [`acr_import_testsupport::cosign`]) pushed with our transport, and checked where they
//! were copied to.

use acr_import_reference::Digest;
use acr_import_testsupport::cosign::{CosignArtifact, CosignKey, digest_tag, verify_signature};
use acr_import_transfer::{Manifest, Registry, TransferError, digest_of};
use anyhow::Context as _;
use bytes::Bytes;

/// Pushes an artifact's blobs, then its manifest under its digest tag (or by digest, for a
/// referrer). Returns the manifest.
pub async fn push_artifact(
    reg: &Registry,
    repo: &str,
    artifact: &CosignArtifact,
) -> Result<Manifest, TransferError> {
    for b in &artifact.blobs {
        let d = digest_of(acr_import_reference::DigestAlgorithm::Sha256, &b.bytes);
        if reg.head_blob(repo, &d).await?.is_none() {
            reg.push_blob(repo, &d, Bytes::from(b.bytes.clone()), u64::MAX)
                .await?;
        }
    }
    let manifest = Manifest {
        bytes: Bytes::from(artifact.manifest.clone()),
        media_type: artifact.media_type.clone(),
        digest: digest_of(
            acr_import_reference::DigestAlgorithm::Sha256,
            &artifact.manifest,
        ),
    };
    let reference = artifact
        .tag
        .clone()
        .unwrap_or_else(|| manifest.digest.to_string());
    reg.put_manifest(repo, &reference, &manifest).await?;
    Ok(manifest)
}

/// Checks the cosign signature (`.sig` tag) of `image` in `repo`: it must verify with `key`
/// and name `image`, the digest the image has there.
pub async fn signature_verifies(
    reg: &Registry,
    repo: &str,
    image: &Digest,
    key: &CosignKey,
) -> anyhow::Result<()> {
    let tag = digest_tag(image.as_str(), "sig");
    let sig = reg
        .get_manifest(repo, &tag)
        .await
        .with_context(|| format!("{repo}:{tag}"))?;
    let content = sig.parse().map_err(anyhow::Error::msg)?;
    let layer = content.layers.first().context("a signature layer")?;
    let payload = reg
        .get_blob(repo, &layer.digest, Some(layer.size), true)
        .await?
        .collect(1 << 20)
        .await?;
    verify_signature(&key.public_key(), &sig.bytes, &payload, image.as_str())
}
