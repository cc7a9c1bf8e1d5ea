//! Import orchestration: resolving the target and the source, choosing the engine, building the
//! `importImage` body, running it, and the inputs of the preflight.

mod body;
mod context;
mod engine;
mod resolve;
mod server;
mod source;

pub use body::import_body;
pub use context::AzureContext;
pub use engine::{Engine, EngineFacts, EngineMode, choose_engine};
pub use resolve::resolve_source;
pub use server::{ServerOutcome, run_server_import, run_server_import_with};
pub use source::{ResolvedSource, SourceArgs, SourceResolution, is_acr_candidate};

use crate::model::Registry;
use crate::preflight::{PreflightEngine, PreflightInput, RegistryNetwork};

/// The preflight input for an import.
pub fn preflight_input(
    engine: Engine,
    target: Option<&Registry>,
    source: &ResolvedSource,
    client_ip: Option<std::net::Ipv4Addr>,
) -> PreflightInput {
    PreflightInput {
        engine: match engine {
            Engine::Server => PreflightEngine::Server,
            Engine::Client => PreflightEngine::Client { client_ip },
        },
        target: target.map(Registry::network),
        source: source.preflight(),
    }
}

/// The message for a client-side `403` on `/v2/` of an Azure registry.
pub fn firewall_message(registry: &RegistryNetwork) -> String {
    format!(
        "your IP is not allowed by the registry's firewall ({}); to see the rules: az acr show --query networkRuleSet --name {}",
        registry.summary(),
        registry.name
    )
}
