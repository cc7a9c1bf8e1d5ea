//! Property tests: round-trips, normalization laws, and no panics on any input.

use acr_import_reference::{
    AnyReference, Digest, Domain, OciLayoutReference, Reference, Repository, RepositoryReference,
    Tag,
};
use proptest::prelude::*;

/// A path component by the grammar: alphanumerics joined by `.`, `_`, `__` or `-`+.
fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}(([._]|__|-{1,3})[a-z0-9]{1,6}){0,2}"
}

/// A first component that Docker does not read as a domain: no `.`, not `localhost`.
fn first_component_without_domain() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}((_|__|-{1,3})[a-z0-9]{1,6}){0,2}"
        .prop_filter("localhost is a domain", |c| c != "localhost")
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?(\\.[a-zA-Z0-9]([a-z0-9-]{0,6}[a-z0-9])?){1,3}",
        "[a-z0-9]{1,8}(\\.[a-z]{2,4})?:[1-9][0-9]{0,3}",
        "[1-9][0-9]{0,2}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[1-9][0-9]{0,3})?",
        "[A-Z][A-Za-z0-9]{0,8}",
        Just("localhost".to_owned()),
        Just("[::1]:5000".to_owned()),
        Just("[2001:db8::1]".to_owned()),
        Just("docker.io".to_owned()),
        Just("index.docker.io".to_owned()),
        Just("registry-1.docker.io".to_owned()),
        Just("registry.hub.docker.com".to_owned()),
    ]
}

fn tag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"
}

fn digest() -> impl Strategy<Value = String> {
    prop_oneof!["sha256:[0-9a-f]{64}", "sha512:[0-9a-f]{128}"]
}

fn suffix() -> impl Strategy<Value = String> {
    (proptest::option::of(tag()), proptest::option::of(digest())).prop_map(|(tag, digest)| {
        let mut out = String::new();
        if let Some(tag) = tag {
            out = format!(":{tag}");
        }
        if let Some(digest) = digest {
            out.push('@');
            out.push_str(&digest);
        }
        out
    })
}

/// Valid registry references, as strings, by construction from the grammar.
fn valid_reference() -> impl Strategy<Value = String> {
    let with_domain = (domain(), proptest::collection::vec(component(), 1..4))
        .prop_map(|(domain, path)| format!("{domain}/{}", path.join("/")));
    let without_domain = (
        first_component_without_domain(),
        proptest::collection::vec(component(), 0..3),
    )
        .prop_map(|(first, rest)| {
            std::iter::once(first)
                .chain(rest)
                .collect::<Vec<_>>()
                .join("/")
        });
    (prop_oneof![with_domain, without_domain], suffix()).prop_map(|(name, suffix)| name + &suffix)
}

/// Strings over the grammar's alphabet, to reach deep into the parser.
fn grammar_soup() -> impl Strategy<Value = String> {
    "(oci:)?[a-zA-Z0-9:/@._\\-\\[\\]]{0,60}"
}

/// Laws every parsed reference must obey.
fn check_laws(reference: &Reference) -> Result<(), TestCaseError> {
    let printed = reference.to_string();
    prop_assert_eq!(printed.parse::<Reference>(), Ok(reference.clone()));
    let normalized = reference.normalized();
    prop_assert_eq!(normalized.normalized(), normalized.clone());
    prop_assert_eq!(
        normalized.to_string().parse::<Reference>(),
        Ok(normalized.clone())
    );
    let familiar = reference.familiar();
    let reparsed = familiar.parse::<Reference>();
    prop_assert!(
        reparsed.is_ok(),
        "familiar {:?} of {:?} does not parse: {:?}",
        familiar,
        printed,
        reparsed
    );
    prop_assert_eq!(reparsed.unwrap().normalized(), normalized.clone());
    prop_assert_eq!(
        normalized
            .familiar()
            .parse::<Reference>()
            .map(|r| r.normalized()),
        Ok(normalized)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_references_parse_and_round_trip(input in valid_reference()) {
        let reference: Reference = input.parse().map_err(|e| TestCaseError::fail(format!("{input:?}: {e}")))?;
        prop_assert_eq!(reference.to_string(), input);
        check_laws(&reference)?;
    }

    #[test]
    fn whatever_parses_obeys_the_laws(input in grammar_soup()) {
        if let Ok(reference) = input.parse::<Reference>() {
            prop_assert_eq!(reference.to_string(), input.clone());
            check_laws(&reference)?;
        }
        if let Ok(reference) = input.parse::<RepositoryReference>() {
            prop_assert_eq!(reference.to_string(), input.clone());
        }
        if let Ok(reference) = input.parse::<AnyReference>() {
            prop_assert_eq!(reference.to_string(), input.clone());
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(input in any::<String>()) {
        // Errors are formatted too: messages must not panic either.
        let _ = input.parse::<Reference>().map_err(|e| e.to_string());
        let _ = input.parse::<RepositoryReference>().map_err(|e| e.to_string());
        let _ = input.parse::<OciLayoutReference>().map_err(|e| e.to_string());
        let _ = input.parse::<AnyReference>().map_err(|e| e.to_string());
        let _ = input.parse::<Domain>().map_err(|e| e.to_string());
        let _ = input.parse::<Repository>().map_err(|e| e.to_string());
        let _ = input.parse::<Tag>().map_err(|e| e.to_string());
        let _ = input.parse::<Digest>().map_err(|e| e.to_string());
    }

    #[test]
    fn repository_references_round_trip(
        path in proptest::collection::vec(component(), 1..4),
        suffix in suffix(),
    ) {
        let input = path.join("/") + &suffix;
        let reference: RepositoryReference = input.parse().map_err(|e| TestCaseError::fail(format!("{input:?}: {e}")))?;
        prop_assert_eq!(reference.to_string(), input);
        prop_assert_eq!(reference.to_string().parse::<RepositoryReference>(), Ok(reference));
    }

    #[test]
    fn oci_layout_references_round_trip(
        path in "(/|\\./)?[a-zA-Z0-9._-]{1,12}(/[a-zA-Z0-9._-]{1,12}){0,2}",
        suffix in suffix(),
    ) {
        let input = format!("oci:{path}{suffix}");
        let reference: OciLayoutReference = input.parse().map_err(|e| TestCaseError::fail(format!("{input:?}: {e}")))?;
        prop_assert_eq!(reference.path().to_str(), Some(path.as_str()));
        prop_assert_eq!(reference.to_string(), input);
    }
}
