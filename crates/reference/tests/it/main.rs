//! Integration tests of acr-import-reference: one binary, one module per subject.

mod other_forms;
mod parts;
mod properties;
mod reference_table;

/// A valid sha256 hex string (the digest of the empty string).
macro_rules! h256 {
    () => {
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    };
}

/// The same hex string in uppercase.
macro_rules! h256_upper {
    () => {
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
    };
}

/// A valid sha512 hex string (the digest of the empty string).
macro_rules! h512 {
    () => {
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
    };
}

pub(crate) use {h256, h256_upper, h512};
