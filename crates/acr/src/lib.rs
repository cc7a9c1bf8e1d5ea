//! Azure Container Registry specifics: ARM resource IDs, registry lookup, network preflight and
//! the server-side `importImage` operation.
//!
//! This crate has no public API yet: it is filled by the ARM issue. It does no registry I/O of
//! its own; bytes move through `acr-import-transfer`.
#![deny(missing_docs)]
