//! Transport errors: what failed, where, and what the registry said.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// The registry operation an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// `GET /v2/`.
    Ping,
    /// `GET`/`HEAD` of a manifest.
    GetManifest,
    /// `PUT` of a manifest.
    PutManifest,
    /// `DELETE` of a manifest.
    DeleteManifest,
    /// `HEAD` of a blob.
    HeadBlob,
    /// `GET` of a blob.
    GetBlob,
    /// Starting an upload or a cross-repository mount (`POST …/blobs/uploads/`).
    StartUpload,
    /// Sending blob data (`PATCH`/`PUT` on an upload session).
    Upload,
    /// `DELETE` of a blob or an upload session.
    Delete,
    /// Listing tags.
    ListTags,
    /// Listing referrers.
    Referrers,
    /// Listing repositories.
    Catalog,
    /// A request to a registry-specific API (ACR's `/acr/v1/`, …).
    Other,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Ping => "ping",
            Operation::GetManifest => "manifest fetch",
            Operation::PutManifest => "manifest push",
            Operation::DeleteManifest => "manifest delete",
            Operation::HeadBlob => "blob check",
            Operation::GetBlob => "blob fetch",
            Operation::StartUpload => "blob upload start",
            Operation::Upload => "blob upload",
            Operation::Delete => "delete",
            Operation::ListTags => "tag listing",
            Operation::Referrers => "referrers listing",
            Operation::Catalog => "repository listing",
            Operation::Other => "request",
        })
    }
}

/// Where a request went: operation, registry, repository and reference.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The operation.
    pub operation: Operation,
    /// The registry host (`host[:port]`).
    pub registry: String,
    /// The repository, when the operation has one.
    pub repository: Option<String>,
    /// The tag or digest, when the operation has one.
    pub reference: Option<String>,
}

impl fmt::Display for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.operation, self.registry)?;
        if let Some(repo) = &self.repository {
            write!(f, "/{repo}")?;
            if let Some(r) = &self.reference {
                if r.contains(':') {
                    write!(f, "@{r}")?;
                } else {
                    write!(f, ":{r}")?;
                }
            }
        }
        Ok(())
    }
}

/// One entry of the distribution error envelope `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RegistryErrorEntry {
    /// The code (`MANIFEST_UNKNOWN`, `DENIED`, …; any string a registry invents).
    #[serde(default)]
    pub code: String,
    /// The message.
    #[serde(default)]
    pub message: String,
    /// The detail, as compact JSON.
    #[serde(default, deserialize_with = "detail_as_text")]
    pub detail: Option<String>,
}

fn detail_as_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.filter(|v| !v.is_null()).map(|v| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }))
}

/// What a registry said when it refused a request.
#[derive(Debug, Clone)]
pub struct StatusDetails {
    /// Where.
    pub context: RequestContext,
    /// The HTTP status code.
    pub status: u16,
    /// The registry's error envelope, when it sent one.
    pub errors: Vec<RegistryErrorEntry>,
    /// A hint on what to do, when one is known.
    pub hint: Option<String>,
}

impl StatusDetails {
    /// The first error code, if any.
    pub fn code(&self) -> Option<&str> {
        self.errors.first().map(|e| e.code.as_str())
    }
}

impl fmt::Display for StatusDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed with HTTP {}", self.context, self.status)?;
        for e in &self.errors {
            write!(f, "; {}", e.code)?;
            if !e.message.is_empty() {
                write!(f, ": {}", e.message)?;
            }
            if let Some(d) = &e.detail {
                let d: String = d.chars().take(300).collect();
                write!(f, " ({d})")?;
            }
        }
        if let Some(h) = &self.hint {
            write!(f, ". {h}")?;
        }
        Ok(())
    }
}

/// Everything the transport can fail with. Nothing here ever holds a credential: URLs are
/// printed without their query string.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// `401`: the registry did not accept the credentials for this operation.
    #[error("{0}: the registry did not accept the credentials")]
    Unauthorized(Box<StatusDetails>),
    /// `403`: authenticated but not allowed (or blocked by a firewall).
    #[error("{0}")]
    Forbidden(Box<StatusDetails>),
    /// `404`: the repository, manifest or blob does not exist.
    #[error("{0}")]
    NotFound(Box<StatusDetails>),
    /// `429`: rate limited, and still so after the retries.
    #[error("{details} (rate limited; retried {retries} times)")]
    RateLimited {
        /// What the registry said.
        details: Box<StatusDetails>,
        /// How many retries were spent.
        retries: u32,
    },
    /// A rate limit that a short retry cannot outwait (the registry stays stopped for the
    /// rest of the process), or a plan that needs more than the budget the registry
    /// announced. Not retryable.
    #[error("{0}")]
    RateLimitReached(Box<crate::ratelimit::RateLimitStop>),
    /// `5xx`, still so after the retries.
    #[error("{details} (server error; retried {retries} times)")]
    Server {
        /// What the registry said.
        details: Box<StatusDetails>,
        /// How many retries were spent.
        retries: u32,
    },
    /// Another status the operation does not expect.
    #[error("{0}")]
    UnexpectedStatus(Box<StatusDetails>),
    /// A credential was granted less than the operation needs.
    #[error(
        "{identity} may not {action} repository `{repository}` on {registry}: \
         the token service granted less than this operation needs (check the token's scope map or role)"
    )]
    ScopeDenied {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The action refused (`pull`, `push`, …).
        action: String,
        /// Who asked, without secrets.
        identity: String,
    },
    /// Authentication failed before the registry was asked.
    #[error("authentication with {registry} failed: {source}")]
    Auth {
        /// The registry.
        registry: String,
        /// The cause.
        #[source]
        source: acr_import_auth::AuthError,
    },
    /// No connection could be made or it broke, after the retries.
    #[error("cannot reach {url}: {message} (retried {retries} times)")]
    Connection {
        /// The URL, without its query.
        url: String,
        /// What happened.
        message: String,
        /// How many retries were spent.
        retries: u32,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Nothing answers at this address: the name does not resolve, or nothing listens on a
    /// host that never answered this process. Not retried: retrying cannot help.
    #[error("{context}: cannot reach {url}: {reason} ({message})")]
    Unreachable {
        /// What was being done, where.
        context: Box<RequestContext>,
        /// The URL, without its query.
        url: String,
        /// Why retrying cannot help.
        reason: String,
        /// What the connection attempt said.
        message: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Nothing arrived for longer than the idle timeout.
    #[error("{url}: no data for {timeout:?} (idle timeout)")]
    Timeout {
        /// The URL, without its query.
        url: String,
        /// The idle timeout.
        timeout: Duration,
    },
    /// Content did not hash to the digest it was asked for or announced.
    #[error("{what}: expected digest {expected}, got {actual}; the content was not used")]
    DigestMismatch {
        /// Which content (`blob sha256:… of repo`, `manifest …`).
        what: String,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// Content was longer or shorter than announced.
    #[error("{what}: expected {expected} bytes, got {actual}; the content was not used")]
    SizeMismatch {
        /// Which content.
        what: String,
        /// The announced size.
        expected: u64,
        /// The size received (so far, for an overlong stream).
        actual: u64,
    },
    /// A manifest over the 4 MiB limit the distribution spec sets.
    #[error("{context}: the manifest is larger than {limit} bytes, the limit registries enforce")]
    ManifestTooLarge {
        /// Where.
        context: RequestContext,
        /// The limit.
        limit: u64,
    },
    /// A Docker schema 1 manifest.
    #[error(
        "{0}: this is a Docker schema 1 manifest (pushed by a Docker client older than 1.10), \
         which registries no longer accept and which is not copied; import a newer tag of the \
         image, or have it pushed again with a current client (schema 2 or OCI)"
    )]
    Schema1(RequestContext),
    /// A manifest that is not valid.
    #[error("{context}: invalid manifest: {source}")]
    InvalidManifest {
        /// Where.
        context: RequestContext,
        /// What is wrong with it.
        #[source]
        source: Box<crate::manifest::ManifestError>,
    },
    /// A response that breaks the distribution protocol (missing `Location`, bad header…).
    #[error("{context}: the registry broke the protocol: {reason}")]
    Protocol {
        /// Where.
        context: RequestContext,
        /// What it did.
        reason: String,
    },
    /// A URL this transport refuses to use (plain http off loopback, https→http redirect…).
    #[error("refusing {url}: {reason}")]
    Refused {
        /// The URL, without its query.
        url: String,
        /// Why.
        reason: String,
    },
    /// A target tag points at other content and `force` is off.
    #[error(
        "the target {target} already points at {existing}, not at the source's {incoming}; \
         nothing was copied: pass --force to overwrite the tag"
    )]
    TagConflict {
        /// The target tag.
        target: String,
        /// What it points at.
        existing: String,
        /// What the copy would set.
        incoming: String,
    },
    /// No platform of the index matches the filter.
    #[error("no platform of the source index matches {requested}; it has: {available}")]
    NoMatchingPlatform {
        /// The filter.
        requested: String,
        /// The platforms the index lists.
        available: String,
    },
    /// Indexes nested deeper than the limit.
    #[error("the source nests indexes deeper than {limit} levels; refusing to follow further")]
    GraphTooDeep {
        /// The limit.
        limit: usize,
    },
    /// More manifests than the limit.
    #[error("the source reaches more than {limit} manifests; refusing to copy it")]
    TooManyManifests {
        /// The limit.
        limit: usize,
    },
    /// Bad configuration (unreadable CA file, invalid proxy URL…).
    #[error("invalid transport configuration: {0}")]
    Config(String),
    /// A local I/O failure (an OCI layout folder, a temp file).
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl TransferError {
    /// A manifest at `context` that cannot be used: [`TransferError::Schema1`] for a schema 1
    /// manifest (registries no longer take them), else [`TransferError::InvalidManifest`].
    pub fn manifest(context: RequestContext, source: crate::manifest::ManifestError) -> Self {
        match source {
            crate::manifest::ManifestError::Schema1 => TransferError::Schema1(context),
            source => TransferError::InvalidManifest {
                context,
                source: Box::new(source),
            },
        }
    }

    /// What is wrong with the manifest, for an [`TransferError::InvalidManifest`].
    pub fn manifest_error(&self) -> Option<&crate::manifest::ManifestError> {
        match self {
            TransferError::InvalidManifest { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The HTTP status the registry answered, if the failure was a status.
    pub fn status(&self) -> Option<u16> {
        self.details().map(|d| d.status)
    }

    /// The status details, if the failure was a status.
    pub fn details(&self) -> Option<&StatusDetails> {
        match self {
            TransferError::Unauthorized(d)
            | TransferError::Forbidden(d)
            | TransferError::NotFound(d)
            | TransferError::UnexpectedStatus(d) => Some(d),
            TransferError::RateLimited { details, .. } | TransferError::Server { details, .. } => {
                Some(details)
            }
            _ => None,
        }
    }

    /// Whether the thing asked for does not exist (a registry's 404, or a file missing from
    /// an OCI layout).
    pub fn is_not_found(&self) -> bool {
        match self {
            TransferError::NotFound(_) => true,
            TransferError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// The error of an operation that was tried `more` times again on top of the retries the
    /// error counts (a blob upload sent again after its request's own retries), counting them.
    pub(crate) fn retried_more(mut self, more: u32) -> Self {
        if let TransferError::RateLimited { retries, .. }
        | TransferError::Server { retries, .. }
        | TransferError::Connection { retries, .. } = &mut self
        {
            *retries += more;
        }
        self
    }

    /// Whether a registry's rate limit stopped the operation (a `429` after the retries, or a
    /// limit that resets later than a retry waits).
    pub fn is_rate_limited(&self) -> bool {
        matches!(
            self,
            TransferError::RateLimited { .. } | TransferError::RateLimitReached(_)
        )
    }

    /// Whether the failure is about credentials or permissions.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            TransferError::Unauthorized(_)
                | TransferError::Forbidden(_)
                | TransferError::ScopeDenied { .. }
                | TransferError::Auth { .. }
        )
    }

    /// Whether trying the whole operation again may succeed (connection trouble, timeouts,
    /// server errors, rate limits, corrupted transfers).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TransferError::Connection { .. }
                | TransferError::Timeout { .. }
                | TransferError::Server { .. }
                | TransferError::RateLimited { .. }
                | TransferError::DigestMismatch { .. }
                | TransferError::SizeMismatch { .. }
        )
    }
}

/// Why a failed connection attempt cannot succeed if tried again, when it cannot: a name
/// that does not resolve (a temporary resolver failure is retried), or a refused connection
/// to a host that has never answered (`answered_before`: a registry that answered and now
/// refuses is restarting, and is retried).
pub(crate) fn unreachable_reason(
    error: &(dyn std::error::Error + 'static),
    answered_before: bool,
) -> Option<&'static str> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        // hyper-util names a failed lookup "dns error"; its source is the resolver's error.
        if e.to_string() == "dns error" {
            let temporary = e
                .source()
                .is_some_and(|s| s.to_string().contains("Temporary failure"));
            return (!temporary).then_some("the host name does not resolve");
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
            && !answered_before
        {
            return Some("nothing listens there");
        }
        cause = e.source();
    }
    None
}

/// A URL as it may be printed: scheme, host, port and path, the query replaced by `?…`
/// (storage redirects carry signatures there) and any userinfo dropped.
pub fn redact_url(url: &url::Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(p) = url.port() {
        out.push_str(&format!(":{p}"));
    }
    out.push_str(url.path());
    if url.query().is_some() {
        out.push_str("?…");
    }
    out
}

/// Parses a distribution error envelope, tolerating anything.
pub(crate) fn parse_error_envelope(body: &[u8]) -> Vec<RegistryErrorEntry> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<RegistryErrorEntry>,
    }
    serde_json::from_slice::<Envelope>(body)
        .map(|e| e.errors)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_query_and_userinfo() {
        let u = url::Url::parse("https://user:pw@blob.example:8443/a/b?sig=SECRET&se=1").unwrap();
        assert_eq!(redact_url(&u), "https://blob.example:8443/a/b?…");
    }

    #[test]
    fn manifest_errors_keep_their_kind_and_cause() {
        use crate::manifest::{ManifestContent, ManifestError};
        use std::error::Error as _;
        let ctx = RequestContext {
            operation: Operation::GetManifest,
            registry: "r.example".into(),
            repository: Some("app".into()),
            reference: Some("v1".into()),
        };
        let schema1 = ManifestContent::parse(br#"{"schemaVersion":1}"#).unwrap_err();
        assert!(matches!(
            TransferError::manifest(ctx.clone(), schema1),
            TransferError::Schema1(_)
        ));
        let bad = ManifestContent::parse(b"<html>").unwrap_err();
        let e = TransferError::manifest(ctx, bad);
        assert!(matches!(
            e.manifest_error(),
            Some(ManifestError::NotJson(_))
        ));
        let source = e.source().expect("the manifest error is the source");
        assert!(source.source().is_some(), "and the JSON error below it");
        assert!(e.to_string().contains("r.example/app:v1"), "{e}");
    }

    #[test]
    fn what_cannot_succeed_is_not_retried() {
        #[derive(Debug)]
        struct Named(&'static str, Option<std::io::Error>);
        impl fmt::Display for Named {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Named {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_ref().map(|e| e as _)
            }
        }
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let nxdomain = Named(
            "dns error",
            Some(std::io::Error::other("Name or service not known")),
        );
        let again = Named(
            "dns error",
            Some(std::io::Error::other(
                "Temporary failure in name resolution",
            )),
        );
        let never_answered = Named("tcp connect error", Some(refused()));
        assert!(unreachable_reason(&never_answered, false).is_some());
        // A registry that answered before and refuses now is restarting: retried.
        assert_eq!(
            unreachable_reason(&Named("tcp connect error", Some(refused())), true),
            None
        );
        assert!(unreachable_reason(&nxdomain, true).is_some());
        assert_eq!(unreachable_reason(&again, false), None);
        let reset = Named(
            "io",
            Some(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        );
        assert_eq!(unreachable_reason(&reset, false), None);
    }

    #[test]
    fn envelope_parsing_tolerates_shapes() {
        let e = parse_error_envelope(
            br#"{"errors":[{"code":"DENIED","message":"no","detail":[{"Type":"repository","Name":"nats","Action":"pull"}]}]}"#,
        );
        assert_eq!(e[0].code, "DENIED");
        assert!(e[0].detail.as_deref().unwrap().contains("nats"));
        assert!(parse_error_envelope(b"<html>").is_empty());
        assert!(
            parse_error_envelope(br#"{"errors":[{}]}"#)[0]
                .code
                .is_empty()
        );
    }
}
