//! The registry credential chain (being written; see the crate README).
#![deny(missing_docs)]
