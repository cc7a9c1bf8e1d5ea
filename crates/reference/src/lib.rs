//! Container image references: parsing, validation and Docker normalization.
//!
//! This crate turns the strings a user writes for an image — `nginx`, `nginx:1.25`,
//! `mcr.microsoft.com/dotnet/aspnet:8.0`, `myregistry.azurecr.io/samples/app@sha256:…`,
//! `localhost:5000/app`, `oci:./layout:v1` — into validated values, following the
//! distribution project's reference grammar that Docker, containerd, skopeo and ACR accept,
//! with nothing left out. It is the bottom layer of acr-import: every other crate takes its
//! image names from here.
//!
//! It does no I/O: it never resolves a name, touches the network or reads the file system, and
//! it never panics, whatever the input.
//!
//! # Principal types
//!
//! - [`Reference`]: `[domain/]path[:tag][@digest]` in a registry, with
//!   [`Reference::normalized`] (`docker.io/library/nginx:latest`), [`Reference::familiar`]
//!   (`nginx`) and [`Reference::api_host`] (`registry-1.docker.io` for Docker Hub).
//! - [`RepositoryReference`]: `path[:tag][@digest]` with no domain and no normalization, the
//!   form used next to an ARM resource ID of the registry.
//! - [`OciLayoutReference`]: `oci:PATH[:TAG][@DIGEST]`, an image in an OCI layout on disk.
//! - [`AnyReference`]: either a registry reference or an OCI layout reference.
//! - The validated parts: [`Domain`], [`Repository`], [`Tag`], [`Digest`] (with
//!   [`DigestAlgorithm`]).
//! - [`docker_hub`]: Docker Hub's names, the domain it is keyed by (`docker.io`) and the host
//!   serving its API (`registry-1.docker.io`), for every crate that meets a host name.
//! - [`ReferenceError`]: the one error type; each variant names the byte offset and the text
//!   at fault, and its message says what to write instead.
//!
//! Every type has private fields; [`FromStr`](std::str::FromStr) is the way in, and
//! [`Display`](std::fmt::Display) prints exactly what was parsed, so `x.to_string().parse()`
//! gives `x` back.
//!
//! # Example
//!
//! ```
//! use acr_import_reference::Reference;
//!
//! let reference: Reference = "nginx:1.25".parse()?;
//! assert_eq!(reference.to_string(), "nginx:1.25");
//! assert!(reference.domain().is_none());
//!
//! let normalization = reference.normalization();
//! assert!(normalization.added_library);
//! let normalized = normalization.reference;
//! assert_eq!(normalized.to_string(), "docker.io/library/nginx:1.25");
//! assert_eq!(normalized.repository().as_str(), "library/nginx");
//! assert_eq!(normalized.api_host(), "registry-1.docker.io");
//! assert_eq!(normalized.familiar(), "nginx:1.25");
//!
//! let err = "MyApp".parse::<Reference>().unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "repository name must be lowercase: `MyApp` at position 0; use `myapp`"
//! );
//! # Ok::<(), acr_import_reference::ReferenceError>(())
//! ```
#![deny(missing_docs)]

#[macro_use]
mod text;
mod digest;
pub mod docker_hub;
mod domain;
mod error;
mod oci;
mod reference;
mod repository;
mod repository_reference;
mod tag;

pub use digest::{Digest, DigestAlgorithm};
pub use domain::Domain;
pub use error::ReferenceError;
pub use oci::{AnyReference, OciLayoutReference};
pub use reference::{Normalization, Reference};
pub use repository::Repository;
pub use repository_reference::RepositoryReference;
pub use tag::{DigestTag, Tag, TagOrDigest};
