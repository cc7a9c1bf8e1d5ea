//! The one error type of this crate.

use crate::digest::DigestAlgorithm;

/// Why a string is not a valid reference, domain, repository, tag or digest.
///
/// Every `position` is a byte offset into the string that was parsed, so a caller can point at
/// the offending text (`&input[position..]`). Messages say what is wrong and, where there is an
/// obvious fix, what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The input is the empty string.
    #[error("image reference is empty; expected `[registry/]repository[:tag][@digest]`")]
    Empty,

    /// The input starts with a URL scheme such as `https://` or `docker://`.
    #[error("image references take no URL scheme: `{scheme}://` at position 0; use `{suggestion}`")]
    UrlScheme {
        /// The scheme as written, without `://`.
        scheme: String,
        /// The input with the scheme removed.
        suggestion: String,
    },

    /// There is no repository path: nothing before `:tag`/`@digest`, or nothing after `domain/`.
    #[error(
        "missing repository name at position {position}; expected `[registry/]repository[:tag][@digest]`"
    )]
    MissingRepository {
        /// Where the repository was expected.
        position: usize,
    },

    /// A repository path has an empty component (`a//b`, a leading or a trailing `/`).
    #[error(
        "empty path component at position {position} in repository `{repository}`; remove the extra `/`"
    )]
    EmptyComponent {
        /// Where the empty component is.
        position: usize,
        /// The repository path as written.
        repository: String,
    },

    /// A path component starts with a separator (`.`, `_` or `-`).
    #[error(
        "path component `{component}` at position {position} starts with a separator; components start with a lowercase letter or digit"
    )]
    LeadingSeparator {
        /// Where the component starts.
        position: usize,
        /// The component as written.
        component: String,
    },

    /// A path component ends with a separator (`.`, `_` or `-`).
    #[error(
        "path component `{component}` ends with a separator at position {position}; components end with a lowercase letter or digit"
    )]
    TrailingSeparator {
        /// Where the trailing separator is.
        position: usize,
        /// The component as written.
        component: String,
    },

    /// A path component contains `..`.
    #[error(
        "path component `{component}` contains `..` at position {position}; `..` is not a separator and there are no relative paths in repository names"
    )]
    DoubleDot {
        /// Where the `..` is.
        position: usize,
        /// The component as written.
        component: String,
    },

    /// A run of separators other than `.`, `_`, `__` or one or more `-` (for example `._` or `___`).
    #[error(
        "invalid separator `{separator}` at position {position}; between letters and digits use `.`, `_`, `__` or one or more `-`"
    )]
    InvalidSeparator {
        /// Where the separator run starts.
        position: usize,
        /// The separator run as written.
        separator: String,
    },

    /// A repository path contains a character that is never allowed there.
    #[error(
        "invalid character {character:?} at position {position} in repository `{repository}`; repository names use lowercase letters, digits, `/` and the separators `.`, `_`, `__`, `-`"
    )]
    InvalidRepositoryCharacter {
        /// Where the character is.
        position: usize,
        /// The character.
        character: char,
        /// The repository path as written.
        repository: String,
    },

    /// A repository path contains uppercase letters; the lowercase form would be valid.
    #[error(
        "repository name must be lowercase: `{repository}` at position {position}; use `{suggestion}`"
    )]
    Uppercase {
        /// Where the repository path starts.
        position: usize,
        /// The repository path as written.
        repository: String,
        /// The same path in lowercase.
        suggestion: String,
    },

    /// The name (domain, `/` and repository path) is longer than 255 bytes, as written or once
    /// normalized (normalization may add `docker.io/library/`).
    #[error(
        "image name is {length} bytes long (counting the registry domain, and `docker.io/library/` where normalization adds it); at most {max} are allowed"
    )]
    NameTooLong {
        /// The length found (the larger of the written and the normalized name).
        length: usize,
        /// The limit, 255.
        max: usize,
    },

    /// The whole input is 64 lowercase hex digits, which Docker reserves for image IDs.
    #[error(
        "`{text}` looks like an image ID (64 hex digits), not a repository name; write a digest as `repository@sha256:{text}`"
    )]
    LooksLikeImageId {
        /// The input.
        text: String,
    },

    /// A registry domain is not a hostname, IPv4 address or bracketed IPv6 address.
    #[error(
        "invalid registry domain `{domain}` at position {position}; expected a hostname, IPv4 address or bracketed IPv6 address (`[::1]`), optionally followed by `:port`"
    )]
    InvalidDomain {
        /// Where the domain starts.
        position: usize,
        /// The domain as written.
        domain: String,
    },

    /// A registry port is not a number from 1 to 65535.
    #[error("invalid port `{port}` at position {position}; a port is a number from 1 to 65535")]
    InvalidPort {
        /// Where the port starts (after the `:`).
        position: usize,
        /// The port as written.
        port: String,
    },

    /// A string given as a registry domain would not be read as one in front of a repository:
    /// it has no `.`, no `:port`, no uppercase letter and is not `localhost`.
    #[error(
        "`{text}` is not recognizable as a registry domain: in `{text}/repository` it would be read as a Docker Hub namespace; a domain needs a `.` or a `:port`, or is `localhost`"
    )]
    NotADomain {
        /// The text as written.
        text: String,
    },

    /// A `:` is followed by nothing.
    #[error("empty tag at position {position}; remove the `:` or write a tag after it")]
    EmptyTag {
        /// Where the tag was expected.
        position: usize,
    },

    /// A tag contains a character it may not contain at that place.
    #[error(
        "invalid character {character:?} at position {position} in tag `{tag}`; a tag starts with a letter, digit or `_` and continues with letters, digits, `_`, `.` or `-`"
    )]
    InvalidTag {
        /// Where the character is.
        position: usize,
        /// The character.
        character: char,
        /// The tag as written.
        tag: String,
    },

    /// A tag is longer than 128 characters.
    #[error("tag at position {position} is {length} characters long; at most 128 are allowed")]
    TagTooLong {
        /// Where the tag starts.
        position: usize,
        /// Its length in bytes.
        length: usize,
    },

    /// An `@` is followed by nothing.
    #[error(
        "empty digest at position {position}; remove the `@` or write `sha256:<64 hex digits>` after it"
    )]
    EmptyDigest {
        /// Where the digest was expected.
        position: usize,
    },

    /// A digest is not of the form `algorithm:encoded`.
    #[error(
        "malformed digest `{digest}` at position {position}; expected `algorithm:hex`, as in `sha256:<64 lowercase hex digits>`"
    )]
    MalformedDigest {
        /// Where the digest starts.
        position: usize,
        /// The digest as written.
        digest: String,
    },

    /// A well-formed digest names an algorithm other than `sha256` or `sha512`.
    #[error(
        "unsupported digest algorithm `{algorithm}` at position {position}; only `sha256` and `sha512` are supported"
    )]
    UnsupportedDigestAlgorithm {
        /// Where the algorithm starts.
        position: usize,
        /// The algorithm as written.
        algorithm: String,
    },

    /// The encoded part of a digest contains a character that is not a hex digit.
    #[error(
        "invalid character {character:?} at position {position} in digest; the encoded part is lowercase hex (`0-9`, `a-f`)"
    )]
    InvalidDigestCharacter {
        /// Where the character is.
        position: usize,
        /// The character.
        character: char,
    },

    /// The encoded part of a digest is hex but contains uppercase letters.
    #[error("digest hex must be lowercase: `{encoded}` at position {position}; use `{suggestion}`")]
    DigestUppercase {
        /// Where the encoded part starts.
        position: usize,
        /// The encoded part as written.
        encoded: String,
        /// The encoded part in lowercase.
        suggestion: String,
    },

    /// The encoded part of a digest has the wrong length for its algorithm.
    #[error(
        "{algorithm} digest at position {position} has {found} hex digits; it must have exactly {expected}"
    )]
    DigestLength {
        /// Where the encoded part starts.
        position: usize,
        /// The algorithm.
        algorithm: DigestAlgorithm,
        /// The length required by the algorithm.
        expected: usize,
        /// The length found.
        found: usize,
    },

    /// An `oci:` reference names no layout directory.
    #[error("missing OCI layout path at position {position}; expected `oci:PATH[:TAG][@DIGEST]`")]
    MissingLayoutPath {
        /// Where the path was expected (after `oci:`).
        position: usize,
    },

    /// A string given as an OCI layout reference does not start with `oci:`.
    #[error("an OCI layout reference starts with `oci:`; expected `oci:PATH[:TAG][@DIGEST]`")]
    NotOciLayout,
}
