//! The preflight: will an import get through the registries' firewalls, policies and role
//! assignments? Every check is a pure function of what ARM says; the verdict is *will work*,
//! *will fail* (with the exact reason and fix) or *cannot tell*.
//!
//! - [`network`] ([`evaluate`]): firewalls, trusted services, export policy, tenants, SKU —
//!   from the registries' properties ([`RegistryNetwork`], read with
//!   [`crate::Registry::network`]) and how the source is named ([`PreflightSource`]);
//! - [`crate::permissions`]: the caller's effective permissions on the target and the source,
//!   from the Azure RBAC permissions API.
//!
//! [`Preflight::merge`] puts both verdicts together: one failure fails the import, an unknown
//! makes it "cannot tell".

use std::fmt;

use serde::Serialize;

pub mod network;

pub use network::{
    PreflightEngine, PreflightInput, PreflightSource, RegistryNetwork, Unreadable, cidr_contains,
    evaluate,
};

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
    /// The caller lacks an action or data action the import needs.
    PermissionMissing,
    /// The caller's permission depends on conditions (ABAC) the permissions API cannot
    /// evaluate.
    PermissionConditional,
    /// The caller's permissions could not be read.
    PermissionsUnreadable,
    /// ARM-audience Azure AD tokens were asked for and the registry refuses them.
    ArmAudienceRefused,
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
    /// The rules that fired: the failures', then the unknowns'.
    #[cfg(test)]
    pub(crate) fn rules(&self) -> Vec<Rule> {
        self.failures
            .iter()
            .chain(&self.unknowns)
            .map(|f| f.rule)
            .collect()
    }

    /// Whether the verdict is [`Verdict::WillFail`].
    pub fn will_fail(&self) -> bool {
        self.verdict == Verdict::WillFail
    }

    /// Both preflights in one: the findings and notes of each, and the verdict they give
    /// together (a failure wins, then an unknown). A finding of `other` replaces one of `self`
    /// with the same rule about the same registry (the permissions check says more precisely
    /// what the network check also saw).
    pub fn merge(mut self, other: Preflight) -> Preflight {
        let same = |a: &Finding, b: &Finding| {
            a.rule == b.rule && a.registry.eq_ignore_ascii_case(&b.registry)
        };
        for x in other.failures.iter().chain(&other.unknowns) {
            self.failures.retain(|y| !same(x, y));
            self.unknowns.retain(|y| !same(x, y));
        }
        self.failures.extend(other.failures);
        self.unknowns.extend(other.unknowns);
        self.notes.extend(other.notes);
        self.verdict = verdict_of(&self.failures, &self.unknowns);
        self
    }
}

fn verdict_of(failures: &[Finding], unknowns: &[Finding]) -> Verdict {
    if !failures.is_empty() {
        Verdict::WillFail
    } else if !unknowns.is_empty() {
        Verdict::CannotTell
    } else {
        Verdict::WillWork
    }
}

impl fmt::Display for Preflight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = match self.verdict {
            Verdict::WillWork => {
                "preflight: the import will work as far as network rules, policies and permissions go"
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

/// Collects findings while rules run; [`Findings::finish`] gives the verdict.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    failures: Vec<Finding>,
    unknowns: Vec<Finding>,
    notes: Vec<String>,
}

impl Findings {
    pub(crate) fn fail(&mut self, rule: Rule, registry: &str, reason: String, fix: String) {
        self.failures.push(Finding {
            rule,
            registry: registry.to_owned(),
            reason,
            fix,
        });
    }

    pub(crate) fn unknown(&mut self, rule: Rule, registry: &str, reason: String, fix: String) {
        self.unknowns.push(Finding {
            rule,
            registry: registry.to_owned(),
            reason,
            fix,
        });
    }

    pub(crate) fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    pub(crate) fn finish(self) -> Preflight {
        Preflight {
            verdict: verdict_of(&self.failures, &self.unknowns),
            failures: self.failures,
            unknowns: self.unknowns,
            notes: self.notes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_everything_and_the_worst_verdict() {
        let mut a = Findings::default();
        a.note("a note".into());
        let a = a.finish();
        assert_eq!(a.verdict, Verdict::WillWork);
        let mut b = Findings::default();
        b.unknown(Rule::PermissionsUnreadable, "t", "r".into(), "f".into());
        let m = a.clone().merge(b.finish());
        assert_eq!(m.verdict, Verdict::CannotTell);
        assert_eq!(m.notes, ["a note"]);
        let mut c = Findings::default();
        c.fail(Rule::PermissionMissing, "t", "r".into(), "f".into());
        let m = m.merge(c.finish());
        assert_eq!(m.verdict, Verdict::WillFail);
        let mut d = Findings::default();
        d.fail(Rule::PermissionMissing, "T", "precise".into(), "f2".into());
        let m = m.merge(d.finish());
        assert_eq!(m.failures.len(), 1, "replaced, not repeated");
        assert_eq!(m.failures[0].reason, "precise");
        assert_eq!((m.failures.len(), m.unknowns.len()), (1, 1));
        let text = m.to_string();
        assert!(text.contains("FAIL T: precise\n       fix: f2"), "{text}");
        assert!(text.contains("UNKNOWN t: r"), "{text}");
    }
}
