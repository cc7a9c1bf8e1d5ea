//! Referrers in a layout: found the two ways other tools store them, written both ways
//! (see the [layout documentation](super#referrers-and-digest-tags)).

use std::collections::{HashMap, HashSet};

use acr_import_reference::Digest;
use bytes::Bytes;
use serde_json::Value;

use super::index::{ref_name, update_entries};
use super::{OciLayout, entries_mut};
use crate::digest_of;
use crate::error::{Operation, TransferError};
use crate::manifest::{Descriptor, Manifest, OCI_INDEX};

/// What a layout's `index.json` says about tags and referrers, read once
/// ([`OciLayout::scan`]).
#[derive(Debug, Clone, Default)]
pub struct LayoutScan {
    tags: Vec<(String, Digest)>,
    by_subject: HashMap<Digest, Vec<Descriptor>>,
    by_fallback_tag: HashMap<String, Vec<Descriptor>>,
    manifests: HashMap<Digest, Manifest>,
    unreadable: Vec<String>,
}

impl LayoutScan {
    /// Every tag of `index.json` with the digest it names, in the file's order.
    pub fn tags(&self) -> &[(String, Digest)] {
        &self.tags
    }

    /// The referrers of `subject`: those listed in its fallback index (tag `<alg>-<hex>`)
    /// and the entries whose manifest names it as `subject`, each once.
    pub fn referrers_of(&self, subject: &Digest) -> Vec<Descriptor> {
        let mut out: Vec<Descriptor> = Vec::new();
        let listed = self
            .by_fallback_tag
            .get(subject.referrers_tag().as_str())
            .into_iter()
            .flatten();
        let found = self.by_subject.get(subject).into_iter().flatten();
        for d in listed.chain(found) {
            if !out.iter().any(|o| o.digest == d.digest) {
                out.push(d.clone());
            }
        }
        out
    }

    /// A manifest of an `index.json` entry, as the scan read it.
    pub fn manifest(&self, digest: &Digest) -> Option<&Manifest> {
        self.manifests.get(digest)
    }

    /// Entries of `index.json` that could not be read, each with the reason: what they
    /// refer to, if anything, is not known.
    pub fn unreadable(&self) -> &[String] {
        &self.unreadable
    }
}

/// Appends each of `referrers` that `list` (index `manifests`) does not hold yet; whether any
/// was.
fn add_missing(list: &mut Vec<Value>, referrers: &[Descriptor]) -> bool {
    let mut added = false;
    for d in referrers {
        let digest = d.digest.as_str();
        if !list
            .iter()
            .any(|v| v.get("digest").and_then(Value::as_str) == Some(digest))
        {
            list.push(d.to_referrer_json());
            added = true;
        }
    }
    added
}

/// Whether a tag is a referrers fallback tag: `sha256-` or `sha512-` and 64 hex digits.
pub(crate) fn is_fallback_tag(tag: &str) -> bool {
    acr_import_reference::DigestTag::parse(tag).is_some_and(|t| t.suffix.is_none())
}

impl OciLayout {
    /// Reads `index.json` and every manifest its entries name (each once): the tags, and the
    /// referrers recorded either way (see the [layout documentation](super#referrers-and-digest-tags)). An entry whose
    /// manifest cannot be read does not fail the scan; it is listed in
    /// [`LayoutScan::unreadable`].
    pub async fn scan(&self) -> Result<LayoutScan, TransferError> {
        let ctx = self.ctx(Operation::Referrers, None);
        let entries = self.read_index(&ctx).await?;
        let mut scan = LayoutScan::default();
        let mut failed: HashSet<Digest> = HashSet::new();
        for (i, value) in entries.iter().enumerate() {
            let entry = match self.entry(&ctx, i, value) {
                Ok(e) => e,
                Err(e) => {
                    scan.unreadable
                        .push(format!("index.json manifests[{i}]: {e}"));
                    continue;
                }
            };
            let name = ref_name(value);
            if let Some(n) = name {
                scan.tags.push((n.to_owned(), entry.digest.clone()));
            }
            let digest = entry.digest.clone();
            if failed.contains(&digest) {
                continue;
            }
            if !scan.manifests.contains_key(&digest) {
                let read = self
                    .read_manifest(ctx.clone(), digest.as_str(), digest.clone(), Some(entry))
                    .await;
                match read {
                    Ok(m) => {
                        scan.manifests.insert(digest.clone(), m);
                    }
                    Err(e) => {
                        scan.unreadable
                            .push(format!("index.json manifests[{i}] ({digest}): {e}"));
                        failed.insert(digest);
                        continue;
                    }
                }
            }
            let manifest = &scan.manifests[&digest];
            let Ok(content) = manifest.parse() else {
                continue;
            };
            if let Some(tag) = name.filter(|n| is_fallback_tag(n))
                && manifest.is_index()
            {
                let listed = scan.by_fallback_tag.entry(tag.to_owned()).or_default();
                for d in content.manifests.iter() {
                    if !listed.iter().any(|l| l.digest == d.digest) {
                        listed.push(d.clone());
                    }
                }
            }
            if let Some(subject) = &content.subject {
                let found = scan.by_subject.entry(subject.digest.clone()).or_default();
                if !found.iter().any(|f| f.digest == digest) {
                    found.push(Descriptor::of_referrer(manifest, &content));
                }
            }
        }
        Ok(scan)
    }

    /// The referrers of `subject` recorded in the layout either way (a whole
    /// [`scan`](Self::scan); scan once to ask about many subjects).
    pub async fn referrers(&self, subject: &Digest) -> Result<Vec<Descriptor>, TransferError> {
        Ok(self.scan().await?.referrers_of(subject))
    }

    /// Records referrers of `subject` whose manifests are already in the layout, both ways:
    /// an untagged `index.json` entry for each (with its `artifactType` and annotations, as
    /// oras writes them), and the subject's fallback index (tag `<alg>-<hex>`, merged with
    /// what it lists already), as regclient writes it. `index.json` is rewritten once, and
    /// not at all when everything is recorded already.
    pub async fn put_referrers(
        &self,
        subject: &Digest,
        referrers: &[Descriptor],
    ) -> Result<(), TransferError> {
        if referrers.is_empty() {
            return Ok(());
        }
        let tag = subject.referrers_tag();
        let ctx = self.ctx(Operation::PutManifest, Some(tag.as_str()));
        let _lock = self.inner.index_lock.lock().await;
        let mut index = self.read_index_value(&ctx).await?;
        let current = self.fallback_list(&index, tag.as_str()).await?;
        let mut list = current.clone().unwrap_or_default();
        add_missing(&mut list, referrers);
        let mut changed = false;
        if current.as_ref().map(Vec::len) != Some(list.len()) {
            let body = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": list,
            });
            let bytes = Bytes::from(serde_json::to_vec(&body).map_err(|e| {
                TransferError::Config(format!("cannot write a referrers index: {e}"))
            })?);
            let fallback = Manifest {
                digest: digest_of(subject.algorithm(), &bytes),
                bytes,
                media_type: OCI_INDEX.to_owned(),
            };
            self.put_manifest_blob(&fallback).await?;
            changed |= update_entries(
                entries_mut(&mut index),
                OCI_INDEX,
                &fallback.digest,
                fallback.bytes.len() as u64,
                Some(tag.as_str()),
            );
        }
        changed |= add_missing(entries_mut(&mut index), referrers);
        if changed {
            self.write_index(&index).await?;
        }
        Ok(())
    }

    /// The `manifests` of the index tagged `tag` (a fallback tag), `None` when there is none.
    async fn fallback_list(
        &self,
        index: &Value,
        tag: &str,
    ) -> Result<Option<Vec<Value>>, TransferError> {
        let ctx = self.ctx(Operation::GetManifest, Some(tag));
        let entries = index
            .get("manifests")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some((i, value)) = entries
            .iter()
            .enumerate()
            .find(|(_, e)| ref_name(e) == Some(tag))
        else {
            return Ok(None);
        };
        let entry = self.entry(&ctx, i, value)?;
        let digest = entry.digest.clone();
        let manifest = self.read_manifest(ctx, tag, digest, Some(entry)).await?;
        let value: Value = serde_json::from_slice(&manifest.bytes).unwrap_or_default();
        Ok(Some(
            value
                .get("manifests")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::is_fallback_tag;

    #[test]
    fn fallback_tags_are_recognised() {
        let hex = "a".repeat(64);
        assert!(is_fallback_tag(&format!("sha256-{hex}")));
        assert!(is_fallback_tag(&format!("sha512-{hex}")));
        assert!(!is_fallback_tag(&format!("sha256-{hex}.sig")));
        assert!(!is_fallback_tag(&format!("md5-{hex}")));
        assert!(!is_fallback_tag(&format!("sha256-{}", "A".repeat(64))));
        assert!(!is_fallback_tag("latest"));
    }
}
