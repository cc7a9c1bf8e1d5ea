//! Mirroring at scale: many repositories and tags in one run, from a mirror file.
//!
//! - [`MirrorFile`]: the file `acr import --from-file` reads — single-image entries and
//!   repository entries with [`TagFilter`]s.
//! - [`TagFilter`]: which tags of a repository an entry copies (version ranges, regular
//!   expressions, `latest: N`), with [`parse_version`]'s lenient reading of tags.
//! - [`Shard`]: the I-th of N disjoint parts of a plan, by a stable hash of each target tag.

mod file;
mod filter;
mod shard;

pub use file::{EntryOptions, ImageEntry, MirrorEntry, MirrorFile, RepositoryEntry};
pub use filter::{TagFilter, TagRules, VersionRange, parse_version};
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
