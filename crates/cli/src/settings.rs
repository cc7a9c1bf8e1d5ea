//! What every command resolves the same way from the global flags: the cloud, the importer's
//! configuration and the transport.

use acr_import_acr::{AcrError, Cloud, ImporterConfig};
use acr_import_auth::StaticCredentials;
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

/// The importer's configuration: the environment's, with `--cloud`, `--ca-file`,
/// `--insecure-registry` and `--subscription`.
pub fn config(g: &Global) -> Result<ImporterConfig, Failure> {
    let mut config = ImporterConfig::from_env(cloud(g)?);
    config.ca_file = g.ca_file.clone();
    config.insecure_registries = g.insecure_registries.clone();
    config.subscription = g.subscription.clone();
    config.acr_audience = g
        .acr_audience
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: acr_import_auth::AuthError| Failure::usage(e.to_string()))?;
    Ok(config)
}

/// The transport with `--ca-file`, `--insecure-registry` and the environment's credential
/// chain (`explicit` first, then Docker config, then Azure AD for ACR login servers).
pub fn transport(g: &Global, explicit: StaticCredentials) -> Result<Transport, Failure> {
    Ok(config(g)?.transport(explicit)?)
}
