//! OCI image-layout references (`oci:PATH[:TAG][@DIGEST]`) and the enum that takes either kind.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::digest::{Digest, is_algorithm_syntax};
use crate::error::ReferenceError;
use crate::reference::{Reference, write_suffix};
use crate::tag::{Tag, TagOrDigest};

/// The prefix that marks an OCI image-layout reference.
const OCI_PREFIX: &str = "oci:";

/// A reference to an image in an OCI image layout on disk: `oci:PATH[:TAG][@DIGEST]`, such as
/// `oci:./layout`, `oci:/srv/images:v1` or `oci:layout@sha256:…`.
///
/// The syntax follows skopeo's `oci:` transport (containers-transports(5)): the path ends at its
/// first `:`, so it cannot contain one, and what follows the `:` names the image. Two
/// differences:
///
/// - The image name must be a valid [`Tag`] (skopeo accepts any OCI `ref.name` annotation).
/// - A digest may follow the last `@`, when what follows it reads as `algorithm:…`; a digest
///   that reads like one but is invalid is reported, not taken as part of the path.
///
/// A Windows path starting with a drive (`C:\…` or `C:/…`) keeps its drive colon, as skopeo
/// does on Windows; this crate does it on every platform so that parsing does not depend on
/// where it runs. The path is not checked against the file system (this crate does no I/O).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciLayoutReference {
    path: String,
    tag: Option<Tag>,
    digest: Option<Digest>,
}

impl OciLayoutReference {
    /// The layout directory, absolute or relative as written.
    pub fn path(&self) -> &Path {
        Path::new(&self.path)
    }

    /// The tag (the image's `org.opencontainers.image.ref.name`), if one was written.
    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// The digest, if one was written.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to read from the layout: the digest if there is one, else the tag, else
    /// `latest`, as for [`Reference::manifest_reference`].
    pub fn manifest_reference(&self) -> TagOrDigest {
        TagOrDigest::selecting(self.tag(), self.digest())
    }
}

/// Whether `text` starts with a Windows drive, `X:\` or `X:/`.
fn starts_with_drive(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 3
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
        && matches!(bytes[2], b'\\' | b'/')
}

impl FromStr for OciLayoutReference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix(OCI_PREFIX)
            .ok_or(ReferenceError::NotOciLayout)?;
        let base = OCI_PREFIX.len();
        let (before, digest) = match rest.rfind('@') {
            Some(at)
                if rest[at + 1..]
                    .split_once(':')
                    .is_some_and(|(algorithm, _)| is_algorithm_syntax(algorithm)) =>
            {
                (&rest[..at], Some((base + at + 1, &rest[at + 1..])))
            }
            _ => (rest, None),
        };
        let search_from = if starts_with_drive(before) { 2 } else { 0 };
        let (path, tag) = match before[search_from..].find(':') {
            Some(i) => {
                let colon = search_from + i;
                (
                    &before[..colon],
                    Some((base + colon + 1, &before[colon + 1..])),
                )
            }
            None => (before, None),
        };
        if path.is_empty() {
            return Err(ReferenceError::MissingLayoutPath { position: base });
        }
        let tag = tag
            .map(|(position, text)| Tag::parse_at(text, position))
            .transpose()?;
        let digest = digest
            .map(|(position, text)| Digest::parse_at(text, position))
            .transpose()?;
        Ok(OciLayoutReference {
            path: path.to_owned(),
            tag,
            digest,
        })
    }
}

impl fmt::Display for OciLayoutReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = format!("{OCI_PREFIX}{}", self.path);
        write_suffix(&mut out, self.tag.as_ref(), self.digest.as_ref());
        f.write_str(&out)
    }
}

/// Either a registry reference or an OCI image-layout reference, as a command line takes an
/// image: input starting with `oci:` is a layout, anything else a registry reference.
///
/// A Docker Hub image named `oci` must therefore be written with its domain
/// (`docker.io/library/oci:1.0`), since `oci:1.0` is the layout directory `1.0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnyReference {
    /// An image in a registry.
    Registry(Reference),
    /// An image in an OCI image layout on disk.
    OciLayout(OciLayoutReference),
}

impl FromStr for AnyReference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with(OCI_PREFIX) {
            s.parse().map(AnyReference::OciLayout)
        } else {
            s.parse().map(AnyReference::Registry)
        }
    }
}

impl fmt::Display for AnyReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyReference::Registry(reference) => reference.fmt(f),
            AnyReference::OciLayout(reference) => reference.fmt(f),
        }
    }
}

impl From<Reference> for AnyReference {
    fn from(reference: Reference) -> Self {
        AnyReference::Registry(reference)
    }
}

impl From<OciLayoutReference> for AnyReference {
    fn from(reference: OciLayoutReference) -> Self {
        AnyReference::OciLayout(reference)
    }
}
