//! The network rules, table by table.

use super::*;
use crate::preflight::Verdict;

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

// Long: a table, one case per rule and combination.
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

#[test]
fn client_advice_names_the_data_endpoints() {
    let data = |r: &mut RegistryNetwork| {
        r.data_endpoints = vec!["t.westus2.data.azurecr.io".into()];
    };
    let ip: Ipv4Addr = "203.0.113.7".parse().unwrap();
    let p = evaluate(&PreflightInput {
        engine: PreflightEngine::Client {
            client_ip: Some(ip),
        },
        target: Some(reg("t", |r| {
            data(r);
            r.default_action_deny = true;
        })),
        source: PreflightSource::Local,
    });
    assert_eq!(p.failures[0].rule, Rule::ClientIpNotAllowed);
    assert!(
        p.failures[0].fix.contains("t.westus2.data.azurecr.io"),
        "{p}"
    );
    assert!(p.failures[0].reason.contains("data endpoint"), "{p}");
    // An open registry with data endpoints: a note, not a finding.
    let p = evaluate(&PreflightInput {
        engine: PreflightEngine::Client { client_ip: None },
        target: Some(reg("t", data)),
        source: PreflightSource::Local,
    });
    assert_eq!(p.verdict, Verdict::WillWork);
    assert!(p.notes[0].contains("t.westus2.data.azurecr.io"), "{p}");
    // A registry that refuses ARM-audience tokens: said, without changing the verdict.
    let p = evaluate(&PreflightInput {
        engine: PreflightEngine::Client { client_ip: None },
        target: Some(reg("t", |r| r.arm_audience_tokens = false)),
        source: PreflightSource::Local,
    });
    assert_eq!(p.verdict, Verdict::WillWork);
    assert!(p.notes[0].contains("only ACR-audience"), "{p}");
}
