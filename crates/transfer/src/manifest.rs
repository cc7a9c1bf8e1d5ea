//! Manifests as bytes: media types, digests, and the descriptors they reference.

use std::path::PathBuf;

use acr_import_reference::{Digest, ReferenceError};
use bytes::Bytes;
use serde::Deserialize;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (refused).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Signed Docker schema 1 (refused).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// The OCI empty descriptor's media type (`{}`), used as the config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Every manifest media type a fetch accepts, in the `Accept` header.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest registries accept (the distribution spec's 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Whether a media type is an index (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// A manifest exactly as a registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The bytes, pushed as they are.
    pub bytes: Bytes,
    /// The media type (the `Content-Type` it was served with or must be pushed with).
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
}

impl Manifest {
    /// Whether it is an index or list.
    pub fn is_index(&self) -> bool {
        is_index(&self.media_type)
    }

    /// Reads the descriptors it references: children of an index; config and layers of an
    /// image manifest; and the `subject`, when present.
    pub fn parse(&self) -> Result<ManifestContent, ManifestError> {
        ManifestContent::parse(&self.bytes)
    }
}

/// Why a manifest cannot be used. Callers match the variant (a schema 1 manifest is
/// [`ManifestError::Schema1`], never a message to compare).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not JSON, or JSON of another shape.
    #[error("not a JSON manifest: {0}")]
    NotJson(#[source] serde_json::Error),
    /// A Docker schema 1 manifest (`schemaVersion: 1`, or `fsLayers`).
    #[error("a Docker schema 1 manifest")]
    Schema1,
    /// A `schemaVersion` other than 2.
    #[error("schemaVersion must be 2, found {}", found.map_or("none".to_owned(), |v| v.to_string()))]
    SchemaVersion {
        /// The `schemaVersion` found, if any.
        found: Option<i64>,
    },
    /// A descriptor whose digest is not a digest.
    #[error("descriptor digest `{digest}`: {source}")]
    Digest {
        /// The digest as written.
        digest: String,
        /// Why it is not one.
        #[source]
        source: ReferenceError,
    },
    /// A descriptor with a negative size.
    #[error("descriptor {digest} has a negative size")]
    NegativeSize {
        /// The descriptor's digest.
        digest: Digest,
    },
    /// Neither `manifests` nor `config`/`layers`: no known shape.
    #[error("neither `manifests` nor `config`/`layers`")]
    NoContent,
    /// The media type a manifest was served or listed with is not its `mediaType` field.
    #[error("{declared_by} `{declared}` but its mediaType field says `{body}`")]
    MediaTypeMismatch {
        /// Who declared the other one (`served as`, `index.json says`).
        declared_by: &'static str,
        /// The media type declared.
        declared: String,
        /// The body's `mediaType`.
        body: String,
    },
    /// A media type that cannot be sent as a `Content-Type` header.
    #[error("media type `{0}` is not a valid header value")]
    InvalidMediaType(String),
    /// An index that lists itself as a child.
    #[error("the index lists itself")]
    ListsItself,
    /// Indexes that list each other.
    #[error("the manifest graph loops through {through}")]
    Loop {
        /// A manifest on the loop.
        through: Digest,
    },
    /// An index that could not be rewritten (a platform-filtered copy).
    #[error("cannot rewrite the index: {0}")]
    Rewrite(#[source] serde_json::Error),
    /// An OCI layout's `index.json` that cannot be used.
    #[error("{}: {reason}", path.display())]
    LayoutIndex {
        /// The `index.json`.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// A platform as an index names it. Kept as our own type because `os.version` and
/// `os.features` matter for Windows images and oci-spec 0.10 drops them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub struct Platform {
    /// `architecture`.
    #[serde(default)]
    pub architecture: String,
    /// `os`.
    #[serde(default)]
    pub os: String,
    /// `variant`.
    #[serde(default)]
    pub variant: Option<String>,
    /// `os.version`.
    #[serde(default, rename = "os.version")]
    pub os_version: Option<String>,
    /// `os.features`.
    #[serde(default, rename = "os.features")]
    pub os_features: Option<Vec<String>>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `mediaType`.
    pub media_type: String,
    /// `digest`.
    pub digest: Digest,
    /// `size`.
    pub size: u64,
    /// `urls` (foreign layers).
    pub urls: Vec<String>,
    /// `platform`, in an index.
    pub platform: Option<Platform>,
    /// `artifactType`.
    pub artifact_type: Option<String>,
    /// `annotations`.
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl Descriptor {
    /// A layer the registry is not expected to hold: Docker foreign layers, OCI
    /// non-distributable layers, or any layer with `urls`.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty()
            || self.media_type.contains("foreign")
            || self.media_type.contains("nondistributable")
    }
}

impl Descriptor {
    /// The descriptor a referrers index lists for a manifest with a `subject`: its media
    /// type, digest and size, its `artifactType` (or, as the distribution specification
    /// says, its config's media type) and its own annotations.
    pub fn of_referrer(manifest: &Manifest, content: &ManifestContent) -> Descriptor {
        let annotations = serde_json::from_slice::<serde_json::Value>(&manifest.bytes)
            .ok()
            .and_then(|v| v.get("annotations").cloned())
            .and_then(|a| serde_json::from_value(a).ok())
            .unwrap_or_default();
        Descriptor {
            media_type: manifest.media_type.clone(),
            digest: manifest.digest.clone(),
            size: manifest.bytes.len() as u64,
            urls: Vec::new(),
            platform: None,
            artifact_type: content
                .artifact_type
                .clone()
                .or_else(|| content.config.as_ref().map(|c| c.media_type.clone())),
            annotations,
        }
    }

    /// The descriptor as a referrers index lists it: `mediaType`, `digest`, `size`, and
    /// `artifactType` and `annotations` when it has them.
    pub fn to_referrer_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest.to_string(),
            "size": self.size,
        });
        if let Some(t) = &self.artifact_type {
            v["artifactType"] = serde_json::Value::String(t.clone());
        }
        if !self.annotations.is_empty() {
            v["annotations"] = serde_json::to_value(&self.annotations).unwrap_or_default();
        }
        v
    }
}

#[derive(Deserialize)]
struct RawDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    urls: Option<Vec<String>>,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl TryFrom<RawDescriptor> for Descriptor {
    type Error = ManifestError;
    fn try_from(r: RawDescriptor) -> Result<Self, ManifestError> {
        let digest: Digest = r.digest.parse().map_err(|source| ManifestError::Digest {
            digest: r.digest.clone(),
            source,
        })?;
        if r.size < 0 {
            return Err(ManifestError::NegativeSize { digest });
        }
        Ok(Descriptor {
            media_type: r.media_type,
            digest,
            size: r.size as u64,
            urls: r.urls.unwrap_or_default(),
            platform: r.platform,
            artifact_type: r.artifact_type,
            annotations: r.annotations.unwrap_or_default(),
        })
    }
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    /// Schema 1 has `fsLayers`.
    #[serde(rename = "fsLayers")]
    fs_layers: Option<serde_json::Value>,
}

/// What a manifest references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestContent {
    /// The `mediaType` field of the body, if present.
    pub media_type: Option<String>,
    /// `artifactType`, if present.
    pub artifact_type: Option<String>,
    /// The config descriptor (image manifests).
    pub config: Option<Descriptor>,
    /// The layers (image manifests).
    pub layers: Vec<Descriptor>,
    /// The children (indexes).
    pub manifests: Vec<Descriptor>,
    /// The `subject` (OCI 1.1 referrers).
    pub subject: Option<Descriptor>,
}

impl ManifestContent {
    /// Parses the descriptors out of manifest bytes. Schema 1 and anything without a known
    /// shape is an error.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let raw: RawManifest = serde_json::from_slice(bytes).map_err(ManifestError::NotJson)?;
        if raw.schema_version == Some(1) || raw.fs_layers.is_some() {
            return Err(ManifestError::Schema1);
        }
        if raw.schema_version != Some(2) {
            return Err(ManifestError::SchemaVersion {
                found: raw.schema_version,
            });
        }
        let convert = |v: Option<Vec<RawDescriptor>>| -> Result<Vec<Descriptor>, ManifestError> {
            v.unwrap_or_default()
                .into_iter()
                .map(Descriptor::try_from)
                .collect()
        };
        let content = ManifestContent {
            media_type: raw.media_type,
            artifact_type: raw.artifact_type,
            config: raw.config.map(Descriptor::try_from).transpose()?,
            layers: convert(raw.layers)?,
            manifests: convert(raw.manifests)?,
            subject: raw.subject.map(Descriptor::try_from).transpose()?,
        };
        if content.config.is_none() && raw_has_no_manifests(&content) && content.layers.is_empty() {
            return Err(ManifestError::NoContent);
        }
        Ok(content)
    }
}

fn raw_has_no_manifests(c: &ManifestContent) -> bool {
    c.manifests.is_empty() && c.media_type.as_deref().is_none_or(|m| !is_index(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_index_and_manifest_descriptors() {
        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000001","size":10,
             "platform":{"os":"windows","architecture":"amd64","os.version":"10.0.17763.1"}}]}"#;
        let c = ManifestContent::parse(idx).unwrap();
        assert_eq!(c.manifests.len(), 1);
        let p = c.manifests[0].platform.as_ref().unwrap();
        assert_eq!(p.os_version.as_deref(), Some("10.0.17763.1"));
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},
            "layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000002","size":5,"urls":["https://x/y"]}]}"#;
        let c = ManifestContent::parse(m).unwrap();
        assert!(c.layers[0].is_foreign());
        assert_eq!(c.config.unwrap().size, 2);
    }

    #[test]
    fn refuses_schema1_and_junk() {
        use std::error::Error as _;
        let parse = |text: &str| ManifestContent::parse(text.as_bytes()).unwrap_err();
        assert!(matches!(
            parse(r#"{"schemaVersion":1,"fsLayers":[]}"#),
            ManifestError::Schema1
        ));
        assert!(matches!(
            parse(r#"{"fsLayers":[]}"#),
            ManifestError::Schema1
        ));
        let e = parse("{");
        assert!(matches!(e, ManifestError::NotJson(_)) && e.source().is_some());
        assert!(matches!(
            parse(r#"{"schemaVersion":3}"#),
            ManifestError::SchemaVersion { found: Some(3) }
        ));
        assert!(matches!(
            parse(r#"{"schemaVersion":2}"#),
            ManifestError::NoContent
        ));
        for digest in ["sha256:XYZ", "md5:abc"] {
            let e = parse(&format!(
                r#"{{"schemaVersion":2,"config":{{"digest":"{digest}","size":1}}}}"#
            ));
            assert!(
                matches!(&e, ManifestError::Digest { digest: d, .. } if d == digest),
                "{e}"
            );
            assert!(e.source().is_some(), "the digest error stays the source");
        }
        let e = parse(
            r#"{"schemaVersion":2,"config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1}}"#,
        );
        assert!(matches!(e, ManifestError::NegativeSize { .. }), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 2000, ..Default::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = ManifestContent::parse(&bytes);
        }

        #[test]
        fn manifest_shaped_json_never_panics(
            schema in proptest::option::of(-2i64..4),
            media in proptest::option::of("[a-z./+-]{0,40}"),
            digest in "(sha256|sha512|md5|SHA256)?:?[0-9a-fA-F]{0,70}",
            size in proptest::num::i64::ANY,
            n in 0usize..4,
            urls in proptest::option::of(proptest::collection::vec("[ -~]{0,20}", 0..3)),
        ) {
            let d = serde_json::json!({"mediaType": media, "digest": digest, "size": size, "urls": urls,
                "platform": {"os": "linux", "architecture": "amd64", "os.features": ["x"]}});
            let descs: Vec<_> = std::iter::repeat_n(d.clone(), n).collect();
            for doc in [
                serde_json::json!({"schemaVersion": schema, "mediaType": media, "manifests": descs}),
                serde_json::json!({"schemaVersion": schema, "config": d, "layers": descs, "subject": d}),
            ] {
                if let Ok(c) = ManifestContent::parse(doc.to_string().as_bytes()) {
                    // Whatever parses has valid digests and non-negative sizes.
                    for x in c.manifests.iter().chain(c.layers.iter()).chain(c.config.iter()) {
                        proptest::prop_assert!(x.digest.as_str().starts_with("sha"));
                    }
                }
            }
        }
    }
}
