//! Signing and verifying ES256 JWTs as distribution's token auth expects them.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use serde_json::json;

use super::Access;
use crate::util::{hex, unix_now};

/// How long before `iat` the `nbf` claim is placed, to absorb clock skew.
const NBF_SLACK_SECS: i64 = 5;

struct IssuerInner {
    issuer: String,
    service: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    cert_der: Vec<u8>,
    cert_pem: String,
}

/// Signs ES256 JWTs that distribution 2.8 accepts.
///
/// Holds an ECDSA P-256 key and a self-signed certificate for it (made with
/// rcgen). The registry trusts the certificate through its `rootcertbundle`
/// (see [`TokenIssuer::root_cert_pem`]) and every token names it in `x5c`.
/// Cheap to clone (shared inside).
#[derive(Clone)]
pub struct TokenIssuer {
    inner: Arc<IssuerInner>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.inner.issuer)
            .field("service", &self.inner.service)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// A new key and certificate. `issuer` becomes the `iss` claim (and must
    /// equal the registry's `auth.token.issuer`); `service` becomes `aud`
    /// (and must equal `auth.token.service`).
    pub fn new(issuer: &str, service: &str) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("cannot generate an ECDSA P-256 key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| anyhow::anyhow!("cannot load the generated key: {e}"))?;
        let rc_key = rcgen::KeyPair::try_from(pkcs8.as_ref()).context("rcgen cannot load key")?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{issuer} token signer"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        let cert = params.self_signed(&rc_key).context("cannot self-sign")?;
        Ok(Self {
            inner: Arc::new(IssuerInner {
                issuer: issuer.to_string(),
                service: service.to_string(),
                key,
                rng,
                cert_der: cert.der().to_vec(),
                cert_pem: cert.pem(),
            }),
        })
    }

    /// The `iss` claim of every token.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The service name, used as the `aud` claim.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// PEM of the signing certificate: the registry's `rootcertbundle`.
    pub fn root_cert_pem(&self) -> &str {
        &self.inner.cert_pem
    }

    /// DER of the signing certificate (what `x5c` carries, base64).
    pub fn cert_der(&self) -> &[u8] {
        &self.inner.cert_der
    }

    /// The uncompressed P-256 public key (65 bytes, `04 || X || Y`).
    pub fn public_key(&self) -> &[u8] {
        self.inner.key.public_key().as_ref()
    }

    /// Writes [`Self::root_cert_pem`] to `path`.
    pub fn write_root_cert_bundle(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.root_cert_pem())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The standard claim set for `subject` (empty string for anonymous)
    /// with `access`, valid from now for `lifetime`. Modify it and pass it
    /// to [`Self::sign_claims`] for unusual tokens (expired, extra claims).
    pub fn claims(
        &self,
        subject: &str,
        access: &[Access],
        lifetime: Duration,
    ) -> serde_json::Value {
        let now = unix_now();
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        json!({
            "iss": self.inner.issuer,
            "sub": subject,
            "aud": self.inner.service,
            "exp": now.saturating_add(lifetime),
            "nbf": now - NBF_SLACK_SECS,
            "iat": now,
            "jti": self.random_hex(16),
            "access": access,
        })
    }

    /// Signs the standard claims (see [`Self::claims`]) as an ES256 JWT.
    pub fn sign(
        &self,
        subject: &str,
        access: &[Access],
        lifetime: Duration,
    ) -> anyhow::Result<String> {
        self.sign_claims(&self.claims(subject, access, lifetime))
    }

    /// Signs an arbitrary claim set as an ES256 JWT whose header is
    /// `{"typ":"JWT","alg":"ES256","x5c":[<base64 DER of the certificate>]}`.
    pub fn sign_claims(&self, claims: &serde_json::Value) -> anyhow::Result<String> {
        let header = json!({
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [STANDARD.encode(&self.inner.cert_der)],
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
        );
        let sig = self
            .inner
            .key
            .sign(&self.inner.rng, signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("ECDSA signing failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        ))
    }

    /// Checks a JWT's ES256 signature against this issuer's key and its
    /// `exp` (no leeway), returning the claims.
    pub fn verify(&self, token: &str) -> anyhow::Result<serde_json::Value> {
        let claims = self.verify_signature(token)?;
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .context("token has no numeric exp")?;
        anyhow::ensure!(exp >= unix_now(), "token expired at {exp}");
        Ok(claims)
    }

    /// Checks only the signature (not `exp`), returning the claims.
    pub fn verify_signature(&self, token: &str) -> anyhow::Result<serde_json::Value> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            anyhow::bail!("a JWT has three dot-separated parts");
        };
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .context("signature is not base64url")?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.public_key())
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| anyhow::anyhow!("bad token signature"))?;
        let claims = URL_SAFE_NO_PAD
            .decode(c)
            .context("claims are not base64url")?;
        Ok(serde_json::from_slice(&claims)?)
    }

    /// `n` random bytes, hex encoded (for `jti` and refresh tokens).
    pub fn random_hex(&self, n: usize) -> String {
        let mut buf = vec![0u8; n];
        // SystemRandom only fails if the OS has no randomness at all.
        self.inner.rng.fill(&mut buf).unwrap_or_default();
        hex(&buf)
    }
}

/// Decodes a JWT's claims without verifying anything (for assertions).
pub fn decode_claims_unverified(token: &str) -> anyhow::Result<serde_json::Value> {
    let claims = token.split('.').nth(1).context("not a JWT")?;
    let claims = URL_SAFE_NO_PAD
        .decode(claims)
        .context("claims are not base64url")?;
    Ok(serde_json::from_slice(&claims)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let issuer = TokenIssuer::new("iss", "svc").expect("issuer");
        let token = issuer
            .sign(
                "alice",
                &[Access::repository("a", &["pull"])],
                Duration::from_secs(60),
            )
            .expect("sign");
        let claims = issuer.verify(&token).expect("verify");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["aud"], "svc");
        assert_eq!(claims["access"][0]["name"], "a");
        let mut tampered = token.clone();
        tampered.push('A');
        assert!(issuer.verify(&tampered).is_err());
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().expect("header"))
            .expect("b64");
        let header: serde_json::Value = serde_json::from_slice(&header).expect("json");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(
            STANDARD
                .decode(header["x5c"][0].as_str().expect("x5c"))
                .expect("der"),
            issuer.cert_der()
        );
    }
}
