//! What a mirror did (or, in a dry run, would do): per entry, per target tag, per copy.

use std::collections::BTreeMap;

use acr_import_transfer::copy::{FollowedTotals, human_bytes};
use serde::Serialize;

use super::Shard;

/// The report of a mirror run.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorReport {
    /// The engine that copied: `client` (this process) or `server` (`importImage`).
    pub engine: String,
    /// The target registry (login server, host or `oci:PATH`).
    pub target: String,
    /// The part of the plan this run owned.
    pub shard: Shard,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// One row per entry of the file, in file order.
    pub entries: Vec<EntryReport>,
    /// Every (source digest, target tag) pair of the plan this shard owns, in plan order.
    pub tags: Vec<TagReport>,
    /// The copies made (or planned): a source image and the target tags it went to.
    pub copies: Vec<CopySummary>,
    /// Wall time, milliseconds.
    pub millis: u64,
    /// Requests sent, per registry host.
    pub requests: BTreeMap<String, u64>,
}

impl MirrorReport {
    /// The entries that failed (an entry fails when any of its tags does, or when it could
    /// not be planned).
    pub fn failed(&self) -> impl Iterator<Item = &EntryReport> {
        self.entries.iter().filter(|e| !e.ok())
    }

    /// Manifest `GET`s sent to the sources over all copies (what Docker Hub counts as pulls).
    pub fn source_pulls(&self) -> u64 {
        self.copies.iter().map(|c| c.source_pulls).sum()
    }

    /// `240 tags in 60 entries: 12 copied, 228 up to date, 0 failed; 12 source manifest pulls
    /// (3.1 s)`.
    pub fn summary(&self) -> String {
        let count = |r: TagResult| self.tags.iter().filter(|t| t.result == r).count();
        let moved = if self.dry_run {
            format!("{} would be copied", count(TagResult::WouldCopy))
        } else {
            format!("{} copied", count(TagResult::Copied))
        };
        format!(
            "{} tags in {} entries{}: {moved}, {} up to date, {} failed; {} source manifest pull{} ({:.1} s)",
            self.tags.len(),
            self.entries.len(),
            if self.shard == Shard::ALL {
                String::new()
            } else {
                format!(" (shard {})", self.shard)
            },
            count(TagResult::UpToDate),
            self.tags
                .iter()
                .filter(|t| t.result == TagResult::Failed)
                .count(),
            self.source_pulls(),
            if self.source_pulls() == 1 { "" } else { "s" },
            self.millis as f64 / 1000.0
        )
    }
}

/// Whether an entry names one image or a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// One image, to the targets it names.
    Image,
    /// A repository's tags, chosen by a filter.
    Repository,
}

/// What happened to one entry.
#[derive(Debug, Clone, Serialize)]
pub struct EntryReport {
    /// Its place in the file (0-based).
    pub index: usize,
    /// The source, as written.
    pub source: String,
    /// Image or repository.
    pub kind: EntryKind,
    /// Tags the source repository listed (repository entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listed: Option<usize>,
    /// Target tags the entry names or its filter selected.
    pub selected: usize,
    /// Of those, the ones this shard owns.
    pub in_shard: usize,
    /// Target tags copied (or, in a dry run, to be copied).
    pub copied: usize,
    /// Target tags that already held the source's content.
    pub up_to_date: usize,
    /// Target tags that failed.
    pub failed: usize,
    /// Blobs uploaded, mounted, and bytes uploaded, over the entry's copies.
    pub blobs_copied: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Bytes uploaded.
    pub bytes_copied: u64,
    /// Manifest `GET`s sent to the source over the entry's copies (what Docker Hub counts as
    /// pulls; the plan's look-ups are `HEAD`s and take none).
    pub source_pulls: u64,
    /// Why the entry (or its first failed tag) failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl EntryReport {
    pub(crate) fn new(index: usize, source: &str, kind: EntryKind) -> Self {
        Self {
            index,
            source: source.to_owned(),
            kind,
            listed: None,
            selected: 0,
            in_shard: 0,
            copied: 0,
            up_to_date: 0,
            failed: 0,
            blobs_copied: 0,
            blobs_mounted: 0,
            bytes_copied: 0,
            source_pulls: 0,
            error: None,
        }
    }

    /// Whether every tag of the entry is in place (or, in a dry run, could be planned).
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.failed == 0
    }

    /// `FAILED`, `imported`, `up to date`, `nothing selected`.
    pub fn outcome(&self) -> &'static str {
        if !self.ok() {
            "FAILED"
        } else if self.copied > 0 {
            "imported"
        } else if self.in_shard == 0 {
            "nothing selected"
        } else {
            "up to date"
        }
    }

    /// One line: `docker.io/library/nginx: 5 tags: 2 copied, 3 up to date (12 blobs, 40 MiB)`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} {}",
            self.source,
            self.in_shard,
            if self.in_shard == 1 { "tag" } else { "tags" }
        );
        if self.in_shard != self.selected {
            s.push_str(&format!(" of {} in this shard", self.selected));
        }
        s.push_str(&format!(
            ": {} copied, {} up to date, {} failed",
            self.copied, self.up_to_date, self.failed
        ));
        if self.blobs_copied + self.blobs_mounted > 0 {
            s.push_str(&format!(
                " ({} blobs copied, {} mounted, {})",
                self.blobs_copied,
                self.blobs_mounted,
                human_bytes(self.bytes_copied)
            ));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(": {e}"));
        }
        s
    }
}

/// What the plan decided for a target tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TagAction {
    /// The target holds the source's digest: nothing to do.
    UpToDate,
    /// The target tag is missing: copy.
    Copy,
    /// The target tag holds something else and the entry forces: copy over it.
    Replace,
    /// The target tag holds something else and the entry does not force: refused.
    Conflict,
    /// A `HEAD` cannot tell (a platform filter on an index, an OCI layout, referrers to
    /// bring): the copy engine compares and copies what is missing.
    Check,
    /// The source could not be read.
    Unreadable,
}

/// What became of a target tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TagResult {
    /// Copied (its content and the tag are in place).
    Copied,
    /// Already in place.
    UpToDate,
    /// Dry run: would be copied.
    WouldCopy,
    /// Not done.
    Failed,
}

/// One (source digest, target tag) pair.
#[derive(Debug, Clone, Serialize)]
pub struct TagReport {
    /// The entry it comes from.
    pub entry: usize,
    /// `host/repository:tag` (or `@digest`) at the source.
    pub source: String,
    /// The digest the source named when planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<String>,
    /// `host/repository:tag` at the target (`@…` for an untagged copy).
    pub target: String,
    /// What the target tag held before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// What the plan decided.
    pub action: TagAction,
    /// What became of it.
    pub result: TagResult,
    /// Which of [`MirrorReport::copies`] moved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<usize>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One copy: a source image to one or more target tags of an entry.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopySummary {
    /// The entry.
    pub entry: usize,
    /// The source, by digest when the plan knew it.
    pub source: String,
    /// The targets.
    pub targets: Vec<String>,
    /// The digest the targets hold now (the source's, or the platform-filtered one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Blobs uploaded (dry run: to upload).
    pub blobs_copied: usize,
    /// Blobs mounted (dry run: to mount).
    pub blobs_mounted: usize,
    /// Blobs already in place.
    pub blobs_skipped: usize,
    /// Bytes uploaded (dry run: to upload).
    pub bytes: u64,
    /// Manifest `GET`s sent to the source (what Docker Hub counts as pulls).
    pub source_pulls: u64,
    /// Signatures, attestations and SBOMs (referrers and digest tags) that followed the
    /// image (server-side: copied from this machine after the import).
    pub followed: FollowedTotals,
    /// Why what is attached to the image stayed behind (server-side: this machine could not
    /// copy it after the import).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub followers_left_behind: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
