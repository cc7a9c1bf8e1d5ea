//! Choosing the engine: ARM `importImage` (server-side) or the streaming copy (client-side).

use std::fmt;

use crate::AcrError;

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineMode {
    /// Server-side when possible.
    #[default]
    Auto,
    /// Server-side only.
    Server,
    /// Client-side only.
    Client,
}

/// An engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// ARM `importImage`.
    Server,
    /// The streaming copy engine.
    Client,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Server => "server-side (ARM importImage: no bytes through this machine)",
            Engine::Client => "client-side (bytes stream through this machine)",
        })
    }
}

/// What the engine choice depends on.
#[derive(Debug, Clone, Default)]
pub struct EngineFacts {
    /// `Err(why)` when the target is not an ACR reachable through ARM.
    pub target_via_arm: Option<String>,
    /// Referrers asked for explicitly (`--include-referrers`).
    pub referrers_requested: bool,
    /// A platform filter.
    pub platform_filter: bool,
    /// An OCI layout source or target.
    pub oci_layout: bool,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// Chooses the engine and says why.
pub fn choose_engine(mode: EngineMode, facts: &EngineFacts) -> Result<(Engine, String), AcrError> {
    let mut unsupported = Vec::new();
    if facts.referrers_requested {
        unsupported.push("referrers were requested (importImage does not copy signatures, SBOMs or attestations)");
    }
    if facts.platform_filter {
        unsupported.push("a platform filter was given (importImage copies every platform)");
    }
    if facts.oci_layout {
        unsupported.push("an OCI layout is involved (the service cannot read local files)");
    }
    if facts.dry_run {
        unsupported.push("--dry-run was given (importImage has no dry run)");
    }
    match mode {
        EngineMode::Client => Ok((Engine::Client, "--mode client".into())),
        EngineMode::Server => {
            if let Some(why) = &facts.target_via_arm {
                return Err(AcrError::InvalidRequest {
                    message: format!(
                        "--mode server needs an ACR target reachable through Azure Resource Manager: {why}"
                    ),
                    hint: "use --mode client, or fix the Azure access named above".into(),
                });
            }
            if !unsupported.is_empty() {
                return Err(AcrError::InvalidRequest {
                    message: format!(
                        "--mode server cannot do this import: {}",
                        unsupported.join("; ")
                    ),
                    hint: "use --mode client (or --mode auto)".into(),
                });
            }
            Ok((Engine::Server, "--mode server".into()))
        }
        EngineMode::Auto => {
            if let Some(why) = &facts.target_via_arm {
                return Ok((
                    Engine::Client,
                    format!(
                        "the target is not an ACR reachable through Azure Resource Manager ({why})"
                    ),
                ));
            }
            if !unsupported.is_empty() {
                return Ok((Engine::Client, unsupported.join("; ")));
            }
            Ok((
                Engine::Server,
                "the target is an ACR reachable through Azure Resource Manager".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_choice() {
        let ok = EngineFacts::default();
        assert_eq!(
            choose_engine(EngineMode::Auto, &ok).unwrap().0,
            Engine::Server
        );
        assert_eq!(
            choose_engine(EngineMode::Client, &ok).unwrap().0,
            Engine::Client
        );
        let no_arm = EngineFacts {
            target_via_arm: Some("no subscription".into()),
            ..Default::default()
        };
        let (e, why) = choose_engine(EngineMode::Auto, &no_arm).unwrap();
        assert_eq!(e, Engine::Client);
        assert!(why.contains("no subscription"));
        assert!(choose_engine(EngineMode::Server, &no_arm).is_err());
        let server_cannot: [fn(&mut EngineFacts); 4] = [
            |f| f.referrers_requested = true,
            |f| f.platform_filter = true,
            |f| f.oci_layout = true,
            |f| f.dry_run = true,
        ];
        for set in server_cannot {
            let mut facts = EngineFacts::default();
            set(&mut facts);
            assert_eq!(
                choose_engine(EngineMode::Auto, &facts).unwrap().0,
                Engine::Client
            );
            assert!(choose_engine(EngineMode::Server, &facts).is_err());
        }
    }
}
