//! Manifests and tags: pushed leaves first, tags last.

use acr_import_reference::Digest;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{
    Copier, CopyReport, Endpoint, Graph, ManifestAction, ManifestEntry, ManifestRole, Node,
    Progress, TagEntry, Target,
};
use crate::TransferError;
use crate::manifest::Manifest;

impl Copier {
    /// Pushes the graph's manifests by digest to every place, leaves first; manifests of one
    /// height go concurrently.
    /// The top manifest is not pushed by digest to the `deferred` places: their first tag
    /// write stores it.
    pub(super) async fn push_graph(
        &self,
        graph: &Graph,
        places: &[&Endpoint],
        deferred: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        let max_height = graph.nodes.iter().map(|n| n.height).max().unwrap_or(0);
        for h in 0..=max_height {
            let level: Vec<&Node> = graph.nodes.iter().filter(|n| n.height == h).collect();
            let jobs = level
                .iter()
                .flat_map(|n| places.iter().map(move |p| (*n, *p)));
            let entries: Vec<ManifestEntry> = stream::iter(jobs.map(|(n, p)| {
                let later = n.role == ManifestRole::Top && deferred.iter().any(|d| d.same_place(p));
                self.push_manifest(n, p, later)
            }))
            .buffer_unordered(self.options.jobs.max(1))
            .try_collect()
            .await?;
            report.manifests.extend(entries);
        }
        Ok(())
    }

    /// Pushes one manifest by digest; `with_tag`: it goes with the tag write instead (the
    /// entry is reported now, the copy fails as a whole if that write does).
    pub(super) async fn push_manifest(
        &self,
        node: &Node,
        place: &Endpoint,
        with_tag: bool,
    ) -> Result<ManifestEntry, TransferError> {
        let entry = ManifestEntry {
            digest: node.manifest.digest.to_string(),
            media_type: node.manifest.media_type.clone(),
            size: node.manifest.bytes.len() as u64,
            platform: node.platform.clone(),
            artifact_type: node.content.artifact_type.clone(),
            role: node.role,
            target: place.describe(),
            action: if self.options.dry_run {
                ManifestAction::WouldPush
            } else {
                ManifestAction::Pushed
            },
        };
        if self.options.dry_run || with_tag {
            return Ok(entry);
        }
        match place {
            Endpoint::Registry {
                registry,
                repository,
            } => {
                registry
                    .push_manifest(
                        repository,
                        &node.manifest.digest.clone().into(),
                        &node.manifest,
                    )
                    .await?;
            }
            // Only the top manifest gets an index.json entry here (its tag, or an untagged
            // entry for an untagged copy); children are blobs, as skopeo writes them.
            // Referrers and digest tags get theirs once they are complete (`put_referrers`,
            // the tag write).
            Endpoint::Layout(l) if node.role == ManifestRole::Top => {
                l.put_manifest(&node.manifest, None).await?
            }
            Endpoint::Layout(l) => l.put_manifest_blob(&node.manifest).await?,
        }
        self.emit(Progress::ManifestPushed {
            digest: entry.digest.clone(),
            target: entry.target.clone(),
        });
        Ok(entry)
    }

    /// Writes the tags; on a `deferred` place, the first tag write is also how the top
    /// manifest arrives there, so it is written even where the tag already holds it.
    pub(super) async fn write_tags(
        &self,
        top: &Manifest,
        targets: &[Target],
        before: &[Option<Digest>],
        deferred: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        let mut stored: Vec<&Endpoint> = Vec::new();
        for (t, b) in targets.iter().zip(before) {
            let Some(tag) = &t.tag else { continue };
            let name = format!("{}:{tag}", t.endpoint.describe());
            let first_on_deferred = deferred.iter().any(|d| d.same_place(&t.endpoint))
                && !stored.iter().any(|s| s.same_place(&t.endpoint));
            if first_on_deferred {
                stored.push(&t.endpoint);
            }
            if !self.options.dry_run && (b.as_ref() != Some(&top.digest) || first_on_deferred) {
                t.endpoint.put_tagged(tag, top).await?;
                if first_on_deferred {
                    self.emit(Progress::ManifestPushed {
                        digest: top.digest.to_string(),
                        target: t.endpoint.describe(),
                    });
                }
                self.emit(Progress::TagWritten {
                    target: name.clone(),
                });
            }
            report.tags.push(TagEntry {
                target: name,
                before: b.as_ref().map(Digest::to_string),
                after: top.digest.to_string(),
            });
        }
        Ok(())
    }
}
