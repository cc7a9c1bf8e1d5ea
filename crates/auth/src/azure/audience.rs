//! Which Azure AD audience the token presented to ACR's `/oauth2/exchange` is for.
//!
//! ACR accepts two audiences (github.com/Azure/acr `docs/AAD-OAuth.md`;
//! learn.microsoft.com/azure/container-registry/container-registry-disable-authentication-as-arm):
//!
//! - the ACR audience, `https://containerregistry.azure.net` (scope [`ACR_SCOPE`]), the same in
//!   every cloud and accepted by every registry; the Azure SDKs (`azure-containerregistry`) ask
//!   for it;
//! - the Azure Resource Manager audience of the registry's cloud (`https://management.azure.com`,
//!   `https://management.chinacloudapi.cn`, `https://management.usgovcloudapi.net`), accepted
//!   only while the registry's `policies.azureADAuthenticationAsArmPolicy.status` is `enabled`.
//!   The Azure security benchmark asks registries to disable it.
//!
//! [`AcrAudience::Auto`] (the default) asks for the ACR audience and falls back to the ARM one
//! only for a registry known to accept it ([`AcrTokenExchange::set_arm_audience_accepted`],
//! from the registry's ARM properties).
//!
//! [`AcrTokenExchange::set_arm_audience_accepted`]: super::AcrTokenExchange::set_arm_audience_accepted

use std::fmt;
use std::str::FromStr;

use crate::AuthError;

/// The Azure Resource Manager scope of the public cloud.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// The ACR scope: accepted by every registry, in every cloud.
pub const ACR_SCOPE: &str = "https://containerregistry.azure.net/.default";

/// The ARM scope of each sovereign cloud, by login-server suffix.
const SOVEREIGN_ARM_SCOPES: [(&str, &str); 2] = [
    (
        ".azurecr.cn",
        "https://management.chinacloudapi.cn/.default",
    ),
    (
        ".azurecr.us",
        "https://management.usgovcloudapi.net/.default",
    ),
];

/// The audience of the Azure AD token presented to ACR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AcrAudience {
    /// The ACR audience; the registry's ARM audience as a fallback only where the registry is
    /// known to accept ARM-audience tokens.
    #[default]
    Auto,
    /// Only `https://containerregistry.azure.net/.default`.
    ContainerRegistry,
    /// Only the ARM audience of the registry's cloud (what the Azure CLI asks for); refused by
    /// registries with authentication as ARM disabled.
    Arm,
}

impl AcrAudience {
    /// The scopes to try for `login_server`, in order. `arm_accepted` is what the registry's
    /// ARM properties say (`None`: unknown).
    pub fn scopes_for(self, login_server: &str, arm_accepted: Option<bool>) -> Vec<String> {
        let arm = arm_scope_for(login_server).to_owned();
        match self {
            AcrAudience::ContainerRegistry => vec![ACR_SCOPE.to_owned()],
            AcrAudience::Arm => vec![arm],
            AcrAudience::Auto if arm_accepted == Some(true) => vec![ACR_SCOPE.to_owned(), arm],
            AcrAudience::Auto => vec![ACR_SCOPE.to_owned()],
        }
    }

    /// How the audience is described in explanations.
    pub fn describe(self) -> &'static str {
        match self {
            AcrAudience::Auto => {
                "audience https://containerregistry.azure.net (ARM only as a fallback where the registry accepts it)"
            }
            AcrAudience::ContainerRegistry => "audience https://containerregistry.azure.net",
            AcrAudience::Arm => "audience Azure Resource Manager",
        }
    }
}

impl FromStr for AcrAudience {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, AuthError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(AcrAudience::Auto),
            "acr" | "containerregistry" | "https://containerregistry.azure.net" => {
                Ok(AcrAudience::ContainerRegistry)
            }
            "arm" => Ok(AcrAudience::Arm),
            other => Err(AuthError::AzureConfig {
                reason: format!("unknown ACR token audience `{other}`: use auto, acr or arm"),
            }),
        }
    }
}

impl fmt::Display for AcrAudience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcrAudience::Auto => "auto",
            AcrAudience::ContainerRegistry => "acr",
            AcrAudience::Arm => "arm",
        })
    }
}

/// The ARM scope of the cloud a login server belongs to (by its suffix; the public cloud's for
/// any other host, loopback emulators included).
pub fn arm_scope_for(login_server: &str) -> &'static str {
    let host = login_server
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(login_server, |(h, _)| h)
        .to_ascii_lowercase();
    SOVEREIGN_ARM_SCOPES
        .iter()
        .find(|(suffix, _)| host.ends_with(suffix))
        .map_or(ARM_SCOPE, |(_, scope)| scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_per_cloud_and_choice() {
        let auto = AcrAudience::default();
        assert_eq!(auto, AcrAudience::Auto);
        for ls in [
            "r.azurecr.io",
            "r.azurecr.cn",
            "r.azurecr.us",
            "127.0.0.1:5000",
        ] {
            assert_eq!(auto.scopes_for(ls, None), [ACR_SCOPE], "{ls}");
            assert_eq!(auto.scopes_for(ls, Some(false)), [ACR_SCOPE], "{ls}");
        }
        assert_eq!(
            auto.scopes_for("r.azurecr.cn", Some(true)),
            [ACR_SCOPE, "https://management.chinacloudapi.cn/.default"]
        );
        assert_eq!(
            AcrAudience::Arm.scopes_for("R.AZURECR.US:443", None),
            ["https://management.usgovcloudapi.net/.default"]
        );
        assert_eq!(
            AcrAudience::Arm.scopes_for("r.azurecr.io", None),
            [ARM_SCOPE]
        );
        assert_eq!(
            AcrAudience::ContainerRegistry.scopes_for("r.azurecr.io", Some(true)),
            [ACR_SCOPE]
        );
    }

    #[test]
    fn parses_the_option() {
        assert_eq!("ARM".parse::<AcrAudience>().unwrap(), AcrAudience::Arm);
        assert_eq!(
            "acr".parse::<AcrAudience>().unwrap(),
            AcrAudience::ContainerRegistry
        );
        assert_eq!("auto".parse::<AcrAudience>().unwrap(), AcrAudience::Auto);
        let err = "graph".parse::<AcrAudience>().unwrap_err().to_string();
        assert!(err.contains("auto, acr or arm"), "{err}");
    }
}
