//! Registry references: `[domain/]path[:tag][@digest]`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::docker_hub::{self, DOMAIN as DOCKER_HUB};
use crate::domain::{Domain, looks_like_domain};
use crate::error::ReferenceError;
use crate::repository::{Repository, check_name_len};
use crate::repository_reference::RepositoryReference;
use crate::tag::{Tag, TagOrDigest};

/// The namespace Docker Hub keeps its official images in.
const OFFICIAL_PREFIX: &str = "library/";

/// A validated image reference in a registry: `[domain/]path[:tag][@digest]`, as Docker,
/// containerd, skopeo and ACR accept it.
///
/// # Grammar
///
/// The grammar is the distribution project's:
///
/// ```text
/// reference      := name [ ":" tag ] [ "@" digest ]
/// name           := [ domain "/" ] path             (at most 255 bytes)
/// domain         := host [ ":" port ]
/// host           := domain-name | IPv4 address | "[" IPv6 address "]"
/// path           := path-component [ "/" path-component ]*
/// path-component := [a-z0-9]+ ( separator [a-z0-9]+ )*
/// separator      := "." | "_" | "__" | "-"+
/// tag            := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
/// digest         := ( "sha256" ":" 64 lowercase hex ) | ( "sha512" ":" 128 lowercase hex )
/// ```
///
/// Whether the text before the first `/` is a domain follows Docker (distribution's
/// `splitDockerDomain`, version 2.8 and later): it is a domain when it contains `.` or `:`, is
/// `localhost`, or contains an uppercase letter. So `localhost/app` and `myreg.azurecr.io/app`
/// name registries, while `bitnami/redis` is the Docker Hub repository `bitnami/redis`, and
/// `MyHost/app` names the registry `MyHost`.
///
/// When both a tag and a digest are given (`name:tag@sha256:…`), the digest selects the image
/// ([`Reference::manifest_reference`]) and the tag is kept for display.
///
/// # Written form and normalized form
///
/// A `Reference` remembers what was written: [`Display`](fmt::Display) prints it back unchanged
/// and `domain()` is `None` for `nginx`. [`Reference::normalized`] returns the fully qualified
/// form (`docker.io/library/nginx:latest`) and [`Reference::familiar`] the short one (`nginx`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: Option<Domain>,
    /// The repository, tag and digest: everything but the domain.
    path: RepositoryReference,
}

/// The result of [`Reference::normalization`]: the normalized reference and what normalization
/// changed, so a caller can tell the user (for example that `docker.io/nats` means
/// `docker.io/library/nats`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Normalization {
    /// The normalized reference.
    pub reference: Reference,
    /// `docker.io` was added because no domain was written.
    pub added_domain: bool,
    /// A Docker Hub alias (`index.docker.io`, `registry-1.docker.io`,
    /// `registry.hub.docker.com`) was rewritten to `docker.io`.
    pub canonicalized_domain: bool,
    /// `library/` was put in front of a one-component Docker Hub repository.
    pub added_library: bool,
    /// The tag `latest` was added because neither a tag nor a digest was written.
    pub added_latest_tag: bool,
}

impl Reference {
    /// The domain as written, or `None` when none was written (Docker Hub is then meant).
    pub fn domain(&self) -> Option<&Domain> {
        self.domain.as_ref()
    }

    /// The repository path as written (`nginx`, not `library/nginx`; see [`Reference::normalized`]).
    pub fn repository(&self) -> &Repository {
        self.path.repository()
    }

    /// The tag, if one was written.
    pub fn tag(&self) -> Option<&Tag> {
        self.path.tag()
    }

    /// The digest, if one was written.
    pub fn digest(&self) -> Option<&Digest> {
        self.path.digest()
    }

    /// What to ask the registry's manifest endpoint for: the digest if there is one (it wins
    /// over a tag), else the tag, else `latest`.
    pub fn manifest_reference(&self) -> TagOrDigest {
        TagOrDigest::selecting(self.tag(), self.digest())
    }

    /// The `host[:port]` that serves this reference's registry API: `registry-1.docker.io` for
    /// Docker Hub (written or implied), the domain itself otherwise.
    pub fn api_host(&self) -> &str {
        match &self.domain {
            Some(domain) => domain.api_host(),
            None => docker_hub::API_HOST,
        }
    }

    /// The same reference with `tag` as its tag (a digest is kept).
    pub fn with_tag(&self, tag: Tag) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.with_tag(tag),
        }
    }

    /// The same reference with `digest` as its digest (a tag is kept).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.with_digest(digest),
        }
    }

    /// The same reference without its digest.
    ///
    /// In the one case where the result written out would read as an image ID (a bare
    /// 64-hex-digit Docker Hub name with no tag), `docker.io/` is written in front, which names
    /// the same repository.
    pub fn without_digest(&self) -> Reference {
        let mut reference = Reference {
            domain: self.domain.clone(),
            path: self.path.without_digest(),
        };
        if reference.domain.is_none()
            && reference.tag().is_none()
            && is_image_id(reference.repository().as_str())
        {
            reference.domain = Some(Domain::docker_hub());
        }
        reference
    }

    /// The repository, tag and digest without the domain, as written: the form ACR's import
    /// API takes as `sourceImage` next to a registry.
    pub fn to_repository_reference(&self) -> RepositoryReference {
        self.path.clone()
    }

    /// The fully qualified form, as Docker normalizes it: `docker.io` when no domain is written,
    /// Docker Hub aliases rewritten to `docker.io`, `library/` in front of a one-component Docker
    /// Hub repository, and the tag `latest` when neither tag nor digest is written.
    ///
    /// Normalizing is idempotent. To learn what it changed, use [`Reference::normalization`].
    pub fn normalized(&self) -> Reference {
        self.normalization().reference
    }

    /// The normalized reference together with what normalization changed.
    pub fn normalization(&self) -> Normalization {
        let (domain, added_domain, canonicalized_domain) = match &self.domain {
            None => (Domain::docker_hub(), true, false),
            Some(domain) if domain.is_docker_hub() => {
                (Domain::docker_hub(), false, domain.as_str() != DOCKER_HUB)
            }
            Some(domain) => (domain.clone(), false, false),
        };
        let added_library =
            domain.as_str() == DOCKER_HUB && !self.repository().as_str().contains('/');
        let repository = if added_library {
            Repository::from_valid(format!("{OFFICIAL_PREFIX}{}", self.repository()))
        } else {
            self.repository().clone()
        };
        let added_latest_tag = self.tag().is_none() && self.digest().is_none();
        let tag = if added_latest_tag {
            Some(Tag::latest())
        } else {
            self.tag().cloned()
        };
        Normalization {
            reference: Reference {
                domain: Some(domain),
                path: RepositoryReference::from_parts(repository, tag, self.digest().cloned()),
            },
            added_domain,
            canonicalized_domain,
            added_library,
            added_latest_tag,
        }
    }

    /// The familiar short form Docker prints: Docker Hub's domain and its `library/` namespace
    /// left out (`nginx`, `nginx:1.25`, `user/app`), every other registry written in full. The
    /// tag and digest are the ones written; no `latest` is added.
    ///
    /// The result parses back to a reference with the same normalized form. Where leaving out
    /// `docker.io/` would change the meaning (`docker.io/my.org/app` would read as the registry
    /// `my.org`), it is kept.
    pub fn familiar(&self) -> String {
        let normalized = self.normalized();
        let domain = normalized
            .domain
            .as_ref()
            .map_or(DOCKER_HUB, Domain::as_str);
        let path = normalized.repository().as_str();
        let mut out = if domain == DOCKER_HUB {
            let short = path
                .strip_prefix(OFFICIAL_PREFIX)
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(path);
            match short.split_once('/') {
                Some((first, _)) if looks_like_domain(first) => format!("{DOCKER_HUB}/{short}"),
                // A bare 64-hex-digit name would read as an image ID.
                None if self.tag().is_none() && self.digest().is_none() && is_image_id(short) => {
                    path.to_owned()
                }
                _ => short.to_owned(),
            }
        } else {
            format!("{domain}/{path}")
        };
        write_suffix(&mut out, self.tag(), self.digest());
        out
    }

    /// Builds a reference from parts already validated, checking only the name length.
    pub(crate) fn from_parts(
        domain: Option<Domain>,
        repository: Repository,
        tag: Option<Tag>,
        digest: Option<Digest>,
    ) -> Result<Reference, ReferenceError> {
        check_name_len(name_len(domain.as_ref(), &repository))?;
        Ok(Reference {
            domain,
            path: RepositoryReference::from_parts(repository, tag, digest),
        })
    }
}

/// The length the 255-byte limit applies to: the name as written or as normalized, whichever is
/// longer, so that normalizing a valid reference always gives a valid one.
pub(crate) fn name_len(domain: Option<&Domain>, repository: &Repository) -> usize {
    let path = repository.as_str();
    let written = domain.map_or(0, |d| d.as_str().len() + 1) + path.len();
    let on_docker_hub = domain.is_none_or(Domain::is_docker_hub);
    if !on_docker_hub {
        return written;
    }
    let library = if path.contains('/') {
        0
    } else {
        OFFICIAL_PREFIX.len()
    };
    written.max(DOCKER_HUB.len() + 1 + library + path.len())
}

/// Whether `text` is 64 lowercase hex digits, which Docker reads as an image ID.
pub(crate) fn is_image_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Rejects a leading URL scheme (`https://`, `docker://`, …).
pub(crate) fn reject_url_scheme(s: &str) -> Result<(), ReferenceError> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Ok(());
    };
    let mut chars = scheme.chars();
    let is_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'));
    if is_scheme {
        return Err(ReferenceError::UrlScheme {
            scheme: scheme.to_owned(),
            suggestion: rest.trim_end_matches('/').to_owned(),
        });
    }
    Ok(())
}

/// The pieces of `name[:tag][@digest]`, each with its byte offset in the input.
pub(crate) struct Split<'a> {
    pub(crate) name: &'a str,
    pub(crate) tag: Option<(usize, &'a str)>,
    pub(crate) digest: Option<(usize, &'a str)>,
}

/// Splits `name[:tag][@digest]`. The digest starts after the first `@` (neither name nor tag
/// may contain one). The tag starts after the last `:` if no `/` follows it: a `:` followed by a
/// `/` can only be a domain's port separator.
pub(crate) fn split(s: &str) -> Split<'_> {
    let (rest, digest) = match s.find('@') {
        Some(at) => (&s[..at], Some((at + 1, &s[at + 1..]))),
        None => (s, None),
    };
    let (name, tag) = match rest.rfind(':') {
        Some(colon) if !rest[colon..].contains('/') => {
            (&rest[..colon], Some((colon + 1, &rest[colon + 1..])))
        }
        _ => (rest, None),
    };
    Split { name, tag, digest }
}

/// [`split`] of a text that is not empty, not a URL, and names something before its tag and
/// digest.
pub(crate) fn split_named(s: &str) -> Result<Split<'_>, ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::Empty);
    }
    reject_url_scheme(s)?;
    let split = split(s);
    if split.name.is_empty() {
        return Err(ReferenceError::MissingRepository { position: 0 });
    }
    Ok(split)
}

/// Parses the optional tag and digest found by [`split`].
pub(crate) fn parse_suffix(
    split: &Split<'_>,
) -> Result<(Option<Tag>, Option<Digest>), ReferenceError> {
    let tag = split
        .tag
        .map(|(position, text)| Tag::parse_at(text, position))
        .transpose()?;
    let digest = split
        .digest
        .map(|(position, text)| Digest::parse_at(text, position))
        .transpose()?;
    Ok((tag, digest))
}

/// Appends `:tag` and `@digest` when present.
pub(crate) fn write_suffix(out: &mut String, tag: Option<&Tag>, digest: Option<&Digest>) {
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(tag.as_str());
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest.as_str());
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if is_image_id(s) {
            return Err(ReferenceError::LooksLikeImageId { text: s.to_owned() });
        }
        let split = split_named(s)?;
        let (domain, path, path_start) = match split.name.split_once('/') {
            Some((first, path)) if looks_like_domain(first) => {
                (Some(Domain::parse_at(first, 0)?), path, first.len() + 1)
            }
            _ => (None, split.name, 0),
        };
        if path.is_empty() {
            return Err(ReferenceError::MissingRepository {
                position: path_start,
            });
        }
        let repository = Repository::parse_at(path, path_start)?;
        check_name_len(name_len(domain.as_ref(), &repository))?;
        let (tag, digest) = parse_suffix(&split)?;
        Ok(Reference {
            domain,
            path: RepositoryReference::from_parts(repository, tag, digest),
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(domain) = &self.domain {
            write!(f, "{domain}/")?;
        }
        self.path.fmt(f)
    }
}
