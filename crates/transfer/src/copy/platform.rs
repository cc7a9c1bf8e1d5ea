//! `--platform`: keep one platform's manifest, or rewrite the index to the kept ones.

use std::collections::HashSet;

use bytes::Bytes;

use super::resolve::Top;
use super::{Copier, CopyReport, invalid};
use crate::TransferError;
use crate::copy::Endpoint;
use crate::manifest::{Descriptor, Manifest, Platform, is_index};

impl Copier {
    /// Applies `--platform`: one platform kept ⇒ that platform's manifest (known by its
    /// descriptor, read only if it must move); several ⇒ a new index of those children (and
    /// their attestations), announced as rewritten. The index is read; nothing else is.
    pub(super) async fn apply_platform_filter(
        &self,
        src: &Endpoint,
        top: Top,
        report: &mut CopyReport,
    ) -> Result<Top, TransferError> {
        if self.options.platforms.is_empty() || !is_index(&top.media_type) {
            if !self.options.platforms.is_empty() {
                self.note(
                    report,
                    "the source is a single-platform manifest: --platform ignored".to_owned(),
                );
            }
            return Ok(top);
        }
        let top: Manifest = match top.manifest {
            Some(m) => m,
            None => src.get_by_digest(&top.digest).await?,
        };
        let content = top
            .parse()
            .map_err(|reason| invalid(src, &top.digest, reason))?;
        let kept: Vec<&Descriptor> = content
            .manifests
            .iter()
            .filter(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| self.options.platforms.iter().any(|f| f.matches(p)))
            })
            .collect();
        if kept.is_empty() {
            let available: Vec<String> = content
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(Platform::to_string))
                .collect();
            return Err(TransferError::NoMatchingPlatform {
                requested: self
                    .options
                    .platforms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                available: available.join(", "),
            });
        }
        // Nothing dropped (every entry is a kept platform or an attestation of one): the
        // index is copied as it is, digest unchanged.
        let kept_digests: HashSet<String> = kept.iter().map(|d| d.digest.to_string()).collect();
        let stays = |d: &Descriptor| {
            kept_digests.contains(d.digest.as_str())
                || d.annotations
                    .get("vnd.docker.reference.digest")
                    .is_some_and(|subject| kept_digests.contains(subject))
        };
        if content.manifests.iter().all(stays) {
            self.note(
                report,
                format!(
                    "--platform names every platform of the index: it is copied as it is ({})",
                    top.digest
                ),
            );
            return Ok(Top::read(top));
        }
        if kept.len() == 1 {
            let child = kept[0];
            let note = format!(
                "platform {} selected: the target points at that platform's manifest {} instead of the index {}",
                kept[0]
                    .platform
                    .as_ref()
                    .map(Platform::to_string)
                    .unwrap_or_default(),
                child.digest,
                top.digest
            );
            self.note(report, note);
            report.index_rewritten_from = Some(top.digest.to_string());
            return Ok(Top {
                digest: child.digest.clone(),
                media_type: child.media_type.clone(),
                manifest: None,
                rewritten_from: Some(top.digest),
            });
        }
        let mut value: serde_json::Value = serde_json::from_slice(&top.bytes)
            .map_err(|e| invalid(src, &top.digest, crate::ManifestError::Rewrite(e)))?;
        if let Some(list) = value.get_mut("manifests").and_then(|m| m.as_array_mut()) {
            list.retain(|entry| {
                let digest = entry
                    .get("digest")
                    .and_then(|d| d.as_str())
                    .unwrap_or_default();
                let attests = entry
                    .pointer("/annotations/vnd.docker.reference.digest")
                    .and_then(|d| d.as_str())
                    .is_some_and(|d| kept_digests.contains(d));
                kept_digests.contains(digest) || attests
            });
        }
        let bytes = Bytes::from(
            serde_json::to_vec(&value)
                .map_err(|e| invalid(src, &top.digest, crate::ManifestError::Rewrite(e)))?,
        );
        let rewritten = Manifest {
            digest: crate::digest_of(top.digest.algorithm(), &bytes),
            bytes,
            media_type: top.media_type.clone(),
        };
        let note = format!(
            "index rewritten: {} → {} ({} of {} platforms kept)",
            top.digest,
            rewritten.digest,
            kept.len(),
            content
                .manifests
                .iter()
                .filter(|d| d.platform.is_some())
                .count()
        );
        self.note(report, note);
        report.index_rewritten_from = Some(top.digest.to_string());
        Ok(Top {
            rewritten_from: Some(top.digest),
            ..Top::read(rewritten)
        })
    }
}
