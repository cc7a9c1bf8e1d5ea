//! Test support for acr-import: real registries, a token server and
//! fault-injecting proxies, all on loopback.
//!
//! Nothing here mocks the registry protocol: tests run against the CNCF
//! distribution registry 2.8 (Debian package `docker-registry`), so what the
//! client sees — challenges, `Location` headers, digests, error bodies — is
//! what a real registry sends.
//!
//! * [`Registry`] — a `docker-registry serve` process with filesystem
//!   storage in a temp dir on `127.0.0.1:<free port>`; no auth,
//!   [htpasswd](RegistryBuilder::htpasswd) (bcrypt lines made in-process)
//!   or [token auth](RegistryBuilder::token_auth). Killed
//!   and its storage removed on drop (also when a test panics);
//!   [`Registry::restart`] keeps port and storage.
//! * [`TokenIssuer`] — an ECDSA P-256 key plus self-signed certificate;
//!   signs ES256 JWTs (`x5c` header) that the registry accepts. Public so
//!   other emulators (e.g. of Azure Container Registry) can sign tokens.
//! * [`TokenServer`] — the distribution token endpoint (`GET /token` with
//!   optional Basic auth, `POST /token` with `grant_type=password` or
//!   `refresh_token`), users with per-repository [`Grant`]s, refresh
//!   tokens, configurable lifetime and a request log.
//! * [`Proxy`] — an HTTP/1.1 reverse proxy keeping the `Host` header, with
//!   a request log ([`RecordedRequest`]) and [`FaultRule`]s: canned
//!   responses (429, 5xx, redirects), flipped bytes, connections cut
//!   mid-body, truncated bodies, stalls, resets during upload, rewritten
//!   `Location` headers; deterministic with seeded probabilities.
//! * [`AadEmulator`] and [`AcrEmulator`] — Azure AD (Entra ID) token endpoints over TLS with a
//!   test CA, the App Service managed-identity endpoint, and an ACR login server
//!   (`/oauth2/exchange`, `/oauth2/token`) in front of a real token-auth registry.
//! * [`LatencyProxy`] — a TCP relay adding a fixed delay per direction.
//! * [`cosign`] — cosign-format signatures, attestations and SBOMs (ECDSA P-256 through
//!   ring), made and verified in-process; [`regctl_layout`] — an OCI layout in regctl's
//!   format, written file by file.
//! * [`Personality`] — a proxy in front of a real registry that plays Docker Hub, GHCR, MCR,
//!   ECR, Quay or ACR ([`Kind`]) as their documentation and known client issues describe
//!   them: token realms, Basic-only auth, pull accounting and `429`s, blobs redirected to a
//!   CDN origin on another port that records any `Authorization`, no mounts, missing
//!   digest headers, schema 1 tags, the referrers API.
//! * [`require_tool`] and [`skopeo`] — the external programs tests use, found on `PATH`: a
//!   missing one fails the test, naming its package; [`tcp_connections`] counts a process's
//!   connections from `/proc`.
//! * [`seed`] — content seeded into a registry by a client of its own ([`seed::Seeder`], not the
//!   project's): images, indexes, attestations, artifacts and their referrers, Helm charts,
//!   foreign layers.
//! * [`sha256_digest`] and a few small helpers.
//!
//! Everything binds `127.0.0.1` only and refuses non-loopback upstreams.
//!
//! # Example
//!
//! ```no_run
//! use acr_import_testsupport::{
//!     FaultAction, FaultRule, Proxy, ProxyOptions, Registry, TokenServer,
//! };
//!
//! # async fn demo() -> anyhow::Result<()> {
//! // A registry behind token auth with the default users
//! // (alice/s3cret: pull+push+delete everywhere; reader/r3ader: pull).
//! let tokens = TokenServer::builder().default_users().start().await?;
//! let registry = Registry::builder().token_auth(&tokens).start().await?;
//!
//! // Put a proxy in front that answers the first blob GET with 429.
//! let proxy = Proxy::start(
//!     registry.addr(),
//!     ProxyOptions::with_rules([FaultRule::new(FaultAction::too_many_requests(1))
//!         .method("GET")
//!         .path_contains("/blobs/")
//!         .nth(1)]),
//! )
//! .await?;
//!
//! // ... point the client at proxy.host() ...
//! assert_eq!(proxy.count("GET", "/blobs/"), 0);
//! println!("registry log: {}", registry.log_path().display());
//! # Ok(())
//! # }
//! ```

mod azure;
mod connect_proxy;
pub mod cosign;
mod latency;
mod personality;
mod proxy;
mod rbac;
pub mod regctl_layout;
mod registry;
pub mod seed;
mod serve;
mod token;
mod tools;
mod util;

pub use azure::{
    ACR_AUDIENCE, ACR_ISSUER, ARM_AUDIENCE, ARM_AUDIENCE_LEGACY, AadEmulator, AadEmulatorBuilder,
    AadRequest, AadTokenVerifier, AcrEmulator, AcrEmulatorBuilder, AcrHandle, AcrRequest, AcrRole,
    CLIENT_ASSERTION_TYPE, NULL_GUID, TestClientCertificate,
};
pub use connect_proxy::ConnectProxy;
pub use latency::LatencyProxy;
pub use personality::{DOCKER_HUB_429, Kind, Personality, PersonalityBuilder, PullBudget};
pub use proxy::{
    FaultAction, FaultRule, Proxy, ProxyOptions, RecordedRequest, Trigger, rewrite_location,
};
pub use rbac::{Assignment, Rbac, RepositoryCondition, RoleDefinition};
pub use registry::{
    REGISTRY_BIN_ENV, Registry, RegistryBuilder, TokenAuthSettings, htpasswd_line, registry_binary,
};
pub use serve::{FormRequest, ServerTask, serve_http1, serve_http1_with};
pub use token::{
    Access, Grant, TokenIssuer, TokenRequest, TokenServer, TokenServerBuilder, basic_auth,
    decode_claims_unverified, intersect, parse_scopes,
};
pub use tools::{find_tool, require_tool, run_tool, skopeo, tcp_connections};
pub use util::{SplitMix64, form_encode, hex, random_guid, rfc3339, sha256_digest};
