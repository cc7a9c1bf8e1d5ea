//! What every command resolves the same way from the global flags: the cloud and the transport.

use std::sync::Arc;

use acr_import_acr::{AcrError, Cloud};
use acr_import_auth::{CredentialChain, StaticCredentials};
use acr_import_cli::args::Global;
use acr_import_transfer::Transport;

use crate::Failure;

/// `--cloud`, with the documented environment overrides.
pub fn cloud(g: &Global) -> Result<Cloud, Failure> {
    let cloud: Cloud = g
        .cloud
        .parse()
        .map_err(|e: AcrError| Failure::usage(e.to_string()))?;
    Ok(cloud.with_overrides(|k| std::env::var(k).ok()))
}

/// The transport with `--ca-file`, `--insecure-registry` and the environment's credential
/// chain (`explicit` first, then Docker config, then Azure AD for ACR login servers).
pub fn transport(
    g: &Global,
    cloud: &Cloud,
    explicit: StaticCredentials,
) -> Result<Transport, Failure> {
    let suffix = cloud.login_server_suffix.clone();
    let mut builder = Transport::builder()
        .credentials_from(move |http| Arc::new(CredentialChain::from_env(http, explicit, &suffix)));
    if let Some(ca) = &g.ca_file {
        builder = builder.ca_file(ca);
    }
    for h in &g.insecure_registries {
        builder = builder.insecure_host(h.clone());
    }
    Ok(builder.build()?)
}
