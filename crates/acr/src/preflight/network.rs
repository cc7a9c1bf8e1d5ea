//! The network preflight: will an import get through the registries' firewalls and policies?
//!
//! [`evaluate`] is a pure function of what ARM says about the registries
//! ([`RegistryNetwork`], read with [`crate::Registry::network`]) and how the source is named
//! ([`PreflightSource`]). Its rules, for the server-side `importImage` engine:
//!
//! - a target of the Classic SKU (or no managed SKU) cannot import;
//! - a *restricted* registry (`publicNetworkAccess: Disabled` or `networkRuleSet.defaultAction:
//!   Deny`) lets the import service through only when trusted services may bypass its firewall
//!   (`networkRuleBypassOptions: AzureServices`); IP rules cannot help (the service's addresses
//!   are not published) — this applies to the target and to an Azure source;
//! - an Azure source with public access disabled must be named by resource ID, and must be in
//!   the caller's tenant;
//! - an Azure source whose export policy is disabled cannot be imported from;
//! - a source resource ID in another tenant cannot be authorised; one the caller cannot read
//!   fails ARM's linked-scope check;
//! - an ACR login server that no readable subscription holds is imported as an external
//!   registry, whose rules cannot be read: "cannot tell".
//!
//! For the client-side engine (bytes through this machine), this machine's address must pass
//! each Azure registry's firewall: public access disabled leaves only private endpoints, and

use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;

use super::{Findings, Preflight, Rule};
use crate::model::SkuName;

/// What decides whether one registry lets an import through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryNetwork {
    /// The registry name.
    pub name: String,
    /// Its SKU.
    #[serde(serialize_with = "display")]
    pub sku: SkuName,
    /// `publicNetworkAccess == Disabled`.
    pub public_network_access_disabled: bool,
    /// `networkRuleSet.defaultAction == Deny`.
    pub default_action_deny: bool,
    /// `networkRuleSet.ipRules[].value`.
    pub ip_rules: Vec<String>,
    /// `networkRuleBypassOptions == AzureServices` (the default).
    pub trusted_services_bypass: bool,
    /// `policies.exportPolicy.status == disabled`.
    pub export_policy_disabled: bool,
    /// How many private endpoint connections it has.
    pub private_endpoints: usize,
    /// The data endpoints blobs come from (`dataEndpointHostNames`, when enabled): a client
    /// firewall or proxy must let them through as well as the login server.
    pub data_endpoints: Vec<String>,
    /// `policies.azureADAuthenticationAsArmPolicy` enabled (the default): the registry accepts
    /// Azure AD tokens of the ARM audience at its token exchange.
    pub arm_audience_tokens: bool,
}

fn display<T: fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl RegistryNetwork {
    /// An unrestricted Standard registry (a convenient base for tests and defaults).
    pub fn open(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            sku: SkuName::Standard,
            public_network_access_disabled: false,
            default_action_deny: false,
            ip_rules: Vec::new(),
            trusted_services_bypass: true,
            export_policy_disabled: false,
            private_endpoints: 0,
            data_endpoints: Vec::new(),
            arm_audience_tokens: true,
        }
    }

    /// `publicNetworkAccess == Disabled || defaultAction == Deny`.
    pub fn restricted(&self) -> bool {
        self.public_network_access_disabled || self.default_action_deny
    }

    /// One line: public access, default action, IP rules, bypass, private endpoints, data
    /// endpoints.
    pub fn summary(&self) -> String {
        let data = if self.data_endpoints.is_empty() {
            String::new()
        } else {
            format!(
                "; blobs come from the data endpoint(s) {}",
                self.data_endpoints.join(", ")
            )
        };
        format!(
            "{}: public network access {}, default action {}, IP rules [{}], trusted services {}, {} private endpoint(s){data}",
            self.name,
            if self.public_network_access_disabled {
                "Disabled"
            } else {
                "Enabled"
            },
            if self.default_action_deny {
                "Deny"
            } else {
                "Allow"
            },
            self.ip_rules.join(", "),
            if self.trusted_services_bypass {
                "allowed (AzureServices)"
            } else {
                "not allowed (None)"
            },
            self.private_endpoints
        )
    }

    /// Whether `ip` matches one of the IP rules (an address or an IPv4 CIDR range).
    pub fn allows_ip(&self, ip: Ipv4Addr) -> bool {
        self.ip_rules.iter().any(|r| cidr_contains(r, ip))
    }
}

/// Whether the IPv4 address or CIDR range `rule` contains `ip` (a malformed rule matches nothing).
pub fn cidr_contains(rule: &str, ip: Ipv4Addr) -> bool {
    let (addr, bits) = match rule.trim().split_once('/') {
        Some((a, b)) => match b.parse::<u32>() {
            Ok(b) if b <= 32 => (a, b),
            _ => return false,
        },
        None => (rule.trim(), 32),
    };
    let Ok(addr) = addr.parse::<Ipv4Addr>() else {
        return false;
    };
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(addr) & mask == u32::from(ip) & mask
}

/// Why a source named by resource ID could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unreadable {
    /// 403: no `read` permission (ARM's linked-scope check will refuse the import too).
    Forbidden,
    /// The subscription is in another tenant than the caller's token.
    OtherTenant,
    /// 404: no such registry.
    NotFound,
}

/// The source of an import, as far as the preflight is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PreflightSource {
    /// An Azure registry whose properties were read.
    Azure {
        /// Its network facts.
        registry: RegistryNetwork,
        /// Named by resource ID (else by login server, as `registryUri`).
        by_resource_id: bool,
        /// In another tenant than the caller's.
        cross_tenant: bool,
    },
    /// Named by a resource ID that could not be read.
    Unreadable {
        /// The ID.
        id: String,
        /// Why.
        why: Unreadable,
    },
    /// An ACR login server that no subscription the identity can read holds.
    UnknownAcr {
        /// The login server.
        login_server: String,
    },
    /// A registry outside Azure.
    External {
        /// Its host.
        host: String,
    },
    /// A local OCI layout.
    Local,
}

/// Which engine the verdict is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PreflightEngine {
    /// ARM `importImage`: the service pulls.
    Server,
    /// The streaming engine: this machine pulls and pushes.
    Client {
        /// This machine's public IPv4 address, when known.
        client_ip: Option<Ipv4Addr>,
    },
}

/// Everything [`evaluate`] looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreflightInput {
    /// The engine.
    pub engine: PreflightEngine,
    /// The target, when it is an Azure registry whose properties were read.
    pub target: Option<RegistryNetwork>,
    /// The source.
    pub source: PreflightSource,
}

fn trusted_services_fix(name: &str) -> String {
    format!("az acr update -n {name} --allow-trusted-services true")
}

/// Decides. Pure: the same input gives the same verdict.
pub fn evaluate(input: &PreflightInput) -> Preflight {
    let mut f = Findings::default();
    match input.engine {
        PreflightEngine::Server => {
            if let Some(t) = &input.target {
                server_target(&mut f, t);
            }
            server_source(&mut f, &input.source);
        }
        PreflightEngine::Client { client_ip } => {
            let mut registries: Vec<&RegistryNetwork> = Vec::new();
            registries.extend(input.target.iter());
            if let PreflightSource::Azure { registry, .. } = &input.source {
                registries.push(registry);
            }
            for r in registries {
                client_registry(&mut f, r, client_ip);
            }
            if let PreflightSource::UnknownAcr { login_server } = &input.source {
                f.note(format!(
                    "{login_server} is an Azure registry in no subscription you can read: its network rules are unknown"
                ));
            }
        }
    }
    f.finish()
}

/// The server-side rules of the target: SKU, and the firewall against the import service.
fn server_target(f: &mut Findings, t: &RegistryNetwork) {
    match t.sku {
        SkuName::Classic => f.fail(
            Rule::ClassicSku,
            &t.name,
            "the target is a Classic SKU registry: Classic SKU cannot import (imports are only supported for managed registries)".into(),
            format!("upgrade it: az acr update -n {} --sku Basic (or Standard, Premium)", t.name),
        ),
        SkuName::Other => f.fail(
            Rule::ClassicSku,
            &t.name,
            "the target's SKU is not Basic, Standard or Premium: imports are only supported for managed registries".into(),
            format!("check it with az acr show -n {} --query sku", t.name),
        ),
        _ => {}
    }
    trusted_services(
        f,
        t,
        Rule::TargetTrustedServicesOff,
        "the target",
        "cannot write to it; IP rules cannot help (the service's addresses are not published)",
    );
}

/// A registry that restricts network access lets the import service through only as a trusted
/// Microsoft service: noted when it does, `rule` fails when it does not (the service then
/// `cannot`, as said).
fn trusted_services(f: &mut Findings, r: &RegistryNetwork, rule: Rule, which: &str, cannot: &str) {
    if !r.restricted() {
        return;
    }
    if r.trusted_services_bypass {
        f.note(format!(
            "{} restricts network access; the import service passes as a trusted Microsoft service",
            r.name
        ));
    } else {
        f.fail(
            rule,
            &r.name,
            format!(
                "{which} restricts network access ({}) and does not let trusted Microsoft services bypass its firewall, so the import service {cannot}",
                restriction(r)
            ),
            trusted_services_fix(&r.name),
        );
    }
}

/// The server-side rules of the source.
fn server_source(f: &mut Findings, source: &PreflightSource) {
    match source {
        PreflightSource::Azure {
            registry: s,
            by_resource_id,
            cross_tenant,
        } => server_azure_source(f, s, *by_resource_id, *cross_tenant),
        PreflightSource::Unreadable { id, why } => match why {
            Unreadable::Forbidden => f.fail(
                Rule::LinkedScopeReadMissing,
                id,
                "you cannot read the source registry: ARM's linked-scope check will refuse the import ('does not have permission to perform action read on the linked scope')".into(),
                format!("grant read on it: az role assignment create --assignee <your principal> --role Reader --scope {id}"),
            ),
            Unreadable::OtherTenant => f.fail(
                Rule::CrossTenantResourceId,
                id,
                "the source resource ID is in another tenant: it cannot be authorised for your identity".into(),
                "name the source by login server (a full --source without --registry) and pass credentials for it".into(),
            ),
            Unreadable::NotFound => f.fail(
                Rule::SourceNotFound,
                id,
                "there is no such registry".into(),
                "check the ID with az acr show --ids <id>".into(),
            ),
        },
        PreflightSource::UnknownAcr { login_server } => f.unknown(
            Rule::SourceRulesUnknown,
            login_server,
            "the source is an Azure registry in no subscription you can read, so its network rules are unknown; it is imported as an external registry (anonymously, or with the credentials given) and fails if its public access is disabled".into(),
            "name it with --registry <resource ID> if you can get read access, or check its rules with its owner".into(),
        ),
        PreflightSource::External { host } => f.note(format!(
            "{host} is outside Azure: if it has an IP allow-list, it must allow ACR's egress addresses"
        )),
        PreflightSource::Local => f.fail(
            Rule::LocalSource,
            "oci layout",
            "a local OCI layout cannot be imported server-side: the service cannot read this machine's files".into(),
            "use --mode client".into(),
        ),
    }
}

/// The server-side rules of an Azure source whose properties were read.
fn server_azure_source(
    f: &mut Findings,
    s: &RegistryNetwork,
    by_resource_id: bool,
    cross_tenant: bool,
) {
    trusted_services(
        f,
        s,
        Rule::SourceTrustedServicesOff,
        "the source",
        "cannot read it",
    );
    if s.public_network_access_disabled && cross_tenant {
        f.fail(
            Rule::CrossTenantPublicAccessDisabled,
            &s.name,
            "cross-tenant import from a registry with public access disabled is not supported".into(),
            format!("import from a registry in your own tenant, or enable public access on the source: az acr update -n {} --public-network-enabled true", s.name),
        );
    } else if s.public_network_access_disabled && !by_resource_id {
        f.fail(
            Rule::SourceNeedsResourceId,
            &s.name,
            "the source has public network access disabled and is named by its login server: the service can reach it only when it is named by resource ID".into(),
            "name the source by resource ID: --registry /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ContainerRegistry/registries/<name> and --source repo:tag".into(),
        );
    }
    if s.export_policy_disabled {
        f.fail(
            Rule::ExportPolicyDisabled,
            &s.name,
            "export policy disabled on source: images cannot be imported from it".into(),
            format!("az acr update -n {} --allow-exports true", s.name),
        );
    }
    if by_resource_id && cross_tenant && !s.public_network_access_disabled {
        f.fail(
            Rule::CrossTenantResourceId,
            &s.name,
            "the source is in another tenant: a resource ID there cannot be authorised for your identity".into(),
            "name the source by login server (a full --source without --registry) and pass credentials for it (--username/--password: a token, service principal or Entra access token)".into(),
        );
    }
}

/// The client-side rules of one Azure registry: this machine's address against its firewall.
fn client_registry(f: &mut Findings, r: &RegistryNetwork, client_ip: Option<Ipv4Addr>) {
    let data = data_endpoint_advice(r);
    if !r.arm_audience_tokens {
        f.note(format!(
            "{} accepts only ACR-audience Azure AD tokens (authentication as ARM is disabled): Azure AD sign-in asks for that audience (not with --acr-audience arm)",
            r.name
        ));
    }
    if r.public_network_access_disabled {
        let reason = format!(
            "public network access is disabled: {} is reachable only through a private endpoint ({} configured)",
            r.name, r.private_endpoints
        );
        let fix = format!(
            "run from a network with a private endpoint to it{data}, or use the server-side engine with trusted services allowed ({})",
            trusted_services_fix(&r.name)
        );
        if r.private_endpoints == 0 {
            f.fail(Rule::PrivateEndpointOnly, &r.name, reason, fix);
        } else {
            f.unknown(Rule::PrivateEndpointOnly, &r.name, reason, fix);
        }
    } else if r.default_action_deny {
        match client_ip {
            Some(ip) if r.allows_ip(ip) => {
                f.note(format!("{ip} is allowed by {}'s IP rules", r.name))
            }
            Some(ip) => f.fail(
                Rule::ClientIpNotAllowed,
                &r.name,
                format!(
                    "your IP {ip} is not allowed by the registry's firewall ({})",
                    r.summary()
                ),
                format!("az acr network-rule add -n {} --ip-address {ip}{data}", r.name),
            ),
            None => f.unknown(
                Rule::ClientIpUnknown,
                &r.name,
                format!(
                    "the registry allows only listed addresses ({}); whether this machine's public address is among them is unknown",
                    r.summary()
                ),
                format!(
                    "compare your public IP with the rules, or add it: az acr network-rule add -n {} --ip-address <your IP>{data}",
                    r.name
                ),
            ),
        }
    } else if !r.data_endpoints.is_empty() {
        f.note(format!(
            "{} serves blobs from its data endpoint(s) {}: a firewall or proxy on this side must let them through as well as the login server",
            r.name,
            r.data_endpoints.join(", ")
        ));
    }
}

/// `; this machine must also reach the data endpoint(s) …` when the registry has any.
fn data_endpoint_advice(r: &RegistryNetwork) -> String {
    if r.data_endpoints.is_empty() {
        String::new()
    } else {
        format!(
            " (blobs come from the data endpoint(s) {}: let this machine reach them too)",
            r.data_endpoints.join(", ")
        )
    }
}

fn restriction(r: &RegistryNetwork) -> &'static str {
    if r.public_network_access_disabled {
        "public network access Disabled"
    } else {
        "default action Deny"
    }
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
