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
    /// A manifest under a digest tag of a copied manifest (cosign's `sha256-<hex>.sig`,
    /// `.att`, `.sbom`), or a child of one.
    DigestTag,
}

/// What a follower of an image is, for the counts of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FollowerKind {
    /// A signature (cosign `.sig`, a cosign or Notary signature referrer).
    Signature,
    /// An attestation (cosign `.att`, in-toto or DSSE referrers).
    Attestation,
    /// A software bill of materials (cosign `.sbom`, SPDX or CycloneDX referrers).
    Sbom,
    /// Anything else attached to an image.
    Other,
}

impl FollowerKind {
    fn counted(self, n: usize) -> String {
        let (one, many) = match self {
            FollowerKind::Signature => ("signature", "signatures"),
            FollowerKind::Attestation => ("attestation", "attestations"),
            FollowerKind::Sbom => ("SBOM", "SBOMs"),
            FollowerKind::Other => ("other artifact", "other artifacts"),
        };
        format!("{n} {}", if n == 1 { one } else { many })
    }
}

/// How a follower is attached to its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FollowerLink {
    /// An OCI referrer: its manifest names the subject (`subject` field).
    Referrer,
    /// A digest tag: `<alg>-<hex>.<suffix>` in the subject's repository (cosign's scheme).
    DigestTag,
}

/// What happened to a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FollowerAction {
    /// Copied to every target.
    Copied,
    /// Dry run: would be copied.
    WouldCopy,
    /// Every target had it already.
    AlreadyThere,
    /// Not copied; `reason` says why.
    LeftBehind,
}

/// A signature, attestation, SBOM or other artifact that follows an image.
#[derive(Debug, Clone, Serialize)]
pub struct FollowerEntry {
    /// What it is.
    pub kind: FollowerKind,
    /// How it is attached.
    pub link: FollowerLink,
    /// The digest of the manifest it is attached to.
    pub subject: String,
    /// Its own digest.
    pub digest: String,
    /// Its tag, for a digest tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Its `artifactType` (or config media type), for a referrer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// What was done.
    pub action: FollowerAction,
    /// Why it was left behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl FollowerEntry {
    /// `signature sha256-….sig (sha256:…) of sha256:…`, for lists.
    fn describe(&self) -> String {
        let kind = match self.kind {
            FollowerKind::Signature => "signature",
            FollowerKind::Attestation => "attestation",
            FollowerKind::Sbom => "SBOM",
            FollowerKind::Other => "artifact",
        };
        let what = match (&self.tag, &self.artifact_type) {
            (Some(tag), _) => format!("{tag} ({})", self.digest),
            (None, Some(t)) => format!("referrer {} ({t})", self.digest),
            (None, None) => format!("referrer {}", self.digest),
        };
        format!("{kind} {what} of {}", self.subject)
    }
}

/// How many followers of each kind reached the targets (or, in a dry run, would).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FollowedTotals {
    /// Signatures.
    pub signatures: usize,
    /// Attestations.
    pub attestations: usize,
    /// SBOMs.
    pub sboms: usize,
    /// Other artifacts.
    pub other: usize,
    /// Followers found but not copied (see the notes).
    pub left_behind: usize,
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
    /// Signatures, attestations, SBOMs and other artifacts that followed the image.
    pub followed: FollowedTotals,
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
    /// Signatures, attestations, SBOMs and other artifacts attached to the copied manifests
    /// (referrers and digest tags), and what was done with each.
    pub followers: Vec<FollowerEntry>,
    /// Referrers and digest tags were not looked up (`--no-referrers`): whatever is attached
    /// to the image stayed behind.
    pub followers_off: bool,
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
        for f in &self.followers {
            let count = match (f.action, f.kind) {
                (FollowerAction::LeftBehind, _) => &mut t.followed.left_behind,
                (_, FollowerKind::Signature) => &mut t.followed.signatures,
                (_, FollowerKind::Attestation) => &mut t.followed.attestations,
                (_, FollowerKind::Sbom) => &mut t.followed.sboms,
                (_, FollowerKind::Other) => &mut t.followed.other,
            };
            *count += 1;
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
    /// in 2.1 s; 4 source manifest pulls; followed: 2 signatures, 1 attestation, 1 SBOM)`, or,
    /// when every target had it already, `… → …: up to date (3 platforms already there)` (with
    /// the source's pulls, if it took any, and what followed); a dry run adds a line for each
    /// follower that would be copied or is left behind.
    pub fn summary(&self, target: &str) -> String {
        let mut out = self.summary_line(target);
        if self.dry_run {
            for f in &self.followers {
                let verb = match f.action {
                    FollowerAction::WouldCopy | FollowerAction::Copied => "would copy",
                    FollowerAction::AlreadyThere => "already there:",
                    FollowerAction::LeftBehind => "would leave behind",
                };
                out.push_str(&format!("\n  {verb} {}", f.describe()));
                if let Some(r) = &f.reason {
                    out.push_str(&format!(": {r}"));
                }
            }
        }
        out
    }

    /// What followed the image, for people: `followed: 2 signatures, 1 attestation, 1 SBOM`,
    /// `…; 1 signature, attestation or SBOM left behind (see notes)`, `signatures,
    /// attestations and SBOMs left behind (--no-referrers)`; `None` when nothing is attached.
    pub fn followers_summary(&self) -> Option<String> {
        let text = self.followed_text();
        let text = text.strip_prefix("; ").unwrap_or(&text);
        (!text.is_empty()).then(|| text.to_owned())
    }

    /// [`Self::followers_summary`] after `; `, or nothing.
    fn followed_text(&self) -> String {
        if self.followers_off {
            return "; signatures, attestations and SBOMs left behind (--no-referrers)".to_owned();
        }
        let f = &self.totals.followed;
        let parts: Vec<String> = [
            (FollowerKind::Signature, f.signatures),
            (FollowerKind::Attestation, f.attestations),
            (FollowerKind::Sbom, f.sboms),
            (FollowerKind::Other, f.other),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| k.counted(n))
        .collect();
        let mut text = String::new();
        if !parts.is_empty() {
            text = format!("; followed: {}", parts.join(", "));
        }
        if f.left_behind > 0 {
            text.push_str(&format!(
                "; {} left behind (see notes)",
                if f.left_behind == 1 {
                    "1 signature, attestation or SBOM".to_owned()
                } else {
                    format!("{} signatures, attestations or SBOMs", f.left_behind)
                }
            ));
        }
        text
    }

    fn summary_line(&self, target: &str) -> String {
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
                "{} → {target}: up to date ({what} already there{pulls}{})",
                self.source,
                self.followed_text()
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
            "{verb} {} → {target} ({platforms}{} blobs: {} copied, {} mounted, {} skipped, {} in {:.1} s; {} source manifest pull{}{})",
            self.source,
            t.blobs_copied + t.blobs_mounted + t.blobs_skipped,
            t.blobs_copied,
            t.blobs_mounted,
            t.blobs_skipped,
            human_bytes(t.bytes_copied),
            self.millis as f64 / 1000.0,
            self.source_pulls,
            if self.source_pulls == 1 { "" } else { "s" },
            self.followed_text()
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

/// Where a copy's [`Progress`] events go ([`CopyOptions::progress`](super::CopyOptions)): a
/// closure, or a Tokio channel's sender (events sent after its receiver is gone are dropped).
/// Called from the copy's tasks: it must be quick and must not block.
///
/// ```
/// use std::sync::Arc;
/// use acr_import_transfer::copy::{CopyOptions, Progress};
///
/// let (tx, _rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
/// let to_channel = CopyOptions { progress: Some(Arc::new(tx)), ..CopyOptions::default() };
/// let printed = CopyOptions {
///     progress: Some(Arc::new(|p: Progress| {
///         if let Progress::Note(text) = p {
///             eprintln!("note: {text}");
///         }
///     })),
///     ..CopyOptions::default()
/// };
/// # let _ = (to_channel, printed);
/// ```
pub trait ProgressSink: Send + Sync {
    /// Takes one event.
    fn event(&self, event: Progress);
}

impl std::fmt::Debug for dyn ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

impl<F: Fn(Progress) + Send + Sync> ProgressSink for F {
    fn event(&self, event: Progress) {
        self(event)
    }
}

impl ProgressSink for tokio::sync::mpsc::UnboundedSender<Progress> {
    fn event(&self, event: Progress) {
        // The receiver gone: nobody renders any more.
        let _ = self.send(event);
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
