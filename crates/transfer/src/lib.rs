//! The registry transport and copy engine of acr-import.
//!
//! [`Transport`] is one HTTP client for every registry a process talks to (hyper 1.x with
//! rustls, pooled connections, HTTP/2 where ALPN offers it, proxies from the environment,
//! plain http only for loopback and hosts named insecure). [`Registry`] is a handle on one
//! registry whose methods are the operations of the OCI distribution API — manifests,
//! blobs, uploads, cross-repository mounts, tags, referrers — with typed errors
//! ([`TransferError`]) that keep the HTTP status and the registry's error envelope.
//!
//! Credentials come from `acr-import-auth`: the transport asks its
//! [`Authenticator`](acr_import_auth::Authenticator) for an `Authorization` value per
//! (registry, scopes), answers `401` challenges, and sends credentials only to the
//! registry's own origin — never across a redirect or to an upload `Location` on another
//! host. Manifests are returned and pushed as exact bytes; blobs stream with their size
//! checked and, when asked, a running digest (a target registry checks every digest itself).
//!
//! Repositories, tags and digests are the validated types of `acr-import-reference`
//! ([`Repository`](acr_import_reference::Repository),
//! [`TagOrDigest`](acr_import_reference::TagOrDigest),
//! [`Digest`](acr_import_reference::Digest)): a name is checked once, where it is read, and
//! a call cannot mix up a repository with a tag.
//!
//! ```no_run
//! use acr_import_reference::{Repository, Tag};
//! use acr_import_transfer::Transport;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let transport = Transport::builder().build()?;
//! let hub = transport.registry("docker.io")?;
//! let repository: Repository = "library/hello-world".parse()?;
//! let manifest = hub.get_manifest(&repository, &Tag::latest().into()).await?;
//! println!("{} {}", manifest.media_type, manifest.digest);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod body;
mod connect;
pub mod copy;
mod error;
pub mod layout;
pub mod manifest;
mod ratelimit;
mod registry;
mod retry;
mod transport;

pub use body::{BlobStream, Hasher, digest_of};
pub use copy::{Copier, CopyOptions, CopyReport, Endpoint, PlatformFilter, Source, Target};
pub use error::{
    Operation, RegistryErrorEntry, RequestContext, StatusDetails, TransferError, redact_url,
};
pub use layout::OciLayout;
pub use manifest::{Descriptor, Manifest, ManifestContent, ManifestError, Platform};
pub use ratelimit::{
    Quota, RateLimitPolicy, RateLimitStatus, RateLimitStop, RateLimitWait, WaitObserver,
};
pub use registry::{
    DEFAULT_CHUNK_SIZE, ManifestHead, PingInfo, PushedManifest, Referrers, ReferrersSource,
    Registry, TagsPage, UploadSession, UploadStart,
};
pub use retry::RetryPolicy;
pub use transport::{HostStats, Transport, TransportBuilder};

/// The README's example, compiled with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
