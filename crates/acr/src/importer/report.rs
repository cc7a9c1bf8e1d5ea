//! What an import did.

use acr_import_transfer::CopyReport;
use serde::Serialize;

use super::ImportError;
use crate::{Engine, ImportMode, ServerOutcome};

/// The report of one import.
#[derive(Debug, Clone)]
#[non_exhaustive]
// One report per import, moved a few times: its size does not matter, boxing would only
// make it clumsier to match on.
#[allow(clippy::large_enum_variant)]
pub enum ImportReport {
    /// The client-side engine copied (or, in a dry run, planned) it (boxed: a copy report is
    /// large).
    Client(Box<ClientReport>),
    /// The server-side engine (`importImage`) ran it, or started it (`no_wait`).
    Server(ServerReport),
}

impl ImportReport {
    /// The engine that ran.
    pub fn engine(&self) -> Engine {
        match self {
            ImportReport::Client(_) => Engine::Client,
            ImportReport::Server(_) => Engine::Server,
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        match self {
            ImportReport::Client(c) => c.summary(),
            ImportReport::Server(s) => s.summary(),
        }
    }
}

/// A client-side import: the copy engine's report, and what it did for each target.
#[derive(Debug, Clone, Serialize)]
pub struct ClientReport {
    /// The first target (`host/repo:tag`, `host/repo@digest`, `oci:path:tag`).
    pub target: String,
    /// Every target, in the order given, with what was done for it.
    pub targets: Vec<TargetSummary>,
    /// What the copy engine did.
    pub copy: CopyReport,
}

impl ClientReport {
    /// `imported … → … (…)`.
    pub fn summary(&self) -> String {
        self.copy.summary(&self.target)
    }
}

/// What one target of a client-side import received.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSummary {
    /// `host/repo:tag`, `host/repo@digest` (untagged) or `oci:path:tag`.
    pub target: String,
    /// `imported`, `up to date` or `would import` (a dry run).
    pub result: &'static str,
    /// The digest it holds now.
    pub digest: String,
    /// Blobs copied into its repository (by this import).
    pub copied: usize,
    /// Blobs mounted into its repository.
    pub mounted: usize,
    /// Blobs that were there already.
    pub skipped: usize,
    /// Bytes copied into its repository.
    pub bytes: u64,
}

impl TargetSummary {
    /// The summary of the target `name`, whose repository (or layout) the copy report calls
    /// `place`.
    pub(crate) fn of(name: String, place: &str, copy: &CopyReport) -> Self {
        let mut totals = acr_import_transfer::copy::Totals::default();
        for b in copy.blobs.iter().filter(|b| b.target == place) {
            totals.count(b);
        }
        TargetSummary {
            target: name,
            result: if copy.dry_run {
                "would import"
            } else if copy.up_to_date {
                "up to date"
            } else {
                "imported"
            },
            digest: copy.digest.clone(),
            copied: totals.blobs_copied,
            mounted: totals.blobs_mounted,
            skipped: totals.blobs_skipped,
            bytes: totals.bytes_copied,
        }
    }
}

/// A server-side import.
#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    /// The source, as given.
    pub source: String,
    /// The target registry's resource ID.
    pub target_id: String,
    /// The target registry's login server.
    pub login_server: String,
    /// `targetTags` sent.
    pub target_tags: Vec<String>,
    /// `untaggedTargetRepositories` sent.
    pub untagged_target_repositories: Vec<String>,
    /// `mode` sent.
    pub mode: ImportMode,
    /// Finished, or started and left running.
    #[serde(skip)]
    pub outcome: ServerOutcome,
    /// What is attached to the image (signatures, attestations, SBOMs), followed client-side
    /// after the service imported it.
    pub followers: FollowUp,
}

/// The client-side follow-up of a server-side import: what is attached to the image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FollowUp {
    /// `--no-referrers`: not looked up.
    Off,
    /// `no_wait`: the image was not in place yet, so nothing was followed.
    NotStarted,
    /// The copy engine copied what the target lacked (its report lists each).
    Copied(Box<CopyReport>),
    /// This machine could not read the source or write the target: nothing attached
    /// followed, for this reason.
    LeftBehind {
        /// Why.
        reason: String,
    },
}

impl FollowUp {
    /// `; followed client-side: …`, or why nothing followed.
    fn summary(&self) -> String {
        match self {
            FollowUp::Off => {
                "; signatures, attestations and SBOMs left behind (--no-referrers)".to_owned()
            }
            FollowUp::NotStarted => String::new(),
            FollowUp::Copied(r) => match r.followers_summary() {
                Some(text) => format!("; client-side: {text}"),
                None => "; no signature, attestation or SBOM attached".to_owned(),
            },
            FollowUp::LeftBehind { reason } => {
                format!("; signatures, attestations and SBOMs left behind: {reason}")
            }
        }
    }
}

impl ServerReport {
    /// Every target, as `login-server/repo[:tag]`.
    pub fn targets(&self) -> Vec<String> {
        self.target_tags
            .iter()
            .chain(&self.untagged_target_repositories)
            .map(|t| format!("{}/{t}", self.login_server))
            .collect()
    }

    /// `imported … to … server-side …`, or where to follow a started operation.
    pub fn summary(&self) -> String {
        match &self.outcome {
            ServerOutcome::Completed => format!(
                "imported {} to {} server-side (no image bytes through this machine){}",
                self.source,
                self.targets().join(", "),
                self.followers.summary()
            ),
            ServerOutcome::Started { operation_url } => format!(
                "import of {} started server-side: follow it with `acr import status {operation_url}`",
                self.source
            ),
        }
    }
}

/// The outcome of one entry of a batch.
#[derive(Debug)]
pub struct EntryOutcome {
    /// Its place in the batch.
    pub index: usize,
    /// Its label (the source as given).
    pub label: String,
    /// What happened.
    pub result: Result<ClientReport, ImportError>,
}

/// The report of a batch: one outcome per entry, in batch order.
#[derive(Debug)]
pub struct BatchReport {
    /// The outcomes.
    pub entries: Vec<EntryOutcome>,
}

impl BatchReport {
    /// The entries that failed.
    pub fn failed(&self) -> impl Iterator<Item = &EntryOutcome> {
        self.entries.iter().filter(|e| e.result.is_err())
    }
}
