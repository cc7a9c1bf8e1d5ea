//! End-to-end tests across the acr-import crates live in `tests/it/`; this library is empty.
#![deny(missing_docs)]
