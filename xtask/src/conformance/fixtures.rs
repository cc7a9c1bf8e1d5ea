//! Content seeded into registries: every manifest kind the copy engine must handle.
//!
//! Adapted from `crates/transfer/tests/it/fixtures.rs` (test code, not reachable from here):
//! the same shapes, failing with errors instead of panicking. Everything is deterministic
//! (seeded bytes), so digests are the same on every run.

use acr_import_reference::{Digest, DigestAlgorithm};
use acr_import_transfer::{Manifest, Registry, digest_of, manifest};
use bytes::Bytes;

pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Deterministic pseudo-random bytes.
pub fn data(seed: u64, len: usize) -> Bytes {
    let mut rng = acr_import_testsupport::SplitMix64::new(seed);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// The sha256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    digest_of(DigestAlgorithm::Sha256, bytes)
}

/// A blob to push and reference.
pub struct Blob {
    pub bytes: Bytes,
    pub media_type: &'static str,
}

impl Blob {
    pub fn layer(seed: u64, len: usize) -> Self {
        Self {
            bytes: data(seed, len),
            media_type: OCI_LAYER,
        }
    }

    pub fn digest(&self) -> Digest {
        sha256(&self.bytes)
    }

    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({"mediaType": self.media_type, "digest": self.digest().to_string(), "size": self.bytes.len()})
    }
}

pub fn manifest_of(value: &serde_json::Value, media_type: &str) -> anyhow::Result<Manifest> {
    let bytes = Bytes::from(serde_json::to_vec_pretty(value)?);
    Ok(Manifest {
        digest: sha256(&bytes),
        bytes,
        media_type: media_type.to_owned(),
    })
}

pub fn descriptor_of(m: &Manifest) -> serde_json::Value {
    serde_json::json!({"mediaType": m.media_type, "digest": m.digest.to_string(), "size": m.bytes.len()})
}

pub async fn push_blobs(reg: &Registry, repo: &str, blobs: &[&Blob]) -> anyhow::Result<()> {
    for b in blobs {
        let d = b.digest();
        if reg.head_blob(repo, &d).await?.is_none() {
            reg.push_blob(repo, &d, b.bytes.clone(), u64::MAX).await?;
        }
    }
    Ok(())
}

pub async fn push_manifest(
    reg: &Registry,
    repo: &str,
    reference: Option<&str>,
    m: &Manifest,
) -> anyhow::Result<()> {
    reg.put_manifest(repo, reference.unwrap_or(m.digest.as_str()), m)
        .await?;
    Ok(())
}

fn config_blob(os: &str, arch: &str, docker: bool) -> Blob {
    Blob {
        bytes: Bytes::from(format!(
            r#"{{"architecture":"{arch}","os":"{os}","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        )),
        media_type: if docker { DOCKER_CONFIG } else { OCI_CONFIG },
    }
}

/// An image manifest (OCI or Docker v2) for a platform, its config and layers pushed, the
/// manifest pushed by digest.
pub async fn image(
    reg: &Registry,
    repo: &str,
    os: &str,
    arch: &str,
    layers: &[&Blob],
    docker: bool,
) -> anyhow::Result<Manifest> {
    let config = config_blob(os, arch, docker);
    let mut all: Vec<&Blob> = vec![&config];
    all.extend(layers.iter().copied());
    push_blobs(reg, repo, &all).await?;
    let media_type = if docker {
        manifest::DOCKER_MANIFEST
    } else {
        manifest::OCI_MANIFEST
    };
    let value = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.descriptor(),
        "layers": layers.iter().map(|l| l.descriptor()).collect::<Vec<_>>(),
    });
    let m = manifest_of(&value, media_type)?;
    push_manifest(reg, repo, None, &m).await?;
    Ok(m)
}

/// A child of an index: the manifest, its platform, its annotations.
pub type Child<'a> = (
    &'a Manifest,
    Option<(&'a str, &'a str)>,
    Option<serde_json::Value>,
);

/// An index (or Docker list) of `children`, pushed under `tag` (or by digest).
pub async fn index(
    reg: &Registry,
    repo: &str,
    tag: Option<&str>,
    children: &[Child<'_>],
    docker: bool,
) -> anyhow::Result<Manifest> {
    let media_type = if docker {
        manifest::DOCKER_LIST
    } else {
        manifest::OCI_INDEX
    };
    let entries: Vec<serde_json::Value> = children
        .iter()
        .map(|(m, platform, annotations)| {
            let mut e = descriptor_of(m);
            if let Some((os, arch)) = platform {
                e["platform"] = serde_json::json!({"os": os, "architecture": arch});
            }
            if let Some(a) = annotations {
                e["annotations"] = a.clone();
            }
            e
        })
        .collect();
    let value =
        serde_json::json!({"schemaVersion": 2, "mediaType": media_type, "manifests": entries});
    let m = manifest_of(&value, media_type)?;
    push_manifest(reg, repo, tag, &m).await?;
    Ok(m)
}

/// A 3-platform OCI index with a shared base layer and a BuildKit-style attestation manifest.
pub async fn multi_arch(
    reg: &Registry,
    repo: &str,
    tag: &str,
    seed: u64,
) -> anyhow::Result<Manifest> {
    let base = Blob::layer(seed, 40_000);
    let mut manifests = Vec::new();
    for (i, arch) in ["amd64", "arm64", "s390x"].iter().enumerate() {
        let own = Blob::layer(seed * 100 + i as u64, 10_000 + i * 1000);
        manifests.push((
            image(reg, repo, "linux", arch, &[&base, &own], false).await?,
            *arch,
        ));
    }
    let attestation = artifact(reg, repo, "application/vnd.in-toto+json", seed + 7, None).await?;
    let mut children: Vec<Child<'_>> = Vec::new();
    for (m, arch) in &manifests {
        children.push((m, Some(("linux", *arch)), None));
    }
    let annotations = serde_json::json!({"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": manifests[0].0.digest.to_string()});
    children.push((
        &attestation,
        Some(("unknown", "unknown")),
        Some(annotations),
    ));
    index(reg, repo, Some(tag), &children, false).await
}

/// An OCI artifact with an empty config (`{}`), optionally with a subject, pushed by digest.
pub async fn artifact(
    reg: &Registry,
    repo: &str,
    artifact_type: &str,
    seed: u64,
    subject: Option<&Manifest>,
) -> anyhow::Result<Manifest> {
    let empty = Blob {
        bytes: Bytes::from_static(b"{}"),
        media_type: manifest::OCI_EMPTY,
    };
    let payload = Blob {
        bytes: data(seed, 3000),
        media_type: "application/vnd.example.payload",
    };
    push_blobs(reg, repo, &[&empty, &payload]).await?;
    let mut value = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty.descriptor(),
        "layers": [payload.descriptor()],
    });
    if let Some(s) = subject {
        value["subject"] = descriptor_of(s);
    }
    let m = manifest_of(&value, manifest::OCI_MANIFEST)?;
    push_manifest(reg, repo, None, &m).await?;
    Ok(m)
}

/// Records `referrers` of `subject` the way a registry without the referrers API expects:
/// in the `<alg>-<hex>` fallback index.
pub async fn attach(
    reg: &Registry,
    repo: &str,
    subject: &Manifest,
    referrers: &[(&Manifest, &str)],
) -> anyhow::Result<Manifest> {
    let entries: Vec<serde_json::Value> = referrers
        .iter()
        .map(|(m, t)| {
            let mut d = descriptor_of(m);
            d["artifactType"] = serde_json::Value::String((*t).to_owned());
            d
        })
        .collect();
    let value = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": entries});
    let m = manifest_of(&value, manifest::OCI_INDEX)?;
    push_manifest(reg, repo, Some(subject.digest.referrers_tag().as_str()), &m).await?;
    Ok(m)
}

/// A Helm 3 chart as `helm push` stores it.
pub async fn helm_chart(reg: &Registry, repo: &str, tag: &str) -> anyhow::Result<Manifest> {
    let config = Blob {
        bytes: Bytes::from_static(br#"{"name":"demo","version":"0.1.0","apiVersion":"v2"}"#),
        media_type: "application/vnd.cncf.helm.config.v1+json",
    };
    let chart = Blob {
        bytes: data(42, 5000),
        media_type: "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    };
    push_blobs(reg, repo, &[&config, &chart]).await?;
    let value = serde_json::json!({"schemaVersion": 2, "config": config.descriptor(), "layers": [chart.descriptor()], "annotations": {"org.opencontainers.image.title": "demo"}});
    let m = manifest_of(&value, manifest::OCI_MANIFEST)?;
    push_manifest(reg, repo, Some(tag), &m).await?;
    Ok(m)
}

/// A Windows-style Docker image whose first layer is foreign (`urls`, not in the registry).
/// Returns the manifest and the foreign layer's digest.
pub async fn foreign_layers(
    reg: &Registry,
    repo: &str,
    tag: &str,
) -> anyhow::Result<(Manifest, Digest)> {
    let foreign = Blob {
        bytes: data(60, 5000),
        media_type: DOCKER_FOREIGN_LAYER,
    };
    let normal = Blob {
        bytes: data(61, 5000),
        media_type: DOCKER_LAYER,
    };
    let config = Blob {
        bytes: Bytes::from_static(br#"{"os":"windows","architecture":"amd64"}"#),
        media_type: DOCKER_CONFIG,
    };
    push_blobs(reg, repo, &[&normal, &config]).await?;
    let mut fd = foreign.descriptor();
    fd["urls"] = serde_json::json!(["https://mcr.microsoft.com/v2/windows/blobs/x"]);
    let value = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::DOCKER_MANIFEST, "config": config.descriptor(), "layers": [fd, normal.descriptor()]});
    let m = manifest_of(&value, manifest::DOCKER_MANIFEST)?;
    push_manifest(reg, repo, Some(tag), &m).await?;
    Ok((m, foreign.digest()))
}

/// A multi-arch image signed the ways real publishers sign: cosign's `.sig`, `.att` and
/// `.sbom` digest tags (and a regclient-style `.meta`) on the index, a `.sig` on each
/// platform, and a cosign signature stored as an OCI referrer of the index.
pub struct Signed {
    /// The index, tagged `tag`.
    pub top: Manifest,
    /// The manifests with a `.sig` (the index and each platform).
    pub signed: Vec<Digest>,
    /// Every digest tag pushed.
    pub digest_tags: Vec<String>,
    /// The referrer signature.
    pub referrer: Manifest,
}

pub async fn cosign_signed(
    reg: &Registry,
    repo: &str,
    tag: &str,
    seed: u64,
    key: &acr_import_testsupport::cosign::CosignKey,
) -> anyhow::Result<Signed> {
    use acr_import_tests::signed::push_artifact;
    use acr_import_testsupport::cosign;
    let top = multi_arch(reg, repo, tag, seed).await?;
    let name = format!("{}/{repo}", reg.host());
    let d = top.digest.as_str();
    let mut artifacts = vec![
        cosign::signature(key, &name, d)?,
        cosign::attestation(key, &name, d, "https://slsa.dev/provenance/v1")?,
        cosign::sbom(d, repo),
        cosign::tagged_blob(d, "meta", "application/json", br#"{"built":"today"}"#),
    ];
    let mut signed = vec![top.digest.clone()];
    for child in top.parse().map_err(anyhow::Error::msg)?.manifests {
        if child.platform.as_ref().is_some_and(|p| p.os == "linux") {
            artifacts.push(cosign::signature(key, &name, child.digest.as_str())?);
            signed.push(child.digest);
        }
    }
    let mut digest_tags = Vec::new();
    for a in &artifacts {
        push_artifact(reg, repo, a).await?;
        digest_tags.extend(a.tag.clone());
    }
    let subject = (top.media_type.as_str(), d, top.bytes.len());
    let referrer = cosign::signature_referrer(key, &name, subject)?;
    let referrer = push_artifact(reg, repo, &referrer).await?;
    attach(
        reg,
        repo,
        &top,
        &[(&referrer, cosign::SIGNATURE_ARTIFACT_TYPE)],
    )
    .await?;
    Ok(Signed {
        top,
        signed,
        digest_tags,
        referrer,
    })
}
