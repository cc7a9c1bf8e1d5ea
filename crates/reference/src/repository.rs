//! Repository paths: `component['/' component]*`.

use std::str::FromStr;

use crate::error::ReferenceError;

/// The longest name (domain, `/` and path) the distribution grammar allows.
pub(crate) const MAX_NAME_LEN: usize = 255;

/// A validated repository path such as `library/nginx`, `dotnet/aspnet` or `samples/app`.
///
/// A path is one or more components separated by `/`. A component is lowercase letters and
/// digits, joined by the separators `.`, `_`, `__` or one or more `-`; it neither starts nor
/// ends with a separator. The path is at most 255 bytes long.
///
/// A `Repository` knows nothing of domains: `myregistry.azurecr.io/app` is a valid two-component
/// path. Whether a first component is a domain is decided by [`Reference`](crate::Reference).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(String);

impl Repository {
    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated components, first to last.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('/')
    }

    /// Wraps a string the caller has already proven valid.
    pub(crate) fn from_valid(text: String) -> Self {
        debug_assert!(validate_path(&text, 0).is_ok());
        Repository(text)
    }

    /// Parses a path that starts at byte `base` of a larger input. The length limit is left
    /// to the caller, which knows what else counts towards it.
    pub(crate) fn parse_at(text: &str, base: usize) -> Result<Self, ReferenceError> {
        validate_path(text, base)?;
        Ok(Repository(text.to_owned()))
    }
}

/// Validates a repository path starting at byte `base` of the input.
///
/// Uppercase letters get their own error, but only when lowercasing is all the path needs;
/// otherwise the first other problem is reported, since suggesting a lowercase form that is
/// still invalid would mislead.
fn validate_path(path: &str, base: usize) -> Result<(), ReferenceError> {
    // ASCII lowercasing keeps every byte offset, so positions found in `lower` hold for `path`.
    let lower = path.to_ascii_lowercase();
    let mut offset = 0;
    for (component, original) in lower.split('/').zip(path.split('/')) {
        validate_component(component, original, path, base + offset)?;
        offset += component.len() + 1;
    }
    if lower != path {
        return Err(ReferenceError::Uppercase {
            position: base,
            repository: path.to_owned(),
            suggestion: lower,
        });
    }
    Ok(())
}

fn is_separator(b: u8) -> bool {
    matches!(b, b'.' | b'_' | b'-')
}

/// Validates one (lowercased) component that starts at byte `base` of the input.
fn validate_component(
    component: &str,
    original: &str,
    path: &str,
    base: usize,
) -> Result<(), ReferenceError> {
    if component.is_empty() {
        return Err(ReferenceError::EmptyComponent {
            position: base,
            repository: path.to_owned(),
        });
    }
    if let Some(i) = component.find("..") {
        return Err(ReferenceError::DoubleDot {
            position: base + i,
            component: original.to_owned(),
        });
    }
    if let Some((i, character)) = original
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c.is_ascii() && is_separator(c as u8)))
    {
        return Err(ReferenceError::InvalidRepositoryCharacter {
            position: base + i,
            character,
            repository: path.to_owned(),
        });
    }
    // From here on the component is ASCII.
    let bytes = component.as_bytes();
    if is_separator(bytes[0]) {
        return Err(ReferenceError::LeadingSeparator {
            position: base,
            component: original.to_owned(),
        });
    }
    if is_separator(bytes[bytes.len() - 1]) {
        return Err(ReferenceError::TrailingSeparator {
            position: base + bytes.len() - 1,
            component: original.to_owned(),
        });
    }
    let mut i = 0;
    while i < bytes.len() {
        if !is_separator(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_separator(bytes[i]) {
            i += 1;
        }
        let run = &component[start..i];
        let valid = matches!(run, "." | "_" | "__") || run.bytes().all(|b| b == b'-');
        if !valid {
            return Err(ReferenceError::InvalidSeparator {
                position: base + start,
                separator: run.to_owned(),
            });
        }
    }
    Ok(())
}

/// Checks the length limit for a name made of an optional domain and a path.
pub(crate) fn check_name_len(length: usize) -> Result<(), ReferenceError> {
    if length > MAX_NAME_LEN {
        return Err(ReferenceError::NameTooLong {
            length,
            max: MAX_NAME_LEN,
        });
    }
    Ok(())
}

impl FromStr for Repository {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ReferenceError::MissingRepository { position: 0 });
        }
        let repository = Repository::parse_at(s, 0)?;
        check_name_len(s.len())?;
        Ok(repository)
    }
}

text_type!(Repository, 0);
