//! Azure Container Registry specifics for acr-import.
//!
//! Today: the cloud profiles ([`Cloud`]: ARM endpoint, Azure AD authority, login-server
//! suffix, with the documented environment overrides) and registry naming
//! ([`RegistryName`], [`RegistryTarget`]: what a `--name` value means). The ARM half —
//! resource IDs, registry lookup, the network preflight and the server-side `importImage`
//! operation — is being built in this crate next. It moves no image bytes itself; those go
//! through `acr-import-transfer`.
//!
//! ```
//! use acr_import_acr::{Cloud, RegistryTarget};
//!
//! let target = RegistryTarget::parse("myregistry", &Cloud::azure_cloud())?;
//! assert_eq!(target.host(), "myregistry.azurecr.io");
//! # Ok::<(), acr_import_acr::AcrError>(())
//! ```
#![deny(missing_docs)]

mod cloud;

pub use cloud::{Cloud, RegistryName, RegistryTarget};

/// Everything this crate can fail with.
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
}
