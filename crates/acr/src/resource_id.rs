//! ARM resource IDs of container registries.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::{AcrError, RegistryName};

/// The provider namespace of container registries.
pub const PROVIDER: &str = "Microsoft.ContainerRegistry";
/// The resource type of container registries.
pub const RESOURCE_TYPE: &str = "registries";

/// `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}`.
///
/// Segment names (`subscriptions`, `resourceGroups`, …) are read case-insensitively, as ARM
/// does; the text given is kept and printed back unchanged ([`fmt::Display`]), because ARM may
/// echo other casing and what is sent must not be re-cased. Equality and hashing ignore case.
#[derive(Debug, Clone, Eq)]
pub struct RegistryResourceId {
    text: String,
    subscription: String,
    resource_group: String,
    name: RegistryName,
}

impl RegistryResourceId {
    /// Builds the canonical ID from its parts (validated as [`FromStr`] validates them).
    pub fn new(
        subscription: &str,
        resource_group: &str,
        name: &RegistryName,
    ) -> Result<Self, AcrError> {
        format!(
            "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{PROVIDER}/{RESOURCE_TYPE}/{name}"
        )
        .parse()
    }

    /// The subscription ID (a GUID), as written.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The resource group, as written.
    pub fn resource_group(&self) -> &str {
        &self.resource_group
    }

    /// The registry name, as written.
    pub fn name(&self) -> &RegistryName {
        &self.name
    }

    /// The ID exactly as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `value` is meant as a resource ID (starts with `/subscriptions/`, any case);
    /// whether it is a *valid* one is for [`FromStr`] to say.
    pub fn looks_like(value: &str) -> bool {
        value
            .get(..15)
            .is_some_and(|p| p.eq_ignore_ascii_case("/subscriptions/"))
    }
}

impl PartialEq for RegistryResourceId {
    fn eq(&self, other: &Self) -> bool {
        self.text.eq_ignore_ascii_case(&other.text)
    }
}

impl Hash for RegistryResourceId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.to_ascii_lowercase().hash(state);
    }
}

impl fmt::Display for RegistryResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether `s` is a GUID (`8-4-4-4-12` hex digits).
pub(crate) fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// ARM's resource-group rule: 1–90 letters, digits, `-`, `_`, `.`, `(`, `)`, not ending in `.`.
fn is_resource_group(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= 90
        && !s.ends_with('.')
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
}

const EXPECTED: &str = "/subscriptions/<subscription id>/resourceGroups/<resource group>/providers/Microsoft.ContainerRegistry/registries/<registry name>";

impl FromStr for RegistryResourceId {
    type Err = AcrError;

    fn from_str(s: &str) -> Result<Self, AcrError> {
        let invalid = |reason: String| AcrError::InvalidResourceId {
            value: s.chars().take(300).collect(),
            reason,
        };
        if !s.starts_with('/') {
            return Err(invalid(format!(
                "a resource ID starts with `/subscriptions/`; expected {EXPECTED}"
            )));
        }
        if s.len() > 1 && s.ends_with('/') {
            return Err(invalid(
                "remove the trailing `/`: the ID ends with the registry name".to_owned(),
            ));
        }
        let segments: Vec<&str> = s[1..].split('/').collect();
        if segments.iter().any(|p| p.is_empty()) {
            return Err(invalid(format!(
                "it has an empty path segment; expected {EXPECTED}"
            )));
        }
        let keyword = |i: usize, want: &str| {
            segments
                .get(i)
                .is_some_and(|seg| seg.eq_ignore_ascii_case(want))
        };
        if !keyword(0, "subscriptions") || segments.len() < 2 {
            return Err(invalid(format!("expected {EXPECTED}")));
        }
        let subscription = segments[1];
        if !is_guid(subscription) {
            return Err(invalid(format!(
                "`{subscription}` is not a subscription ID (a GUID such as 00000000-0000-0000-0000-000000000000)"
            )));
        }
        if !keyword(2, "resourceGroups") || segments.len() < 4 {
            return Err(invalid(format!(
                "a registry ID names its resource group after the subscription; expected {EXPECTED}"
            )));
        }
        let resource_group = segments[3];
        if !is_resource_group(resource_group) {
            return Err(invalid(format!(
                "`{resource_group}` is not a valid resource group name (1-90 letters, digits, `-_.()`, not ending in `.`)"
            )));
        }
        if !keyword(4, "providers") || segments.len() < 7 {
            return Err(invalid(format!(
                "this is not the ID of a registry (it names no Microsoft.ContainerRegistry/registries resource); expected {EXPECTED}"
            )));
        }
        if !keyword(5, PROVIDER) || !keyword(6, RESOURCE_TYPE) {
            return Err(invalid(format!(
                "this is a {}/{} resource, not a container registry: expected {PROVIDER}/{RESOURCE_TYPE}",
                segments[5], segments[6]
            )));
        }
        let Some(name) = segments.get(7) else {
            return Err(invalid(format!(
                "the registry name is missing; expected {EXPECTED}"
            )));
        };
        if segments.len() > 8 {
            return Err(invalid(format!(
                "remove `/{}`: a registry resource ID ends with the registry name",
                segments[8..].join("/")
            )));
        }
        let name: RegistryName = name.parse()?;
        Ok(Self {
            text: s.to_owned(),
            subscription: subscription.to_owned(),
            resource_group: resource_group.to_owned(),
            name,
        })
    }
}

impl serde::Serialize for RegistryResourceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SUB: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";

    #[test]
    fn parses_and_keeps_casing() {
        let id: RegistryResourceId =
            format!("/subscriptions/{SUB}/resourcegroups/My-RG/providers/microsoft.containerregistry/Registries/MyReg1")
                .parse()
                .unwrap();
        assert_eq!(id.subscription(), SUB);
        assert_eq!(id.resource_group(), "My-RG");
        assert_eq!(id.name().as_str(), "MyReg1");
        assert!(id.to_string().contains("/resourcegroups/My-RG/"));
        let canonical = RegistryResourceId::new(SUB, "my-rg", &"myreg1".parse().unwrap()).unwrap();
        assert_eq!(id, canonical);
        assert!(canonical.to_string().contains("/resourceGroups/"));
    }

    #[test]
    fn refuses_what_is_not_a_registry_id() {
        let cases = [
            (
                format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct1"),
                "Microsoft.Storage/storageAccounts",
            ),
            (
                format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg1/"),
                "trailing",
            ),
            (
                format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg1/importImage"),
                "remove `/importImage`",
            ),
            (
                format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/my-reg"),
                "alpha numeric",
            ),
            (format!("/subscriptions/{SUB}/resourceGroups/rg"), "not the ID of a registry"),
            ("/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg1".to_owned(), "GUID"),
            ("subscriptions/x".to_owned(), "starts with"),
            (format!("/subscriptions/{SUB}/resourceGroups/rg./providers/Microsoft.ContainerRegistry/registries/myreg1"), "resource group"),
        ];
        for (value, needle) in cases {
            let err = value.parse::<RegistryResourceId>().unwrap_err().to_string();
            assert!(err.contains(needle), "{value}: {err}");
        }
        assert!(RegistryResourceId::looks_like("/SUBSCRIPTIONS/abc"));
        assert!(!RegistryResourceId::looks_like("myregistry"));
    }

    fn flip_case(s: &str, mask: u64) -> String {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn round_trip(sub in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                      rg in "[A-Za-z0-9_()-]{1,20}",
                      name in "[A-Za-z0-9]{5,50}") {
            let id = RegistryResourceId::new(&sub, &rg, &name.parse().unwrap()).unwrap();
            let again: RegistryResourceId = id.to_string().parse().unwrap();
            prop_assert_eq!(&again, &id);
            prop_assert_eq!(again.to_string(), id.to_string());
            prop_assert_eq!(again.resource_group(), rg.as_str());
            prop_assert_eq!(again.name().as_str(), name.as_str());
        }

        #[test]
        fn case_insensitive_equality(rg in "[A-Za-z0-9]{1,20}", name in "[A-Za-z0-9]{5,50}", mask in any::<u64>()) {
            let id = RegistryResourceId::new(SUB, &rg, &name.parse().unwrap()).unwrap();
            let other: RegistryResourceId = flip_case(&id.to_string(), mask).parse().unwrap();
            prop_assert_eq!(&other, &id);
            let mut a = std::collections::hash_map::DefaultHasher::new();
            let mut b = std::collections::hash_map::DefaultHasher::new();
            other.hash(&mut a);
            id.hash(&mut b);
            prop_assert_eq!(a.finish(), b.finish());
        }

        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = s.parse::<RegistryResourceId>();
        }

        #[test]
        fn never_panics_near_valid(tail in "[/A-Za-z0-9.]{0,40}") {
            let _ = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/{tail}").parse::<RegistryResourceId>();
        }
    }
}
