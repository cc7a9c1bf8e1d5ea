//! Client certificates for tests: what a service principal registers.

use super::*;

/// A self-signed client certificate with an RSA key, as a service principal would register.
///
/// ring cannot generate RSA keys, so two fixed throw-away test keys are used
/// (`src/testdata/`); the certificate is made fresh each time.
#[derive(Clone)]
pub struct TestClientCertificate {
    cert_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

impl fmt::Debug for TestClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClientCertificate")
            .field("x5t", &self.thumbprint_sha1())
            .finish_non_exhaustive()
    }
}

impl TestClientCertificate {
    /// A certificate for `common_name` with the first test key.
    pub fn generate(common_name: &str) -> anyhow::Result<Self> {
        Self::with_key(common_name, TEST_RSA_KEY_1)
    }

    /// A certificate with the second test key (to present a key other than the registered
    /// one).
    pub fn generate_with_other_key(common_name: &str) -> anyhow::Result<Self> {
        Self::with_key(common_name, TEST_RSA_KEY_2)
    }

    fn with_key(common_name: &str, key_pem: &str) -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(key_pem, &rcgen::PKCS_RSA_SHA256)
            .context("loading the test RSA key")?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&key).context("self-signing")?;
        Ok(Self {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key_pem.to_string(),
        })
    }

    /// DER of the certificate (what [`AadEmulatorBuilder::client_certificate`] registers).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificate then the private key, PEM (what `AZURE_CLIENT_CERTIFICATE_PATH` names).
    pub fn pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }

    /// Writes [`Self::pem`] to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.pem()).with_context(|| format!("writing {}", path.display()))
    }

    /// base64url SHA-1 of the DER (`x5t`).
    pub fn thumbprint_sha1(&self) -> String {
        URL_SAFE_NO_PAD.encode(
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.cert_der).as_ref(),
        )
    }
}

/// One DER TLV: tag, contents, rest.
pub(super) fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The RSAPublicKey (PKCS#1 DER) inside an X.509 certificate, if its key is RSA.
pub(super) fn rsa_public_key_of(cert_der: &[u8]) -> Option<Vec<u8>> {
    const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (0x30, cert, _) = der_next(cert_der)? else {
        return None;
    };
    let (0x30, tbs, _) = der_next(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after) = der_next(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = der_next(rest)?.2;
    }
    let (0x30, spki, _) = der_next(rest)? else {
        return None;
    };
    let (0x30, alg, after) = der_next(spki)? else {
        return None;
    };
    let (0x06, oid, _) = der_next(alg)? else {
        return None;
    };
    if oid != RSA_OID {
        return None;
    }
    let (0x03, bits, _) = der_next(after)? else {
        return None;
    };
    let (&unused, key) = bits.split_first()?;
    (unused == 0).then(|| key.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_key_is_found_in_a_certificate() {
        let cert = TestClientCertificate::generate("test-app").expect("cert");
        let key = rsa_public_key_of(cert.cert_der()).expect("rsa key");
        // RSAPublicKey ::= SEQUENCE { modulus, exponent }
        assert_eq!(key[0], 0x30);
        assert!(key.len() > 256);
        let other = TestClientCertificate::generate_with_other_key("x").expect("cert");
        assert_ne!(rsa_public_key_of(other.cert_der()).expect("rsa"), key);
        let ec_issuer = crate::TokenIssuer::new("a", "b").expect("issuer");
        assert!(rsa_public_key_of(ec_issuer.cert_der()).is_none());
        assert!(rsa_public_key_of(b"\x30\x03\x02\x01").is_none());
    }
}
