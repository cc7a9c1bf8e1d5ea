//! Registry transport and copy engine (being written; see the crate README).
#![deny(missing_docs)]
