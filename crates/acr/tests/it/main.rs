//! Integration tests of acr-import-acr (one binary, modules by concern).

mod filter_properties;
