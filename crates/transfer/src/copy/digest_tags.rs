//! Digest tags (`<alg>-<hex>.sig`, `.att`, `.sbom`, …): copied byte for byte with their blobs,
//! the tag written once the image and the tagged manifest's own content are in place.

use super::followers::{FoundDigestTag, TagState, kind_of_tag, refused};
use super::{
    Copier, CopyReport, Endpoint, FollowerAction, FollowerEntry, FollowerLink, Graph, ManifestRole,
    Progress, TagEntry,
};
use crate::TransferError;

impl Copier {
    /// Copies one digest tag to the places that lack it (or, with `force`, hold something
    /// else under it), and records it in the report. A place whose tag holds another
    /// manifest keeps it unless `force` is set; a target that refuses the artifact leaves it
    /// behind; both with a note.
    pub(super) async fn copy_digest_tag(
        &self,
        src: &Endpoint,
        found: &FoundDigestTag,
        places: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        let mut entry = FollowerEntry {
            kind: kind_of_tag(found.tag.as_str()),
            link: FollowerLink::DigestTag,
            subject: found.subject.to_string(),
            digest: found.digest.to_string(),
            tag: Some(found.tag.to_string()),
            artifact_type: None,
            action: FollowerAction::AlreadyThere,
            reason: None,
        };
        let mut needing: Vec<&Endpoint> = Vec::new();
        let mut before: Vec<Option<String>> = Vec::new();
        for (place, state) in places.iter().zip(&found.states) {
            match state {
                TagState::Present => {}
                TagState::Missing => {
                    needing.push(place);
                    before.push(None);
                }
                TagState::Other(other) if self.options.force => {
                    needing.push(place);
                    before.push(Some(other.to_string()));
                }
                TagState::Other(other) => {
                    let why = format!(
                        "{}:{} holds {other}, kept (--force replaces it)",
                        place.describe(),
                        found.tag
                    );
                    self.note(report, format!("left behind: {}: {why}", found.tag));
                    entry.action = FollowerAction::LeftBehind;
                    entry.reason = Some(why);
                }
            }
        }
        if needing.is_empty() {
            report.followers.push(entry);
            return Ok(());
        }
        let manifest = src.get_by_digest(&found.digest).await?;
        let graph = self
            .walk(src, manifest, ManifestRole::DigestTag, None)
            .await?;
        self.copy_blobs(src, &graph.blobs, &needing, report).await?;
        match self
            .push_under_tag(&graph, &needing, &before, &found.tag, report)
            .await
        {
            Ok(()) => {
                if entry.action != FollowerAction::LeftBehind {
                    entry.action = if self.options.dry_run {
                        FollowerAction::WouldCopy
                    } else {
                        FollowerAction::Copied
                    };
                }
            }
            Err(e) if refused(&e) => {
                let why = format!("the target refused it: {e}");
                self.note(report, format!("left behind: {}: {why}", found.tag));
                entry.action = FollowerAction::LeftBehind;
                entry.reason = Some(why);
            }
            Err(e) => return Err(e),
        }
        report.followers.push(entry);
        Ok(())
    }

    /// Pushes a digest-tagged manifest's children by digest, then the manifest itself under
    /// its tag (one request that stores it and sets the tag).
    async fn push_under_tag(
        &self,
        graph: &Graph,
        places: &[&Endpoint],
        before: &[Option<String>],
        tag: &acr_import_reference::Tag,
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        let Some((top, children)) = graph.nodes.split_last() else {
            return Ok(());
        };
        for node in children {
            for place in places {
                let entry = self.push_manifest(node, place, false).await?;
                report.manifests.push(entry);
            }
        }
        for (place, before) in places.iter().zip(before) {
            let entry = self.push_manifest(top, place, true).await?;
            if !self.options.dry_run {
                place.put_tagged(tag, &top.manifest).await?;
                self.emit(Progress::ManifestPushed {
                    digest: entry.digest.clone(),
                    target: entry.target.clone(),
                });
                self.emit(Progress::TagWritten {
                    target: format!("{}:{tag}", place.describe()),
                });
            }
            report.tags.push(TagEntry {
                target: format!("{}:{tag}", place.describe()),
                before: before.clone(),
                after: top.manifest.digest.to_string(),
            });
            report.manifests.push(entry);
        }
        Ok(())
    }
}
