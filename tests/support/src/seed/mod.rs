//! Content seeded into real registries: every kind of manifest the copy engine must handle
//! (OCI and Docker images, indexes and lists, attestations, artifacts with a subject, referrers
//! in the tag-schema index, Helm charts, foreign layers), and images signed with cosign
//! ([`cosign_signed`]; [`crate::cosign`] checks the signatures where they are read back).
//!
//! Seeding goes through [`Seeder`], a small client of its own (plain HTTP/1.1 to a loopback
//! registry: blobs by `POST` then `PUT ?digest=`, manifests by `PUT`), never through the code
//! under test, so a defect in the project's client cannot seed what it later reads back.
//!
//! One copy for the transfer tests, the conformance suite and the demo. Everything is
//! deterministic (seeded bytes, fixed JSON), so a digest is the same on every run; every
//! function returns an error instead of panicking, so a suite can report a failed seeding.
//!
//! ```no_run
//! use acr_import_testsupport::{Registry, seed};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let server = Registry::start().await?;
//! let reg = seed::Seeder::new(&server.host())?;
//! let index = seed::multi_arch(&reg, "lib/app", "1.0", 7).await?;
//! let signature = seed::artifact(&reg, "lib/app", "application/vnd.example.sig", 8, Some(&index)).await?;
//! seed::attach(&reg, "lib/app", &index, &[(&signature, "application/vnd.example.sig")]).await?;
//! # Ok(())
//! # }
//! ```

mod client;

pub use client::Seeder;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::cosign::{self, CosignArtifact, CosignKey};
use crate::util::sha256_digest;

/// A Docker layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// A Docker foreign layer (not held by the registry).
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// An OCI layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// An OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The OCI empty descriptor's media type (the `{}` config of an artifact).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// A Docker image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// `len` deterministic pseudo-random (incompressible) bytes.
pub fn data(seed: u64, len: usize) -> Bytes {
    let mut rng = crate::SplitMix64::new(seed);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// A blob to push and reference.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Its bytes.
    pub bytes: Bytes,
    /// The media type its descriptors carry.
    pub media_type: &'static str,
}

impl Blob {
    /// An OCI layer of `len` seeded bytes.
    pub fn layer(seed: u64, len: usize) -> Self {
        Self {
            bytes: data(seed, len),
            media_type: OCI_LAYER,
        }
    }

    /// Its digest (`sha256:<hex>`).
    pub fn digest(&self) -> String {
        sha256_digest(&self.bytes)
    }

    /// Its descriptor (`mediaType`, `digest`, `size`).
    pub fn descriptor(&self) -> Value {
        descriptor(self.media_type, &self.digest(), self.bytes.len())
    }
}

/// A manifest as pushed: its exact bytes, their digest and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The exact bytes.
    pub bytes: Bytes,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    /// The media type it is pushed with.
    pub media_type: String,
}

impl Manifest {
    /// Its descriptor (`mediaType`, `digest`, `size`).
    pub fn descriptor(&self) -> Value {
        descriptor(&self.media_type, &self.digest, self.bytes.len())
    }

    /// The tag-schema tag that lists its referrers: `<alg>-<hex>`.
    pub fn referrers_tag(&self) -> String {
        self.digest.replacen(':', "-", 1)
    }
}

fn descriptor(media_type: &str, digest: &str, size: usize) -> Value {
    json!({"mediaType": media_type, "digest": digest, "size": size})
}

/// A manifest of `media_type` whose bytes are `value`, pretty-printed.
pub fn manifest_of(value: &Value, media_type: &str) -> anyhow::Result<Manifest> {
    let bytes = Bytes::from(serde_json::to_vec_pretty(value)?);
    Ok(Manifest {
        digest: sha256_digest(&bytes),
        bytes,
        media_type: media_type.to_owned(),
    })
}

/// Pushes each blob the repository does not hold yet.
pub async fn push_blobs(reg: &Seeder, repo: &str, blobs: &[&Blob]) -> anyhow::Result<()> {
    for b in blobs {
        if !reg.has_blob(repo, &b.digest()).await? {
            reg.push_blob(repo, b.bytes.clone()).await?;
        }
    }
    Ok(())
}

/// Pushes a manifest under `reference`, or by its digest.
pub async fn push_manifest(
    reg: &Seeder,
    repo: &str,
    reference: Option<&str>,
    m: &Manifest,
) -> anyhow::Result<()> {
    reg.put_manifest(repo, reference.unwrap_or(&m.digest), m)
        .await
}

/// The config blob of an image for `os`/`arch`.
fn config_blob(os: &str, arch: &str, docker: bool) -> Blob {
    Blob {
        bytes: Bytes::from(format!(
            r#"{{"architecture":"{arch}","os":"{os}","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        )),
        media_type: if docker { DOCKER_CONFIG } else { OCI_CONFIG },
    }
}

/// An image manifest (OCI, or Docker v2 with `docker`) for `os`/`arch`: config and layers
/// pushed, the manifest pushed by digest.
pub async fn image(
    reg: &Seeder,
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
        DOCKER_MANIFEST
    } else {
        OCI_MANIFEST
    };
    let value = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.descriptor(),
        "layers": layers.iter().map(|l| l.descriptor()).collect::<Vec<_>>(),
    });
    let m = manifest_of(&value, media_type)?;
    push_manifest(reg, repo, None, &m).await?;
    Ok(m)
}

/// An entry of an index: the manifest, its platform (`os/architecture[/variant]`), its
/// annotations.
pub type Child<'a> = (&'a Manifest, Option<&'a str>, Option<Value>);

/// The `platform` object of `os/architecture[/variant]`.
fn platform(text: &str) -> Value {
    let mut parts = text.splitn(3, '/');
    let mut p = json!({
        "os": parts.next().unwrap_or_default(),
        "architecture": parts.next().unwrap_or_default(),
    });
    if let Some(variant) = parts.next() {
        p["variant"] = json!(variant);
    }
    p
}

/// An index (or Docker list with `docker`) of `children`, pushed under `tag` (or by digest).
pub async fn index(
    reg: &Seeder,
    repo: &str,
    tag: Option<&str>,
    children: &[Child<'_>],
    docker: bool,
) -> anyhow::Result<Manifest> {
    let media_type = if docker { DOCKER_LIST } else { OCI_INDEX };
    let entries: Vec<Value> = children
        .iter()
        .map(|(m, p, annotations)| {
            let mut e = m.descriptor();
            if let Some(p) = p {
                e["platform"] = platform(p);
            }
            if let Some(a) = annotations {
                e["annotations"] = a.clone();
            }
            e
        })
        .collect();
    let value = json!({"schemaVersion": 2, "mediaType": media_type, "manifests": entries});
    let m = manifest_of(&value, media_type)?;
    push_manifest(reg, repo, tag, &m).await?;
    Ok(m)
}

/// A 3-platform OCI index (`linux/amd64`, `linux/arm64`, `linux/s390x`) sharing a base layer,
/// with a BuildKit-style attestation manifest, pushed under `tag`.
pub async fn multi_arch(
    reg: &Seeder,
    repo: &str,
    tag: &str,
    seed: u64,
) -> anyhow::Result<Manifest> {
    let base = Blob::layer(seed, 40_000);
    let mut manifests = Vec::new();
    for (i, arch) in ["amd64", "arm64", "s390x"].iter().enumerate() {
        let own = Blob::layer(seed * 100 + i as u64, 10_000 + i * 1000);
        let m = image(reg, repo, "linux", arch, &[&base, &own], false).await?;
        manifests.push((m, format!("linux/{arch}")));
    }
    let attestation = artifact(reg, repo, "application/vnd.in-toto+json", seed + 7, None).await?;
    let mut children: Vec<Child<'_>> = manifests
        .iter()
        .map(|(m, p)| (m, Some(p.as_str()), None))
        .collect();
    let annotations = json!({"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": manifests[0].0.digest});
    children.push((&attestation, Some("unknown/unknown"), Some(annotations)));
    index(reg, repo, Some(tag), &children, false).await
}

/// The example payload of an artifact: 3000 seeded bytes.
pub fn example_payload(seed: u64) -> Blob {
    Blob {
        bytes: data(seed, 3000),
        media_type: "application/vnd.example.payload",
    }
}

/// An OCI artifact of `artifact_type` with an empty config (`{}`) and a 3000-byte example
/// payload, optionally with a `subject`, pushed by digest.
pub async fn artifact(
    reg: &Seeder,
    repo: &str,
    artifact_type: &str,
    seed: u64,
    subject: Option<&Manifest>,
) -> anyhow::Result<Manifest> {
    artifact_with(reg, repo, artifact_type, &example_payload(seed), subject).await
}

/// The empty config (`{}`) of an artifact.
pub fn empty_config() -> Blob {
    Blob {
        bytes: Bytes::from_static(b"{}"),
        media_type: OCI_EMPTY,
    }
}

/// The manifest of an OCI artifact of `artifact_type`: [`empty_config`] and `payload` as its one
/// layer, and `subject` (a descriptor) if given. Nothing is pushed.
pub fn artifact_manifest(
    artifact_type: &str,
    payload: &Blob,
    subject: Option<Value>,
) -> anyhow::Result<Manifest> {
    let mut value = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty_config().descriptor(),
        "layers": [payload.descriptor()],
    });
    if let Some(s) = subject {
        value["subject"] = s;
    }
    manifest_of(&value, OCI_MANIFEST)
}

/// An OCI artifact of `artifact_type` with an empty config (`{}`) and `payload` as its one
/// layer, optionally with a `subject`, pushed by digest.
pub async fn artifact_with(
    reg: &Seeder,
    repo: &str,
    artifact_type: &str,
    payload: &Blob,
    subject: Option<&Manifest>,
) -> anyhow::Result<Manifest> {
    push_blobs(reg, repo, &[&empty_config(), payload]).await?;
    let m = artifact_manifest(artifact_type, payload, subject.map(Manifest::descriptor))?;
    push_manifest(reg, repo, None, &m).await?;
    Ok(m)
}

/// The tag-schema index listing `referrers` (each a descriptor and its artifact type), as a
/// registry without the referrers API keeps it under `<alg>-<hex>`. Nothing is pushed.
pub fn referrers_index(
    referrers: impl IntoIterator<Item = (Value, String)>,
) -> anyhow::Result<Manifest> {
    let entries: Vec<Value> = referrers
        .into_iter()
        .map(|(mut d, artifact_type)| {
            d["artifactType"] = Value::String(artifact_type);
            d
        })
        .collect();
    let value = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    manifest_of(&value, OCI_INDEX)
}

/// Records `referrers` (each with its artifact type) of `subject` the way a registry
/// without the referrers API expects: in the `<alg>-<hex>` tag-schema index, returned.
pub async fn attach(
    reg: &Seeder,
    repo: &str,
    subject: &Manifest,
    referrers: &[(&Manifest, &str)],
) -> anyhow::Result<Manifest> {
    let m = referrers_index(
        referrers
            .iter()
            .map(|(m, t)| (m.descriptor(), (*t).to_owned())),
    )?;
    push_manifest(reg, repo, Some(&subject.referrers_tag()), &m).await?;
    Ok(m)
}

/// A Helm 3 chart named `name` as `helm push` stores it, pushed under `tag`.
pub async fn helm_chart(
    reg: &Seeder,
    repo: &str,
    tag: &str,
    name: &str,
) -> anyhow::Result<Manifest> {
    let config = Blob {
        bytes: Bytes::from(format!(
            r#"{{"name":"{name}","version":"0.1.0","apiVersion":"v2"}}"#
        )),
        media_type: "application/vnd.cncf.helm.config.v1+json",
    };
    let chart = Blob {
        bytes: data(42, 5000),
        media_type: "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    };
    push_blobs(reg, repo, &[&config, &chart]).await?;
    let value = json!({"schemaVersion": 2, "config": config.descriptor(), "layers": [chart.descriptor()], "annotations": {"org.opencontainers.image.title": name}});
    let m = manifest_of(&value, OCI_MANIFEST)?;
    push_manifest(reg, repo, Some(tag), &m).await?;
    Ok(m)
}

/// A Windows-style Docker image whose first layer is foreign (`urls`, not in the registry),
/// pushed under `tag`. Returns the manifest and the foreign layer's digest.
pub async fn foreign_layers(
    reg: &Seeder,
    repo: &str,
    tag: &str,
) -> anyhow::Result<(Manifest, String)> {
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
    fd["urls"] = json!(["https://mcr.microsoft.com/v2/windows/blobs/x"]);
    let value = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": config.descriptor(), "layers": [fd, normal.descriptor()]});
    let m = manifest_of(&value, DOCKER_MANIFEST)?;
    push_manifest(reg, repo, Some(tag), &m).await?;
    Ok((m, foreign.digest()))
}

/// Pushes a cosign-format artifact's blobs, then its manifest under its digest tag (or by
/// digest, for a referrer). Returns the manifest.
pub async fn push_artifact(
    reg: &Seeder,
    repo: &str,
    artifact: &CosignArtifact,
) -> anyhow::Result<Manifest> {
    for b in &artifact.blobs {
        let blob = Bytes::from(b.bytes.clone());
        if !reg.has_blob(repo, &sha256_digest(&blob)).await? {
            reg.push_blob(repo, blob).await?;
        }
    }
    let manifest = Manifest {
        bytes: Bytes::from(artifact.manifest.clone()),
        media_type: artifact.media_type.clone(),
        digest: sha256_digest(&artifact.manifest),
    };
    let reference = artifact
        .tag
        .clone()
        .unwrap_or_else(|| manifest.digest.clone());
    reg.put_manifest(repo, &reference, &manifest).await?;
    Ok(manifest)
}

/// A multi-arch image ([`multi_arch`]) signed the ways real publishers sign: cosign's `.sig`,
/// `.att` and `.sbom` digest tags (and a regclient-style `.meta`) on the index, a `.sig` on
/// each platform, and a cosign signature stored as an OCI referrer of the index (recorded in
/// its fallback index).
#[derive(Debug, Clone)]
pub struct Signed {
    /// The index, tagged.
    pub top: Manifest,
    /// The manifests with a `.sig` (`sha256:<hex>`): the index, then each platform.
    pub signed: Vec<String>,
    /// Every digest tag pushed.
    pub digest_tags: Vec<String>,
    /// The referrer signature.
    pub referrer: Manifest,
}

/// The cosign artifacts of a signed image ([`Signed`]), made once and pushable to any number
/// of registries as the same bytes (ECDSA signatures differ each time they are made).
#[derive(Debug, Clone)]
pub struct Signatures {
    /// The digest-tagged artifacts: `.sig`, `.att`, `.sbom` and `.meta` of the index, then a
    /// `.sig` for each platform.
    pub tagged: Vec<CosignArtifact>,
    /// The signature of the index stored as an OCI referrer.
    pub referrer: CosignArtifact,
    /// The manifests with a `.sig` (`sha256:<hex>`): the index, then each platform.
    pub signed: Vec<String>,
}

/// Signs the index `top` (and each of its Linux platforms) with `key`, naming the image
/// `name` in the signed payloads.
pub fn sign_image(key: &CosignKey, name: &str, top: &Manifest) -> anyhow::Result<Signatures> {
    let d = top.digest.as_str();
    let mut tagged = vec![
        cosign::signature(key, name, d)?,
        cosign::attestation(key, name, d, "https://slsa.dev/provenance/v1")?,
        cosign::sbom(d, name),
        cosign::tagged_blob(d, "meta", "application/json", br#"{"built":"today"}"#),
    ];
    let mut signed = vec![top.digest.clone()];
    let index: Value = serde_json::from_slice(&top.bytes)?;
    for child in index["manifests"].as_array().into_iter().flatten() {
        if child["platform"]["os"] == "linux" {
            let digest = child["digest"].as_str().unwrap_or_default();
            tagged.push(cosign::signature(key, name, digest)?);
            signed.push(digest.to_owned());
        }
    }
    let subject = (top.media_type.as_str(), d, top.bytes.len());
    let referrer = cosign::signature_referrer(key, name, subject)?;
    Ok(Signatures {
        tagged,
        referrer,
        signed,
    })
}

/// Pushes the signatures of `top` (already in `repo`) and records the referrer in the
/// index's fallback index.
pub async fn push_signatures(
    reg: &Seeder,
    repo: &str,
    top: Manifest,
    signatures: &Signatures,
) -> anyhow::Result<Signed> {
    let mut digest_tags = Vec::new();
    for a in &signatures.tagged {
        push_artifact(reg, repo, a).await?;
        digest_tags.extend(a.tag.clone());
    }
    let referrer = push_artifact(reg, repo, &signatures.referrer).await?;
    attach(
        reg,
        repo,
        &top,
        &[(&referrer, cosign::SIGNATURE_ARTIFACT_TYPE)],
    )
    .await?;
    Ok(Signed {
        top,
        signed: signatures.signed.clone(),
        digest_tags,
        referrer,
    })
}

/// Seeds a [`Signed`] image under `repo:tag`, signed with `key`.
pub async fn cosign_signed(
    reg: &Seeder,
    repo: &str,
    tag: &str,
    seed: u64,
    key: &CosignKey,
) -> anyhow::Result<Signed> {
    let top = multi_arch(reg, repo, tag, seed).await?;
    let signatures = sign_image(key, &format!("{}/{repo}", reg.host()), &top)?;
    push_signatures(reg, repo, top, &signatures).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_and_seeded_bytes() {
        assert_eq!(
            platform("linux/arm/v7"),
            json!({"os": "linux", "architecture": "arm", "variant": "v7"})
        );
        assert_eq!(
            platform("linux/amd64"),
            json!({"os": "linux", "architecture": "amd64"})
        );
        assert_eq!(data(3, 100), data(3, 100));
        assert_ne!(data(3, 100), data(4, 100));
        assert_eq!(data(3, 13).len(), 13);
    }
}
