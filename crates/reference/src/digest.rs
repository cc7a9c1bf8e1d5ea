//! Content digests: `algorithm:encoded`.

use std::fmt;

use crate::error::ReferenceError;
use crate::tag::Tag;

/// The digest algorithms this crate accepts.
///
/// The OCI image specification registers `sha256` and `sha512`; `sha256` is the one every
/// registry supports. Anything else (`sha384`, `blake3`, …) is rejected with
/// [`ReferenceError::UnsupportedDigestAlgorithm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    /// SHA-256: 64 lowercase hex digits.
    Sha256,
    /// SHA-512: 128 lowercase hex digits.
    Sha512,
}

impl DigestAlgorithm {
    /// The algorithm's name as written in a digest: `sha256` or `sha512`.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// How many hex digits the encoded part has: 64 or 128.
    pub fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(DigestAlgorithm::Sha256),
            "sha512" => Some(DigestAlgorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated content digest such as `sha256:e3b0c442…`.
///
/// The only ways in are [`FromStr`], [`Digest::new`] and [`Digest::sha256_from_hex`]; all of
/// them check the algorithm (`sha256` or `sha512`), the length and that the hex is lowercase.
///
/// ```
/// use acr_import_reference::{Digest, DigestAlgorithm};
///
/// let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// let digest: Digest = format!("sha256:{hex}").parse()?;
/// assert_eq!(digest.algorithm(), DigestAlgorithm::Sha256);
/// assert_eq!(digest.encoded(), hex);
/// assert_eq!(digest.referrers_tag().as_str(), format!("sha256-{hex}"));
/// # Ok::<(), acr_import_reference::ReferenceError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    /// The whole digest, `algorithm:encoded`.
    text: String,
}

impl Digest {
    /// Builds a digest from an algorithm and its lowercase hex encoding.
    pub fn new(algorithm: DigestAlgorithm, hex: &str) -> Result<Self, ReferenceError> {
        check_encoded(algorithm, hex, 0)?;
        Ok(Digest {
            algorithm,
            text: format!("{algorithm}:{hex}"),
        })
    }

    /// Builds a `sha256` digest from 64 lowercase hex digits.
    pub fn sha256_from_hex(hex: &str) -> Result<Self, ReferenceError> {
        Digest::new(DigestAlgorithm::Sha256, hex)
    }

    /// Builds a `sha512` digest from 128 lowercase hex digits.
    pub fn sha512_from_hex(hex: &str) -> Result<Self, ReferenceError> {
        Digest::new(DigestAlgorithm::Sha512, hex)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The encoded part: lowercase hex, without the `algorithm:` prefix.
    pub fn encoded(&self) -> &str {
        &self.text[self.algorithm.as_str().len() + 1..]
    }

    /// The whole digest, `algorithm:encoded`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The tag under which the OCI referrers tag schema stores this digest's referrers index,
    /// for registries without the referrers API: `<alg>-<encoded>`, with the encoded part cut
    /// to its first 64 characters as the distribution specification limits it (so a `sha512`
    /// digest gives `sha512-` and 64 hex digits).
    pub fn referrers_tag(&self) -> Tag {
        let encoded = self.encoded();
        let cut = &encoded[..encoded.len().min(64)];
        Tag::from_valid(format!("{}-{cut}", self.algorithm))
    }

    /// Parses a digest that starts at byte `base` of a larger input, so error positions point
    /// into that input.
    pub(crate) fn parse_at(text: &str, base: usize) -> Result<Self, ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError::EmptyDigest { position: base });
        }
        let malformed = || ReferenceError::MalformedDigest {
            position: base,
            digest: text.to_owned(),
        };
        let Some((algorithm, encoded)) = text.split_once(':') else {
            return Err(malformed());
        };
        if !is_algorithm_syntax(algorithm) {
            return Err(malformed());
        }
        let Some(alg) = DigestAlgorithm::from_name(algorithm) else {
            return Err(ReferenceError::UnsupportedDigestAlgorithm {
                position: base,
                algorithm: algorithm.to_owned(),
            });
        };
        check_encoded(alg, encoded, base + algorithm.len() + 1)?;
        Ok(Digest {
            algorithm: alg,
            text: text.to_owned(),
        })
    }
}

/// The algorithm grammar shared by the distribution reference grammar and the OCI image
/// specification, case-insensitively: components of letters and digits starting with a letter,
/// joined by `+`, `.`, `_` or `-`. Anything matching it is a digest with an algorithm we may not
/// support; anything else is not a digest at all.
pub(crate) fn is_algorithm_syntax(algorithm: &str) -> bool {
    !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|component| {
            let mut chars = component.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric())
        })
}

/// Checks the encoded part of a digest; `base` is its byte offset in the input.
fn check_encoded(
    algorithm: DigestAlgorithm,
    encoded: &str,
    base: usize,
) -> Result<(), ReferenceError> {
    if let Some((i, character)) = encoded
        .char_indices()
        .find(|&(_, c)| !c.is_ascii_hexdigit())
    {
        return Err(ReferenceError::InvalidDigestCharacter {
            position: base + i,
            character,
        });
    }
    if encoded.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::DigestUppercase {
            position: base,
            encoded: encoded.to_owned(),
            suggestion: encoded.to_ascii_lowercase(),
        });
    }
    if encoded.len() != algorithm.hex_len() {
        return Err(ReferenceError::DigestLength {
            position: base,
            algorithm,
            expected: algorithm.hex_len(),
            found: encoded.len(),
        });
    }
    Ok(())
}

text_type!(Digest, text, parse_at);
