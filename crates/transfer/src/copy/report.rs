//! What a copy did (or, in a dry run, would do), for people and for JSON.

use serde::Serialize;

/// What happened to one blob in one target repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlobAction {
    /// Bytes streamed from the source.
    Copied,
    /// Cross-repository mount: no bytes moved.
    Mounted,
    /// The target already had it.
    Skipped,
    /// A foreign or non-distributable layer, left where its `urls` say.
    Foreign,
    /// Dry run: would be copied.
    WouldCopy,
    /// Dry run: would be mounted.
    WouldMount,
}

/// What happened to one manifest in one target repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestAction {
    /// Pushed by digest.
    Pushed,
    /// Dry run: would be pushed.
    WouldPush,
    /// The tag already pointed at it (nothing to do).
    UpToDate,
}

/// Where a manifest sits in the copied graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestRole {
    /// The manifest the source reference names (or the rewritten index).
    Top,
    /// A child of an index.
    Child,
    /// A manifest whose `subject` is a copied manifest (signature, SBOM, attestation).
    Referrer,
}

/// One manifest of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestEntry {
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// `os/arch[/variant]`, when an index names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// `artifactType`, for referrers and artifacts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Its place in the graph.
    pub role: ManifestRole,
    /// The target it went to (`registry/repository` or `oci:path`).
    pub target: String,
    /// What was done.
    pub action: ManifestAction,
}

/// One blob of the report.
#[derive(Debug, Clone, Serialize)]
pub struct BlobEntry {
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// The target it went to.
    pub target: String,
    /// What was done.
    pub action: BlobAction,
    /// Where it was mounted from, for mounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounted_from: Option<String>,
    /// Milliseconds spent.
    pub millis: u64,
    /// Attempts that failed and were retried.
    pub retries: u32,
}

/// A tag written (or, in a dry run, to be written).
#[derive(Debug, Clone, Serialize)]
pub struct TagEntry {
    /// `registry/repository:tag` or `oci:path:tag`.
    pub target: String,
    /// What the tag pointed at before, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// What it points at now.
    pub after: String,
}

/// Totals of a report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Distinct manifests in the copied graph (referrers included).
    pub manifests: usize,
    /// Platforms of the top index that were copied.
    pub platforms: usize,
    /// Blob entries copied.
    pub blobs_copied: usize,
    /// Blob entries mounted.
    pub blobs_mounted: usize,
    /// Blob entries already present.
    pub blobs_skipped: usize,
    /// Bytes streamed from the source.
    pub bytes_copied: u64,
    /// Retries spent on blobs.
    pub retries: u32,
}

impl Totals {
    /// Counts one blob entry: copied (with its bytes), mounted or skipped, and its retries.
    pub fn count(&mut self, b: &BlobEntry) {
        match b.action {
            BlobAction::Copied | BlobAction::WouldCopy => {
                self.blobs_copied += 1;
                self.bytes_copied += b.size;
            }
            BlobAction::Mounted | BlobAction::WouldMount => self.blobs_mounted += 1,
            BlobAction::Skipped => self.blobs_skipped += 1,
            BlobAction::Foreign => {}
        }
        self.retries += b.retries;
    }
}

/// The report of one copy.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// The source, as given.
    pub source: String,
    /// The digest the targets now hold.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// When a platform filter rewrote the index: the original digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_rewritten_from: Option<String>,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Every target had it already: nothing was written.
    pub up_to_date: bool,
    /// Tags written.
    pub tags: Vec<TagEntry>,
    /// Manifests.
    pub manifests: Vec<ManifestEntry>,
    /// Blobs.
    pub blobs: Vec<BlobEntry>,
    /// Totals.
    pub totals: Totals,
    /// Wall-clock milliseconds.
    pub millis: u64,
    /// Bytes copied per second.
    pub bytes_per_second: u64,
    /// HTTP requests this copy sent, per host (`host:port`), retries included.
    pub requests: std::collections::BTreeMap<String, u64>,
    /// Requests that were retries.
    pub retried_requests: u64,
    /// Manifest `GET`s sent to the source: what a registry that counts pulls (Docker Hub)
    /// charged this copy. Manifests the copier had read already, `HEAD`s and blobs are not
    /// pulls.
    pub source_pulls: u64,
    /// Notes for the user (normalizations, rewritten indexes, skipped foreign layers).
    pub notes: Vec<String>,
}

impl CopyReport {
    pub(crate) fn finish(&mut self, started: std::time::Instant) {
        let mut t = Totals {
            manifests: self
                .manifests
                .iter()
                .map(|m| &m.digest)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            platforms: self.totals.platforms,
            ..Totals::default()
        };
        for b in &self.blobs {
            t.count(b);
        }
        self.totals = t;
        let elapsed = started.elapsed();
        self.millis = elapsed.as_millis() as u64;
        self.bytes_per_second = if elapsed.as_secs_f64() > 0.0 {
            (self.totals.bytes_copied as f64 / elapsed.as_secs_f64()) as u64
        } else {
            0
        };
    }

    /// One line for people: `… (3 platforms, 12 blobs: 9 copied, 3 mounted, 0 skipped, 104.2 MiB
    /// in 2.1 s; 4 source manifest pulls)`, or, when every target had it already, `… → …: up to
    /// date (3 platforms already there)` (with the source's pulls, if it took any).
    pub fn summary(&self, target: &str) -> String {
        let t = &self.totals;
        if self.up_to_date {
            let mut what = Vec::new();
            if t.platforms > 1 {
                what.push(format!("{} platforms", t.platforms));
            }
            if t.blobs_skipped > 0 {
                what.push(format!(
                    "{} blob{}",
                    t.blobs_skipped,
                    if t.blobs_skipped == 1 { "" } else { "s" }
                ));
            }
            let what = if what.is_empty() {
                "everything".to_owned()
            } else {
                what.join(", ")
            };
            // Nothing read from the source is the rule here: said only when it was not.
            let pulls = match self.source_pulls {
                0 => String::new(),
                1 => "; 1 source manifest pull".to_owned(),
                n => format!("; {n} source manifest pulls"),
            };
            return format!(
                "{} → {target}: up to date ({what} already there{pulls})",
                self.source
            );
        }
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        let platforms = if t.platforms > 1 {
            format!("{} platforms, ", t.platforms)
        } else {
            String::new()
        };
        format!(
            "{verb} {} → {target} ({platforms}{} blobs: {} copied, {} mounted, {} skipped, {} in {:.1} s; {} source manifest pull{})",
            self.source,
            t.blobs_copied + t.blobs_mounted + t.blobs_skipped,
            t.blobs_copied,
            t.blobs_mounted,
            t.blobs_skipped,
            human_bytes(t.bytes_copied),
            self.millis as f64 / 1000.0,
            self.source_pulls,
            if self.source_pulls == 1 { "" } else { "s" }
        )
    }
}

/// `104.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Progress events, for a renderer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Progress {
    /// The plan is known: how many blobs and bytes will move.
    Planned {
        /// Blobs to transfer (copied or mounted).
        blobs: usize,
        /// Bytes to copy at most.
        bytes: u64,
    },
    /// A blob transfer started.
    BlobStarted {
        /// Its digest.
        digest: String,
        /// Its size.
        size: u64,
    },
    /// Bytes of a blob went through.
    BlobBytes {
        /// Its digest.
        digest: String,
        /// Bytes since the last event.
        bytes: u64,
    },
    /// A blob attempt failed and is retried.
    BlobRetried {
        /// Its digest.
        digest: String,
        /// The error, without secrets.
        error: String,
    },
    /// A blob is done.
    BlobDone {
        /// Its digest.
        digest: String,
        /// What was done.
        action: BlobAction,
    },
    /// A manifest was pushed.
    ManifestPushed {
        /// Its digest.
        digest: String,
        /// The target.
        target: String,
    },
    /// A tag was written.
    TagWritten {
        /// The tag reference.
        target: String,
    },
    /// A note for the user.
    Note(String),
    /// One second of a wait for a registry's rate limit to reset (`--wait-rate-limit`).
    RateLimitWait(crate::RateLimitWait),
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(109_261_619), "104.2 MiB");
    }
}
