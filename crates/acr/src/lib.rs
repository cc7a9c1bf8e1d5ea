//! Azure Container Registry specifics for acr-import: cloud profiles, ARM resource IDs,
//! registry lookup, the network and permissions preflight and the server-side `importImage`
//! operation.
//!
//! - [`Cloud`]: ARM endpoint, Azure AD authority and login-server suffix per cloud, with the
//!   documented environment overrides; [`RegistryName`] and [`RegistryTarget`]: what a
//!   `--name` value means.
//! - [`RegistryResourceId`]: the ARM ID of a registry
//!   (`/subscriptions/…/resourceGroups/…/providers/Microsoft.ContainerRegistry/registries/…`),
//!   compared case-insensitively, printed as given.
//! - [`ArmClient`]: Azure Resource Manager over the project's own HTTP stack
//!   ([`acr_import_auth::HttpExchange`]) with a bearer token for [`Cloud::arm_scope`] from any
//!   `azure_core` [`TokenCredential`](azure_core::credentials::TokenCredential): registries
//!   (get, list with `nextLink`, find by name or login server), subscriptions, the caller's
//!   permissions, and the `importImage` long-running operation (`Azure-AsyncOperation` /
//!   `Location`, `Retry-After`, back-off, a client deadline, per-manifest progress); the
//!   Azure SDKs' [`RetryPolicy`] and an `x-ms-client-request-id` on every call
//!   ([`RequestIds`] in every failure).
//! - [`preflight`]: a pure verdict — will work, will fail (with the exact reason and fix),
//!   cannot tell — from the registries' network properties and how the source is named;
//!   [`permissions`]: the same for the caller's role assignments (the action missing, the
//!   built-in role that grants it, the `az role assignment create` to run).
//! - [`import`]: source and target resolution, the engine choice (server or client), the
//!   `importImage` body, and the server-side run.
//! - [`Importer`]: the import as one call — an [`ImportRequest`] (source, targets, options,
//!   engine choice) in, an [`ImportReport`] out, progress to an [`ImportObserver`]; batches
//!   ([`BatchRequest`]) share one transport and one copy engine and report each entry.
//!
//! It moves no image bytes itself: the client-side engine it drives is `acr-import-transfer`.
//!
//! ```
//! use acr_import_acr::preflight::{evaluate, PreflightEngine, PreflightInput, PreflightSource, RegistryNetwork, Verdict};
//! use acr_import_acr::{Cloud, RegistryResourceId, RegistryTarget};
//!
//! let target = RegistryTarget::parse("myregistry", &Cloud::azure_cloud())?;
//! assert_eq!(target.host(), "myregistry.azurecr.io");
//!
//! let id: RegistryResourceId = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourcegroups/rg/providers/Microsoft.ContainerRegistry/registries/Source1".parse()?;
//! assert_eq!(id.name().as_str(), "Source1");
//!
//! let mut locked = RegistryNetwork::open("myregistry");
//! locked.default_action_deny = true;
//! locked.trusted_services_bypass = false;
//! let verdict = evaluate(&PreflightInput {
//!     engine: PreflightEngine::Server,
//!     target: Some(locked),
//!     source: PreflightSource::External { host: "docker.io".into() },
//! });
//! assert_eq!(verdict.verdict, Verdict::WillFail);
//! assert_eq!(verdict.failures[0].fix, "az acr update -n myregistry --allow-trusted-services true");
//! # Ok::<(), acr_import_acr::AcrError>(())
//! ```
#![deny(missing_docs)]

pub mod arm;
mod cloud;
pub mod import;
pub mod importer;
pub mod metadata;
pub mod model;
pub mod permissions;
pub mod preflight;
pub mod profile;
mod resource_id;

use std::fmt;
use std::time::Duration;

pub use arm::{
    ArmClient, ImportProgress, ImportStart, PollResult, RequestIds, RetryPolicy, WaitOptions,
};
pub use cloud::{Cloud, RegistryName, RegistryTarget};
pub use import::{
    AzureContext, Engine, EngineFacts, EngineMode, ResolvedSource, ServerOutcome, SourceArgs,
    SourceResolution,
};
pub use importer::{
    BatchFile, BatchReport, BatchRequest, ClientReport, EntryOutcome, ImportEntry, ImportError,
    ImportEvent, ImportObserver, ImportOptions, ImportReport, ImportRequest, Importer,
    ImporterConfig, PreflightOutcome, Referrers, ServerReport, SourceCredentials, TargetSummary,
};
pub use model::{
    ImportImageParameters, ImportMode, ImportSource, ImportSourceCredentials, Registry,
    RoleAssignmentMode,
};
pub use preflight::{Preflight, Verdict};
pub use resource_id::RegistryResourceId;

/// Which registry an import error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source registry (pulling).
    Source,
    /// The target registry (permissions, existing tags).
    Target,
    /// Not known from the error.
    Unknown,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
            Side::Unknown => "unknown",
        })
    }
}

fn side_text(side: &Side, registry: &Option<String>) -> String {
    let side = match side {
        Side::Source => " on the source side",
        Side::Target => " on the target side",
        Side::Unknown => return String::new(),
    };
    match registry {
        Some(r) => format!("{side} ({r})"),
        None => side.to_owned(),
    }
}

/// `HTTP 403 ` for an error answer; nothing for a failed operation reported by a `200` poll.
fn status_text(status: u16) -> String {
    if status >= 400 {
        format!("HTTP {status} ")
    } else {
        String::new()
    }
}

fn details_text(details: &[String]) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" [{}]", details.join("; "))
    }
}

fn hint_text(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(". {hint}")
    }
}

/// What else an ARM failure says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArmContext {
    /// `error.details[]` as `code: message`.
    pub details: Vec<String>,
    /// The registry of the failing side, when known ([`AcrError::with_import_registries`]).
    pub registry: Option<String>,
    /// The request's ids, for Azure support.
    pub ids: arm::RequestIds,
}

/// Everything this crate can fail with. No variant holds a token or password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcrError {
    /// Not a valid registry name.
    #[error(
        "`{name}` is not a valid registry name: registry names may contain only alpha numeric \
         characters and must be between 5 and 50 characters (for any other registry, give its host, e.g. ghcr.io or 127.0.0.1:5000)"
    )]
    InvalidRegistryName {
        /// The value given.
        name: String,
    },
    /// Not a known cloud.
    #[error("unknown cloud `{name}`: use AzureCloud, AzureChinaCloud or AzureUSGovernment")]
    UnknownCloud {
        /// The value given.
        name: String,
    },
    /// Not a registry resource ID.
    #[error("`{value}` is not a container registry resource ID: {reason}")]
    InvalidResourceId {
        /// The value given (cut to 300 characters).
        value: String,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// An ARM endpoint this client refuses.
    #[error(
        "invalid ARM endpoint `{endpoint}` (ACR_IMPORT_ARM_ENDPOINT or the cloud profile): {reason}"
    )]
    InvalidArmEndpoint {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// A URL (`nextLink`, `Location`, an operation URL) outside the ARM endpoint.
    #[error("refusing to follow `{url}` with the ARM token: {reason} (ARM endpoint: {endpoint})")]
    ForeignUrl {
        /// The URL.
        url: String,
        /// The ARM endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// No ARM token.
    #[error(
        "cannot get an Azure AD token for {scope}: {message}. Sign in (az login) or set AZURE_TENANT_ID/AZURE_CLIENT_ID with a secret, certificate or federated token"
    )]
    Token {
        /// The scope asked for.
        scope: String,
        /// Why (never the token).
        message: String,
    },
    /// ARM cannot be used at all.
    #[error(
        "Azure Resource Manager is needed because {reason}, and it is not available here: give a subscription (--subscription or AZURE_SUBSCRIPTION_ID) and an Azure AD credential (AZURE_* variables, a managed identity, or az login)"
    )]
    ArmUnavailable {
        /// Why ARM was needed.
        reason: String,
    },
    /// No usable subscription.
    #[error(
        "no subscription to use: {reason}; name one with --subscription or AZURE_SUBSCRIPTION_ID"
    )]
    NoSubscription {
        /// Why.
        reason: String,
    },
    /// No HTTP response.
    #[error(
        "cannot reach Azure Resource Manager at {url}: {message} (x-ms-client-request-id {client_request_id})"
    )]
    Http {
        /// The URL, without its query.
        url: String,
        /// What happened.
        message: String,
        /// The `x-ms-client-request-id` sent.
        client_request_id: String,
    },
    /// A response this client cannot use.
    #[error("Azure Resource Manager answered {url} with something unusable: {reason}")]
    Protocol {
        /// The URL, without its query.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// An ARM error response (`{error:{code,message,details}}`), or a failed import.
    #[error("{operation} failed{side_text}: {status_text}{code}: {message}{details_text}{hint_text} ({ids})", side_text = side_text(side, &context.registry), status_text = status_text(*status), details_text = details_text(&context.details), hint_text = hint_text(hint), ids = context.ids)]
    Arm {
        /// What was being done.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
        /// Which side of an import the failure is about.
        side: Side,
        /// What to do (may be empty).
        hint: String,
        /// The details, the side's registry and the request ids.
        context: Box<ArmContext>,
    },
    /// A registry looked up by name or login server was not found.
    #[error(
        "The resource with name '{value}' and type 'Microsoft.ContainerRegistry/registries' could not be found in {scope}: check the name, or pass --subscription / --resource-group"
    )]
    RegistryNotFound {
        /// The name or login server.
        value: String,
        /// Where it was looked for.
        scope: String,
    },
    /// Several registries match.
    #[error("More than one registry was found by `{value}`: {}; name it by resource ID", matches.join(", "))]
    AmbiguousRegistry {
        /// The name or login server.
        value: String,
        /// The IDs found.
        matches: Vec<String>,
    },
    /// Credentials together with an Azure source named by resource ID.
    #[error(
        "--username/--password cannot be used with the Azure source {id}: a source named by resource ID is read with your Azure AD identity (az acr import would drop the credentials silently)"
    )]
    CredentialsWithResourceId {
        /// The resource ID.
        id: String,
    },
    /// A reference (`--source`) that does not parse. The reference error says what is wrong
    /// and what to write; `hint` adds advice only where it fits that error.
    #[error("{flag} `{value}`: {source}{}", hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    InvalidReference {
        /// The flag (`--source`).
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        source: Box<acr_import_reference::ReferenceError>,
        /// Advice beyond the reference error's own, when it fits.
        hint: Option<String>,
    },
    /// The request cannot be served as given.
    #[error("{message} ({hint})")]
    InvalidRequest {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// The client deadline passed while the operation was still running.
    #[error(
        "the import did not finish within {waited:?}; it keeps running on the service: follow it with `acr import status {operation_url}`"
    )]
    Deadline {
        /// The operation URL.
        operation_url: String,
        /// How long was waited.
        waited: Duration,
    },
}

impl AcrError {
    /// The HTTP status of an ARM error.
    pub fn arm_status(&self) -> Option<u16> {
        match self {
            AcrError::Arm { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is an authentication or authorization failure.
    pub fn is_auth(&self) -> bool {
        matches!(self, AcrError::Token { .. })
            || matches!(
                self,
                AcrError::Arm {
                    status: 401 | 403,
                    ..
                }
            )
    }

    /// Why a registry GET could not read the registry, for the preflight: `403` (no read),
    /// `401` with an `InvalidAuthenticationTokenTenant` code (another tenant), `404`.
    pub fn unreadable(&self) -> Option<preflight::Unreadable> {
        match self {
            AcrError::Arm { status, code, .. } => unreadable(*status, &ArmErrorCode::parse(code)),
            _ => None,
        }
    }

    /// The `error.code` of an ARM error answer, typed; `None` for any other error.
    pub fn arm_code(&self) -> Option<ArmErrorCode> {
        match self {
            AcrError::Arm { code, .. } => Some(ArmErrorCode::parse(code)),
            _ => None,
        }
    }
}

/// See [`AcrError::unreadable`].
fn unreadable(status: u16, code: &ArmErrorCode) -> Option<preflight::Unreadable> {
    match (status, code) {
        (403, _) => Some(preflight::Unreadable::Forbidden),
        (401, ArmErrorCode::InvalidAuthenticationTokenTenant) => {
            Some(preflight::Unreadable::OtherTenant)
        }
        (404, _) => Some(preflight::Unreadable::NotFound),
        _ => None,
    }
}

/// The `error.code` of an ARM error answer, for the codes this crate acts on; any other is
/// [`ArmErrorCode::Other`]. Codes are compared exactly, as ARM spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArmErrorCode {
    /// `InvalidAuthenticationTokenTenant`: the token comes from another tenant than the
    /// subscription's.
    InvalidAuthenticationTokenTenant,
    /// `InvalidAuthenticationToken`: the token is not valid (expired, wrong audience…).
    InvalidAuthenticationToken,
    /// `AuthorizationFailed`: the caller lacks a permission.
    AuthorizationFailed,
    /// `ResourceNotFound`.
    ResourceNotFound,
    /// Any other code, as sent.
    Other(String),
}

impl ArmErrorCode {
    /// Reads a code as ARM sends it.
    pub fn parse(code: &str) -> Self {
        match code {
            "InvalidAuthenticationTokenTenant" => Self::InvalidAuthenticationTokenTenant,
            "InvalidAuthenticationToken" => Self::InvalidAuthenticationToken,
            "AuthorizationFailed" => Self::AuthorizationFailed,
            "ResourceNotFound" => Self::ResourceNotFound,
            other => Self::Other(other.to_owned()),
        }
    }
}

#[cfg(test)]
mod error_code_tests {
    use super::*;

    #[test]
    fn unreadable_registries_by_status_and_code() {
        use preflight::Unreadable;
        for (status, code, expected) in [
            (
                401,
                "InvalidAuthenticationTokenTenant",
                Some(Unreadable::OtherTenant),
            ),
            // Not a tenant mismatch, although the word is in the code.
            (401, "TenantIdNotProvided", None),
            (401, "InvalidAuthenticationToken", None),
            (403, "AuthorizationFailed", Some(Unreadable::Forbidden)),
            (404, "ResourceNotFound", Some(Unreadable::NotFound)),
        ] {
            assert_eq!(
                unreadable(status, &ArmErrorCode::parse(code)),
                expected,
                "{status} {code}"
            );
        }
        assert_eq!(
            ArmErrorCode::parse("InvalidParameters"),
            ArmErrorCode::Other("InvalidParameters".into())
        );
    }
}
