//! Cosign signatures and attestations checked where they were copied to: read back through
//! a registry handle (any registry the transport reaches: TLS, credentials), verified with
//! the test support's `cosign` checks.

use acr_import_testsupport::cosign::{self, CosignKey};
use acr_import_transfer::{Manifest, Registry};

use crate::Names;
use anyhow::Context as _;
use bytes::Bytes;

/// The manifest under `tag` in `repo` and the bytes of its first layer.
async fn first_layer(reg: &Registry, repo: &str, tag: &str) -> anyhow::Result<(Manifest, Bytes)> {
    let m = reg
        .get_manifest(&repo.repo(), &tag.at())
        .await
        .with_context(|| format!("{repo}:{tag}"))?;
    let content = m.parse().map_err(anyhow::Error::msg)?;
    let layer = content.layers.first().context("no layer")?;
    let bytes = reg
        .get_blob(&repo.repo(), &layer.digest, Some(layer.size), true)
        .await?
        .collect(1 << 20)
        .await?;
    Ok((m, bytes))
}

/// Checks the cosign signature (`.sig` tag) of `image` (`sha256:<hex>`) in `repo`: it must
/// verify with `key` and name `image`, the digest the image has there.
pub async fn signature_verifies(
    reg: &Registry,
    repo: &str,
    image: &str,
    key: &CosignKey,
) -> anyhow::Result<()> {
    let (sig, payload) = first_layer(reg, repo, &cosign::digest_tag(image, "sig")).await?;
    cosign::verify_signature(&key.public_key(), &sig.bytes, &payload, image)
}

/// Checks the cosign attestation (`.att` tag) of `image` in `repo` against `key`.
pub async fn attestation_verifies(
    reg: &Registry,
    repo: &str,
    image: &str,
    key: &CosignKey,
) -> anyhow::Result<()> {
    let (att, envelope) = first_layer(reg, repo, &cosign::digest_tag(image, "att")).await?;
    cosign::verify_attestation(&key.public_key(), &att.bytes, &envelope, image)
}
