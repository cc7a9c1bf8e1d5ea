//! Tags: `[\w][\w.-]{0,127}`.

use std::fmt;
use std::str::FromStr;

use crate::error::ReferenceError;

/// The longest tag the grammar allows.
const MAX_TAG_LEN: usize = 128;

/// A validated tag such as `latest`, `1.25-alpine` or `8.0`.
///
/// A tag is one to 128 ASCII characters: a letter, digit or `_`, then letters, digits, `_`, `.`
/// or `-`. Unlike repository names, tags may contain uppercase letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// The tag `latest`, which Docker normalization adds when a reference has neither a tag nor
    /// a digest.
    pub fn latest() -> Self {
        Tag("latest".to_owned())
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a string the caller has already proven valid.
    pub(crate) fn from_valid(text: String) -> Self {
        debug_assert!(Tag::parse_at(&text, 0).is_ok());
        Tag(text)
    }

    /// Parses a tag that starts at byte `base` of a larger input.
    pub(crate) fn parse_at(text: &str, base: usize) -> Result<Self, ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError::EmptyTag { position: base });
        }
        for (i, character) in text.char_indices() {
            let allowed = if i == 0 {
                character.is_ascii_alphanumeric() || character == '_'
            } else {
                character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | '-')
            };
            if !allowed {
                return Err(ReferenceError::InvalidTag {
                    position: base + i,
                    character,
                    tag: text.to_owned(),
                });
            }
        }
        if text.len() > MAX_TAG_LEN {
            return Err(ReferenceError::TagTooLong {
                position: base,
                length: text.len(),
            });
        }
        Ok(Tag(text.to_owned()))
    }
}

/// What names a manifest in a repository: a [`Tag`] or a [`Digest`](crate::Digest).
///
/// ```
/// use acr_import_reference::TagOrDigest;
///
/// let tag: TagOrDigest = "1.25-alpine".parse()?;
/// assert!(matches!(tag, TagOrDigest::Tag(_)));
/// assert_eq!(tag.as_str(), "1.25-alpine");
/// let pinned: TagOrDigest =
///     "sha256:0000000000000000000000000000000000000000000000000000000000000001".parse()?;
/// assert!(pinned.digest().is_some());
/// assert!("not a tag!".parse::<TagOrDigest>().is_err());
/// # Ok::<(), acr_import_reference::ReferenceError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TagOrDigest {
    /// By tag.
    Tag(Tag),
    /// By digest.
    Digest(crate::Digest),
}

impl TagOrDigest {
    /// What a reference written with `tag` and `digest` selects: the digest when there is
    /// one (it wins over a tag), else the tag, else `latest`.
    pub fn selecting(tag: Option<&Tag>, digest: Option<&crate::Digest>) -> TagOrDigest {
        match (digest, tag) {
            (Some(digest), _) => TagOrDigest::Digest(digest.clone()),
            (None, Some(tag)) => TagOrDigest::Tag(tag.clone()),
            (None, None) => TagOrDigest::Tag(Tag::latest()),
        }
    }

    /// The digest, when it names one.
    pub fn digest(&self) -> Option<&crate::Digest> {
        match self {
            TagOrDigest::Digest(d) => Some(d),
            TagOrDigest::Tag(_) => None,
        }
    }

    /// The tag, when it names one.
    pub fn tag(&self) -> Option<&Tag> {
        match self {
            TagOrDigest::Tag(t) => Some(t),
            TagOrDigest::Digest(_) => None,
        }
    }

    /// The tag or digest as written (what goes into a `/manifests/<reference>` URL).
    pub fn as_str(&self) -> &str {
        match self {
            TagOrDigest::Tag(t) => t.as_str(),
            TagOrDigest::Digest(d) => d.as_str(),
        }
    }
}

impl FromStr for TagOrDigest {
    type Err = ReferenceError;

    /// A digest when it has an `algorithm:`, a tag otherwise (tags have no `:`).
    fn from_str(s: &str) -> Result<Self, ReferenceError> {
        if s.contains(':') {
            s.parse().map(TagOrDigest::Digest)
        } else {
            s.parse().map(TagOrDigest::Tag)
        }
    }
}

impl fmt::Display for TagOrDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagOrDigest::Tag(t) => t.fmt(f),
            TagOrDigest::Digest(d) => d.fmt(f),
        }
    }
}

impl From<Tag> for TagOrDigest {
    fn from(t: Tag) -> Self {
        TagOrDigest::Tag(t)
    }
}

impl From<crate::Digest> for TagOrDigest {
    fn from(d: crate::Digest) -> Self {
        TagOrDigest::Digest(d)
    }
}

/// A tag that names a manifest by its digest: the referrers fallback tag `sha256-<hex>`, or a
/// digest tag `sha256-<hex>.<suffix>` such as cosign's `.sig`, `.att` and `.sbom`. The hex is
/// 64 lowercase digits for `sha256` and for `sha512` alike (the distribution specification
/// truncates longer digests there, and a tag holds at most 128 characters).
///
/// ```
/// use acr_import_reference::DigestTag;
///
/// let hex = "a".repeat(64);
/// let tag = format!("sha256-{hex}.sig");
/// let sig = DigestTag::parse(&tag).unwrap();
/// assert_eq!((sig.algorithm, sig.suffix), ("sha256", Some("sig")));
/// assert!(DigestTag::parse(&format!("sha256-{hex}")).unwrap().suffix.is_none());
/// assert!(DigestTag::parse("1.25-alpine").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestTag<'a> {
    /// `sha256` or `sha512`.
    pub algorithm: &'a str,
    /// The digest's hex (64 digits).
    pub hex: &'a str,
    /// What follows the `.`, if anything.
    pub suffix: Option<&'a str>,
}

impl<'a> DigestTag<'a> {
    /// Reads `tag` as a digest tag; `None` when it is not one.
    pub fn parse(tag: &'a str) -> Option<Self> {
        let (algorithm, rest) = tag.split_once('-')?;
        let (hex, suffix) = match rest.split_once('.') {
            Some((hex, suffix)) => (hex, Some(suffix)),
            None => (rest, None),
        };
        let hex_ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        (matches!(algorithm, "sha256" | "sha512") && hex_ok).then_some(DigestTag {
            algorithm,
            hex,
            suffix,
        })
    }
}

text_type!(Tag, 0, parse_at);
