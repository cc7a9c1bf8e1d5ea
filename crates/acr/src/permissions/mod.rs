//! The permissions preflight: will the caller's role assignments let the import through?
//!
//! `importImage` needs `Microsoft.ContainerRegistry/registries/importImage/action` on the target,
//! a role AcrPush does not give; a source named by resource ID needs read (ARM's linked-scope
//! check) and pull on it; a client-side copy needs push on the target and pull on an Azure
//! source. Registries in ABAC mode (`roleAssignmentMode: AbacRepositoryPermissions`) honor only
//! data actions for pulls and pushes, granted per repository by conditions the permissions API
//! does not evaluate.
//!
//! [`gather`] reads what it needs from ARM; [`evaluate`] is pure: the caller's effective
//! permissions come from
//! [`ArmClient::list_permissions`](crate::ArmClient::list_permissions) (`GET {registry
//! id}/providers/Microsoft.Authorization/permissions`) and are matched here ([`grant`]:
//! wildcards, `notActions`, conditions). A failing verdict names the missing action, the built-in
//! role that grants it ([`roles`]) and the exact `az role assignment create` to run; a caller who
//! may not read its permissions gets "cannot tell", never a failure.
//!
//! ```
//! use acr_import_acr::permissions::{evaluate, Permission, PermissionsEngine, PermissionsInput,
//!     PermissionsRead, PermissionsSource, RegistryAccess};
//! use acr_import_acr::{RoleAssignmentMode, Verdict};
//!
//! // AcrPush on the target: enough to push, not to import server-side.
//! let acr_push = Permission {
//!     actions: vec!["Microsoft.ContainerRegistry/registries/pull/read".into(),
//!                   "Microsoft.ContainerRegistry/registries/push/write".into()],
//!     ..Permission::default()
//! };
//! let verdict = evaluate(&PermissionsInput {
//!     engine: PermissionsEngine::Server,
//!     principal: Some("11111111-2222-3333-4444-555555555555".into()),
//!     target: Some(RegistryAccess {
//!         id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/target1".into(),
//!         name: "target1".into(),
//!         mode: RoleAssignmentMode::LegacyRegistryPermissions,
//!         permissions: PermissionsRead::Known(vec![acr_push]),
//!     }),
//!     target_repositories: vec!["app".into()],
//!     source: PermissionsSource::NotInvolved,
//! });
//! assert_eq!(verdict.verdict, Verdict::WillFail);
//! assert!(verdict.failures[0].reason.contains("importImage/action"));
//! assert!(verdict.failures[0].fix.contains("--role \"Container Registry Data Importer and Data Reader\""));
//! ```

mod actions;
mod evaluate;
mod gather;
pub mod roles;

pub use actions::{
    CONTENT_READ, CONTENT_WRITE, Grant, IMPORT_IMAGE, Operation, PULL_ACTION, PUSH_ACTION,
    Permission, REGISTRY_READ, grant, pattern_matches,
};
pub use evaluate::{
    PermissionsEngine, PermissionsInput, PermissionsRead, PermissionsSource, RegistryAccess,
    evaluate,
};
pub use gather::{TargetRef, gather, registry_access, source_access};
