//! Integration tests of the ACR crate against real registries (see `acr-import-testsupport`).

mod metadata;
