//! cosign-format signatures, attestations and SBOMs, made and checked in-process.
//!
//! cosign stores what it attaches to an image in the image's repository, as OCI manifests:
//!
//! - a signature under the tag `sha256-<hex>.sig`: one layer per signature, of media type
//!   `application/vnd.dev.cosign.simplesigning.v1+json`, whose content is the "simple
//!   signing" payload naming the image digest, and whose annotation
//!   `dev.cosignproject.cosign/signature` holds the base64 ECDSA signature of that payload;
//! - an attestation under `sha256-<hex>.att`: a layer of media type
//!   `application/vnd.dsse.envelope.v1+json`, a DSSE envelope whose in-toto statement names
//!   the image digest, signed over the DSSE pre-authentication encoding;
//! - an SBOM under `sha256-<hex>.sbom`: the SBOM document as a layer (`text/spdx+json`).
//!
//! With `--registry-referrers-mode=oci-1-1` cosign writes the signature as an OCI referrer
//! instead: the same layer, in a manifest with `artifactType`
//! `application/vnd.dev.cosign.artifact.sig.v1+json` and a `subject`.
//!
//! [`CosignKey`] signs with ECDSA P-256 / SHA-256 (cosign's default key type) through ring;
//! [`verify_signature`] and [`verify_attestation`] check artifacts against a public key and
//! the digest the image has where they are read.

use anyhow::{Context as _, anyhow, bail, ensure};
use base64::Engine as _;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};

use crate::util::sha256_digest;

/// The simple-signing layer media type.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The DSSE envelope layer media type.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The annotation that holds a signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `artifactType` of a cosign signature stored as an OCI referrer.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The media type of an SPDX SBOM layer, as `cosign attach sbom` writes it.
pub const SPDX_JSON: &str = "text/spdx+json";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";

/// An ECDSA P-256 key pair.
pub struct CosignKey {
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for CosignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosignKey").finish_non_exhaustive()
    }
}

impl CosignKey {
    /// A fresh key pair.
    pub fn generate() -> anyhow::Result<Self> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| anyhow!("cannot generate a P-256 key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow!("cannot load the generated key"))?;
        Ok(Self { pair })
    }

    /// The public key: an uncompressed P-256 point.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// An ASN.1 DER ECDSA signature of `message` (SHA-256).
    pub fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let rng = ring::rand::SystemRandom::new();
        Ok(self
            .pair
            .sign(&rng, message)
            .map_err(|_| anyhow!("signing failed"))?
            .as_ref()
            .to_vec())
    }
}

/// A blob of an artifact.
#[derive(Debug, Clone)]
pub struct ArtifactBlob {
    /// Its media type.
    pub media_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// An artifact ready to push: its blobs first, then the manifest (under [`Self::tag`] for the
/// digest-tag form).
#[derive(Debug, Clone)]
pub struct CosignArtifact {
    /// The manifest's exact bytes.
    pub manifest: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
    /// The blobs it references (config and layers).
    pub blobs: Vec<ArtifactBlob>,
    /// The digest tag it goes under (`sha256-<hex>.sig`), or `None` for a referrer.
    pub tag: Option<String>,
}

/// The digest tag of `image_digest` (`sha256:<hex>`) with `suffix`: `sha256-<hex>.<suffix>`.
pub fn digest_tag(image_digest: &str, suffix: &str) -> String {
    format!("{}.{suffix}", image_digest.replacen(':', "-", 1))
}

/// The simple-signing payload cosign signs for `docker_reference` at `image_digest`.
pub fn simple_signing_payload(docker_reference: &str, image_digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": image_digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .expect("JSON")
}

/// The simple-signing payload of a signature and its layer descriptor (with the signature in
/// its annotation).
fn signed_payload(
    key: &CosignKey,
    docker_reference: &str,
    image_digest: &str,
) -> anyhow::Result<(Vec<u8>, serde_json::Value)> {
    let payload = simple_signing_payload(docker_reference, image_digest);
    let sig = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload)?);
    let layer = serde_json::json!({
        "mediaType": SIMPLE_SIGNING,
        "digest": sha256_digest(&payload),
        "size": payload.len(),
        "annotations": {SIGNATURE_ANNOTATION: sig},
    });
    Ok((payload, layer))
}

/// A cosign signature of `image_digest` (`sha256:<hex>`), stored under its `.sig` tag.
pub fn signature(
    key: &CosignKey,
    docker_reference: &str,
    image_digest: &str,
) -> anyhow::Result<CosignArtifact> {
    let (payload, layer) = signed_payload(key, docker_reference, image_digest)?;
    Ok(artifact(
        vec![(SIMPLE_SIGNING, payload, layer)],
        None,
        None,
        Some(digest_tag(image_digest, "sig")),
    ))
}

/// A cosign signature of the manifest `subject` (its media type, digest and size) stored as
/// an OCI referrer, as `cosign sign --registry-referrers-mode=oci-1-1` writes it.
pub fn signature_referrer(
    key: &CosignKey,
    docker_reference: &str,
    subject: (&str, &str, usize),
) -> anyhow::Result<CosignArtifact> {
    let (media_type, digest, size) = subject;
    let (payload, layer) = signed_payload(key, docker_reference, digest)?;
    Ok(artifact(
        vec![(SIMPLE_SIGNING, payload, layer)],
        Some(SIGNATURE_ARTIFACT_TYPE),
        Some(serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})),
        None,
    ))
}

/// The DSSE pre-authentication encoding of a payload.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A cosign attestation of `image_digest` with an in-toto statement of `predicate_type`,
/// stored under its `.att` tag.
pub fn attestation(
    key: &CosignKey,
    docker_reference: &str,
    image_digest: &str,
    predicate_type: &str,
) -> anyhow::Result<CosignArtifact> {
    let hex = image_digest
        .strip_prefix("sha256:")
        .context("a sha256 digest")?;
    let statement = serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [{"name": docker_reference, "digest": {"sha256": hex}}],
        "predicate": {"builder": {"id": "acr-import tests"}},
    }))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let sig = b64.encode(key.sign(&pae(IN_TOTO, &statement))?);
    let envelope = serde_json::to_vec(&serde_json::json!({
        "payloadType": IN_TOTO,
        "payload": b64.encode(&statement),
        "signatures": [{"keyid": "", "sig": sig}],
    }))?;
    let layer = serde_json::json!({
        "mediaType": DSSE_ENVELOPE,
        "digest": sha256_digest(&envelope),
        "size": envelope.len(),
        "annotations": {SIGNATURE_ANNOTATION: "", "predicateType": predicate_type},
    });
    Ok(artifact(
        vec![(DSSE_ENVELOPE, envelope, layer)],
        None,
        None,
        Some(digest_tag(image_digest, "att")),
    ))
}

/// An SPDX SBOM of `image_digest`, attached under its `.sbom` tag as `cosign attach sbom`
/// does.
pub fn sbom(image_digest: &str, package: &str) -> CosignArtifact {
    let doc = serde_json::to_vec(&serde_json::json!({
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image_digest,
        "packages": [{"name": package, "SPDXID": "SPDXRef-Package"}],
    }))
    .expect("JSON");
    let layer = serde_json::json!({
        "mediaType": SPDX_JSON,
        "digest": sha256_digest(&doc),
        "size": doc.len(),
    });
    artifact(
        vec![(SPDX_JSON, doc, layer)],
        None,
        None,
        Some(digest_tag(image_digest, "sbom")),
    )
}

/// Any artifact under a digest tag with `suffix` (regclient's `.meta`, say): one layer.
pub fn tagged_blob(
    image_digest: &str,
    suffix: &str,
    media_type: &str,
    bytes: &[u8],
) -> CosignArtifact {
    let layer = serde_json::json!({
        "mediaType": media_type,
        "digest": sha256_digest(bytes),
        "size": bytes.len(),
    });
    artifact(
        vec![(media_type, bytes.to_vec(), layer)],
        None,
        None,
        Some(digest_tag(image_digest, suffix)),
    )
}

/// An image manifest of `layers` with a cosign-style config whose `diff_ids` name them.
fn artifact(
    layers: Vec<(&str, Vec<u8>, serde_json::Value)>,
    artifact_type: Option<&str>,
    subject: Option<serde_json::Value>,
    tag: Option<String>,
) -> CosignArtifact {
    let diff_ids: Vec<String> = layers.iter().map(|(_, b, _)| sha256_digest(b)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }))
    .expect("JSON");
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(&config), "size": config.len()},
        "layers": layers.iter().map(|(_, _, d)| d.clone()).collect::<Vec<_>>(),
    });
    if let Some(t) = artifact_type {
        manifest["artifactType"] = t.into();
    }
    if let Some(s) = subject {
        manifest["subject"] = s;
    }
    let bytes = serde_json::to_vec(&manifest).expect("JSON");
    let mut blobs = vec![ArtifactBlob {
        media_type: OCI_CONFIG.to_owned(),
        bytes: config,
    }];
    blobs.extend(layers.into_iter().map(|(m, b, _)| ArtifactBlob {
        media_type: m.to_owned(),
        bytes: b,
    }));
    CosignArtifact {
        digest: sha256_digest(&bytes),
        manifest: bytes,
        media_type: OCI_MANIFEST.to_owned(),
        blobs,
        tag,
    }
}

/// The first layer descriptor of a manifest with `media_type`, and the manifest's `subject`.
fn layer_of(manifest: &[u8], media_type: &str) -> anyhow::Result<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_slice(manifest).context("manifest JSON")?;
    value["layers"]
        .as_array()
        .and_then(|l| l.iter().find(|d| d["mediaType"] == media_type))
        .cloned()
        .with_context(|| format!("no {media_type} layer"))
}

/// Checks a cosign signature: the simple-signing layer of `manifest` is `payload`, its
/// annotation verifies over `payload` with `public_key`, and the payload names
/// `expected_digest` — the image's digest where the signature is read.
pub fn verify_signature(
    public_key: &[u8],
    manifest: &[u8],
    payload: &[u8],
    expected_digest: &str,
) -> anyhow::Result<()> {
    let layer = layer_of(manifest, SIMPLE_SIGNING)?;
    ensure!(
        layer["digest"] == sha256_digest(payload),
        "the payload is not the signed layer"
    );
    let sig = layer["annotations"][SIGNATURE_ANNOTATION]
        .as_str()
        .context("no signature annotation")?;
    let sig = base64::engine::general_purpose::STANDARD.decode(sig)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
        .verify(payload, &sig)
        .map_err(|_| anyhow!("the signature does not verify with the public key"))?;
    let value: serde_json::Value = serde_json::from_slice(payload)?;
    let named = &value["critical"]["image"]["docker-manifest-digest"];
    if named != expected_digest {
        bail!("the signature names {named}, the image here is {expected_digest}");
    }
    Ok(())
}

/// Checks a cosign attestation: the DSSE envelope layer of `manifest` is `envelope`, its
/// signature verifies over the pre-authentication encoding with `public_key`, and the
/// statement's subject is `expected_digest`.
pub fn verify_attestation(
    public_key: &[u8],
    manifest: &[u8],
    envelope: &[u8],
    expected_digest: &str,
) -> anyhow::Result<()> {
    let layer = layer_of(manifest, DSSE_ENVELOPE)?;
    ensure!(
        layer["digest"] == sha256_digest(envelope),
        "the envelope is not the attested layer"
    );
    let value: serde_json::Value = serde_json::from_slice(envelope)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload_type = value["payloadType"].as_str().context("no payloadType")?;
    let statement = b64.decode(value["payload"].as_str().context("no payload")?)?;
    let sig = b64.decode(
        value["signatures"][0]["sig"]
            .as_str()
            .context("no signature")?,
    )?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
        .verify(&pae(payload_type, &statement), &sig)
        .map_err(|_| anyhow!("the attestation does not verify with the public key"))?;
    let statement: serde_json::Value = serde_json::from_slice(&statement)?;
    let hex = &statement["subject"][0]["digest"]["sha256"];
    if format!("sha256:{}", hex.as_str().unwrap_or_default()) != expected_digest {
        bail!("the attestation names {hex}, the image here is {expected_digest}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_bind_the_digest() {
        let key = CosignKey::generate().unwrap();
        let digest = sha256_digest(b"image");
        let sig = signature(&key, "reg/app", &digest).unwrap();
        let payload = &sig.blobs[1].bytes;
        verify_signature(&key.public_key(), &sig.manifest, payload, &digest).unwrap();
        let other = sha256_digest(b"other");
        assert!(verify_signature(&key.public_key(), &sig.manifest, payload, &other).is_err());
        let stranger = CosignKey::generate().unwrap();
        assert!(verify_signature(&stranger.public_key(), &sig.manifest, payload, &digest).is_err());
        assert_eq!(sig.tag.as_deref(), Some(&*digest_tag(&digest, "sig")));
    }

    #[test]
    fn attestations_verify_and_bind_the_digest() {
        let key = CosignKey::generate().unwrap();
        let digest = sha256_digest(b"image");
        let att = attestation(&key, "reg/app", &digest, "https://slsa.dev/provenance/v1").unwrap();
        let envelope = &att.blobs[1].bytes;
        verify_attestation(&key.public_key(), &att.manifest, envelope, &digest).unwrap();
        let other = sha256_digest(b"other");
        assert!(verify_attestation(&key.public_key(), &att.manifest, envelope, &other).is_err());
    }
}
