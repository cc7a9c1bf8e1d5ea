//! Image reference grammar and normalization (being written; see the crate README).
#![deny(missing_docs)]
