//! What an import needs of the caller on a registry, and the built-in role that grants it.
//!
//! Roles as documented in learn.microsoft.com/azure/role-based-access-control/built-in-roles/
//! containers and …/container-registry/container-registry-rbac-built-in-roles-directory-reference:
//! "Container Registry Data Importer and Data Reader" (`registries/importImage/action`,
//! `registries/pull/read`, `registries/read`), AcrPull (`registries/pull/read`), AcrPush
//! (`registries/pull/read`, `registries/push/write`), and for registries in ABAC mode the
//! repository roles "Container Registry Repository Reader" (data actions
//! `repositories/content/read`, `repositories/metadata/read`) and "Container Registry Repository
//! Writer" (those and `repositories/content/write`, `repositories/metadata/write`). In ABAC mode
//! (…/container-registry-rbac-abac-repository-permissions) AcrPull, AcrPush and AcrDelete are
//! not honored and Owner, Contributor and Reader give no data-plane access: only data actions
//! count for pulls and pushes.

use super::actions::{
    CONTENT_READ, CONTENT_WRITE, IMPORT_IMAGE, Operation, PULL_ACTION, PUSH_ACTION, REGISTRY_READ,
};
use crate::model::RoleAssignmentMode;

/// The built-in role for importing (`importImage/action`) and reading a source.
pub const DATA_IMPORTER: &str = "Container Registry Data Importer and Data Reader";
/// Pull, registry-wide permissions.
pub const ACR_PULL: &str = "AcrPull";
/// Push and pull, registry-wide permissions.
pub const ACR_PUSH: &str = "AcrPush";
/// Pull, ABAC mode (assignments may name repositories in a condition).
pub const REPOSITORY_READER: &str = "Container Registry Repository Reader";
/// Push and pull, ABAC mode (assignments may name repositories in a condition).
pub const REPOSITORY_WRITER: &str = "Container Registry Repository Writer";

/// Something an import needs of the caller on one registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Start a server-side import into it.
    Import,
    /// Read the registry resource (a resource-ID source: ARM's linked-scope check).
    Read,
    /// Pull from it.
    Pull,
    /// Push to it.
    Push,
}

impl Need {
    /// The operations that satisfy the need (any one is enough), in the registry's mode.
    pub fn operations(self, mode: RoleAssignmentMode) -> Vec<Operation> {
        let abac = mode == RoleAssignmentMode::AbacRepositoryPermissions;
        match self {
            Need::Import => vec![Operation::Action(IMPORT_IMAGE)],
            Need::Read => vec![Operation::Action(REGISTRY_READ)],
            Need::Pull if abac => vec![Operation::DataAction(CONTENT_READ)],
            Need::Pull => vec![
                Operation::Action(PULL_ACTION),
                Operation::DataAction(CONTENT_READ),
            ],
            Need::Push if abac => vec![Operation::DataAction(CONTENT_WRITE)],
            Need::Push => vec![
                Operation::Action(PUSH_ACTION),
                Operation::DataAction(CONTENT_WRITE),
            ],
        }
    }

    /// The registry-wide actions that would satisfy the need outside ABAC mode (what an ABAC
    /// registry ignores).
    pub fn legacy_operations(self) -> Vec<Operation> {
        match self {
            Need::Pull => vec![Operation::Action(PULL_ACTION)],
            Need::Push => vec![Operation::Action(PUSH_ACTION)],
            Need::Import | Need::Read => Vec::new(),
        }
    }

    /// The built-in role to assign for it, in the registry's mode.
    pub fn role(self, mode: RoleAssignmentMode) -> &'static str {
        let abac = mode == RoleAssignmentMode::AbacRepositoryPermissions;
        match self {
            Need::Import | Need::Read => DATA_IMPORTER,
            Need::Pull if abac => REPOSITORY_READER,
            Need::Pull => ACR_PULL,
            Need::Push if abac => REPOSITORY_WRITER,
            Need::Push => ACR_PUSH,
        }
    }

    /// What the permission is for, in a sentence.
    pub fn purpose(self) -> &'static str {
        match self {
            Need::Import => "start an import into it (az acr import / importImage)",
            Need::Read => {
                "name it as an import source by resource ID (ARM checks read on the linked scope)"
            }
            Need::Pull => "pull the source image from it",
            Need::Push => "push the image into it",
        }
    }
}

/// `az role assignment create` for `role` at `scope`; the principal is `<your object id>` when
/// unknown.
pub fn assignment_command(principal: Option<&str>, role: &str, scope: &str) -> String {
    format!(
        "az role assignment create --assignee {} --role \"{role}\" --scope {scope}",
        principal.unwrap_or("<your object id>")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_mode() {
        let legacy = RoleAssignmentMode::LegacyRegistryPermissions;
        let abac = RoleAssignmentMode::AbacRepositoryPermissions;
        assert_eq!(Need::Import.role(abac), DATA_IMPORTER);
        assert_eq!(Need::Push.role(legacy), ACR_PUSH);
        assert_eq!(Need::Push.role(abac), REPOSITORY_WRITER);
        assert_eq!(Need::Pull.role(legacy), ACR_PULL);
        assert_eq!(Need::Pull.role(abac), REPOSITORY_READER);
        assert_eq!(
            Need::Pull.operations(abac),
            [Operation::DataAction(CONTENT_READ)]
        );
        assert_eq!(Need::Pull.operations(legacy).len(), 2);
        assert_eq!(
            assignment_command(Some("oid-1"), ACR_PUSH, "/subscriptions/s/x"),
            "az role assignment create --assignee oid-1 --role \"AcrPush\" --scope /subscriptions/s/x"
        );
    }
}
