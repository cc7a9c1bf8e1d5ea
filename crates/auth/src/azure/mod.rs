//! Azure AD (Entra ID) credentials for Azure Container Registry.
//!
//! - [`AzureHttpClient`]: `azure_core`'s HTTP client over our [`HttpExchange`](crate::HttpExchange),
//!   so Azure AD traffic shares the transport's TLS settings, CA bundle and proxy;
//! - [`AzureEnvironment`]: the variables the chain reads, injectable for tests;
//! - [`AadCredentialChain`]: client secret → client certificate → workload identity → App
//!   Service managed identity → Azure CLI, with an explanation of the choice (see
//!   [`aad`](self::AadCredentialChain) for the variables);
//! - [`AcrTokenExchange`]: Azure AD token → ACR refresh token (`/oauth2/exchange`), cached, for
//!   the ACR audience in every cloud ([`AcrAudience`]; the registry's ARM audience only as a
//!   fallback where the registry accepts it, or when asked for);
//! - [`AzureAdProvider`]: a [`CredentialProvider`](crate::CredentialProvider) for ACR login
//!   servers ([`AcrLoginServers`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use acr_import_auth::azure::{
//!     AadCredentialChain, AadOptions, AcrAudience, AcrLoginServers, AzureAdProvider,
//!     AzureEnvironment,
//! };
//! # fn demo(http: Arc<dyn acr_import_auth::HttpExchange>) -> Result<(), acr_import_auth::AuthError> {
//! let env = AzureEnvironment::from_env();
//! let chain = AadCredentialChain::new(&env, http.clone(), AadOptions::default())?;
//! for line in chain.explanation().lines() {
//!     println!("{line}");
//! }
//! let provider = AzureAdProvider::from_chain(
//!     &chain,
//!     http,
//!     AcrLoginServers::from_env(&env),
//!     AcrAudience::Auto,
//! );
//! # let _ = provider;
//! # Ok(())
//! # }
//! ```

mod aad;
mod acr;
mod assertion;
mod audience;
mod cache;
mod client;
pub mod env;
#[cfg(test)]
mod fake;
mod managed;

pub use aad::{AadCredentialChain, AadExplanation, AadOptions, AadSource};
pub use acr::{
    AcrLoginServers, AcrTokenExchange, AzureAdProvider, DEFAULT_ACR_SUFFIXES, jwt_claim_str,
};
pub use assertion::ClientCertificate;
pub use audience::{ACR_SCOPE, ARM_SCOPE, AcrAudience, arm_scope_for};
pub use cache::reusable;
pub use client::AzureHttpClient;
pub use env::AzureEnvironment;
