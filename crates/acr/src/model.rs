//! The ARM resources this crate reads and the `importImage` request body.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{AcrError, RegistryResourceId};

/// A registry as `GET …/registries/{name}` returns it (the fields import cares about).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// The resource ID, as ARM echoes it.
    pub id: String,
    /// The registry name.
    pub name: String,
    /// The Azure region.
    #[serde(default)]
    pub location: String,
    /// The SKU.
    #[serde(default)]
    pub sku: Sku,
    /// The properties.
    #[serde(default)]
    pub properties: RegistryProperties,
}

impl Registry {
    /// The parsed resource ID.
    pub fn resource_id(&self) -> Result<RegistryResourceId, AcrError> {
        self.id.parse()
    }

    /// The login server (`myregistry.azurecr.io`).
    pub fn login_server(&self) -> &str {
        &self.properties.login_server
    }

    /// The network-relevant facts of this registry, for [`crate::preflight`].
    pub fn network(&self) -> crate::preflight::RegistryNetwork {
        let p = &self.properties;
        let eq = |v: &Option<String>, want: &str| {
            v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(want))
        };
        crate::preflight::RegistryNetwork {
            name: self.name.clone(),
            sku: self.sku.name.parse().unwrap_or(SkuName::Other),
            public_network_access_disabled: eq(&p.public_network_access, "Disabled"),
            default_action_deny: p
                .network_rule_set
                .as_ref()
                .is_some_and(|n| n.default_action.eq_ignore_ascii_case("Deny")),
            ip_rules: p
                .network_rule_set
                .as_ref()
                .map(|n| n.ip_rules.iter().map(|r| r.value.clone()).collect())
                .unwrap_or_default(),
            trusted_services_bypass: !eq(&p.network_rule_bypass_options, "None"),
            export_policy_disabled: p
                .policies
                .as_ref()
                .and_then(|x| x.export_policy.as_ref())
                .is_some_and(|e| e.status.eq_ignore_ascii_case("disabled")),
            private_endpoints: p.private_endpoint_connections.len(),
            data_endpoints: self.data_endpoints(),
            arm_audience_tokens: self.accepts_arm_audience_tokens(),
        }
    }

    /// `roleAssignmentMode` (absent: the documented default, `LegacyRegistryPermissions`).
    pub fn role_assignment_mode(&self) -> RoleAssignmentMode {
        match self.properties.role_assignment_mode.as_deref() {
            Some(m) if m.eq_ignore_ascii_case("AbacRepositoryPermissions") => {
                RoleAssignmentMode::AbacRepositoryPermissions
            }
            _ => RoleAssignmentMode::LegacyRegistryPermissions,
        }
    }

    /// Whether the registry accepts Azure AD tokens of the ARM audience at its token exchange:
    /// `policies.azureADAuthenticationAsArmPolicy.status` (absent: `enabled`, the default).
    pub fn accepts_arm_audience_tokens(&self) -> bool {
        !self
            .properties
            .policies
            .as_ref()
            .and_then(|p| p.azure_ad_authentication_as_arm_policy.as_ref())
            .is_some_and(|s| s.status.eq_ignore_ascii_case("disabled"))
    }

    /// The hosts that serve blobs when `dataEndpointEnabled` is true (`dataEndpointHostNames`,
    /// e.g. `myregistry.westus2.data.azurecr.io`); empty otherwise.
    pub fn data_endpoints(&self) -> Vec<String> {
        if self.properties.data_endpoint_enabled == Some(true) {
            self.properties.data_endpoint_host_names.clone()
        } else {
            Vec::new()
        }
    }
}

/// `roleAssignmentMode` of a registry (learn.microsoft.com/azure/container-registry/
/// container-registry-rbac-abac-repository-permissions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum RoleAssignmentMode {
    /// "RBAC Registry Permissions": AcrPull/AcrPush and the other registry-wide roles.
    #[default]
    LegacyRegistryPermissions,
    /// "RBAC Registry + ABAC Repository Permissions": AcrPull, AcrPush and AcrDelete are not
    /// honored, Owner/Contributor/Reader give no data-plane access, and assignments of the
    /// repository roles may carry conditions naming repositories.
    AbacRepositoryPermissions,
}

impl fmt::Display for RoleAssignmentMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `sku`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sku {
    /// `Classic`, `Basic`, `Standard` or `Premium`.
    #[serde(default)]
    pub name: String,
    /// The tier (same values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

/// A SKU name, read case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkuName {
    /// Classic (retired; cannot import).
    Classic,
    /// Basic.
    Basic,
    /// Standard.
    Standard,
    /// Premium (network rules, private endpoints, export policy).
    Premium,
    /// Something else.
    Other,
}

impl std::str::FromStr for SkuName {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "classic" => SkuName::Classic,
            "basic" => SkuName::Basic,
            "standard" => SkuName::Standard,
            "premium" => SkuName::Premium,
            _ => SkuName::Other,
        })
    }
}

impl fmt::Display for SkuName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `properties` of a registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryProperties {
    /// The login server.
    #[serde(default)]
    pub login_server: String,
    /// `Enabled` | `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_network_access: Option<String>,
    /// Firewall rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_rule_set: Option<NetworkRuleSet>,
    /// `AzureServices` | `None`: whether trusted Microsoft services pass the firewall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_rule_bypass_options: Option<String>,
    /// Policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Policies>,
    /// Private endpoint connections (read-only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_endpoint_connections: Vec<serde_json::Value>,
    /// Whether the admin user is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_user_enabled: Option<bool>,
    /// Whether anonymous pull is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_pull_enabled: Option<bool>,
    /// Whether blobs are served from dedicated data endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_endpoint_enabled: Option<bool>,
    /// The data endpoints (read-only), when enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_endpoint_host_names: Vec<String>,
    /// `AbacRepositoryPermissions` | `LegacyRegistryPermissions` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_assignment_mode: Option<String>,
}

/// `networkRuleSet`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRuleSet {
    /// `Allow` | `Deny`.
    #[serde(default)]
    pub default_action: String,
    /// IPv4 addresses or CIDR ranges allowed.
    #[serde(default)]
    pub ip_rules: Vec<IpRule>,
}

/// One `ipRules` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRule {
    /// Always `Allow`.
    #[serde(default)]
    pub action: String,
    /// An IPv4 address or CIDR range.
    pub value: String,
}

/// `policies`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policies {
    /// `exportPolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_policy: Option<Status>,
    /// `azureADAuthenticationAsArmPolicy`: whether ARM-audience Azure AD tokens are accepted at
    /// the registry's token exchange.
    #[serde(
        default,
        rename = "azureADAuthenticationAsArmPolicy",
        skip_serializing_if = "Option::is_none"
    )]
    pub azure_ad_authentication_as_arm_policy: Option<Status>,
}

/// `{status}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `enabled` | `disabled` (casing varies).
    #[serde(default)]
    pub status: String,
}

/// A subscription as `GET /subscriptions` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The subscription ID (a GUID).
    pub subscription_id: String,
    /// Its display name.
    #[serde(default)]
    pub display_name: String,
    /// Its tenant.
    #[serde(default)]
    pub tenant_id: String,
}

/// `mode` of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ImportMode {
    /// Fail if any target tag exists (before copying).
    #[default]
    NoForce,
    /// Move existing target tags.
    Force,
}

/// The body of `POST …/importImage` (`ImportImageParameters`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportImageParameters {
    /// Where from.
    pub source: ImportSource,
    /// Target `repo[:tag]`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_tags: Vec<String>,
    /// Target repositories of untagged (by digest) copies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untagged_target_repositories: Vec<String>,
    /// `Force` or `NoForce`.
    pub mode: ImportMode,
}

/// `source` of an import: `resourceId` xor `registryUri`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSource {
    /// `repo`, `repo:tag` or `repo@sha256:…`.
    pub source_image: String,
    /// An Azure registry's resource ID (authorised with the caller's identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Any registry's `host[:port]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_uri: Option<String>,
    /// Credentials for `registryUri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<ImportSourceCredentials>,
}

/// `credentials` of a source. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSourceCredentials {
    /// The username (absent: the password is a token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The password or token.
    pub password: String,
}

impl fmt::Debug for ImportSourceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportSourceCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_matches_the_documented_shape() {
        let body = ImportImageParameters {
            source: ImportSource {
                source_image: "sourceRepository:sourceTag".into(),
                resource_id: Some("/subscriptions/x/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/src".into()),
                registry_uri: None,
                credentials: None,
            },
            target_tags: vec!["targetRepository:targetTag".into()],
            untagged_target_repositories: vec!["targetRepository1".into()],
            mode: ImportMode::Force,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"source": {"sourceImage": "sourceRepository:sourceTag", "resourceId": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/src"},
                   "targetTags": ["targetRepository:targetTag"], "untaggedTargetRepositories": ["targetRepository1"], "mode": "Force"})
        );
        let creds = ImportSourceCredentials {
            username: Some("u".into()),
            password: "hunter2-Secret".into(),
        };
        assert!(!format!("{creds:?}").contains("hunter2"));
    }

    #[test]
    fn network_reads_varied_casing() {
        let r: Registry = serde_json::from_value(json!({
            "id": "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg1",
            "name": "myreg1", "location": "westus", "sku": {"name": "premium"},
            "properties": {"loginServer": "myreg1.azurecr.io", "publicNetworkAccess": "disabled",
              "networkRuleSet": {"defaultAction": "deny", "ipRules": [{"action": "Allow", "value": "1.2.3.0/24"}]},
              "networkRuleBypassOptions": "none", "policies": {"exportPolicy": {"status": "Disabled"}}}
        }))
        .unwrap();
        let n = r.network();
        assert!(
            n.public_network_access_disabled
                && n.default_action_deny
                && !n.trusted_services_bypass
                && n.export_policy_disabled
        );
        assert_eq!(n.sku, SkuName::Premium);
        assert_eq!(n.ip_rules, ["1.2.3.0/24"]);
        let plain: Registry = serde_json::from_value(json!({"id": "x", "name": "myreg2"})).unwrap();
        let n = plain.network();
        assert!(
            !n.public_network_access_disabled
                && !n.default_action_deny
                && n.trusted_services_bypass
        );
        assert_eq!(
            plain.role_assignment_mode(),
            RoleAssignmentMode::LegacyRegistryPermissions
        );
        assert!(plain.accepts_arm_audience_tokens());
        assert!(plain.data_endpoints().is_empty());
    }

    #[test]
    fn reads_the_2025_11_01_properties() {
        // The shape of `RegistryProperties` in Microsoft.ContainerRegistry 2025-11-01.
        let r: Registry = serde_json::from_value(json!({
            "id": "x", "name": "myreg3", "sku": {"name": "Premium"},
            "properties": {"loginServer": "myreg3.azurecr.io", "roleAssignmentMode": "abacRepositoryPermissions",
              "dataEndpointEnabled": true, "dataEndpointHostNames": ["myreg3.westus2.data.azurecr.io"],
              "policies": {"azureADAuthenticationAsArmPolicy": {"status": "Disabled"}}}
        }))
        .unwrap();
        assert_eq!(
            r.role_assignment_mode(),
            RoleAssignmentMode::AbacRepositoryPermissions
        );
        assert!(!r.accepts_arm_audience_tokens());
        assert_eq!(r.data_endpoints(), ["myreg3.westus2.data.azurecr.io"]);
        assert_eq!(
            r.network().data_endpoints,
            ["myreg3.westus2.data.azurecr.io"]
        );
        // Host names are listed only while data endpoints are enabled.
        let mut off = r.clone();
        off.properties.data_endpoint_enabled = Some(false);
        assert!(off.data_endpoints().is_empty());
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(
            back["properties"]["policies"]["azureADAuthenticationAsArmPolicy"]["status"],
            "Disabled"
        );
    }
}
