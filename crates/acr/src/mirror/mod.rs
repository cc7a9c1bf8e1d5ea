//! Mirroring at scale: many repositories and tags in one run, from a mirror file, beside the
//! single import ([`Importer::import`](crate::Importer::import)).
//!
//! - [`MirrorFile`]: the file `acr import --from-file` reads — single-image entries and
//!   repository entries with [`TagFilter`]s.
//! - [`TagFilter`]: which tags of a repository an entry copies (version ranges, regular
//!   expressions, `latest: N`), with [`parse_version`]'s lenient reading of tags.
//! - [`Shard`]: the I-th of N disjoint parts of a plan, by a stable hash of each target tag.
//! - [`MirrorRequest`] and [`Importer::mirror`](crate::Importer::mirror): the plan and the
//!   batch run, reported as a [`MirrorReport`] (a row per entry, every target tag with what
//!   was decided and done).
//!
//! How a run goes. **Plan**: each repository entry's tags are listed once and filtered; the
//!   shard keeps its target tags; every tag is looked up at the source and at the target at
//!   once (`HEAD`s, many in flight per registry, or ACR's tag listing with digests: one
//!   request per repository). A tag whose target holds the source's digest is done; referrers
//!   of unchanged images are looked for where that costs nothing or one request per image.
//! **Copy**: what changed goes to one copy engine for the whole file: tags of an entry that
//!   name the same content copy together, blob transfers are bounded per registry for the
//!   batch, a blob shared by many images leaves the source once and is mounted elsewhere,
//!   and a failing entry never stops the others. A target tag is written only once
//!   everything it reaches is in place, so a run killed at any point and started again
//!   finds finished tags up to date (their `HEAD`s are all they cost) and completes the rest.
//!
//! ```no_run
//! use acr_import_acr::mirror::{MirrorFile, MirrorRequest};
//! use acr_import_acr::{Cloud, Importer, ImporterConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let file = MirrorFile::parse("- source: docker.io/library/alpine\n  tags: {semver: '>=3.19', latest: 2}\n", "inline")?;
//! let importer = Importer::new(ImporterConfig::from_env(Cloud::azure_cloud()));
//! let report = importer.mirror(&MirrorRequest::new("myregistry", file), &()).await?;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```

mod fanout;
mod file;
mod filter;
mod lookup;
mod plan;
mod report;
mod run;
mod schedule;
mod shard;

pub use file::{EntryOptions, ImageEntry, MirrorEntry, MirrorFile, RepositoryEntry};
pub use filter::{TagFilter, TagRules, VersionRange, is_digest_tag, parse_version};
pub use report::{
    CopySummary, EntryKind, EntryReport, MirrorReport, TagAction, TagReport, TagResult,
};
pub use run::{MirrorItem, MirrorRequest};
pub use shard::Shard;

/// What can be wrong with a mirror file, a filter or a shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// The file cannot be read or is not a valid mirror file.
    #[error("{path}: {reason}")]
    InvalidFile {
        /// The file.
        path: String,
        /// What is wrong (with the line and column when the parser knows them).
        reason: String,
    },
    /// A rule of a `tags:` filter.
    #[error("`tags: {field}: {value}` is not valid: {reason}")]
    InvalidTagFilter {
        /// `semver`, `include`, `exclude` or `latest`.
        field: &'static str,
        /// The value given.
        value: String,
        /// Why, and what to write.
        reason: String,
    },
    /// A `--shard` value.
    #[error(
        "--shard `{value}` is not valid: {reason}; write I/N with 0 <= I < N, e.g. 0/4 to 3/4 for four parts"
    )]
    InvalidShard {
        /// The value given.
        value: String,
        /// Why, and what to write.
        reason: String,
    },
}
