//! The command-line definition of the `acr` binary, as a library so that tooling (the man
//! page generator in `xtask`) can render it. The binary itself is `src/main.rs`.
#![deny(missing_docs)]

#[allow(missing_docs)]
pub mod args;
