//! Content seeded into real registries: every manifest kind the copy engine must handle.

use acr_import_transfer::{Manifest, Registry, manifest};
use bytes::Bytes;

use crate::{data, sha256};

pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

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

    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({"mediaType": self.media_type, "digest": sha256(&self.bytes).to_string(), "size": self.bytes.len()})
    }
}

pub fn manifest_of(value: &serde_json::Value, media_type: &str) -> Manifest {
    let bytes = Bytes::from(serde_json::to_vec_pretty(value).unwrap());
    Manifest {
        digest: sha256(&bytes),
        bytes,
        media_type: media_type.to_owned(),
    }
}

pub async fn push_blobs(reg: &Registry, repo: &str, blobs: &[&Blob]) {
    for b in blobs {
        let d = sha256(&b.bytes);
        if reg.head_blob(repo, &d).await.unwrap().is_none() {
            reg.push_blob(repo, &d, b.bytes.clone(), u64::MAX)
                .await
                .unwrap();
        }
    }
}

pub async fn push_manifest(reg: &Registry, repo: &str, reference: Option<&str>, m: &Manifest) {
    reg.put_manifest(repo, reference.unwrap_or(m.digest.as_str()), m)
        .await
        .unwrap();
}

/// An image manifest (OCI or Docker v2) for `platform`, with its config and layers pushed.
pub async fn image(
    reg: &Registry,
    repo: &str,
    os: &str,
    arch: &str,
    layers: &[&Blob],
    docker: bool,
) -> Manifest {
    let config = Blob {
        bytes: Bytes::from(format!(
            r#"{{"architecture":"{arch}","os":"{os}","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        )),
        media_type: if docker {
            "application/vnd.docker.container.image.v1+json"
        } else {
            "application/vnd.oci.image.config.v1+json"
        },
    };
    let mut all: Vec<&Blob> = vec![&config];
    all.extend(layers.iter().copied());
    push_blobs(reg, repo, &all).await;
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
    let m = manifest_of(&value, media_type);
    push_manifest(reg, repo, None, &m).await;
    m
}

/// A child of an index: the manifest, its platform (os, arch), its annotations.
pub type Child<'a> = (
    &'a Manifest,
    Option<(&'a str, &'a str)>,
    Option<serde_json::Value>,
);

/// An index (or Docker list) of `children` with their platforms, pushed under `tag`.
pub async fn index(
    reg: &Registry,
    repo: &str,
    tag: Option<&str>,
    children: &[Child<'_>],
    docker: bool,
) -> Manifest {
    let media_type = if docker {
        manifest::DOCKER_LIST
    } else {
        manifest::OCI_INDEX
    };
    let entries: Vec<serde_json::Value> = children
        .iter()
        .map(|(m, platform, annotations)| {
            let mut e = serde_json::json!({"mediaType": m.media_type, "digest": m.digest.to_string(), "size": m.bytes.len()});
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
    let m = manifest_of(&value, media_type);
    push_manifest(reg, repo, tag, &m).await;
    m
}

/// A 3-platform OCI index with a shared base layer and a BuildKit-style attestation manifest.
pub async fn multi_arch(reg: &Registry, repo: &str, tag: &str, seed: u64) -> Manifest {
    let base = Blob::layer(seed, 40_000);
    let mut children = Vec::new();
    let mut manifests = Vec::new();
    for (i, arch) in ["amd64", "arm64", "s390x"].iter().enumerate() {
        let own = Blob::layer(seed * 100 + i as u64, 10_000 + i * 1000);
        manifests.push((
            image(reg, repo, "linux", arch, &[&base, &own], false).await,
            *arch,
        ));
    }
    let attestation = artifact(reg, repo, "application/vnd.in-toto+json", seed + 7, None).await;
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

/// An OCI artifact with an empty config, optionally with a subject.
pub async fn artifact(
    reg: &Registry,
    repo: &str,
    artifact_type: &str,
    seed: u64,
    subject: Option<&Manifest>,
) -> Manifest {
    let empty = Blob {
        bytes: Bytes::from_static(b"{}"),
        media_type: manifest::OCI_EMPTY,
    };
    let payload = Blob {
        bytes: data(seed, 3000),
        media_type: "application/vnd.example.payload",
    };
    push_blobs(reg, repo, &[&empty, &payload]).await;
    let mut value = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty.descriptor(),
        "layers": [payload.descriptor()],
    });
    if let Some(s) = subject {
        value["subject"] = serde_json::json!({"mediaType": s.media_type, "digest": s.digest.to_string(), "size": s.bytes.len()});
    }
    let m = manifest_of(&value, manifest::OCI_MANIFEST);
    push_manifest(reg, repo, None, &m).await;
    m
}

/// Attaches `referrer` to `subject` the way a registry without the referrers API expects:
/// in the `<alg>-<hex>` fallback index.
pub async fn attach(
    reg: &Registry,
    repo: &str,
    subject: &Manifest,
    referrers: &[(&Manifest, &str)],
) {
    let entries: Vec<serde_json::Value> = referrers
        .iter()
        .map(|(m, t)| serde_json::json!({"mediaType": m.media_type, "digest": m.digest.to_string(), "size": m.bytes.len(), "artifactType": t}))
        .collect();
    let value = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": entries});
    let m = manifest_of(&value, manifest::OCI_INDEX);
    push_manifest(reg, repo, Some(subject.digest.referrers_tag().as_str()), &m).await;
}

/// A Helm 3 chart as `helm push` stores it.
pub async fn helm_chart(reg: &Registry, repo: &str, tag: &str) -> Manifest {
    let config = Blob {
        bytes: Bytes::from_static(br#"{"name":"demo","version":"0.1.0","apiVersion":"v2"}"#),
        media_type: "application/vnd.cncf.helm.config.v1+json",
    };
    let chart = Blob {
        bytes: data(42, 5000),
        media_type: "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    };
    push_blobs(reg, repo, &[&config, &chart]).await;
    let value = serde_json::json!({"schemaVersion": 2, "config": config.descriptor(), "layers": [chart.descriptor()], "annotations": {"org.opencontainers.image.title": "demo"}});
    let m = manifest_of(&value, manifest::OCI_MANIFEST);
    push_manifest(reg, repo, Some(tag), &m).await;
    m
}

/// Every manifest and blob reachable from `reference` in `repo`, compared byte for byte
/// between two registries, following referrers too when `referrers` is set.
pub async fn assert_same(
    src: &Registry,
    src_repo: &str,
    dst: &Registry,
    dst_repo: &str,
    reference: &str,
    referrers: bool,
) -> usize {
    let mut todo = vec![reference.to_owned()];
    let mut seen = std::collections::HashSet::new();
    let mut blobs = 0;
    while let Some(r) = todo.pop() {
        if !seen.insert(r.clone()) {
            continue;
        }
        let a = src.get_manifest(src_repo, &r).await.unwrap();
        let b = dst
            .get_manifest(dst_repo, &r)
            .await
            .unwrap_or_else(|e| panic!("target lacks {r}: {e}"));
        assert_eq!(a, b, "manifest {r}: bytes, media type and digest");
        let content = a.parse().unwrap();
        for c in &content.manifests {
            todo.push(c.digest.to_string());
        }
        for l in content.config.iter().chain(content.layers.iter()) {
            if l.is_foreign() {
                continue;
            }
            assert_eq!(
                dst.head_blob(dst_repo, &l.digest).await.unwrap(),
                Some(l.size),
                "blob {}",
                l.digest
            );
            blobs += 1;
        }
        if referrers {
            for d in src
                .referrers(src_repo, &a.digest, None)
                .await
                .unwrap()
                .descriptors
            {
                let found = dst.referrers(dst_repo, &a.digest, None).await.unwrap();
                assert!(
                    found.descriptors.iter().any(|x| x.digest == d.digest),
                    "referrer {} of {} is on the target",
                    d.digest,
                    a.digest
                );
                todo.push(d.digest.to_string());
            }
        }
    }
    blobs
}

/// `skopeo inspect --raw` of a reference on a plain-http loopback registry (a test without
/// skopeo fails, saying so in one line).
pub fn skopeo_raw(host: &str, repo: &str, reference: &str) -> Vec<u8> {
    let sep = if reference.contains(':') { "@" } else { ":" };
    let out = std::process::Command::new(acr_import_testsupport::skopeo())
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/{repo}{sep}{reference}"),
        ])
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
