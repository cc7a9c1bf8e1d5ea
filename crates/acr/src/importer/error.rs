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
    #[error("{}{source}", side_prefix(side))]
    Copy {
        /// Which registry failed.
        side: Side,
        /// What the copy engine said.
        source: Box<TransferError>,
        /// What to do, when this import knows better than the copy engine (a firewall).
        hint: Option<String>,
    },
    /// The preflight says the import will fail; nothing was started.
    #[error("{}", .0.to_string().trim_end())]
    WillFail(Box<Preflight>),
    /// The client-side import did not finish within the timeout.
    #[error(
        "the import did not finish within {} s; no tag was moved by what was still running",
        .after.as_secs()
    )]
    Timeout {
        /// The timeout.
        after: Duration,
    },
}

/// `the source side failed: ` when the side is known.
fn side_prefix(side: &Side) -> &'static str {
    match side {
        Side::Source => "the source side failed: ",
        Side::Target => "the target side failed: ",
        Side::Unknown => "",
    }
}

impl From<AcrError> for ImportError {
    fn from(e: AcrError) -> Self {
        ImportError::Azure(Box::new(e))
    }
}

impl ImportError {
    /// A failure of the copy engine on `side`.
    pub fn copy(side: Side, source: TransferError) -> Self {
        ImportError::Copy {
            side,
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
            ImportError::Copy { source, .. } => transfer_hint(source),
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

/// The copy engine's errors that have a known next step.
fn transfer_hint(e: &TransferError) -> Option<String> {
    match e {
        TransferError::Forbidden(d) if d.context.operation == Operation::Ping => Some(format!(
            "if {} is an ACR with a firewall, see its rules with `az acr show --query networkRuleSet --name <registry>`",
            d.context.registry
        )),
        TransferError::Auth { .. } | TransferError::Unauthorized(_) => Some(
            "pass source credentials with --username and --password-stdin (or ACR_IMPORT_SOURCE_USERNAME/_PASSWORD)"
                .to_owned(),
        ),
        _ => None,
    }
}
