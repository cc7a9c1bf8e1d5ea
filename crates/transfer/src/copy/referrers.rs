//! Referrers (signatures, SBOMs, attestations): found for every copied manifest, copied
//! after it, and recorded in the fallback index of registries without the referrers API.

use std::collections::{BTreeMap, HashSet};

use acr_import_reference::Digest;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{Copier, CopyReport, Endpoint, Graph, ManifestRole, Node};
use crate::TransferError;
use crate::manifest::{Descriptor, Manifest, OCI_INDEX};

/// A referrer found for a copied manifest, with its own graph.
#[derive(Debug)]
pub(super) struct FoundReferrer {
    pub(super) subject: Digest,
    pub(super) descriptor: Descriptor,
    pub(super) graph: Graph,
}

impl Copier {
    /// The referrers of every manifest in `graph`, each with its own graph, recursively
    /// (referrers of referrers), breadth first.
    pub(super) async fn discover_referrers(
        &self,
        src: &Endpoint,
        graph: &Graph,
    ) -> Result<Vec<FoundReferrer>, TransferError> {
        let mut found: Vec<FoundReferrer> = Vec::new();
        let mut known: HashSet<Digest> = graph
            .nodes
            .iter()
            .map(|n| n.manifest.digest.clone())
            .collect();
        let mut subjects: Vec<Digest> = graph
            .nodes
            .iter()
            .map(|n| n.manifest.digest.clone())
            .collect();
        for _ in 0..self.options.max_depth {
            if subjects.is_empty() {
                break;
            }
            let lists: Vec<(Digest, Vec<Descriptor>)> =
                stream::iter(subjects.drain(..).map(|s| async move {
                    let list = src.referrers(&s).await?;
                    Ok::<_, TransferError>((s, list))
                }))
                .buffer_unordered(self.options.jobs.max(1))
                .try_collect()
                .await?;
            for (subject, list) in lists {
                for descriptor in list {
                    if !known.insert(descriptor.digest.clone()) {
                        continue;
                    }
                    let manifest = src.get_manifest(descriptor.digest.as_str()).await?;
                    let graph = self
                        .walk(src, manifest, ManifestRole::Referrer, None)
                        .await?;
                    subjects.extend(graph.nodes.iter().map(|n| n.manifest.digest.clone()));
                    found.push(FoundReferrer {
                        subject: subject.clone(),
                        descriptor,
                        graph,
                    });
                    if found.len() > self.options.max_manifests {
                        return Err(TransferError::TooManyManifests {
                            limit: self.options.max_manifests,
                        });
                    }
                }
            }
        }
        Ok(found)
    }

    pub(super) async fn copy_referrer(
        &self,
        src: &Endpoint,
        found: &FoundReferrer,
        places: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        self.copy_blobs(src, &found.graph.blobs, places, report)
            .await?;
        self.push_graph(&found.graph, places, &[], report).await?;
        self.note(
            report,
            format!(
                "referrer {} ({}) of {} copied",
                found.descriptor.digest,
                found
                    .descriptor
                    .artifact_type
                    .as_deref()
                    .unwrap_or("no artifactType"),
                found.subject
            ),
        );
        Ok(())
    }

    /// On registries without the referrers API, records the copied referrers in the
    /// `<alg>-<hex>` fallback index of each subject (merged with what is there).
    pub(super) async fn update_fallback_indexes(
        &self,
        links: &[(Digest, Descriptor)],
        places: &[&Endpoint],
    ) -> Result<(), TransferError> {
        if self.options.dry_run {
            return Ok(());
        }
        let mut by_subject: BTreeMap<String, (Digest, Vec<&Descriptor>)> = BTreeMap::new();
        for (subject, descriptor) in links {
            let entry = by_subject
                .entry(subject.to_string())
                .or_insert_with(|| (subject.clone(), Vec::new()));
            if !entry.1.iter().any(|d| d.digest == descriptor.digest) {
                entry.1.push(descriptor);
            }
        }
        for place in places {
            let Endpoint::Registry {
                registry,
                repository,
            } = place
            else {
                continue;
            };
            for (subject, descriptors) in by_subject.values() {
                let current = registry.referrers(repository, subject, None).await?;
                if current.source == crate::ReferrersSource::Api {
                    continue;
                }
                let mut entries: Vec<serde_json::Value> = match &current.fallback_index {
                    Some(index) => serde_json::from_slice::<serde_json::Value>(&index.bytes)
                        .ok()
                        .and_then(|v| v.get("manifests").and_then(|m| m.as_array()).cloned())
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                let mut changed = false;
                for d in descriptors {
                    if current.descriptors.iter().any(|c| c.digest == d.digest) {
                        continue;
                    }
                    entries.push(descriptor_json(d));
                    changed = true;
                }
                if !changed {
                    continue;
                }
                let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
                let bytes = Bytes::from(
                    serde_json::to_vec(&index).map_err(|e| TransferError::Config(e.to_string()))?,
                );
                let manifest = Manifest {
                    digest: crate::digest_of(subject.algorithm(), &bytes),
                    bytes,
                    media_type: OCI_INDEX.to_owned(),
                };
                registry
                    .push_manifest(repository, subject.referrers_tag().as_str(), &manifest)
                    .await?;
            }
        }
        Ok(())
    }
}

/// The descriptor a referrers index lists for a manifest: its media type, digest and size,
/// its `artifactType` (or, as the spec says, its config's media type) and its annotations.
pub(super) fn referrer_descriptor(node: &Node) -> Descriptor {
    let annotations = serde_json::from_slice::<serde_json::Value>(&node.manifest.bytes)
        .ok()
        .and_then(|v| v.get("annotations").cloned())
        .and_then(|a| serde_json::from_value(a).ok())
        .unwrap_or_default();
    Descriptor {
        media_type: node.manifest.media_type.clone(),
        digest: node.manifest.digest.clone(),
        size: node.manifest.bytes.len() as u64,
        urls: Vec::new(),
        platform: None,
        artifact_type: node
            .content
            .artifact_type
            .clone()
            .or_else(|| node.content.config.as_ref().map(|c| c.media_type.clone())),
        annotations,
    }
}

fn descriptor_json(d: &Descriptor) -> serde_json::Value {
    let mut v = serde_json::json!({
        "mediaType": d.media_type,
        "digest": d.digest.to_string(),
        "size": d.size,
    });
    if let Some(t) = &d.artifact_type {
        v["artifactType"] = serde_json::Value::String(t.clone());
    }
    if !d.annotations.is_empty() {
        v["annotations"] = serde_json::to_value(&d.annotations).unwrap_or_default();
    }
    v
}
