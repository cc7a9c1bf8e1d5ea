//! How to copy: the options and the `--platform` filter.

use std::sync::Arc;

use super::ProgressSink;
use crate::TransferError;
use crate::manifest::Platform;

/// `os/arch[/variant]`, as `--platform` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformFilter {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl std::str::FromStr for PlatformFilter {
    type Err = TransferError;
    fn from_str(s: &str) -> Result<Self, TransferError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            TransferError::Config(format!(
                "`{s}` is not a platform: expected os/arch[/variant], e.g. linux/arm64/v8"
            ))
        };
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(Self {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

impl std::fmt::Display for PlatformFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl PlatformFilter {
    /// Whether `p` is this platform (a filter without variant matches every variant).
    pub fn matches(&self, p: &Platform) -> bool {
        p.os.eq_ignore_ascii_case(&self.os)
            && p.architecture.eq_ignore_ascii_case(&self.architecture)
            && self.variant.as_ref().is_none_or(|v| {
                p.variant
                    .as_deref()
                    .is_some_and(|pv| pv.eq_ignore_ascii_case(v))
            })
    }
}

/// How to copy. Every field states its default.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Overwrite target tags that point at other content (`az acr import --force`).
    /// Default: off — a conflict fails before any byte moves.
    pub force: bool,
    /// Copy only these platforms of an index. Default: all.
    pub platforms: Vec<PlatformFilter>,
    /// Copy the referrers (signatures, SBOMs, attestations) of every copied manifest.
    /// Default: on.
    pub referrers: bool,
    /// Copy foreign and non-distributable layers as ordinary blobs. Default: off (they stay
    /// where their `urls` point, as registries expect).
    pub foreign_layers: bool,
    /// Blob transfers in flight at most, across platforms (adapts down on 429/503).
    /// Default: 8.
    pub jobs: usize,
    /// Bytes of blobs streaming at once to one target registry, at most; a blob counts for
    /// its size up to half of this, so two big blobs always stream together. Blobs take
    /// their slots largest first (a smaller blob waits until every blob at least twice its
    /// size has a slot) and fill what the budget leaves: the big uploads finish one after
    /// another, and a target that syncs each blob to disk before answering keeps receiving
    /// others meanwhile. Default: 128 MiB.
    pub bytes_in_flight: u64,
    /// Deepest nesting of indexes followed. Default: 8.
    pub max_depth: usize,
    /// Most manifests in one copy (ACR import allows 50 per image). Default: 1000.
    pub max_manifests: usize,
    /// Also hash blobs on this side while streaming them to a registry, so that a corrupted
    /// source is caught before the upload completes. Off, the target registry's own check
    /// of `PUT ?digest=` catches it (it refuses the upload; the blob is sent again): the
    /// same guarantee for half the client CPU. Blobs written to an OCI layout are always
    /// hashed here. Default: off.
    pub verify: bool,
    /// Report what would be done, write nothing. Default: off.
    pub dry_run: bool,
    /// Where progress events go. Default: nowhere.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// Every tag of the source repository, as the caller has just listed them all (a
    /// mirror's plan does): the digest tags of the copied manifests are found in it instead
    /// of listing the repository again. A digest tag pushed after that listing is not seen
    /// by this copy. Default: none (the copy lists the tags itself, or probes cosign's).
    pub source_tags: Option<Arc<[String]>>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            force: false,
            platforms: Vec::new(),
            referrers: true,
            foreign_layers: false,
            jobs: 8,
            bytes_in_flight: 128 << 20,
            max_depth: 8,
            max_manifests: 1000,
            verify: false,
            dry_run: false,
            progress: None,
            source_tags: None,
        }
    }
}
