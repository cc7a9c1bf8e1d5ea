//! Client assertions for certificate credentials: an RS256 JWT signed with ring.
//!
//! `azure_identity` 1.0 has a `ClientCertificateCredential` only behind its `openssl` feature;
//! this module builds the same assertion (RFC 7523, as Azure AD documents for certificate
//! credentials) and hands it to `ClientAssertionCredential`:
//!
//! - header `{"alg":"RS256","typ":"JWT","x5t":<base64url SHA-1 of the DER certificate>,
//!   "x5t#S256":<base64url SHA-256 of it>}`;
//! - claims `aud` = the token endpoint (`{authority}/{tenant}/oauth2/v2.0/token`), `iss` =
//!   `sub` = the client ID, a random `jti`, `nbf` = `iat` = now, `exp` = now + 10 minutes.
//!
//! A new assertion is signed for every token request.

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::pem::{self, PemObject as _};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::AuthError;

/// The PEM label of a PKCS#8 encrypted key.
const ENCRYPTED_KEY_LABEL: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";

/// How long an assertion is valid.
const ASSERTION_LIFETIME_SECS: u64 = 600;

/// A client certificate and its RSA private key, read from a PEM file.
pub struct ClientCertificate {
    cert_der: Vec<u8>,
    key: RsaKeyPair,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t", &self.thumbprint_sha1())
            .field("key", &"[redacted]")
            .finish()
    }
}

impl ClientCertificate {
    /// Reads a PEM file holding one `CERTIFICATE` (the first is used when there are several)
    /// and an unencrypted RSA `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1).
    pub fn from_pem_file(path: &Path) -> Result<Self, AuthError> {
        let text = Zeroizing::new(std::fs::read(path).map_err(|e| AuthError::AzureConfig {
            reason: format!("cannot read the client certificate {}: {e}", path.display()),
        })?);
        Self::from_pem(&text).map_err(|reason| AuthError::AzureConfig {
            reason: format!("the client certificate {}: {reason}", path.display()),
        })
    }

    /// Parses PEM text (see [`ClientCertificate::from_pem_file`]) with `rustls-pki-types`;
    /// the error says what is missing, never a key byte.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        if std::str::from_utf8(pem).is_err() {
            return Err(
                "is not a PEM text file (PKCS#12/PFX files are not supported: convert to PEM)"
                    .to_owned(),
            );
        }
        let invalid = |e: pem::Error| format!("is not valid PEM ({e})");
        let cert_der = match CertificateDer::from_pem_slice(pem) {
            Ok(cert) => cert.as_ref().to_vec(),
            Err(pem::Error::NoItemsFound) => return Err("holds no CERTIFICATE block".to_owned()),
            Err(e) => return Err(invalid(e)),
        };
        // The PEM reader skips blocks it has no type for, encrypted keys among them.
        if pem
            .windows(ENCRYPTED_KEY_LABEL.len())
            .any(|w| w == ENCRYPTED_KEY_LABEL)
        {
            return Err("its private key is encrypted, which is not supported: \
                        export it unencrypted (openssl pkcs8 -nocrypt)"
                .to_owned());
        }
        let key = match PrivateKeyDer::from_pem_slice(pem).map(Zeroizing::new) {
            Ok(key) => match &*key {
                PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der())
                    .map_err(|e| format!("its PRIVATE KEY is not a usable RSA key ({e})"))?,
                PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der())
                    .map_err(|e| format!("its RSA PRIVATE KEY is not usable ({e})"))?,
                _ => return Err("its private key is not an RSA key".to_owned()),
            },
            Err(pem::Error::NoItemsFound) => {
                return Err("holds no PRIVATE KEY or RSA PRIVATE KEY block".to_owned());
            }
            Err(e) => return Err(invalid(e)),
        };
        Ok(Self { cert_der, key })
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// `x5t`: base64url (unpadded) SHA-1 of the DER certificate, as Azure AD identifies a
    /// registered certificate.
    pub fn thumbprint_sha1(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.cert_der);
        URL_SAFE_NO_PAD.encode(d.as_ref())
    }

    /// `x5t#S256`: base64url (unpadded) SHA-256 of the DER certificate.
    pub fn thumbprint_sha256(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.cert_der);
        URL_SAFE_NO_PAD.encode(d.as_ref())
    }

    /// Signs an assertion for `client_id` addressed to `audience` (the token endpoint URL).
    pub fn sign_assertion(&self, client_id: &str, audience: &str) -> Result<String, String> {
        let rng = SystemRandom::new();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the system clock is before 1970".to_owned())?
            .as_secs();
        let mut jti = [0u8; 16];
        rng.fill(&mut jti)
            .map_err(|_| "no randomness available".to_owned())?;
        let header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": self.thumbprint_sha1(),
            "x5t#S256": self.thumbprint_sha256(),
        });
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
            .map_err(|_| "RSA signing failed".to_owned())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The [`ClientAssertion`] of a certificate credential: a fresh signed JWT per request.
pub(crate) struct CertificateAssertion {
    pub(crate) certificate: ClientCertificate,
    pub(crate) client_id: String,
    pub(crate) audience: String,
}

impl fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .field("certificate", &self.certificate)
            .finish()
    }
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        self.certificate
            .sign_assertion(&self.client_id, &self.audience)
            .map_err(|e| {
                azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pem_is_explained() {
        let err = ClientCertificate::from_pem(b"-----BEGIN CERTIFICATE-----\nAA==\n").unwrap_err();
        assert!(err.contains("not valid PEM"), "{err}");
        let err = ClientCertificate::from_pem(
            b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----",
        )
        .unwrap_err();
        assert!(err.contains("not valid PEM"), "{err}");
        let err = ClientCertificate::from_pem(b"junk only").unwrap_err();
        assert!(err.contains("no CERTIFICATE"), "{err}");
    }

    #[test]
    fn missing_parts_are_explained() {
        let cert_only = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
        let err = ClientCertificate::from_pem(cert_only.as_bytes()).unwrap_err();
        assert!(err.contains("no PRIVATE KEY"), "{err}");
        let encrypted = format!(
            "{cert_only}-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAEC\n-----END ENCRYPTED PRIVATE KEY-----\n"
        );
        let err = ClientCertificate::from_pem(encrypted.as_bytes()).unwrap_err();
        assert!(err.contains("encrypted"), "{err}");
        let err = ClientCertificate::from_pem(b"\x30\x82\xff\xfe").unwrap_err();
        assert!(err.contains("PKCS#12"), "{err}");
        let bad_key =
            format!("{cert_only}-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----\n");
        let err = ClientCertificate::from_pem(bad_key.as_bytes()).unwrap_err();
        assert!(err.contains("not a usable RSA key"), "{err}");
    }
}
