//! Why an import failed: typed, with the side (source or target), the registry and the
//! operation where the failure says so, and what to do next.

use std::time::Duration;

use acr_import_transfer::{Operation, TransferError};

use crate::{AcrError, Preflight, Side};

/// Everything an import can fail with. No variant holds a password or token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The request cannot be served as given: a bad name, reference or combination.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong.
        message: String,
        /// What to do, when known.
        hint: Option<String>,
    },
    /// Azure Resource Manager: the registry lookup, the source resolution, `importImage`.
    #[error(transparent)]
    Azure(Box<AcrError>),
    /// The client-side copy failed.
    #[error("{}", copy_text(*.side, .registry.as_deref(), source))]
    Copy {
        /// Which registry failed.
        side: Side,
        /// The registry (`host[:port]`, or `oci:PATH`), when the error names it.
        registry: Option<String>,
        /// What the copy engine said.
        source: Box<TransferError>,
        /// What to do, when this import knows better than the copy engine (a firewall).
        hint: Option<String>,
    },
    /// The preflight says the import will fail; nothing was started.
    #[error("{}", .0.to_string().trim_end())]
    WillFail(Box<Preflight>),
    /// The server-side import did not finish within the timeout; it runs on in Azure.
    #[error("{source}{}", .last_state.as_ref().map(|s| format!("; its last state: {s}")).unwrap_or_default())]
    ServerDeadline {
        /// The deadline error (with the operation URL to follow).
        source: Box<AcrError>,
        /// What the service said last (`Importing image... Accepted (0/1 manifests done…)`).
        last_state: Option<String>,
    },
    /// The client-side import did not finish within the timeout.
    #[error("{}", timeout_text(*.after, .tags_moved, .cause.as_deref()))]
    Timeout {
        /// The timeout.
        after: Duration,
        /// Tags written before it passed (by entries or targets that finished).
        tags_moved: Vec<String>,
        /// The last failure that was being retried when it passed, if any.
        cause: Option<String>,
    },
}

impl From<AcrError> for ImportError {
    fn from(e: AcrError) -> Self {
        ImportError::Azure(Box::new(e))
    }
}

impl ImportError {
    /// A failure of the copy engine on `side`, at `registry` when known.
    pub fn copy(side: Side, registry: Option<String>, source: TransferError) -> Self {
        ImportError::Copy {
            side,
            registry,
            source: Box::new(source),
            hint: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        ImportError::InvalidRequest {
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn usage_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ImportError::InvalidRequest {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// What to do next, when known.
    pub fn hint(&self) -> Option<String> {
        match self {
            ImportError::InvalidRequest { hint, .. } => hint.clone(),
            ImportError::Copy { hint: Some(h), .. } => Some(h.clone()),
            ImportError::Copy {
                source,
                side,
                registry,
                ..
            } => transfer_hint(source, *side, registry.as_deref()),
            ImportError::WillFail(_) => {
                Some("nothing was started; fix the above, or check with --preflight-only".into())
            }
            _ => None,
        }
    }

    /// Which side failed, when known.
    pub fn side(&self) -> Side {
        match self {
            ImportError::Copy { side, .. } => *side,
            ImportError::Azure(e) => match **e {
                AcrError::Arm { side, .. } => side,
                _ => Side::Unknown,
            },
            _ => Side::Unknown,
        }
    }

    /// Whether the request itself was wrong (a usage error).
    pub fn is_invalid_request(&self) -> bool {
        matches!(self, ImportError::InvalidRequest { .. })
    }

    /// Whether authentication or authorization failed.
    pub fn is_auth(&self) -> bool {
        match self {
            ImportError::Azure(e) => e.is_auth(),
            ImportError::Copy { source, .. } => source.is_auth(),
            _ => false,
        }
    }
}

fn timeout_text(after: Duration, tags_moved: &[String], cause: Option<&str>) -> String {
    let mut text = format!(
        "the import did not finish within {} s; ",
        after.as_secs_f64()
    );
    match tags_moved {
        [] => text.push_str("no tag was moved"),
        moved => text.push_str(&format!(
            "{} tag{} had moved before ({}), no other tag was moved",
            moved.len(),
            if moved.len() == 1 { "" } else { "s" },
            moved.join(", ")
        )),
    }
    if let Some(c) = cause {
        text.push_str(&format!("; it was retrying after: {c}"));
    }
    text
}

/// `the target side failed (host): …`, the registry left out when the message names it.
fn copy_text(side: Side, registry: Option<&str>, source: &TransferError) -> String {
    let message = source.to_string();
    let place = match registry {
        Some(r) if !message.contains(r) => format!(" ({r})"),
        _ => String::new(),
    };
    match side {
        Side::Unknown => match place.is_empty() {
            true => message,
            false => format!("{}: {message}", place.trim_start()),
        },
        side => format!("the {side} side failed{place}: {message}"),
    }
}

/// How to give the target registry credentials.
const TARGET_CREDENTIALS: &str = "log in to it with `docker login` (acr reads the Docker configuration and its credential helpers), set ACR_IMPORT_TARGET_USERNAME/_PASSWORD, or, for an ACR, sign in to Azure AD (az login, or the AZURE_* variables)";

/// How to give the source registry credentials.
const SOURCE_CREDENTIALS: &str = "pass source credentials with --username and --password-stdin (or ACR_IMPORT_SOURCE_USERNAME/_PASSWORD)";

/// The copy engine's errors that have a known next step, for the side that failed.
fn transfer_hint(e: &TransferError, side: Side, registry: Option<&str>) -> Option<String> {
    let named = registry.map_or_else(
        || "the registry".to_owned(),
        |r| format!("the {side} registry {r}"),
    );
    match e {
        TransferError::Forbidden(d) if d.context.operation == Operation::Ping => Some(format!(
            "if {} is an ACR with a firewall, see its rules with `az acr show --query networkRuleSet --name <registry>`",
            d.context.registry
        )),
        TransferError::Auth { .. }
        | TransferError::Unauthorized(_)
        | TransferError::ScopeDenied { .. }
        | TransferError::Forbidden(_) => Some(match side {
            Side::Target => format!("{named} refused: {TARGET_CREDENTIALS}"),
            Side::Source => format!("{named} refused: {SOURCE_CREDENTIALS}"),
            Side::Unknown => format!(
                "for the source, {SOURCE_CREDENTIALS}; for the target, {TARGET_CREDENTIALS}"
            ),
        }),
        TransferError::Unreachable { .. } => Some(format!(
            "check {}'s host and port (is it running, is the name right?)",
            match side {
                Side::Unknown => "the registry".to_owned(),
                side => format!("the {side} registry"),
            }
        )),
        _ => None,
    }
}
