//! `index.json`: its entries, read strictly and updated for new manifests and tags.

use acr_import_reference::Digest;
use serde_json::{Map, Value};

use super::REF_NAME_ANNOTATION;
use crate::manifest::{ManifestContent, ManifestError, OCI_INDEX, OCI_MANIFEST};

/// Reads `bytes` as an index and returns its `manifests` (none when the field is missing).
pub(super) fn parse_index(bytes: &[u8]) -> Result<Vec<Value>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("not a JSON object".to_owned());
    };
    match object.remove("manifests") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(entries)) => Ok(entries),
        Some(_) => Err("`manifests` is not an array".to_owned()),
    }
}

/// The `org.opencontainers.image.ref.name` of an entry, if it has a non-empty one.
pub(super) fn ref_name(entry: &Value) -> Option<&str> {
    entry
        .get("annotations")?
        .get(REF_NAME_ANNOTATION)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// Updates the `manifests` of `index.json` for a new manifest; `false` when nothing changed.
pub(super) fn update_entries(
    manifests: &mut Vec<Value>,
    media_type: &str,
    digest: &Digest,
    size: u64,
    tag: Option<&str>,
) -> bool {
    let same_digest = |e: &Value| e.get("digest").and_then(Value::as_str) == Some(digest.as_str());
    match tag {
        None => {
            if manifests.iter().any(same_digest) {
                return false;
            }
            manifests.push(serde_json::json!({
                "mediaType": media_type,
                "digest": digest.as_str(),
                "size": size,
            }));
            true
        }
        Some(tag) => {
            let named: Vec<&Value> = manifests
                .iter()
                .filter(|e| ref_name(e) == Some(tag))
                .collect();
            if named.len() == 1
                && same_digest(named[0])
                && named[0].get("mediaType").and_then(Value::as_str) == Some(media_type)
                && named[0].get("size").and_then(Value::as_u64) == Some(size)
            {
                return false;
            }
            manifests.retain(|e| ref_name(e) != Some(tag));
            let untagged = manifests
                .iter_mut()
                .find(|e| same_digest(e) && ref_name(e).is_none() && e.is_object());
            let entry = match untagged {
                Some(e) => e,
                None => {
                    manifests.push(Value::Object(Map::new()));
                    manifests.last_mut().expect("just pushed")
                }
            };
            let obj = entry.as_object_mut().expect("an object");
            obj.insert("mediaType".to_owned(), Value::from(media_type));
            obj.insert("digest".to_owned(), Value::from(digest.as_str()));
            obj.insert("size".to_owned(), Value::from(size));
            let annotations = obj
                .entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()));
            if !annotations.is_object() {
                *annotations = Value::Object(Map::new());
            }
            annotations
                .as_object_mut()
                .expect("an object")
                .insert(REF_NAME_ANNOTATION.to_owned(), Value::from(tag));
            true
        }
    }
}

/// The media type of a manifest: the declared one (an index.json entry's), which must agree
/// with the body's own `mediaType`; else the body's; else OCI manifest or index by shape.
pub(super) fn resolve_media_type(
    declared: Option<&str>,
    content: &ManifestContent,
) -> Result<String, ManifestError> {
    match (declared, &content.media_type) {
        (Some(d), Some(body)) if d != body => Err(ManifestError::MediaTypeMismatch {
            declared_by: "index.json says",
            declared: d.to_owned(),
            body: body.clone(),
        }),
        (Some(d), _) => Ok(d.to_owned()),
        (None, Some(body)) => Ok(body.clone()),
        (None, None) if !content.manifests.is_empty() => Ok(OCI_INDEX.to_owned()),
        (None, None) => Ok(OCI_MANIFEST.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest_of;

    fn digest(n: u8) -> Digest {
        digest_of(acr_import_reference::DigestAlgorithm::Sha256, &[n])
    }

    #[test]
    fn untagged_entries_are_added_once() {
        let mut m = Vec::new();
        assert!(update_entries(&mut m, OCI_MANIFEST, &digest(1), 10, None));
        assert!(!update_entries(&mut m, OCI_MANIFEST, &digest(1), 10, None));
        assert_eq!(m.len(), 1);
        assert!(m[0].get("annotations").is_none());
        assert_eq!(m[0]["size"], 10);
    }

    #[test]
    fn tagging_replaces_names_and_adopts_untagged_entries() {
        let mut m = vec![serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": digest(1).as_str(), "size": 10,
            "platform": {"os": "linux", "architecture": "amd64"},
        })];
        assert!(update_entries(
            &mut m,
            OCI_MANIFEST,
            &digest(1),
            10,
            Some("v1")
        ));
        assert_eq!(m.len(), 1, "the untagged entry became the tagged one");
        assert_eq!(ref_name(&m[0]), Some("v1"));
        assert_eq!(m[0]["platform"]["os"], "linux", "unknown fields are kept");
        assert!(!update_entries(
            &mut m,
            OCI_MANIFEST,
            &digest(1),
            10,
            Some("v1")
        ));
        assert!(update_entries(
            &mut m,
            OCI_MANIFEST,
            &digest(2),
            20,
            Some("v2")
        ));
        assert!(update_entries(
            &mut m,
            OCI_INDEX,
            &digest(3),
            30,
            Some("v1")
        ));
        let names: Vec<_> = m.iter().map(|e| ref_name(e).unwrap()).collect();
        assert_eq!(names, ["v2", "v1"]);
        assert_eq!(m[1]["digest"], digest(3).as_str());
        // Untagged, but some entry has the digest: nothing to add.
        assert!(!update_entries(&mut m, OCI_INDEX, &digest(3), 30, None));
    }

    #[test]
    fn media_type_follows_the_registry_rule() {
        let manifest = ManifestContent::parse(
            br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#,
        )
        .unwrap();
        assert_eq!(resolve_media_type(None, &manifest).unwrap(), OCI_MANIFEST);
        assert_eq!(
            resolve_media_type(Some("application/x-custom"), &manifest).unwrap(),
            "application/x-custom"
        );
        let index = ManifestContent::parse(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
        )
        .unwrap();
        assert_eq!(resolve_media_type(None, &index).unwrap(), OCI_INDEX);
        assert!(resolve_media_type(Some(OCI_MANIFEST), &index).is_err());
    }

    #[test]
    fn index_parsing_is_strict_about_shape() {
        assert!(parse_index(b"{").is_err());
        assert!(parse_index(b"[]").is_err());
        assert!(parse_index(br#"{"manifests":{}}"#).is_err());
        assert!(parse_index(br#"{"schemaVersion":2}"#).unwrap().is_empty());
    }
}
