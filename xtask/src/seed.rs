//! Generated content for the demo: a 3-platform image, a Helm chart, a signed artifact.

use acr_import_reference::{Digest, DigestAlgorithm};
use acr_import_transfer::{Manifest, Registry, digest_of, manifest};
use bytes::Bytes;
use serde_json::{Value, json};

fn sha(b: &[u8]) -> Digest {
    digest_of(DigestAlgorithm::Sha256, b)
}

/// Deterministic incompressible bytes.
pub fn noise(seed: u64, len: usize) -> Bytes {
    Bytes::from(acr_import_testsupport::noise(seed, len))
}

async fn blob(
    reg: &Registry,
    repo: &str,
    bytes: &Bytes,
    media_type: &str,
) -> anyhow::Result<Value> {
    let d = sha(bytes);
    if reg.head_blob(repo, &d).await?.is_none() {
        reg.push_blob(repo, &d, bytes.clone(), u64::MAX).await?;
    }
    Ok(json!({"mediaType": media_type, "digest": d.to_string(), "size": bytes.len()}))
}

async fn put(
    reg: &Registry,
    repo: &str,
    reference: Option<&str>,
    value: &Value,
    media_type: &str,
) -> anyhow::Result<Manifest> {
    let bytes = Bytes::from(serde_json::to_vec_pretty(value)?);
    let m = Manifest {
        digest: sha(&bytes),
        bytes,
        media_type: media_type.to_owned(),
    };
    reg.put_manifest(repo, reference.unwrap_or(m.digest.as_str()), &m)
        .await?;
    Ok(m)
}

/// A 3-platform OCI index (`linux/amd64`, `linux/arm64`, `linux/arm/v7`) sharing a base layer.
pub async fn multi_arch(reg: &Registry, repo: &str, tag: &str) -> anyhow::Result<Manifest> {
    let base = blob(
        reg,
        repo,
        &noise(1, 2 << 20),
        "application/vnd.oci.image.layer.v1.tar+gzip",
    )
    .await?;
    let mut entries = Vec::new();
    for (i, (arch, variant)) in [("amd64", None), ("arm64", None), ("arm", Some("v7"))]
        .iter()
        .enumerate()
    {
        let own = blob(
            reg,
            repo,
            &noise(10 + i as u64, 512 << 10),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
        .await?;
        let config = Bytes::from(format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        ));
        let config = blob(
            reg,
            repo,
            &config,
            "application/vnd.oci.image.config.v1+json",
        )
        .await?;
        let m = put(reg, repo, None, &json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST, "config": config, "layers": [base.clone(), own]}), manifest::OCI_MANIFEST).await?;
        let mut platform = json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        entries.push(json!({"mediaType": manifest::OCI_MANIFEST, "digest": m.digest.to_string(), "size": m.bytes.len(), "platform": platform}));
    }
    put(
        reg,
        repo,
        Some(tag),
        &json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": entries}),
        manifest::OCI_INDEX,
    )
    .await
}

/// A Helm 3 chart as `helm push` stores it.
pub async fn helm_chart(reg: &Registry, repo: &str, tag: &str) -> anyhow::Result<Manifest> {
    let config = blob(
        reg,
        repo,
        &Bytes::from_static(br#"{"name":"hello","version":"0.1.0","apiVersion":"v2"}"#),
        "application/vnd.cncf.helm.config.v1+json",
    )
    .await?;
    let chart = blob(
        reg,
        repo,
        &noise(20, 4096),
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    )
    .await?;
    put(
        reg,
        repo,
        Some(tag),
        &json!({"schemaVersion": 2, "config": config, "layers": [chart]}),
        manifest::OCI_MANIFEST,
    )
    .await
}

/// A signature artifact attached to `subject` (through the referrers tag schema, which is
/// what a registry without the referrers API uses).
pub async fn sign(reg: &Registry, repo: &str, subject: &Manifest) -> anyhow::Result<Manifest> {
    let empty = blob(reg, repo, &Bytes::from_static(b"{}"), manifest::OCI_EMPTY).await?;
    let payload = blob(
        reg,
        repo,
        &noise(30, 700),
        "application/vnd.dev.cosign.simplesigning.v1+json",
    )
    .await?;
    let artifact_type = "application/vnd.dev.cosign.artifact.sig.v1+json";
    let sig = put(
        reg,
        repo,
        None,
        &json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST, "artifactType": artifact_type, "config": empty, "layers": [payload],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.bytes.len()}}),
        manifest::OCI_MANIFEST,
    )
    .await?;
    let index = json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": [
        {"mediaType": manifest::OCI_MANIFEST, "digest": sig.digest.to_string(), "size": sig.bytes.len(), "artifactType": artifact_type}]});
    put(
        reg,
        repo,
        Some(subject.digest.referrers_tag().as_str()),
        &index,
        manifest::OCI_INDEX,
    )
    .await?;
    Ok(sig)
}
