//! Integration tests of the ACR crate (one binary, modules by concern): the metadata API
//! against real registries (see `acr-import-testsupport`), the tag filters' properties.

mod filter_properties;
mod metadata;
