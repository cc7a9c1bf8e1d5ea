//! The permissions verdict, case by case, with the built-in roles' documented permissions.

use super::*;
use crate::permissions::CONTENT_READ;
use crate::preflight::Verdict;
use acr_import_testsupport::RoleDefinition;

const OID: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const TARGET: &str = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/targetreg";
const SOURCE: &str = "/subscriptions/s2/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/sourcereg";
const REPO_CONDITION: &str = "((!(ActionMatches{'Microsoft.ContainerRegistry/registries/repositories/content/read'})) OR (@Request[Microsoft.ContainerRegistry/registries/repositories:name] StringStartsWithIgnoreCase 'team1/'))";

fn perm(actions: &[&str], not_actions: &[&str], data: &[&str]) -> Permission {
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
    Permission {
        actions: v(actions),
        not_actions: v(not_actions),
        data_actions: v(data),
        ..Permission::default()
    }
}

/// The built-in role's documented permissions, from the one list the tests share.
fn role(definition: RoleDefinition) -> Permission {
    Permission {
        actions: definition.actions,
        not_actions: definition.not_actions,
        data_actions: definition.data_actions,
        not_data_actions: definition.not_data_actions,
        ..Permission::default()
    }
}

fn acr_pull() -> Permission {
    role(RoleDefinition::acr_pull())
}
fn acr_push() -> Permission {
    role(RoleDefinition::acr_push())
}
fn importer() -> Permission {
    role(RoleDefinition::data_importer())
}
fn reader() -> Permission {
    role(RoleDefinition::reader())
}
fn contributor() -> Permission {
    role(RoleDefinition::contributor())
}
fn repository_reader() -> Permission {
    role(RoleDefinition::repository_reader())
}
fn repository_writer() -> Permission {
    role(RoleDefinition::repository_writer())
}

fn registry(id: &str, abac: bool, read: PermissionsRead) -> RegistryAccess {
    RegistryAccess {
        id: id.into(),
        name: id.rsplit('/').next().unwrap().into(),
        mode: if abac {
            RoleAssignmentMode::AbacRepositoryPermissions
        } else {
            RoleAssignmentMode::LegacyRegistryPermissions
        },
        permissions: read,
    }
}

fn known(p: Vec<Permission>) -> PermissionsRead {
    PermissionsRead::Known(p)
}

fn server(target: Vec<Permission>, source: PermissionsSource) -> Preflight {
    evaluate(&PermissionsInput {
        engine: PermissionsEngine::Server,
        principal: Some(OID.into()),
        target: Some(registry(TARGET, false, known(target))),
        target_repositories: vec!["app".into()],
        source,
    })
}

fn client(target: RegistryAccess, source: PermissionsSource) -> Preflight {
    evaluate(&PermissionsInput {
        engine: PermissionsEngine::Client,
        principal: Some(OID.into()),
        target: Some(target),
        target_repositories: vec!["team2/app".into()],
        source,
    })
}

fn azure_source(abac: bool, read: PermissionsRead, repo: &str) -> PermissionsSource {
    PermissionsSource::Azure {
        access: registry(SOURCE, abac, read),
        repository: repo.into(),
    }
}

#[test]
fn server_side_needs_import_image_on_the_target() {
    use PermissionsSource::NotInvolved;
    let cases: Vec<(&str, Vec<Permission>, Verdict)> = vec![
        ("AcrPush", vec![acr_push()], Verdict::WillFail),
        ("AcrPull", vec![acr_pull()], Verdict::WillFail),
        ("Reader", vec![reader()], Verdict::WillFail),
        ("nothing", vec![], Verdict::WillFail),
        ("Data Importer", vec![importer()], Verdict::WillWork),
        ("Contributor", vec![contributor()], Verdict::WillWork),
        ("Owner", vec![perm(&["*"], &[], &[])], Verdict::WillWork),
        (
            "custom with a wildcard",
            vec![perm(&["Microsoft.ContainerRegistry/*"], &[], &[])],
            Verdict::WillWork,
        ),
        (
            "custom that takes importImage away",
            vec![perm(
                &["Microsoft.ContainerRegistry/*"],
                &["Microsoft.ContainerRegistry/registries/importImage/action"],
                &[],
            )],
            Verdict::WillFail,
        ),
        (
            "AcrPush and Data Importer",
            vec![acr_push(), importer()],
            Verdict::WillWork,
        ),
    ];
    for (what, perms, want) in cases {
        let p = server(perms, NotInvolved);
        assert_eq!(p.verdict, want, "{what}: {p}");
    }
    let p = server(vec![acr_push()], NotInvolved);
    let f = &p.failures[0];
    assert_eq!(f.rule, Rule::PermissionMissing);
    assert_eq!(f.registry, "targetreg");
    assert!(
        f.reason
            .contains("lacks Microsoft.ContainerRegistry/registries/importImage/action on the target targetreg"),
        "{p}"
    );
    assert!(f.reason.contains(OID), "{p}");
    assert_eq!(
        f.fix,
        format!(
            "assign \"Container Registry Data Importer and Data Reader\": az role assignment create --assignee {OID} --role \"Container Registry Data Importer and Data Reader\" --scope {TARGET}"
        )
    );
}

#[test]
fn a_resource_id_source_needs_read_and_pull() {
    // Read refused by ARM: the source is named, with the role and the command.
    let p = server(
        vec![importer()],
        PermissionsSource::ReadForbidden { id: SOURCE.into() },
    );
    assert_eq!(p.rules(), [Rule::LinkedScopeReadMissing]);
    assert_eq!(p.failures[0].registry, SOURCE);
    assert!(p.failures[0].reason.contains("source registry"), "{p}");
    assert!(
        p.failures[0].fix.contains(&format!(
            "--role \"Container Registry Data Importer and Data Reader\" --scope {SOURCE}"
        )),
        "{p}"
    );
    // Readable; pull decides. Reader's */read covers pull/read in a registry-wide registry.
    for (what, perms, abac, want) in [
        ("Reader", vec![reader()], false, vec![]),
        ("Data Importer", vec![importer()], false, vec![]),
        ("AcrPull", vec![acr_pull()], false, vec![]),
        (
            "read only",
            vec![perm(
                &["Microsoft.ContainerRegistry/registries/read"],
                &[],
                &[],
            )],
            false,
            vec![Rule::PermissionMissing],
        ),
        (
            "ABAC, Reader",
            vec![reader()],
            true,
            vec![Rule::PermissionMissing],
        ),
        (
            "ABAC, AcrPull",
            vec![acr_pull(), reader()],
            true,
            vec![Rule::PermissionMissing],
        ),
        (
            "ABAC, Repository Reader",
            vec![reader(), repository_reader()],
            true,
            vec![],
        ),
    ] {
        let p = server(vec![importer()], azure_source(abac, known(perms), "app"));
        assert_eq!(p.rules(), want, "{what}: {p}");
    }
    let p = server(
        vec![importer()],
        azure_source(true, known(vec![acr_pull()]), "app"),
    );
    let f = &p.failures[0];
    assert_eq!(f.registry, "sourcereg");
    assert!(f.reason.contains(CONTENT_READ), "{p}");
    assert!(f.reason.contains("not honored"), "{p}");
    assert!(
        f.fix
            .contains("--role \"Container Registry Repository Reader\""),
        "{p}"
    );
    assert!(p.notes.iter().any(|n| n.contains("ABAC")), "{p}");
}

#[test]
fn repository_conditions_give_unknown_with_an_explanation() {
    let mut conditioned = repository_reader();
    conditioned.condition = Some(REPO_CONDITION.into());
    conditioned.condition_version = Some("2.0".into());
    let p = server(
        vec![importer()],
        azure_source(
            true,
            known(vec![reader(), conditioned.clone()]),
            "team2/app",
        ),
    );
    assert_eq!(p.verdict, Verdict::CannotTell, "{p}");
    let u = &p.unknowns[0];
    assert_eq!(u.rule, Rule::PermissionConditional);
    assert!(u.reason.contains("team1/"), "the condition is shown: {p}");
    assert!(
        u.reason.contains("team2/app"),
        "the repository is named: {p}"
    );
    assert!(u.reason.contains("does not evaluate"), "{p}");
    assert!(u.fix.contains("az role assignment list"), "{p}");
    // An unconditioned grant next to it decides.
    let p = server(
        vec![importer()],
        azure_source(
            true,
            known(vec![conditioned, repository_reader()]),
            "team2/app",
        ),
    );
    assert_eq!(p.verdict, Verdict::WillWork, "{p}");
}

#[test]
fn permissions_that_cannot_be_read_give_unknown() {
    let p = evaluate(&PermissionsInput {
        engine: PermissionsEngine::Server,
        principal: None,
        target: Some(registry(
            TARGET,
            false,
            PermissionsRead::Forbidden("AuthorizationFailed".into()),
        )),
        target_repositories: vec![],
        source: PermissionsSource::NotInvolved,
    });
    assert_eq!(p.verdict, Verdict::CannotTell);
    assert_eq!(p.rules(), [Rule::PermissionsUnreadable]);
    assert!(p.unknowns[0].reason.contains("goes ahead"), "{p}");
    assert!(p.unknowns[0].fix.contains("<your object id>"), "{p}");
    let p = evaluate(&PermissionsInput {
        engine: PermissionsEngine::Client,
        principal: None,
        target: Some(registry(
            TARGET,
            false,
            PermissionsRead::Failed("timeout".into()),
        )),
        target_repositories: vec![],
        source: PermissionsSource::NotInvolved,
    });
    assert_eq!(p.verdict, Verdict::CannotTell);
}

#[test]
fn client_side_needs_push_on_the_target_and_pull_on_an_azure_source() {
    let cases: Vec<(&str, RegistryAccess, PermissionsSource, Vec<Rule>)> = vec![
        (
            "AcrPush",
            registry(TARGET, false, known(vec![acr_push()])),
            PermissionsSource::NotInvolved,
            vec![],
        ),
        (
            "AcrPull",
            registry(TARGET, false, known(vec![acr_pull()])),
            PermissionsSource::NotInvolved,
            vec![Rule::PermissionMissing],
        ),
        (
            "Contributor",
            registry(TARGET, false, known(vec![contributor()])),
            PermissionsSource::NotInvolved,
            vec![],
        ),
        (
            "ABAC, AcrPush",
            registry(TARGET, true, known(vec![acr_push()])),
            PermissionsSource::NotInvolved,
            vec![Rule::PermissionMissing],
        ),
        (
            "ABAC, Owner",
            registry(TARGET, true, known(vec![perm(&["*"], &[], &[])])),
            PermissionsSource::NotInvolved,
            vec![Rule::PermissionMissing],
        ),
        (
            "ABAC, Repository Writer",
            registry(TARGET, true, known(vec![repository_writer()])),
            PermissionsSource::NotInvolved,
            vec![],
        ),
        (
            "source without pull",
            registry(TARGET, false, known(vec![acr_push()])),
            azure_source(
                false,
                known(vec![perm(
                    &["Microsoft.ContainerRegistry/registries/read"],
                    &[],
                    &[],
                )]),
                "app",
            ),
            vec![Rule::PermissionMissing],
        ),
        (
            "source with AcrPull",
            registry(TARGET, false, known(vec![acr_push()])),
            azure_source(false, known(vec![acr_pull()]), "app"),
            vec![],
        ),
    ];
    for (what, target, source, want) in cases {
        let p = client(target, source);
        assert_eq!(p.rules(), want, "{what}: {p}");
    }
    let p = client(
        registry(TARGET, true, known(vec![acr_push()])),
        PermissionsSource::NotInvolved,
    );
    let f = &p.failures[0];
    assert!(
        f.fix
            .contains("--role \"Container Registry Repository Writer\""),
        "{p}"
    );
    assert!(f.reason.contains("push the image"), "{p}");
    let p = client(
        registry(TARGET, false, known(vec![acr_pull()])),
        PermissionsSource::NotInvolved,
    );
    assert!(p.failures[0].fix.contains("--role \"AcrPush\""), "{p}");
}
