//! The network rules, one named case a line, a table per outcome.

use super::*;
use crate::preflight::{Finding, Verdict};

/// A Premium registry named `name` (`target` or `source`, as the fixes name them), changed
/// by `f`.
fn reg(name: &str, f: impl FnOnce(&mut RegistryNetwork)) -> RegistryNetwork {
    let mut r = RegistryNetwork::open(name);
    r.sku = SkuName::Premium;
    f(&mut r);
    r
}

/// The target, changed by `f`.
fn target(f: impl FnOnce(&mut RegistryNetwork)) -> RegistryNetwork {
    reg("target", f)
}

/// The source, changed by `f`.
fn source(f: impl FnOnce(&mut RegistryNetwork)) -> RegistryNetwork {
    reg("source", f)
}

fn open(_: &mut RegistryNetwork) {}

/// Public access denied by default, trusted services let through.
fn deny(r: &mut RegistryNetwork) {
    r.default_action_deny = true;
}

/// Public access denied by default, trusted services not let through.
fn deny_all(r: &mut RegistryNetwork) {
    r.default_action_deny = true;
    r.trusted_services_bypass = false;
}

fn private(r: &mut RegistryNetwork) {
    r.public_network_access_disabled = true;
}

/// Public access denied by default, only `rules` let through.
fn deny_but(rules: &[&str]) -> RegistryNetwork {
    target(|r| {
        deny_all(r);
        r.ip_rules = rules.iter().map(|s| s.to_string()).collect();
    })
}

fn azure(r: RegistryNetwork, by_id: bool, cross: bool) -> PreflightSource {
    PreflightSource::Azure {
        registry: r,
        by_resource_id: by_id,
        cross_tenant: cross,
    }
}

/// An Azure source named by resource ID, in the target's tenant.
fn by_id(r: RegistryNetwork) -> PreflightSource {
    azure(r, true, false)
}

/// An Azure source named by login server, in the target's tenant.
fn by_login_server(r: RegistryNetwork) -> PreflightSource {
    azure(r, false, false)
}

fn external() -> PreflightSource {
    PreflightSource::External {
        host: "docker.io".into(),
    }
}

fn local() -> PreflightSource {
    PreflightSource::Local
}

fn unreadable(why: Unreadable) -> PreflightSource {
    PreflightSource::Unreadable {
        id: "/subscriptions/x".into(),
        why,
    }
}

/// A server-side import.
fn server(target: RegistryNetwork, source: PreflightSource) -> PreflightInput {
    PreflightInput {
        engine: PreflightEngine::Server,
        target: Some(target),
        source,
    }
}

const CLIENT_IP: &str = "203.0.113.7";

/// A client-side import from this machine (its IP known or not) to `target` (an ACR, or not).
fn client(
    ip_known: bool,
    target: Option<RegistryNetwork>,
    source: PreflightSource,
) -> PreflightInput {
    PreflightInput {
        engine: PreflightEngine::Client {
            client_ip: ip_known.then(|| CLIENT_IP.parse().unwrap()),
        },
        target,
        source,
    }
}

/// `input` gets `verdict`, exactly `want` fire, and every failure says why and what to do.
fn expect(what: &str, input: PreflightInput, verdict: Verdict, want: &[Rule]) {
    let p = evaluate(&input);
    assert_eq!(p.verdict, verdict, "{what}: {p}");
    assert_eq!(p.rules(), want, "{what}: {p}");
    for f in &p.failures {
        assert!(!f.fix.is_empty() && !f.reason.is_empty(), "{what}");
    }
}

/// `Verdict { name: input => [rules]; … }`: one test a case, that `input` gets the verdict
/// and exactly these rules fire.
macro_rules! verdicts {
    ($($verdict:ident { $($name:ident: $input:expr => [$($rule:ident),*];)* })*) => {$($(
        #[test]
        fn $name() {
            expect(stringify!($name), $input, Verdict::$verdict, &[$(Rule::$rule),*]);
        }
    )*)*};
}

verdicts! {
    WillWork {
        server_all_open: server(target(open), by_id(source(open))) => [];
        server_target_deny_with_bypass: server(target(deny), by_id(source(open))) => [];
        server_private_endpoints_alone_do_not_restrict: server(
            target(|r| {
                r.private_endpoints = 2;
                r.trusted_services_bypass = false;
            }),
            by_id(source(open)),
        ) => [];
        server_source_deny_with_bypass: server(target(open), by_login_server(source(deny))) => [];
        server_source_private_by_id: server(target(open), by_id(source(private))) => [];
        server_cross_tenant_by_login_server: server(target(open), azure(source(open), false, true)) => [];
        server_external: server(target(open), external()) => [];

        client_open: client(false, Some(target(open)), external()) => [];
        client_non_azure_target: client(false, None, external()) => [];
        client_ip_allowed_by_cidr: client(true, Some(deny_but(&["203.0.113.0/24"])), local()) => [];
        client_ip_allowed_exactly: client(true, Some(deny_but(&["203.0.113.7"])), local()) => [];
        client_export_policy_is_a_server_matter: client(
            false,
            None,
            by_login_server(source(|r| r.export_policy_disabled = true)),
        ) => [];
    }
    WillFail {
        server_classic_target: server(target(|r| r.sku = SkuName::Classic), by_id(source(open)))
            => [ClassicSku];
        server_unknown_sku: server(target(|r| r.sku = SkuName::Other), by_id(source(open)))
            => [ClassicSku];
        server_target_deny_without_bypass: server(target(deny_all), by_id(source(open)))
            => [TargetTrustedServicesOff];
        server_target_private_without_bypass: server(
            target(|r| {
                private(r);
                r.trusted_services_bypass = false;
            }),
            external(),
        ) => [TargetTrustedServicesOff];
        server_target_ip_rules_do_not_help: server(deny_but(&["0.0.0.0/0"]), external())
            => [TargetTrustedServicesOff];
        server_source_deny_without_bypass: server(target(open), by_id(source(deny_all)))
            => [SourceTrustedServicesOff];
        server_source_private_by_login_server: server(target(open), by_login_server(source(private)))
            => [SourceNeedsResourceId];
        server_source_private_cross_tenant: server(target(open), azure(source(private), true, true))
            => [CrossTenantPublicAccessDisabled];
        server_source_private_cross_tenant_by_login_server: server(
            target(open),
            azure(source(private), false, true),
        ) => [CrossTenantPublicAccessDisabled];
        server_export_disabled: server(
            target(open),
            by_id(source(|r| {
                private(r);
                r.export_policy_disabled = true;
            })),
        ) => [ExportPolicyDisabled];
        server_cross_tenant_by_id: server(target(open), azure(source(open), true, true))
            => [CrossTenantResourceId];
        server_unreadable: server(target(open), unreadable(Unreadable::Forbidden))
            => [LinkedScopeReadMissing];
        server_other_tenant_id: server(target(open), unreadable(Unreadable::OtherTenant))
            => [CrossTenantResourceId];
        server_missing_source: server(target(open), unreadable(Unreadable::NotFound))
            => [SourceNotFound];
        server_local_source: server(target(open), local()) => [LocalSource];
        server_several: server(
            target(deny_all),
            by_id(source(|r| {
                deny_all(r);
                r.export_policy_disabled = true;
            })),
        ) => [TargetTrustedServicesOff, SourceTrustedServicesOff, ExportPolicyDisabled];

        client_ip_not_allowed: client(true, Some(deny_but(&["198.51.100.0/24"])), local())
            => [ClientIpNotAllowed];
        client_source_denies_ip: client(true, None, by_id(deny_but(&[]))) => [ClientIpNotAllowed];
        client_private_without_endpoint: client(false, Some(target(private)), local())
            => [PrivateEndpointOnly];
        client_trusted_services_do_not_help: client(true, Some(target(deny)), local())
            => [ClientIpNotAllowed];
    }
    CannotTell {
        server_unknown_acr: server(
            target(open),
            PreflightSource::UnknownAcr {
                login_server: "other.azurecr.io".into(),
            },
        ) => [SourceRulesUnknown];
        client_ip_unknown: client(false, Some(deny_but(&["198.51.100.0/24"])), local())
            => [ClientIpUnknown];
        client_private_with_endpoint: client(
            false,
            Some(target(|r| {
                private(r);
                r.private_endpoints = 1;
            })),
            local(),
        ) => [PrivateEndpointOnly];
    }
}

/// The first failure of `input`.
fn first_failure(input: PreflightInput) -> Finding {
    let p = evaluate(&input);
    p.failures.into_iter().next().expect("a failure")
}

#[test]
fn fixes_are_exact() {
    let p = evaluate(&server(target(deny_all), external()));
    assert_eq!(
        p.failures[0].fix,
        "az acr update -n target --allow-trusted-services true"
    );
    let text = p.to_string();
    assert!(
        text.contains("will fail") && text.contains("--allow-trusted-services true"),
        "{text}"
    );
    let no_export = source(|r| r.export_policy_disabled = true);
    for (input, reason) in [
        (
            server(target(open), by_id(no_export)),
            "export policy disabled on source",
        ),
        (
            server(target(|r| r.sku = SkuName::Classic), PreflightSource::Local),
            "Classic SKU cannot import",
        ),
        (
            server(target(open), azure(source(private), true, true)),
            "cross-tenant import from a registry with public access disabled is not supported",
        ),
        (
            client(
                true,
                Some(deny_but(&["198.51.100.0/24"])),
                PreflightSource::Local,
            ),
            "your IP 203.0.113.7 is not allowed by the registry's firewall",
        ),
        (
            client(
                true,
                Some(deny_but(&["198.51.100.0/24"])),
                PreflightSource::Local,
            ),
            "198.51.100.0/24",
        ),
    ] {
        let f = first_failure(input);
        assert!(f.reason.contains(reason), "{}", f.reason);
    }
    let f = first_failure(server(target(open), by_login_server(source(private))));
    assert!(
        f.fix.contains("name the source by resource ID"),
        "{}",
        f.fix
    );
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
    let p = evaluate(&client(
        true,
        Some(reg("t", |r| {
            data(r);
            deny(r);
        })),
        PreflightSource::Local,
    ));
    assert_eq!(p.failures[0].rule, Rule::ClientIpNotAllowed);
    assert!(
        p.failures[0].fix.contains("t.westus2.data.azurecr.io"),
        "{p}"
    );
    assert!(p.failures[0].reason.contains("data endpoint"), "{p}");
    // An open registry with data endpoints: a note, not a finding.
    let p = evaluate(&client(false, Some(reg("t", data)), PreflightSource::Local));
    assert_eq!(p.verdict, Verdict::WillWork);
    assert!(p.notes[0].contains("t.westus2.data.azurecr.io"), "{p}");
    // A registry that refuses ARM-audience tokens: said, without changing the verdict.
    let p = evaluate(&client(
        false,
        Some(reg("t", |r| r.arm_audience_tokens = false)),
        PreflightSource::Local,
    ));
    assert_eq!(p.verdict, Verdict::WillWork);
    assert!(p.notes[0].contains("only ACR-audience"), "{p}");
}
