//! The permissions verdict: a pure function of what the permissions API said for the target and
//! the source, the registries' role assignment modes, and how the import runs.

use serde::Serialize;

use super::actions::{Grant, Permission, grant};
use super::roles::{Need, assignment_command};
use crate::model::RoleAssignmentMode;
use crate::preflight::{Findings, Preflight, Rule};

/// What `GET {registry id}/providers/Microsoft.Authorization/permissions` gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PermissionsRead {
    /// The caller's effective permissions there.
    Known(Vec<Permission>),
    /// The caller may not read its permissions there (403); ARM's message.
    Forbidden(String),
    /// Another failure; what happened.
    Failed(String),
}

/// One Azure registry as the permissions check sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryAccess {
    /// Its resource ID (the scope of the role assignment to make).
    pub id: String,
    /// Its name.
    pub name: String,
    /// `roleAssignmentMode`.
    pub mode: RoleAssignmentMode,
    /// The caller's permissions on it.
    pub permissions: PermissionsRead,
}

/// Which engine runs the import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PermissionsEngine {
    /// ARM `importImage`: the caller needs `importImage/action` on the target, and read and
    /// pull on a source named by resource ID.
    Server,
    /// The streaming engine: the caller pushes to the target and pulls from an Azure source.
    Client,
}

/// The source, as far as the caller's permissions go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PermissionsSource {
    /// An Azure registry read with the caller's identity: named by resource ID (server-side),
    /// or pulled with Azure AD (client-side).
    Azure {
        /// The registry.
        access: RegistryAccess,
        /// The repository pulled.
        repository: String,
    },
    /// Named by a resource ID that ARM refused to read to the caller (403).
    ReadForbidden {
        /// The resource ID.
        id: String,
    },
    /// The caller's identity is not used on the source (a registry outside Azure, credentials
    /// given, a local layout).
    NotInvolved,
}

/// Everything [`evaluate`] looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionsInput {
    /// The engine.
    pub engine: PermissionsEngine,
    /// The caller's object ID (the `oid` of its ARM token), for the fixes.
    pub principal: Option<String>,
    /// The target, when it is an Azure registry read through ARM.
    pub target: Option<RegistryAccess>,
    /// The target repositories (for messages about repository conditions).
    pub target_repositories: Vec<String>,
    /// The source.
    pub source: PermissionsSource,
}

/// Decides. Pure: the same input gives the same verdict.
///
/// Findings name the registry by name, except for a source whose resource ID could not be read,
/// which is named by its ID (as the network preflight names it, so that
/// [`Preflight::merge`] keeps the more precise of the two).
pub fn evaluate(input: &PermissionsInput) -> Preflight {
    let mut f = Findings::default();
    let principal = input.principal.as_deref();
    let repos = input.target_repositories.join(", ");
    if let Some(t) = &input.target {
        abac_note(&mut f, t);
        let need = match input.engine {
            PermissionsEngine::Server => Need::Import,
            PermissionsEngine::Client => Need::Push,
        };
        check(&mut f, t, need, "target", principal, &repos);
    }
    match &input.source {
        PermissionsSource::Azure { access, repository } => {
            abac_note(&mut f, access);
            check(&mut f, access, Need::Pull, "source", principal, repository);
        }
        PermissionsSource::ReadForbidden { id } => {
            let role = Need::Read.role(RoleAssignmentMode::LegacyRegistryPermissions);
            f.fail(
                Rule::LinkedScopeReadMissing,
                id,
                format!(
                    "{} cannot read the source registry (Microsoft.ContainerRegistry/registries/read): needed to {}; ARM refuses the import otherwise ('does not have permission to perform action read on the linked scope')",
                    who(principal),
                    Need::Read.purpose()
                ),
                format!(
                    "{} (it grants read and pull on the source)",
                    assignment_command(principal, role, id)
                ),
            );
        }
        PermissionsSource::NotInvolved => {}
    }
    f.finish()
}

fn who(principal: Option<&str>) -> String {
    match principal {
        Some(p) => format!("the caller (object id {p})"),
        None => "the caller".to_owned(),
    }
}

fn abac_note(f: &mut Findings, r: &RegistryAccess) {
    if r.mode == RoleAssignmentMode::AbacRepositoryPermissions {
        f.note(format!(
            "{} uses ABAC repository permissions (roleAssignmentMode AbacRepositoryPermissions): AcrPull, AcrPush and AcrDelete are not honored there and Owner, Contributor and Reader give no access to images; pulls and pushes need Container Registry Repository Reader / Writer / Contributor, whose assignments may be limited to repositories by conditions",
            r.name
        ));
    }
}

/// One need on one registry.
fn check(
    f: &mut Findings,
    r: &RegistryAccess,
    need: Need,
    side: &str,
    principal: Option<&str>,
    repositories: &str,
) {
    let role = need.role(r.mode);
    let fix = assignment_command(principal, role, &r.id);
    let perms = match &r.permissions {
        PermissionsRead::Known(p) => p,
        PermissionsRead::Forbidden(why) => {
            f.unknown(
                Rule::PermissionsUnreadable,
                &r.name,
                format!(
                    "{} may not read its own permissions on the {side} {} (Microsoft.Authorization/permissions/read: {why}), so whether it can {} is not known; the import goes ahead and the service decides",
                    who(principal),
                    r.name,
                    need.purpose()
                ),
                format!(
                    "to know beforehand, ask for read access to the registry's permissions (e.g. Reader on it); the role the import needs there is \"{role}\": {fix}"
                ),
            );
            return;
        }
        PermissionsRead::Failed(why) => {
            f.unknown(
                Rule::PermissionsUnreadable,
                &r.name,
                format!(
                    "your permissions on the {side} {} could not be read ({why})",
                    r.name
                ),
                format!("the role the import needs there is \"{role}\": {fix}"),
            );
            return;
        }
    };
    let ops = need.operations(r.mode);
    let names: Vec<&str> = ops.iter().map(|o| o.name()).collect();
    match grant(perms, &ops) {
        Grant::Allowed => {}
        Grant::Denied => {
            let ignored = !need.legacy_operations().is_empty()
                && r.mode == RoleAssignmentMode::AbacRepositoryPermissions
                && grant(perms, &need.legacy_operations()) == Grant::Allowed;
            let abac = if ignored {
                format!(
                    "; your registry-wide role (AcrPull/AcrPush) is not honored because {} uses ABAC repository permissions",
                    r.name
                )
            } else {
                String::new()
            };
            f.fail(
                Rule::PermissionMissing,
                &r.name,
                format!(
                    "{} lacks {} on the {side} {}: needed to {}{abac}",
                    who(principal),
                    ops_text(&names),
                    r.name,
                    need.purpose()
                ),
                format!("assign \"{role}\": {fix}"),
            );
        }
        Grant::Conditional(conditions) => {
            let shown: Vec<String> = conditions.iter().map(|c| excerpt(c)).collect();
            f.unknown(
                Rule::PermissionConditional,
                &r.name,
                format!(
                    "{} holds {} on the {side} {} only under ABAC condition(s) [{}], which the permissions API does not evaluate: whether they cover the repository {repositories} is decided by the registry when the import runs",
                    who(principal),
                    names.join(" or "),
                    r.name,
                    shown.join("; ")
                ),
                format!(
                    "check that the condition names {repositories} (az role assignment list --assignee {} --scope {} --query \"[].{{role:roleDefinitionName, condition:condition}}\"), or assign \"{role}\" without a condition: {fix}",
                    principal.unwrap_or("<your object id>"),
                    r.id
                ),
            );
        }
    }
}

/// `A` or `A (or B, C)`.
fn ops_text(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [first, rest @ ..] => format!("{first} (or the data action {})", rest.join(", ")),
    }
}

/// A condition cut to 300 characters, on one line.
fn excerpt(condition: &str) -> String {
    let one_line: String = condition.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 300 {
        let cut: String = one_line.chars().take(300).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
