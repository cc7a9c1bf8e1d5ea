//! The command-line definition of the `acr` binary, as a library so that tooling (the man
//! page generator in `xtask`) can render it, and how errors are shown ([`report`], shared
//! with `xtask`). The binary itself is `src/main.rs`.
#![deny(missing_docs)]

// The doc comments of `args` are clap's help text, written in usage syntax (`host[:port]`,
// `repo[:tag|@digest]`), not rustdoc links; clap derives documentation for every item.
#[allow(missing_docs, rustdoc::broken_intra_doc_links)]
pub mod args;

pub mod report;
