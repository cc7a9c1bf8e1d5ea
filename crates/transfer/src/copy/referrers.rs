//! Referrers (signatures, SBOMs, attestations): copied after the manifests they refer to,
//! and recorded in the fallback index of registries without the referrers API and of OCI
//! layouts. They are found with the digest tags (see [`super::followers`]).

use std::collections::BTreeMap;

use acr_import_reference::Digest;
use bytes::Bytes;

use super::followers::{kind_of_artifact, refused};
use super::{Copier, CopyReport, Endpoint, FollowerAction, FollowerEntry, FollowerLink, Graph};
use crate::TransferError;
use crate::manifest::{Descriptor, Manifest, OCI_INDEX};

/// A referrer found for a copied manifest, with its own graph; `None` when every place
/// holds it already (it is not read from the source).
#[derive(Debug)]
pub(super) struct FoundReferrer {
    pub(super) subject: Digest,
    pub(super) descriptor: Descriptor,
    pub(super) graph: Option<Graph>,
}

impl Copier {
    /// Copies one referrer (its blobs, then its manifests) and records it in the report.
    /// Returns whether it was copied: a target that refuses it (its media type, say) leaves
    /// it behind with a note instead of failing the copy.
    pub(super) async fn copy_referrer(
        &self,
        src: &Endpoint,
        found: &FoundReferrer,
        places: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<bool, TransferError> {
        let artifact_type = found.descriptor.artifact_type.clone().or_else(|| {
            let top = found.graph.as_ref()?.nodes.last()?;
            Descriptor::of_referrer(&top.manifest, &top.content).artifact_type
        });
        let mut entry = FollowerEntry {
            kind: kind_of_artifact(artifact_type.as_deref(), &found.descriptor.annotations),
            link: FollowerLink::Referrer,
            subject: found.subject.to_string(),
            digest: found.descriptor.digest.to_string(),
            tag: None,
            artifact_type: artifact_type.clone(),
            action: if self.options.dry_run {
                FollowerAction::WouldCopy
            } else {
                FollowerAction::Copied
            },
            reason: None,
        };
        let Some(graph) = &found.graph else {
            entry.action = FollowerAction::AlreadyThere;
            report.followers.push(entry);
            return Ok(true);
        };
        self.copy_blobs(src, &graph.blobs, places, report).await?;
        match self.push_graph(graph, places, &[], report).await {
            Ok(()) => {}
            Err(e) if refused(&e) => {
                let why = format!("the target refused it: {e}");
                self.note(
                    report,
                    format!(
                        "left behind: referrer {} ({}) of {}: {why}",
                        found.descriptor.digest,
                        artifact_type.as_deref().unwrap_or("no artifactType"),
                        found.subject
                    ),
                );
                entry.action = FollowerAction::LeftBehind;
                entry.reason = Some(why);
                report.followers.push(entry);
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        report.followers.push(entry);
        self.note(
            report,
            format!(
                "referrer {} ({}) of {} copied",
                found.descriptor.digest,
                artifact_type.as_deref().unwrap_or("no artifactType"),
                found.subject
            ),
        );
        Ok(true)
    }

    /// Makes every copied manifest with a subject findable from that subject on the
    /// targets: the referrers copied, and manifests of the image that carry a subject
    /// themselves (a signature copied on its own).
    pub(super) async fn link_subjects(
        &self,
        graph: &Graph,
        copied: &[&FoundReferrer],
        places: &[&Endpoint],
    ) -> Result<(), TransferError> {
        let mut links: Vec<(Digest, Descriptor)> = copied
            .iter()
            .map(|r| (r.subject.clone(), r.descriptor.clone()))
            .collect();
        for node in graph.nodes.iter().chain(
            copied
                .iter()
                .flat_map(|r| r.graph.iter())
                .flat_map(|g| &g.nodes),
        ) {
            if let Some(subject) = &node.content.subject {
                links.push((
                    subject.digest.clone(),
                    Descriptor::of_referrer(&node.manifest, &node.content),
                ));
            }
        }
        if links.is_empty() {
            return Ok(());
        }
        self.update_fallback_indexes(&links, places).await
    }

    /// Records the copied referrers in the `<alg>-<hex>` fallback index of each subject
    /// (merged with what is there) on registries without the referrers API, and both ways
    /// in OCI layouts (see [`OciLayout::put_referrers`](crate::OciLayout::put_referrers)).
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
            let (registry, repository) = match place {
                Endpoint::Registry {
                    registry,
                    repository,
                } => (registry, repository),
                Endpoint::Layout(layout) => {
                    for (subject, descriptors) in by_subject.values() {
                        let listed: Vec<Descriptor> =
                            descriptors.iter().map(|d| (*d).clone()).collect();
                        layout.put_referrers(subject, &listed).await?;
                    }
                    continue;
                }
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
                    entries.push(d.to_referrer_json());
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
                    .push_manifest(repository, &subject.referrers_tag().into(), &manifest)
                    .await?;
            }
        }
        Ok(())
    }
}
