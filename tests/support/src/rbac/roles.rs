//! Built-in role definitions, with the actions Azure documents for them
//! (learn.microsoft.com/azure/role-based-access-control/built-in-roles/containers and
//! …/built-in-roles/general; ids are the roles' `name` GUIDs).

/// A role definition: what its assignments allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDefinition {
    /// The role definition's GUID (`name`).
    pub id: String,
    /// `roleName`.
    pub name: String,
    /// `actions`.
    pub actions: Vec<String>,
    /// `notActions`.
    pub not_actions: Vec<String>,
    /// `dataActions`.
    pub data_actions: Vec<String>,
    /// `notDataActions`.
    pub not_data_actions: Vec<String>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

impl RoleDefinition {
    /// A custom role.
    pub fn custom(
        name: &str,
        actions: &[&str],
        not_actions: &[&str],
        data_actions: &[&str],
    ) -> Self {
        let id = format!("custom-{}", name.to_ascii_lowercase().replace(' ', "-"));
        Self::define(&id, name, actions, not_actions, data_actions)
    }

    /// A role definition with the role ID `id`.
    fn define(id: &str, name: &str, actions: &[&str], not_actions: &[&str], data: &[&str]) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            actions: strings(actions),
            not_actions: strings(not_actions),
            data_actions: strings(data),
            not_data_actions: Vec::new(),
        }
    }

    /// Owner: everything.
    pub fn owner() -> Self {
        Self::define(
            "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
            "Owner",
            &["*"],
            &[],
            &[],
        )
    }

    /// Contributor: everything but access management.
    pub fn contributor() -> Self {
        Self::define(
            "b24988ac-6180-42a0-ab88-20f7382dd24c",
            "Contributor",
            &["*"],
            &[
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write",
                "Microsoft.Purview/consents/delete",
                "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
                "Microsoft.Subscription/cancel/action",
                "Microsoft.Subscription/enable/action",
            ],
            &[],
        )
    }

    /// Reader: every read.
    pub fn reader() -> Self {
        Self::define(
            "acdd72a7-3385-48ef-bd42-f606fba81ae7",
            "Reader",
            &["*/read"],
            &[],
            &[],
        )
    }

    /// AcrPull.
    pub fn acr_pull() -> Self {
        Self::define(
            "7f951dda-4ed3-4680-a7ca-43fe172d538d",
            "AcrPull",
            &["Microsoft.ContainerRegistry/registries/pull/read"],
            &[],
            &[],
        )
    }

    /// AcrPush.
    pub fn acr_push() -> Self {
        Self::define(
            "8311e382-0749-4cb8-b61a-304f252e45ec",
            "AcrPush",
            &[
                "Microsoft.ContainerRegistry/registries/pull/read",
                "Microsoft.ContainerRegistry/registries/push/write",
            ],
            &[],
            &[],
        )
    }

    /// AcrDelete.
    pub fn acr_delete() -> Self {
        Self::define(
            "c2f4ef07-c644-48eb-af81-4b1b4947fb11",
            "AcrDelete",
            &["Microsoft.ContainerRegistry/registries/artifacts/delete"],
            &[],
            &[],
        )
    }

    /// Container Registry Data Importer and Data Reader.
    pub fn data_importer() -> Self {
        Self::define(
            "577a9874-89fd-4f24-9dbd-b5034d0ad23a",
            "Container Registry Data Importer and Data Reader",
            &[
                "Microsoft.ContainerRegistry/registries/importImage/action",
                "Microsoft.ContainerRegistry/registries/pull/read",
                "Microsoft.ContainerRegistry/registries/read",
            ],
            &[],
            &[],
        )
    }

    /// Container Registry Repository Reader (ABAC-enabled).
    pub fn repository_reader() -> Self {
        Self::define(
            "b93aa761-3e63-49ed-ac28-beffa264f7ac",
            "Container Registry Repository Reader",
            &[],
            &[],
            &[
                "Microsoft.ContainerRegistry/registries/repositories/content/read",
                "Microsoft.ContainerRegistry/registries/repositories/metadata/read",
            ],
        )
    }

    /// Container Registry Repository Writer (ABAC-enabled).
    pub fn repository_writer() -> Self {
        Self::define(
            "2a1e307c-b015-4ebd-883e-5b7698a07328",
            "Container Registry Repository Writer",
            &[],
            &[],
            &[
                "Microsoft.ContainerRegistry/registries/repositories/content/read",
                "Microsoft.ContainerRegistry/registries/repositories/metadata/read",
                "Microsoft.ContainerRegistry/registries/repositories/content/write",
                "Microsoft.ContainerRegistry/registries/repositories/metadata/write",
            ],
        )
    }

    /// Container Registry Repository Contributor (ABAC-enabled).
    pub fn repository_contributor() -> Self {
        Self::define(
            "2efddaa5-3f1f-4df3-97df-af3f13818f4c",
            "Container Registry Repository Contributor",
            &[],
            &[],
            &[
                "Microsoft.ContainerRegistry/registries/repositories/metadata/read",
                "Microsoft.ContainerRegistry/registries/repositories/content/read",
                "Microsoft.ContainerRegistry/registries/repositories/metadata/write",
                "Microsoft.ContainerRegistry/registries/repositories/content/write",
                "Microsoft.ContainerRegistry/registries/repositories/metadata/delete",
                "Microsoft.ContainerRegistry/registries/repositories/content/delete",
            ],
        )
    }

    /// Container Registry Repository Catalog Lister (ABAC-enabled).
    pub fn catalog_lister() -> Self {
        Self::define(
            "bfdb9389-c9a5-478a-bb2f-ba9ca092c3c7",
            "Container Registry Repository Catalog Lister",
            &[],
            &[],
            &["Microsoft.ContainerRegistry/registries/catalog/read"],
        )
    }
}
