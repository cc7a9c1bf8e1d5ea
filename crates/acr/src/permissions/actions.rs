//! Matching the caller's permissions against the operations an import needs, as Azure RBAC
//! does (learn.microsoft.com/azure/role-based-access-control/role-definitions):
//!
//! - an entry of the permissions API is one role assignment's role: an operation is allowed by
//!   it when one of its `actions` (`dataActions` for data operations) matches and none of its
//!   `notActions` (`notDataActions`) does — `notActions` subtract within that entry only;
//! - `*` matches any run of characters (`*`, `Microsoft.ContainerRegistry/*`, `*/read`,
//!   `Microsoft.Authorization/*/Write`), and the comparison ignores case;
//! - the effective permission is the union of the entries;
//! - an entry with a `condition` (Azure ABAC) allows the operation only where the condition
//!   holds, which the permissions API does not evaluate.

use serde::{Deserialize, Serialize};

/// `Microsoft.ContainerRegistry/registries/read`: read the registry resource (the linked-scope
/// check of a resource-ID source).
pub const REGISTRY_READ: &str = "Microsoft.ContainerRegistry/registries/read";
/// `…/importImage/action` on the target of a server-side import.
pub const IMPORT_IMAGE: &str = "Microsoft.ContainerRegistry/registries/importImage/action";
/// `…/pull/read`: pull, in registries with registry-wide permissions (AcrPull).
pub const PULL_ACTION: &str = "Microsoft.ContainerRegistry/registries/pull/read";
/// `…/push/write`: push, in registries with registry-wide permissions (AcrPush).
pub const PUSH_ACTION: &str = "Microsoft.ContainerRegistry/registries/push/write";
/// `…/repositories/content/read`: pull, as a data action (the repository roles).
pub const CONTENT_READ: &str = "Microsoft.ContainerRegistry/registries/repositories/content/read";
/// `…/repositories/content/write`: push, as a data action.
pub const CONTENT_WRITE: &str = "Microsoft.ContainerRegistry/registries/repositories/content/write";

/// One entry of `GET …/providers/Microsoft.Authorization/permissions` (`Permission` of the
/// `Microsoft.Authorization` API; `condition`/`conditionVersion` are read-only and present for
/// assignments made with conditions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    /// Allowed actions.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Denied actions.
    #[serde(default)]
    pub not_actions: Vec<String>,
    /// Allowed data actions.
    #[serde(default)]
    pub data_actions: Vec<String>,
    /// Denied data actions.
    #[serde(default)]
    pub not_data_actions: Vec<String>,
    /// An ABAC condition limiting the entry (e.g. to repositories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The condition language version (`2.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_version: Option<String>,
}

/// One operation: a control-plane action or a data action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Matched against `actions` / `notActions`.
    Action(&'static str),
    /// Matched against `dataActions` / `notDataActions`.
    DataAction(&'static str),
}

impl Operation {
    /// The operation's name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Action(a) | Operation::DataAction(a) => a,
        }
    }
}

/// What the permissions say about an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// An entry without a condition allows it.
    Allowed,
    /// Only entries with conditions allow it; the conditions, as given.
    Conditional(Vec<String>),
    /// No entry allows it.
    Denied,
}

/// Whether the RBAC pattern `pattern` (with `*` wildcards) matches `operation`, ignoring case.
pub fn pattern_matches(pattern: &str, operation: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let o = operation.to_ascii_lowercase();
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == o;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !o.starts_with(first) || o.len() < first.len() + last.len() || !o.ends_with(last) {
        return false;
    }
    let mut rest = &o[first.len()..o.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

impl Permission {
    /// Whether this entry allows `op` (its condition aside).
    pub fn allows(&self, op: Operation) -> bool {
        let (allow, deny) = match op {
            Operation::Action(_) => (&self.actions, &self.not_actions),
            Operation::DataAction(_) => (&self.data_actions, &self.not_data_actions),
        };
        allow.iter().any(|p| pattern_matches(p, op.name()))
            && !deny.iter().any(|p| pattern_matches(p, op.name()))
    }

    fn condition(&self) -> Option<&str> {
        self.condition.as_deref().filter(|c| !c.trim().is_empty())
    }
}

/// What `permissions` say about any one of `ops` (alternatives: one allowed is enough).
pub fn grant(permissions: &[Permission], ops: &[Operation]) -> Grant {
    let mut conditions = Vec::new();
    for p in permissions {
        if !ops.iter().any(|op| p.allows(*op)) {
            continue;
        }
        match p.condition() {
            None => return Grant::Allowed,
            Some(c) => conditions.push(c.to_owned()),
        }
    }
    if conditions.is_empty() {
        Grant::Denied
    } else {
        Grant::Conditional(conditions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! matches_table {
        ($($pattern:literal ~ $op:literal => $want:literal;)*) => {
            $(assert_eq!(pattern_matches($pattern, $op), $want, "{} ~ {}", $pattern, $op);)*
        };
    }

    #[test]
    fn wildcards() {
        matches_table! {
            "*" ~ "Microsoft.ContainerRegistry/registries/importImage/action" => true;
            "Microsoft.ContainerRegistry/*" ~ "Microsoft.ContainerRegistry/registries/push/write" => true;
            "microsoft.containerregistry/*" ~ "Microsoft.ContainerRegistry/registries/push/write" => true;
            "Microsoft.ContainerRegistry/*" ~ "Microsoft.Storage/x/read" => false;
            "*/read" ~ "Microsoft.ContainerRegistry/registries/pull/read" => true;
            "*/read" ~ "Microsoft.ContainerRegistry/registries/push/write" => false;
            "Microsoft.Authorization/*/Write" ~ "Microsoft.Authorization/roleAssignments/write" => true;
            "Microsoft.Authorization/*/Write" ~ "Microsoft.Authorization/write" => false;
            "Microsoft.ContainerRegistry/registries/read" ~ "Microsoft.ContainerRegistry/registries/read" => true;
            "Microsoft.ContainerRegistry/registries/read" ~ "Microsoft.ContainerRegistry/registries/pull/read" => false;
            "Microsoft.ContainerRegistry/registries/*/read" ~ "Microsoft.ContainerRegistry/registries/repositories/content/read" => true;
            "a*b*c" ~ "abc" => true;
            "a*b*c" ~ "ac" => false;
            "a*a" ~ "a" => false;
        }
    }

    fn entry(actions: &[&str], not_actions: &[&str], data: &[&str]) -> Permission {
        Permission {
            actions: actions.iter().map(|s| s.to_string()).collect(),
            not_actions: not_actions.iter().map(|s| s.to_string()).collect(),
            data_actions: data.iter().map(|s| s.to_string()).collect(),
            ..Permission::default()
        }
    }

    #[test]
    fn not_actions_subtract_within_their_entry_only() {
        let contributor_like = entry(&["*"], &["Microsoft.ContainerRegistry/*/action"], &[]);
        let import = [Operation::Action(IMPORT_IMAGE)];
        assert_eq!(
            grant(std::slice::from_ref(&contributor_like), &import),
            Grant::Denied
        );
        let importer = entry(&[IMPORT_IMAGE], &[], &[]);
        assert_eq!(
            grant(&[contributor_like, importer], &import),
            Grant::Allowed
        );
        // Actions never grant data actions, and the other way round.
        let push = entry(&["*"], &[], &[]);
        assert_eq!(
            grant(&[push], &[Operation::DataAction(CONTENT_WRITE)]),
            Grant::Denied
        );
        let writer = entry(&[], &[], &[CONTENT_WRITE]);
        assert_eq!(
            grant(&[writer], &[Operation::Action(PUSH_ACTION)]),
            Grant::Denied
        );
    }

    #[test]
    fn conditions_make_a_grant_conditional_unless_another_entry_allows() {
        let mut reader = entry(&[], &[], &[CONTENT_READ]);
        reader.condition = Some("@Request[Microsoft.ContainerRegistry/registries/repositories:name] StringStartsWithIgnoreCase 'team1/'".into());
        let pull = [Operation::DataAction(CONTENT_READ)];
        assert!(
            matches!(grant(&[reader.clone()], &pull), Grant::Conditional(c) if c[0].contains("team1/"))
        );
        let plain = entry(
            &[],
            &[],
            &["Microsoft.ContainerRegistry/registries/repositories/*"],
        );
        assert_eq!(grant(&[reader, plain], &pull), Grant::Allowed);
        assert_eq!(grant(&[], &pull), Grant::Denied);
    }

    #[test]
    fn the_api_shape_is_read() {
        let v: Vec<Permission> = serde_json::from_value(serde_json::json!([
            {"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Delete"]},
            {"actions": [], "notActions": [], "dataActions": [CONTENT_READ], "notDataActions": [],
             "condition": "x", "conditionVersion": "2.0"}
        ]))
        .unwrap();
        assert_eq!(v[0].not_actions, ["Microsoft.Authorization/*/Delete"]);
        assert!(v[0].data_actions.is_empty());
        assert_eq!(v[1].condition_version.as_deref(), Some("2.0"));
    }
}
