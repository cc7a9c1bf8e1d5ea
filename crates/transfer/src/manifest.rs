//! Manifests as bytes: media types, digests, and the descriptors they reference.

use std::path::PathBuf;

use acr_import_reference::{Digest, ReferenceError};
use bytes::Bytes;
use oci_spec::image::{ImageIndex, ImageManifest};
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
    /// JSON that is not an OCI image index or image manifest (as `oci-spec` reads them): a
    /// required field missing, a negative size, a malformed digest.
    #[error("not a valid {shape}: {source}")]
    Shape {
        /// `image index` or `image manifest`.
        shape: &'static str,
        /// What `oci-spec` found wrong.
        #[source]
        source: serde_json::Error,
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
/// `os.features` matter for Windows images and `oci-spec` 0.10 drops them (see
/// [`ManifestContent::parse`]).
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
    /// Parses the descriptors out of manifest bytes with `oci-spec`'s [`ImageIndex`] and
    /// [`ImageManifest`] (a Docker manifest list or schema 2 manifest has the same shape).
    /// Schema 1 and anything without a known shape is an error.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let mut value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(ManifestError::NotJson)?;
        let Some(doc) = value.as_object_mut() else {
            return Err(ManifestError::NotJson(serde::de::Error::custom(
                "a manifest is a JSON object",
            )));
        };
        let schema_version = doc.get("schemaVersion").and_then(serde_json::Value::as_i64);
        if schema_version == Some(1) || doc.contains_key("fsLayers") {
            return Err(ManifestError::Schema1);
        }
        if schema_version != Some(2) {
            return Err(ManifestError::SchemaVersion {
                found: schema_version,
            });
        }
        let media_type = doc
            .get("mediaType")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        let index = media_type
            .as_deref()
            .map_or(doc.contains_key("manifests"), is_index);
        if index {
            Self::of_index(value)
        } else if doc.contains_key("config") {
            // `layers` is required by the image spec, yet manifests without it are served
            // (an artifact with its config only): read as none.
            doc.entry("layers").or_insert_with(|| serde_json::json!([]));
            Self::of_manifest(value)
        } else if doc.contains_key("layers") || doc.contains_key("manifests") {
            Err(ManifestError::Shape {
                shape: "image manifest",
                source: serde::de::Error::missing_field("config"),
            })
        } else {
            Err(ManifestError::NoContent)
        }
    }

    fn of_index(value: serde_json::Value) -> Result<Self, ManifestError> {
        let extras = platform_extras(&value);
        let index: ImageIndex =
            serde_json::from_value(value).map_err(|source| ManifestError::Shape {
                shape: "image index",
                source,
            })?;
        let manifests = index
            .manifests()
            .iter()
            .zip(
                extras
                    .into_iter()
                    .chain(std::iter::repeat(PlatformExtras::default())),
            )
            .map(|(d, extra)| {
                let mut d = Descriptor::try_from(d)?;
                if let Some(p) = &mut d.platform {
                    p.os_version = extra.os_version;
                    p.os_features = extra.os_features;
                }
                Ok(d)
            })
            .collect::<Result<Vec<_>, ManifestError>>()?;
        Ok(ManifestContent {
            media_type: index.media_type().as_ref().map(ToString::to_string),
            artifact_type: index.artifact_type().as_ref().map(ToString::to_string),
            config: None,
            layers: Vec::new(),
            manifests,
            subject: index
                .subject()
                .as_ref()
                .map(Descriptor::try_from)
                .transpose()?,
        })
    }

    fn of_manifest(value: serde_json::Value) -> Result<Self, ManifestError> {
        let m: ImageManifest =
            serde_json::from_value(value).map_err(|source| ManifestError::Shape {
                shape: "image manifest",
                source,
            })?;
        Ok(ManifestContent {
            media_type: m.media_type().as_ref().map(ToString::to_string),
            artifact_type: m.artifact_type().as_ref().map(ToString::to_string),
            config: Some(Descriptor::try_from(m.config())?),
            layers: m
                .layers()
                .iter()
                .map(Descriptor::try_from)
                .collect::<Result<_, _>>()?,
            manifests: Vec::new(),
            subject: m.subject().as_ref().map(Descriptor::try_from).transpose()?,
        })
    }
}

impl TryFrom<&oci_spec::image::Descriptor> for Descriptor {
    type Error = ManifestError;
    /// Our digest is stricter than `oci-spec`'s (a registered algorithm and its length), so
    /// an `md5:` digest that `oci-spec` reads is refused here.
    fn try_from(d: &oci_spec::image::Descriptor) -> Result<Self, ManifestError> {
        let written = d.digest().to_string();
        let digest: Digest = written.parse().map_err(|source| ManifestError::Digest {
            digest: written.clone(),
            source,
        })?;
        Ok(Descriptor {
            media_type: d.media_type().to_string(),
            digest,
            size: d.size(),
            urls: d.urls().clone().unwrap_or_default(),
            platform: d.platform().as_ref().map(|p| Platform {
                architecture: p.architecture().to_string(),
                os: p.os().to_string(),
                variant: p.variant().clone(),
                os_version: None,
                os_features: None,
            }),
            artifact_type: d.artifact_type().as_ref().map(ToString::to_string),
            annotations: d
                .annotations()
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

/// A platform's `os.version` and `os.features`, which `oci-spec` 0.10 reads from the keys
/// `os_version` and `os_features` instead (so it drops them: see the test
/// `oci_spec_drops_os_version`). Read here, in this one place, from an index's children.
#[derive(Debug, Clone, Default, Deserialize)]
struct PlatformExtras {
    #[serde(default, rename = "os.version")]
    os_version: Option<String>,
    #[serde(default, rename = "os.features")]
    os_features: Option<Vec<String>>,
}

/// The [`PlatformExtras`] of each child of an index, in order (defaults where a child has
/// no platform or the index no `manifests`).
fn platform_extras(index: &serde_json::Value) -> Vec<PlatformExtras> {
    index
        .get("manifests")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .map(|child| {
            child
                .get("platform")
                .and_then(|p| PlatformExtras::deserialize(p).ok())
                .unwrap_or_default()
        })
        .collect()
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
        // oci-spec reads `md5:abc` as a digest; ours refuses it.
        let e = parse(
            r#"{"schemaVersion":2,"config":{"mediaType":"x/y","digest":"md5:abc","size":1},"layers":[]}"#,
        );
        assert!(
            matches!(&e, ManifestError::Digest { digest: d, .. } if d == "md5:abc"),
            "{e}"
        );
        assert!(e.source().is_some(), "the digest error stays the source");
        // oci-spec refuses a malformed SHA-256 digest, a negative size, a missing mediaType.
        for bad in [
            r#"{"mediaType":"x/y","digest":"sha256:XYZ","size":1}"#,
            r#"{"mediaType":"x/y","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1}"#,
            r#"{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}"#,
        ] {
            let e = parse(&format!(
                r#"{{"schemaVersion":2,"config":{bad},"layers":[]}}"#
            ));
            assert!(
                matches!(
                    e,
                    ManifestError::Shape {
                        shape: "image manifest",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
            assert!(e.source().is_some());
        }
        let e =
            parse(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#);
        assert!(
            matches!(
                e,
                ManifestError::Shape {
                    shape: "image index",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse(r#"{"schemaVersion":2,"layers":[]}"#);
        assert!(
            matches!(
                e,
                ManifestError::Shape {
                    shape: "image manifest",
                    ..
                }
            ),
            "{e}"
        );
    }

    /// Why [`PlatformExtras`] exists: oci-spec 0.10 reads `os.version` from the key
    /// `os_version`, so a Windows image's version is lost. When this test fails, oci-spec
    /// reads them and the work-around can go.
    #[test]
    fn oci_spec_drops_os_version() {
        let p: oci_spec::image::Platform = serde_json::from_str(
            r#"{"os":"windows","architecture":"amd64","os.version":"10.0.17763.1","os.features":["win32k"]}"#,
        )
        .unwrap();
        assert_eq!(p.os_version(), &None);
        assert_eq!(p.os_features(), &None);
    }

    #[test]
    fn docker_shapes_and_config_only_artifacts_read() {
        let list = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[
            {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000001","size":10,
             "platform":{"os":"linux","architecture":"arm","variant":"v7"}},
            {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000002","size":11}]}"#;
        let c = ManifestContent::parse(list).unwrap();
        assert_eq!(c.media_type.as_deref(), Some(DOCKER_LIST));
        assert_eq!(
            c.manifests[0].platform.as_ref().unwrap().to_string(),
            "linux/arm/v7"
        );
        assert!(c.manifests[1].platform.is_none());
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000003","size":3},
            "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000004","size":4}]}"#;
        let c = ManifestContent::parse(image).unwrap();
        assert_eq!(
            c.config.unwrap().media_type,
            "application/vnd.docker.container.image.v1+json"
        );
        assert_eq!(c.layers[0].size, 4);
        let artifact = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example+type",
            "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},
            "subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000005","size":5},
            "annotations":{"a":"b"}}"#;
        let c = ManifestContent::parse(artifact).unwrap();
        assert!(c.layers.is_empty());
        assert_eq!(
            c.artifact_type.as_deref(),
            Some("application/vnd.example+type")
        );
        assert_eq!(c.subject.unwrap().size, 5);
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
