//! Repository-only references: `path[:tag][@digest]`, with no domain.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::domain::Domain;
use crate::error::ReferenceError;
use crate::reference::{Reference, parse_suffix, split_named, write_suffix};
use crate::repository::{Repository, check_name_len};
use crate::tag::Tag;

/// A reference inside a registry named elsewhere: `path[:tag][@digest]`, such as
/// `aci-helloworld:latest`, `samples/aci-helloworld:latest` or `repo@sha256:…`.
///
/// This is the form of a source given together with an ARM resource ID of its registry, and
/// of import targets. It is parsed without a domain and without any normalization: no
/// `library/`, no `latest`. A `.` in the first component is an ordinary path character here, so
/// `myreg.azurecr.io/app` is the two-component path `myreg.azurecr.io/app`; callers that want
/// to forgive a repeated login server can check for it with
/// [`RepositoryReference::strip_login_server`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepositoryReference {
    repository: Repository,
    tag: Option<Tag>,
    digest: Option<Digest>,
}

impl RepositoryReference {
    /// The repository path.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The tag, if one was written.
    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// The digest, if one was written.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same reference with `tag` as its tag (a digest is kept).
    pub fn with_tag(&self, tag: Tag) -> RepositoryReference {
        RepositoryReference {
            tag: Some(tag),
            ..self.clone()
        }
    }

    /// The same reference with `digest` as its digest (a tag is kept).
    pub fn with_digest(&self, digest: Digest) -> RepositoryReference {
        RepositoryReference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same reference without its digest.
    pub fn without_digest(&self) -> RepositoryReference {
        RepositoryReference {
            digest: None,
            ..self.clone()
        }
    }

    /// Whether the first path component is `login_server` (compared without regard to case),
    /// as in `myreg.azurecr.io/app:1` for the login server `myreg.azurecr.io`, and a path
    /// follows it. A login server with a port never matches: a path cannot contain `:`.
    pub fn starts_with_login_server(&self, login_server: &str) -> bool {
        self.strip_login_server(login_server).is_some()
    }

    /// The reference with a leading `login_server/` removed, if the path starts with it (see
    /// [`RepositoryReference::starts_with_login_server`]); `None` otherwise.
    pub fn strip_login_server(&self, login_server: &str) -> Option<RepositoryReference> {
        let (first, rest) = self.repository.as_str().split_once('/')?;
        if !first.eq_ignore_ascii_case(login_server) {
            return None;
        }
        Some(RepositoryReference {
            // Every `/`-separated suffix of a valid path is a valid path.
            repository: Repository::from_valid(rest.to_owned()),
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        })
    }

    /// The full reference to this repository in the registry `domain`.
    ///
    /// Fails only when the name with the domain exceeds 255 bytes
    /// ([`ReferenceError::NameTooLong`]).
    pub fn in_registry(&self, domain: &Domain) -> Result<Reference, ReferenceError> {
        Reference::from_parts(
            Some(domain.clone()),
            self.repository.clone(),
            self.tag.clone(),
            self.digest.clone(),
        )
    }

    pub(crate) fn from_parts(
        repository: Repository,
        tag: Option<Tag>,
        digest: Option<Digest>,
    ) -> Self {
        RepositoryReference {
            repository,
            tag,
            digest,
        }
    }
}

impl FromStr for RepositoryReference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let split = split_named(s)?;
        let repository = Repository::parse_at(split.name, 0)?;
        check_name_len(split.name.len())?;
        let (tag, digest) = parse_suffix(&split)?;
        Ok(RepositoryReference {
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for RepositoryReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.repository.as_str().to_owned();
        write_suffix(&mut out, self.tag.as_ref(), self.digest.as_ref());
        f.write_str(&out)
    }
}
