//! Reading what [`evaluate`](super::evaluate) needs from ARM: the caller's object id and its
//! permissions on the registries an import touches.

use super::evaluate::{
    PermissionsEngine, PermissionsInput, PermissionsRead, PermissionsSource, RegistryAccess,
};
use crate::arm::ArmClient;
use crate::import::ResolvedSource;
use crate::model::{Registry, RoleAssignmentMode};
use crate::preflight::Unreadable;
use crate::{AcrError, RegistryResourceId};

/// The target of an import, as far as ARM could read it.
#[derive(Debug, Clone, Copy)]
pub enum TargetRef<'a> {
    /// Read: its properties (its role assignment mode) are known.
    Registry(&'a Registry),
    /// Named by resource ID but not readable by the caller (its permissions may still be).
    Unreadable(&'a RegistryResourceId),
}

/// The caller's permissions on the registry `id`: the permissions API's answer, a refusal, or
/// the failure.
pub async fn registry_access(
    arm: &ArmClient,
    id: &str,
    name: &str,
    mode: RoleAssignmentMode,
) -> RegistryAccess {
    let permissions = match arm.list_permissions(id).await {
        Ok(p) => PermissionsRead::Known(p),
        Err(e @ AcrError::Arm { status: 403, .. }) => PermissionsRead::Forbidden(short(&e)),
        Err(e) => PermissionsRead::Failed(short(&e)),
    };
    RegistryAccess {
        id: id.to_owned(),
        name: name.to_owned(),
        mode,
        permissions,
    }
}

/// An error's first sentence-ish part, for a finding.
fn short(e: &AcrError) -> String {
    match e {
        AcrError::Arm { code, message, .. } => {
            let m: String = message.chars().take(200).collect();
            format!("{code}: {m}")
        }
        other => other.to_string().chars().take(200).collect(),
    }
}

/// The source as the permissions check sees it, for `engine`.
pub async fn source_access(
    arm: &ArmClient,
    engine: PermissionsEngine,
    source: &ResolvedSource,
) -> PermissionsSource {
    let repository = source
        .image_parts()
        .map(|(repo, _, _)| repo)
        .unwrap_or_default();
    match source {
        ResolvedSource::Azure {
            registry: Some(r), ..
        } => PermissionsSource::Azure {
            access: registry_access(arm, &r.id, &r.name, r.role_assignment_mode()).await,
            repository,
        },
        ResolvedSource::Azure {
            id,
            unreadable: Some(Unreadable::Forbidden),
            ..
        } => PermissionsSource::ReadForbidden { id: id.to_string() },
        // A login server with no credentials is pulled with Azure AD by the client; the
        // service reads it anonymously (registryUri).
        ResolvedSource::External {
            registry: Some(r),
            credentials: None,
            ..
        } if engine == PermissionsEngine::Client => PermissionsSource::Azure {
            access: registry_access(arm, &r.id, &r.name, r.role_assignment_mode()).await,
            repository,
        },
        _ => PermissionsSource::NotInvolved,
    }
}

/// Everything [`evaluate`](super::evaluate) needs for an import into `target` of `source`.
pub async fn gather(
    arm: &ArmClient,
    engine: PermissionsEngine,
    target: Option<TargetRef<'_>>,
    target_repositories: Vec<String>,
    source: &ResolvedSource,
) -> PermissionsInput {
    let principal = arm.caller_object_id().await.ok().flatten();
    let target = match target {
        Some(TargetRef::Registry(r)) => {
            Some(registry_access(arm, &r.id, &r.name, r.role_assignment_mode()).await)
        }
        Some(TargetRef::Unreadable(id)) => Some(
            registry_access(
                arm,
                id.as_str(),
                id.name().as_str(),
                RoleAssignmentMode::LegacyRegistryPermissions,
            )
            .await,
        ),
        None => None,
    };
    PermissionsInput {
        engine,
        principal,
        target,
        target_repositories,
        source: source_access(arm, engine, source).await,
    }
}
