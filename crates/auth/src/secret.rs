//! A string that must never be printed.

use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};

/// A password, token or other credential material.
///
/// A [`secrecy::SecretString`] inside: `Debug` prints `Secret([redacted])`, the memory is
/// zeroed on drop, and there is no `Display`, so a secret cannot end up in a message by
/// accident:
///
/// ```compile_fail
/// let password = acr_import_auth::Secret::new("hunter2");
/// let message = format!("logging in with {password}");
/// ```
///
/// The only way to read the value is [`Secret::expose`], which keeps every use greppable.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The value itself. Call it only where the value goes on the wire.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_and_expose_reads() {
        let s = Secret::new("hunter2-password");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(Secret([redacted]))");
        assert_eq!(s.expose(), "hunter2-password");
        assert_eq!(s, Secret::from("hunter2-password"));
        assert!(Secret::new("").is_empty());
    }
}
