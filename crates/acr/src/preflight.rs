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
//! `Deny` needs an IP rule matching this machine's public address (unknown unless given).

use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;

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
        }
    }

    /// `publicNetworkAccess == Disabled || defaultAction == Deny`.
    pub fn restricted(&self) -> bool {
        self.public_network_access_disabled || self.default_action_deny
    }

    /// One line: public access, default action, IP rules, bypass, private endpoints.
    pub fn summary(&self) -> String {
        format!(
            "{}: public network access {}, default action {}, IP rules [{}], trusted services {}, {} private endpoint(s)",
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

/// The rule a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Rule {
    /// The target's SKU cannot import (Classic, or unknown).
    ClassicSku,
    /// The target is restricted and trusted services may not bypass its firewall.
    TargetTrustedServicesOff,
    /// The Azure source is restricted and trusted services may not bypass its firewall.
    SourceTrustedServicesOff,
    /// The source has public access disabled and is named by login server.
    SourceNeedsResourceId,
    /// The source has public access disabled and is in another tenant.
    CrossTenantPublicAccessDisabled,
    /// The source's export policy is disabled.
    ExportPolicyDisabled,
    /// The source resource ID is in another tenant.
    CrossTenantResourceId,
    /// The caller cannot read the source (linked-scope check).
    LinkedScopeReadMissing,
    /// The source resource ID does not exist.
    SourceNotFound,
    /// The source's rules cannot be read.
    SourceRulesUnknown,
    /// A local layout cannot be imported server-side.
    LocalSource,
    /// This machine's address is not in a registry's IP rules.
    ClientIpNotAllowed,
    /// This machine's address is unknown and a registry allows only listed addresses.
    ClientIpUnknown,
    /// A registry is reachable only through private endpoints.
    PrivateEndpointOnly,
}

/// One reason an import will fail (or may).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The registry concerned.
    pub registry: String,
    /// What is wrong.
    pub reason: String,
    /// What to do about it.
    pub fix: String,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Nothing in the rules stops the import.
    WillWork,
    /// A rule says the import will fail.
    WillFail,
    /// Something the rules need is unknown.
    CannotTell,
}

/// The verdict and its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preflight {
    /// The verdict.
    pub verdict: Verdict,
    /// Why it will fail (verdict `WillFail`).
    pub failures: Vec<Finding>,
    /// What could not be decided (verdict `CannotTell`, or alongside failures).
    pub unknowns: Vec<Finding>,
    /// Observations that do not change the verdict.
    pub notes: Vec<String>,
}

impl Preflight {
    /// Whether the verdict is [`Verdict::WillFail`].
    pub fn will_fail(&self) -> bool {
        self.verdict == Verdict::WillFail
    }
}

impl fmt::Display for Preflight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = match self.verdict {
            Verdict::WillWork => {
                "preflight: the import will work as far as network rules and policies go"
            }
            Verdict::WillFail => "preflight: the import will fail",
            Verdict::CannotTell => "preflight: cannot tell whether the import will work",
        };
        writeln!(f, "{head}")?;
        for x in &self.failures {
            writeln!(
                f,
                "  FAIL {}: {}\n       fix: {}",
                x.registry, x.reason, x.fix
            )?;
        }
        for x in &self.unknowns {
            writeln!(
                f,
                "  UNKNOWN {}: {}\n       to be sure: {}",
                x.registry, x.reason, x.fix
            )?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

fn trusted_services_fix(name: &str) -> String {
    format!("az acr update -n {name} --allow-trusted-services true")
}

/// Decides. Pure: the same input gives the same verdict.
pub fn evaluate(input: &PreflightInput) -> Preflight {
    let mut failures = Vec::new();
    let mut unknowns = Vec::new();
    let mut notes = Vec::new();
    let mut fail = |rule, registry: &str, reason: String, fix: String| {
        failures.push(Finding {
            rule,
            registry: registry.to_owned(),
            reason,
            fix,
        })
    };
    match input.engine {
        PreflightEngine::Server => {
            if let Some(t) = &input.target {
                match t.sku {
                    SkuName::Classic => fail(
                        Rule::ClassicSku,
                        &t.name,
                        "the target is a Classic SKU registry: Classic SKU cannot import (imports are only supported for managed registries)".into(),
                        format!("upgrade it: az acr update -n {} --sku Basic (or Standard, Premium)", t.name),
                    ),
                    SkuName::Other => fail(
                        Rule::ClassicSku,
                        &t.name,
                        "the target's SKU is not Basic, Standard or Premium: imports are only supported for managed registries".into(),
                        format!("check it with az acr show -n {} --query sku", t.name),
                    ),
                    _ => {}
                }
                if t.restricted() {
                    if t.trusted_services_bypass {
                        notes.push(format!(
                            "{} restricts network access; the import service passes as a trusted Microsoft service",
                            t.name
                        ));
                    } else {
                        fail(
                            Rule::TargetTrustedServicesOff,
                            &t.name,
                            format!(
                                "the target restricts network access ({}) and does not let trusted Microsoft services bypass its firewall, so the import service cannot write to it; IP rules cannot help (the service's addresses are not published)",
                                restriction(t)
                            ),
                            trusted_services_fix(&t.name),
                        );
                    }
                }
            }
            match &input.source {
                PreflightSource::Azure {
                    registry: s,
                    by_resource_id,
                    cross_tenant,
                } => {
                    if s.restricted() {
                        if s.trusted_services_bypass {
                            notes.push(format!(
                                "{} restricts network access; the import service passes as a trusted Microsoft service",
                                s.name
                            ));
                        } else {
                            fail(
                                Rule::SourceTrustedServicesOff,
                                &s.name,
                                format!(
                                    "the source restricts network access ({}) and does not let trusted Microsoft services bypass its firewall, so the import service cannot read it",
                                    restriction(s)
                                ),
                                trusted_services_fix(&s.name),
                            );
                        }
                    }
                    if s.public_network_access_disabled && *cross_tenant {
                        fail(
                            Rule::CrossTenantPublicAccessDisabled,
                            &s.name,
                            "cross-tenant import from a registry with public access disabled is not supported".into(),
                            format!("import from a registry in your own tenant, or enable public access on the source: az acr update -n {} --public-network-enabled true", s.name),
                        );
                    } else if s.public_network_access_disabled && !by_resource_id {
                        fail(
                            Rule::SourceNeedsResourceId,
                            &s.name,
                            "the source has public network access disabled and is named by its login server: the service can reach it only when it is named by resource ID".into(),
                            "name the source by resource ID: --registry /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ContainerRegistry/registries/<name> and --source repo:tag".into(),
                        );
                    }
                    if s.export_policy_disabled {
                        fail(
                            Rule::ExportPolicyDisabled,
                            &s.name,
                            "export policy disabled on source: images cannot be imported from it".into(),
                            format!("az acr update -n {} --allow-exports true", s.name),
                        );
                    }
                    if *by_resource_id && *cross_tenant && !s.public_network_access_disabled {
                        fail(
                            Rule::CrossTenantResourceId,
                            &s.name,
                            "the source is in another tenant: a resource ID there cannot be authorised for your identity".into(),
                            "name the source by login server (a full --source without --registry) and pass credentials for it (--username/--password: a token, service principal or Entra access token)".into(),
                        );
                    }
                }
                PreflightSource::Unreadable { id, why } => match why {
                    Unreadable::Forbidden => fail(
                        Rule::LinkedScopeReadMissing,
                        id,
                        "you cannot read the source registry: ARM's linked-scope check will refuse the import ('does not have permission to perform action read on the linked scope')".into(),
                        format!("grant read on it: az role assignment create --assignee <your principal> --role Reader --scope {id}"),
                    ),
                    Unreadable::OtherTenant => fail(
                        Rule::CrossTenantResourceId,
                        id,
                        "the source resource ID is in another tenant: it cannot be authorised for your identity".into(),
                        "name the source by login server (a full --source without --registry) and pass credentials for it".into(),
                    ),
                    Unreadable::NotFound => fail(
                        Rule::SourceNotFound,
                        id,
                        "there is no such registry".into(),
                        "check the ID with az acr show --ids <id>".into(),
                    ),
                },
                PreflightSource::UnknownAcr { login_server } => unknowns.push(Finding {
                    rule: Rule::SourceRulesUnknown,
                    registry: login_server.clone(),
                    reason: "the source is an Azure registry in no subscription you can read, so its network rules are unknown; it is imported as an external registry (anonymously, or with the credentials given) and fails if its public access is disabled".into(),
                    fix: "name it with --registry <resource ID> if you can get read access, or check its rules with its owner".into(),
                }),
                PreflightSource::External { host } => notes.push(format!(
                    "{host} is outside Azure: if it has an IP allow-list, it must allow ACR's egress addresses"
                )),
                PreflightSource::Local => fail(
                    Rule::LocalSource,
                    "oci layout",
                    "a local OCI layout cannot be imported server-side: the service cannot read this machine's files".into(),
                    "use --mode client".into(),
                ),
            }
        }
        PreflightEngine::Client { client_ip } => {
            let mut registries: Vec<&RegistryNetwork> = Vec::new();
            registries.extend(input.target.iter());
            if let PreflightSource::Azure { registry, .. } = &input.source {
                registries.push(registry);
            }
            for r in registries {
                if r.public_network_access_disabled {
                    let finding = Finding {
                        rule: Rule::PrivateEndpointOnly,
                        registry: r.name.clone(),
                        reason: format!(
                            "public network access is disabled: {} is reachable only through a private endpoint ({} configured)",
                            r.name, r.private_endpoints
                        ),
                        fix: format!(
                            "run from a network with a private endpoint to it, or use the server-side engine with trusted services allowed ({})",
                            trusted_services_fix(&r.name)
                        ),
                    };
                    if r.private_endpoints == 0 {
                        failures.push(finding);
                    } else {
                        unknowns.push(finding);
                    }
                } else if r.default_action_deny {
                    match client_ip {
                        Some(ip) if r.allows_ip(ip) => notes.push(format!(
                            "{ip} is allowed by {}'s IP rules",
                            r.name
                        )),
                        Some(ip) => failures.push(Finding {
                            rule: Rule::ClientIpNotAllowed,
                            registry: r.name.clone(),
                            reason: format!(
                                "your IP {ip} is not allowed by the registry's firewall ({})",
                                r.summary()
                            ),
                            fix: format!("az acr network-rule add -n {} --ip-address {ip}", r.name),
                        }),
                        None => unknowns.push(Finding {
                            rule: Rule::ClientIpUnknown,
                            registry: r.name.clone(),
                            reason: format!(
                                "the registry allows only listed addresses ({}); whether this machine's public address is among them is unknown",
                                r.summary()
                            ),
                            fix: format!(
                                "compare your public IP with the rules, or add it: az acr network-rule add -n {} --ip-address <your IP>",
                                r.name
                            ),
                        }),
                    }
                }
            }
            if let PreflightSource::UnknownAcr { login_server } = &input.source {
                notes.push(format!(
                    "{login_server} is an Azure registry in no subscription you can read: its network rules are unknown"
                ));
            }
        }
    }
    let verdict = if !failures.is_empty() {
        Verdict::WillFail
    } else if !unknowns.is_empty() {
        Verdict::CannotTell
    } else {
        Verdict::WillWork
    };
    Preflight {
        verdict,
        failures,
        unknowns,
        notes,
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
mod tests {
    use super::*;

    fn reg(name: &str, f: impl FnOnce(&mut RegistryNetwork)) -> RegistryNetwork {
        let mut r = RegistryNetwork::open(name);
        r.sku = SkuName::Premium;
        f(&mut r);
        r
    }

    fn server(target: RegistryNetwork, source: PreflightSource) -> Preflight {
        evaluate(&PreflightInput {
            engine: PreflightEngine::Server,
            target: Some(target),
            source,
        })
    }

    fn azure(r: RegistryNetwork, by_id: bool, cross: bool) -> PreflightSource {
        PreflightSource::Azure {
            registry: r,
            by_resource_id: by_id,
            cross_tenant: cross,
        }
    }

    fn rules(p: &Preflight) -> Vec<Rule> {
        p.failures
            .iter()
            .chain(&p.unknowns)
            .map(|f| f.rule)
            .collect()
    }

    #[test]
    fn server_rules_table() {
        use Rule::*;
        let open = || reg("target", |_| {});
        let deny = |bypass: bool| {
            reg("target", move |r| {
                r.default_action_deny = true;
                r.trusted_services_bypass = bypass;
            })
        };
        let src = |f: fn(&mut RegistryNetwork)| reg("source", f);
        let cases: Vec<(&str, RegistryNetwork, PreflightSource, Verdict, Vec<Rule>)> = vec![
            (
                "all open",
                open(),
                azure(src(|_| {}), true, false),
                Verdict::WillWork,
                vec![],
            ),
            (
                "classic target",
                reg("target", |r| r.sku = SkuName::Classic),
                azure(src(|_| {}), true, false),
                Verdict::WillFail,
                vec![ClassicSku],
            ),
            (
                "unknown sku",
                reg("target", |r| r.sku = SkuName::Other),
                azure(src(|_| {}), true, false),
                Verdict::WillFail,
                vec![ClassicSku],
            ),
            (
                "target deny, bypass",
                deny(true),
                azure(src(|_| {}), true, false),
                Verdict::WillWork,
                vec![],
            ),
            (
                "target deny, no bypass",
                deny(false),
                azure(src(|_| {}), true, false),
                Verdict::WillFail,
                vec![TargetTrustedServicesOff],
            ),
            (
                "target private, no bypass",
                reg("target", |r| {
                    r.public_network_access_disabled = true;
                    r.trusted_services_bypass = false;
                }),
                PreflightSource::External {
                    host: "docker.io".into(),
                },
                Verdict::WillFail,
                vec![TargetTrustedServicesOff],
            ),
            (
                "target ip rules do not help",
                reg("target", |r| {
                    r.default_action_deny = true;
                    r.ip_rules = vec!["0.0.0.0/0".into()];
                    r.trusted_services_bypass = false;
                }),
                PreflightSource::External {
                    host: "docker.io".into(),
                },
                Verdict::WillFail,
                vec![TargetTrustedServicesOff],
            ),
            (
                "private endpoints alone do not restrict",
                reg("target", |r| {
                    r.private_endpoints = 2;
                    r.trusted_services_bypass = false;
                }),
                azure(src(|_| {}), true, false),
                Verdict::WillWork,
                vec![],
            ),
            (
                "source deny, no bypass",
                open(),
                azure(
                    src(|r| {
                        r.default_action_deny = true;
                        r.trusted_services_bypass = false;
                    }),
                    true,
                    false,
                ),
                Verdict::WillFail,
                vec![SourceTrustedServicesOff],
            ),
            (
                "source deny, bypass",
                open(),
                azure(src(|r| r.default_action_deny = true), false, false),
                Verdict::WillWork,
                vec![],
            ),
            (
                "source private by login server",
                open(),
                azure(
                    src(|r| r.public_network_access_disabled = true),
                    false,
                    false,
                ),
                Verdict::WillFail,
                vec![SourceNeedsResourceId],
            ),
            (
                "source private by id",
                open(),
                azure(
                    src(|r| r.public_network_access_disabled = true),
                    true,
                    false,
                ),
                Verdict::WillWork,
                vec![],
            ),
            (
                "source private cross tenant",
                open(),
                azure(src(|r| r.public_network_access_disabled = true), true, true),
                Verdict::WillFail,
                vec![CrossTenantPublicAccessDisabled],
            ),
            (
                "source private cross tenant by login server",
                open(),
                azure(
                    src(|r| r.public_network_access_disabled = true),
                    false,
                    true,
                ),
                Verdict::WillFail,
                vec![CrossTenantPublicAccessDisabled],
            ),
            (
                "export disabled",
                open(),
                azure(
                    src(|r| {
                        r.public_network_access_disabled = true;
                        r.export_policy_disabled = true;
                    }),
                    true,
                    false,
                ),
                Verdict::WillFail,
                vec![ExportPolicyDisabled],
            ),
            (
                "cross tenant by id",
                open(),
                azure(src(|_| {}), true, true),
                Verdict::WillFail,
                vec![CrossTenantResourceId],
            ),
            (
                "cross tenant by login server",
                open(),
                azure(src(|_| {}), false, true),
                Verdict::WillWork,
                vec![],
            ),
            (
                "unreadable",
                open(),
                PreflightSource::Unreadable {
                    id: "/subscriptions/x".into(),
                    why: Unreadable::Forbidden,
                },
                Verdict::WillFail,
                vec![LinkedScopeReadMissing],
            ),
            (
                "other tenant id",
                open(),
                PreflightSource::Unreadable {
                    id: "/subscriptions/x".into(),
                    why: Unreadable::OtherTenant,
                },
                Verdict::WillFail,
                vec![CrossTenantResourceId],
            ),
            (
                "missing",
                open(),
                PreflightSource::Unreadable {
                    id: "/subscriptions/x".into(),
                    why: Unreadable::NotFound,
                },
                Verdict::WillFail,
                vec![SourceNotFound],
            ),
            (
                "unknown acr",
                open(),
                PreflightSource::UnknownAcr {
                    login_server: "other.azurecr.io".into(),
                },
                Verdict::CannotTell,
                vec![SourceRulesUnknown],
            ),
            (
                "external",
                open(),
                PreflightSource::External {
                    host: "docker.io".into(),
                },
                Verdict::WillWork,
                vec![],
            ),
            (
                "local",
                open(),
                PreflightSource::Local,
                Verdict::WillFail,
                vec![LocalSource],
            ),
            (
                "several",
                deny(false),
                azure(
                    src(|r| {
                        r.default_action_deny = true;
                        r.trusted_services_bypass = false;
                        r.export_policy_disabled = true;
                    }),
                    true,
                    false,
                ),
                Verdict::WillFail,
                vec![
                    TargetTrustedServicesOff,
                    SourceTrustedServicesOff,
                    ExportPolicyDisabled,
                ],
            ),
        ];
        for (what, target, source, verdict, want) in cases {
            let p = server(target, source);
            assert_eq!(p.verdict, verdict, "{what}: {p}");
            assert_eq!(rules(&p), want, "{what}: {p}");
            for f in &p.failures {
                assert!(!f.fix.is_empty() && !f.reason.is_empty(), "{what}");
            }
        }
    }

    #[test]
    fn fixes_are_exact() {
        let p = server(
            reg("target", |r| {
                r.default_action_deny = true;
                r.trusted_services_bypass = false;
            }),
            PreflightSource::External {
                host: "docker.io".into(),
            },
        );
        assert_eq!(
            p.failures[0].fix,
            "az acr update -n target --allow-trusted-services true"
        );
        let text = p.to_string();
        assert!(
            text.contains("will fail") && text.contains("--allow-trusted-services true"),
            "{text}"
        );
        let p = server(
            reg("target", |_| {}),
            azure(
                reg("source", |r| r.export_policy_disabled = true),
                true,
                false,
            ),
        );
        assert!(
            p.failures[0]
                .reason
                .contains("export policy disabled on source")
        );
        let p = server(
            reg("target", |r| r.sku = SkuName::Classic),
            PreflightSource::Local,
        );
        assert!(p.failures[0].reason.contains("Classic SKU cannot import"));
        let p = server(
            reg("t", |_| {}),
            azure(
                reg("s", |r| r.public_network_access_disabled = true),
                true,
                true,
            ),
        );
        assert!(p.failures[0].reason.contains(
            "cross-tenant import from a registry with public access disabled is not supported"
        ));
        let p = server(
            reg("t", |_| {}),
            azure(
                reg("s", |r| r.public_network_access_disabled = true),
                false,
                false,
            ),
        );
        assert!(p.failures[0].fix.contains("name the source by resource ID"));
    }

    #[test]
    fn client_rules_table() {
        use Rule::*;
        let ip: Ipv4Addr = "203.0.113.7".parse().unwrap();
        let client = |ip| PreflightEngine::Client { client_ip: ip };
        let deny_with = |rules: &[&str]| {
            reg("target", |r| {
                r.default_action_deny = true;
                r.ip_rules = rules.iter().map(|s| s.to_string()).collect();
                r.trusted_services_bypass = false;
            })
        };
        type ClientCase = (
            &'static str,
            PreflightEngine,
            Option<RegistryNetwork>,
            PreflightSource,
            Verdict,
            Vec<Rule>,
        );
        let cases: Vec<ClientCase> = vec![
            (
                "open",
                client(None),
                Some(reg("t", |_| {})),
                PreflightSource::External {
                    host: "docker.io".into(),
                },
                Verdict::WillWork,
                vec![],
            ),
            (
                "non-azure target",
                client(None),
                None,
                PreflightSource::External {
                    host: "docker.io".into(),
                },
                Verdict::WillWork,
                vec![],
            ),
            (
                "ip allowed by cidr",
                client(Some(ip)),
                Some(deny_with(&["203.0.113.0/24"])),
                PreflightSource::Local,
                Verdict::WillWork,
                vec![],
            ),
            (
                "ip allowed exactly",
                client(Some(ip)),
                Some(deny_with(&["203.0.113.7"])),
                PreflightSource::Local,
                Verdict::WillWork,
                vec![],
            ),
            (
                "ip not allowed",
                client(Some(ip)),
                Some(deny_with(&["198.51.100.0/24"])),
                PreflightSource::Local,
                Verdict::WillFail,
                vec![ClientIpNotAllowed],
            ),
            (
                "ip unknown",
                client(None),
                Some(deny_with(&["198.51.100.0/24"])),
                PreflightSource::Local,
                Verdict::CannotTell,
                vec![ClientIpUnknown],
            ),
            (
                "source denies ip",
                client(Some(ip)),
                None,
                azure(deny_with(&[]), true, false),
                Verdict::WillFail,
                vec![ClientIpNotAllowed],
            ),
            (
                "private, no endpoint",
                client(None),
                Some(reg("t", |r| r.public_network_access_disabled = true)),
                PreflightSource::Local,
                Verdict::WillFail,
                vec![PrivateEndpointOnly],
            ),
            (
                "private with endpoint",
                client(None),
                Some(reg("t", |r| {
                    r.public_network_access_disabled = true;
                    r.private_endpoints = 1;
                })),
                PreflightSource::Local,
                Verdict::CannotTell,
                vec![PrivateEndpointOnly],
            ),
            (
                "trusted services do not help the client",
                client(Some(ip)),
                Some(reg("t", |r| {
                    r.default_action_deny = true;
                    r.trusted_services_bypass = true;
                })),
                PreflightSource::Local,
                Verdict::WillFail,
                vec![ClientIpNotAllowed],
            ),
            (
                "export policy is a server matter",
                client(None),
                None,
                azure(reg("s", |r| r.export_policy_disabled = true), false, false),
                Verdict::WillWork,
                vec![],
            ),
        ];
        for (what, engine, target, source, verdict, want) in cases {
            let p = evaluate(&PreflightInput {
                engine,
                target,
                source,
            });
            assert_eq!(p.verdict, verdict, "{what}: {p}");
            assert_eq!(rules(&p), want, "{what}: {p}");
        }
        let p = evaluate(&PreflightInput {
            engine: client(Some(ip)),
            target: Some(deny_with(&["198.51.100.0/24"])),
            source: PreflightSource::Local,
        });
        assert!(
            p.failures[0]
                .reason
                .contains("your IP 203.0.113.7 is not allowed by the registry's firewall")
        );
        assert!(p.failures[0].reason.contains("198.51.100.0/24"));
    }

    #[test]
    fn cidr() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(cidr_contains("10.0.0.0/8", ip("10.200.1.1")));
        assert!(!cidr_contains("10.0.0.0/8", ip("11.0.0.1")));
        assert!(cidr_contains("0.0.0.0/0", ip("8.8.8.8")));
        assert!(cidr_contains("1.2.3.4", ip("1.2.3.4")));
        assert!(!cidr_contains("1.2.3.4/33", ip("1.2.3.4")));
        assert!(!cidr_contains("garbage", ip("1.2.3.4")));
    }
}
