//! Azure role-based access control as the emulators enforce it: role definitions, role
//! assignments at scopes (with the repository conditions of ABAC-mode registries), deny
//! assignments, and the registries' role assignment mode. One [`Rbac`] is shared by the ARM
//! emulator (reads, `importImage/action`, the permissions API) and the ACR emulators (what a
//! token grants on the data plane), so both decide from the same assignments.
//!
//! Semantics (learn.microsoft.com/azure/role-based-access-control/overview,
//! …/role-definitions, …/deny-assignments, …/conditions-overview;
//! …/container-registry/container-registry-rbac-abac-repository-permissions):
//!
//! - an assignment applies at its scope and every scope below it;
//! - a role allows an operation when one of its `actions` (`dataActions`) matches and none of
//!   its `notActions` (`notDataActions`) does; `*` matches any run of characters, case ignored;
//! - a deny assignment blocks its actions whatever the role assignments say;
//! - a condition limits the assignment's data actions to the repositories it names;
//! - in a registry whose mode is ABAC (`AbacRepositoryPermissions`) only data actions grant
//!   pulls and pushes: `registries/pull/read` and `registries/push/write` (AcrPull, AcrPush,
//!   Owner, Contributor, Reader) are not honored on the data plane.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

mod roles;

pub use roles::RoleDefinition;

use crate::token::{Access, Grant};

const REPOSITORY_DATA: &str = "Microsoft.ContainerRegistry/registries/repositories/";
const REPOSITORY_NAME: &str = "@Request[Microsoft.ContainerRegistry/registries/repositories:name]";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the RBAC pattern `pattern` matches `operation` (`*` = any run, case ignored).
fn pattern_matches(pattern: &str, operation: &str) -> bool {
    fn go(p: &[u8], o: &[u8]) -> bool {
        match p.split_first() {
            None => o.is_empty(),
            Some((b'*', rest)) => (0..=o.len()).any(|i| go(rest, &o[i..])),
            Some((c, rest)) => o
                .split_first()
                .is_some_and(|(d, tail)| c.eq_ignore_ascii_case(d) && go(rest, tail)),
        }
    }
    go(pattern.as_bytes(), operation.as_bytes())
}

/// The repositories an ABAC condition lets the assignment's data actions reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryCondition {
    /// `StringEqualsIgnoreCase`: this repository only.
    Equals(String),
    /// `StringStartsWithIgnoreCase`: repositories under this prefix (e.g. `team1/`).
    StartsWith(String),
}

impl RepositoryCondition {
    fn allows(&self, repository: &str) -> bool {
        let r = repository.to_ascii_lowercase();
        match self {
            RepositoryCondition::Equals(x) => r == x.to_ascii_lowercase(),
            RepositoryCondition::StartsWith(x) => r.starts_with(&x.to_ascii_lowercase()),
        }
    }

    /// The condition as Azure ABAC writes it: the role's data actions pass only for the named
    /// repositories (the shape of the examples in the ACR ABAC documentation).
    pub fn render(&self, data_actions: &[String]) -> String {
        let not_matches: Vec<String> = data_actions
            .iter()
            .map(|a| format!("!(ActionMatches{{'{a}'}})"))
            .collect();
        let (op, value) = match self {
            RepositoryCondition::Equals(v) => ("StringEqualsIgnoreCase", v),
            RepositoryCondition::StartsWith(v) => ("StringStartsWithIgnoreCase", v),
        };
        format!(
            "(({}) OR ({REPOSITORY_NAME} {op} '{value}'))",
            not_matches.join(" AND ")
        )
    }
}

/// A role assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The principal's object id.
    pub principal: String,
    /// The scope (lowercased), e.g. `/subscriptions/…/registries/r`.
    pub scope: String,
    /// The role.
    pub role: RoleDefinition,
    /// An ABAC condition on repositories.
    pub condition: Option<RepositoryCondition>,
}

impl Assignment {
    fn applies(&self, principal: &str, scope: &str) -> bool {
        let scope = scope.to_ascii_lowercase();
        self.principal.eq_ignore_ascii_case(principal)
            && (scope == self.scope || scope.starts_with(&format!("{}/", self.scope)))
    }

    fn allows_action(&self, action: &str) -> bool {
        self.role.actions.iter().any(|p| pattern_matches(p, action))
            && !self
                .role
                .not_actions
                .iter()
                .any(|p| pattern_matches(p, action))
    }

    fn allows_data(&self, action: &str, repository: Option<&str>) -> bool {
        let by_role = self
            .role
            .data_actions
            .iter()
            .any(|p| pattern_matches(p, action))
            && !self
                .role
                .not_data_actions
                .iter()
                .any(|p| pattern_matches(p, action));
        by_role
            && match (&self.condition, repository) {
                (None, _) => true,
                (Some(c), Some(repo)) => c.allows(repo),
                // A condition on repositories never holds where there is no repository.
                (Some(_), None) => false,
            }
    }
}

/// Role assignments, deny assignments and the registries in ABAC mode. See the module docs.
#[derive(Debug, Default)]
pub struct Rbac {
    assignments: Mutex<Vec<Assignment>>,
    denies: Mutex<Vec<(String, String, String)>>,
    abac: Mutex<HashSet<String>>,
}

impl Rbac {
    /// An empty store.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Assigns `role` to `principal` (object id) at `scope`.
    pub fn assign(
        &self,
        principal: &str,
        scope: &str,
        role: RoleDefinition,
        condition: Option<RepositoryCondition>,
    ) {
        lock(&self.assignments).push(Assignment {
            principal: principal.to_owned(),
            scope: scope.trim_end_matches('/').to_ascii_lowercase(),
            role,
            condition,
        });
    }

    /// Removes `principal`'s assignments at exactly `scope` (all of them, or of one role).
    pub fn unassign(&self, principal: &str, scope: &str, role_name: Option<&str>) {
        let scope = scope.trim_end_matches('/').to_ascii_lowercase();
        lock(&self.assignments).retain(|a| {
            !(a.principal.eq_ignore_ascii_case(principal)
                && a.scope == scope
                && role_name.is_none_or(|n| a.role.name.eq_ignore_ascii_case(n)))
        });
    }

    /// A deny assignment: `action` (a pattern) is refused to `principal` at and below `scope`.
    pub fn deny(&self, principal: &str, scope: &str, action: &str) {
        lock(&self.denies).push((
            principal.to_owned(),
            scope.trim_end_matches('/').to_ascii_lowercase(),
            action.to_owned(),
        ));
    }

    /// Sets a registry's role assignment mode (ABAC or not).
    pub fn set_abac(&self, registry_scope: &str, abac: bool) {
        let s = registry_scope.trim_end_matches('/').to_ascii_lowercase();
        let mut set = lock(&self.abac);
        if abac {
            set.insert(s);
        } else {
            set.remove(&s);
        }
    }

    /// Whether the registry is in ABAC mode.
    pub fn is_abac(&self, registry_scope: &str) -> bool {
        lock(&self.abac).contains(&registry_scope.trim_end_matches('/').to_ascii_lowercase())
    }

    /// Whether a deny assignment refuses `action` to `principal` at `scope`.
    pub fn denies(&self, principal: &str, scope: &str, action: &str) -> bool {
        let scope = scope.to_ascii_lowercase();
        lock(&self.denies).iter().any(|(p, s, a)| {
            p.eq_ignore_ascii_case(principal)
                && (scope == *s || scope.starts_with(&format!("{s}/")))
                && pattern_matches(a, action)
        })
    }

    fn applying(&self, principal: &str, scope: &str) -> Vec<Assignment> {
        lock(&self.assignments)
            .iter()
            .filter(|a| a.applies(principal, scope))
            .cloned()
            .collect()
    }

    /// Whether `principal` holds any assignment at, above or below `scope`.
    pub fn has_any_under(&self, principal: &str, scope: &str) -> bool {
        let scope = scope.trim_end_matches('/').to_ascii_lowercase();
        lock(&self.assignments).iter().any(|a| {
            a.principal.eq_ignore_ascii_case(principal)
                && (a.scope == scope
                    || a.scope.starts_with(&format!("{scope}/"))
                    || scope.starts_with(&format!("{}/", a.scope)))
        })
    }

    /// Whether `principal` may perform the control-plane `action` at `scope`.
    pub fn allows_action(&self, principal: &str, scope: &str, action: &str) -> bool {
        !self.denies(principal, scope, action)
            && self
                .applying(principal, scope)
                .iter()
                .any(|a| a.allows_action(action))
    }

    /// Whether `principal` may perform the data action `action` on `repository` of the
    /// registry at `scope` (conditions evaluated).
    pub fn allows_data(
        &self,
        principal: &str,
        scope: &str,
        action: &str,
        repository: Option<&str>,
    ) -> bool {
        !self.denies(principal, scope, action)
            && self
                .applying(principal, scope)
                .iter()
                .any(|a| a.allows_data(action, repository))
    }

    /// What `GET {scope}/providers/Microsoft.Authorization/permissions` answers: one entry per
    /// assignment that applies at `scope`, with its condition when it has one.
    pub fn permissions(&self, principal: &str, scope: &str) -> Vec<Value> {
        self.applying(principal, scope)
            .into_iter()
            .map(|a| {
                let mut entry = json!({
                    "actions": a.role.actions,
                    "notActions": a.role.not_actions,
                    "dataActions": a.role.data_actions,
                    "notDataActions": a.role.not_data_actions,
                });
                if let Some(c) = &a.condition {
                    entry["condition"] = json!(c.render(&a.role.data_actions));
                    entry["conditionVersion"] = json!("2.0");
                }
                entry
            })
            .collect()
    }

    /// Whether `principal` may do the ACR token action `action` (`pull`, `push`, `delete`,
    /// `metadata_read`, `metadata_write`) on `repository` of the registry at `scope`.
    pub fn allows_repository(
        &self,
        principal: &str,
        scope: &str,
        repository: &str,
        action: &str,
    ) -> bool {
        let (registry_action, data_action) = match action {
            "pull" => ("pull/read", "content/read"),
            "push" => ("push/write", "content/write"),
            "delete" => ("artifacts/delete", "content/delete"),
            "metadata_read" => ("pull/read", "metadata/read"),
            "metadata_write" => ("push/write", "metadata/write"),
            _ => return false,
        };
        let data = format!("{REPOSITORY_DATA}{data_action}");
        if self.allows_data(principal, scope, &data, Some(repository)) {
            return true;
        }
        !self.is_abac(scope)
            && self.allows_action(
                principal,
                scope,
                &format!("Microsoft.ContainerRegistry/registries/{registry_action}"),
            )
    }

    /// Whether `principal` may list the catalog of the registry at `scope`.
    pub fn allows_catalog(&self, principal: &str, scope: &str) -> bool {
        self.allows_data(
            principal,
            scope,
            "Microsoft.ContainerRegistry/registries/catalog/read",
            None,
        ) || (!self.is_abac(scope)
            && self.allows_action(
                principal,
                scope,
                "Microsoft.ContainerRegistry/registries/pull/read",
            ))
    }

    /// Whether `principal` may do anything on the data plane of the registry at `scope` (what
    /// ACR's token exchange asks before handing out a refresh token).
    pub fn has_data_access(&self, principal: &str, scope: &str) -> bool {
        self.applying(principal, scope).iter().any(|a| {
            !a.role.data_actions.is_empty()
                || (!self.is_abac(scope)
                    && (a.allows_action("Microsoft.ContainerRegistry/registries/pull/read")
                        || a.allows_action("Microsoft.ContainerRegistry/registries/push/write")))
        })
    }

    /// The grants of a token for `requested` accesses: the actions RBAC allows on each.
    pub fn grants(&self, principal: &str, scope: &str, requested: &[Access]) -> Vec<Grant> {
        let mut grants = Vec::new();
        for r in requested {
            if r.kind == "registry" && r.name == "catalog" {
                if self.allows_catalog(principal, scope) {
                    grants.push(Grant::catalog());
                }
                continue;
            }
            if r.kind != "repository" {
                continue;
            }
            let allowed: Vec<&str> = ["pull", "push", "delete", "metadata_read", "metadata_write"]
                .into_iter()
                .filter(|a| self.allows_repository(principal, scope, &r.name, a))
                .collect();
            if !allowed.is_empty() {
                grants.push(Grant::repository(&r.name, &allowed));
            }
        }
        grants
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REG: &str =
        "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/r1";

    #[test]
    fn patterns() {
        assert!(pattern_matches(
            "*/read",
            "Microsoft.ContainerRegistry/registries/pull/read"
        ));
        assert!(pattern_matches(
            "microsoft.containerregistry/*",
            "Microsoft.ContainerRegistry/registries/importImage/action"
        ));
        assert!(!pattern_matches(
            "*/read",
            "Microsoft.ContainerRegistry/registries/push/write"
        ));
    }

    #[test]
    fn modes_and_conditions_decide_the_data_plane() {
        let rbac = Rbac::new();
        rbac.assign("p1", "/subscriptions/s1", RoleDefinition::reader(), None);
        rbac.assign("p2", REG, RoleDefinition::acr_push(), None);
        rbac.assign(
            "p3",
            REG,
            RoleDefinition::repository_reader(),
            Some(RepositoryCondition::StartsWith("team1/".into())),
        );
        assert!(rbac.allows_repository("p1", REG, "app", "pull"));
        assert!(!rbac.allows_repository("p1", REG, "app", "push"));
        assert!(rbac.allows_repository("p2", REG, "app", "push"));
        assert!(rbac.allows_repository("p3", REG, "team1/app", "pull"));
        assert!(!rbac.allows_repository("p3", REG, "team2/app", "pull"));
        rbac.set_abac(REG, true);
        assert!(
            !rbac.allows_repository("p1", REG, "app", "pull"),
            "Reader: no data plane in ABAC mode"
        );
        assert!(
            !rbac.allows_repository("p2", REG, "app", "push"),
            "AcrPush not honored"
        );
        assert!(rbac.allows_repository("p3", REG, "team1/app", "pull"));
        assert!(!rbac.allows_action(
            "p2",
            REG,
            "Microsoft.ContainerRegistry/registries/importImage/action"
        ));
        let perms = rbac.permissions("p3", REG);
        assert!(
            perms[0]["condition"]
                .as_str()
                .unwrap()
                .contains("StringStartsWithIgnoreCase 'team1/'")
        );
        assert_eq!(perms[0]["conditionVersion"], "2.0");
        assert!(
            rbac.permissions("p3", "/subscriptions/s1").is_empty(),
            "assignments apply below, not above"
        );
        rbac.deny(
            "p1",
            "/subscriptions/s1",
            "Microsoft.Authorization/permissions/read",
        );
        assert!(!rbac.allows_action("p1", REG, "Microsoft.Authorization/permissions/read"));
        rbac.unassign("p2", REG, None);
        assert!(rbac.permissions("p2", REG).is_empty());
    }
}
