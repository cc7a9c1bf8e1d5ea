//! Repository-only references, OCI layout references and `AnyReference`, as tables.

use std::path::Path;

use acr_import_reference::{AnyReference, OciLayoutReference, ReferenceError, RepositoryReference};

use crate::{h256, h256_upper};

/// Renders an optional part, `""` when absent.
fn or_empty<T: ToString>(part: Option<T>) -> String {
    part.map_or_else(String::new, |p| p.to_string())
}

macro_rules! repo_valid {
    ($($name:ident: $input:expr => $repo:expr, $tag:expr, $digest:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let input: &str = $input;
                let reference: RepositoryReference = input.parse().unwrap_or_else(|e| panic!("{input:?}: {e}"));
                assert_eq!(reference.repository().as_str(), $repo);
                assert_eq!(or_empty(reference.tag()), $tag);
                assert_eq!(or_empty(reference.digest()), $digest);
                assert_eq!(reference.to_string(), input);
            }
        )*
    };
}

macro_rules! repo_invalid {
    ($($name:ident: $input:expr => $expected:pat,)*) => {
        $(
            #[test]
            fn $name() {
                let input: &str = $input;
                match input.parse::<RepositoryReference>() {
                    Err($expected) => {}
                    other => panic!("{input:?}: expected {}, got {other:?}", stringify!($expected)),
                }
            }
        )*
    };
}

macro_rules! oci_valid {
    ($($name:ident: $input:expr => $path:expr, $tag:expr, $digest:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let input: &str = $input;
                let reference: OciLayoutReference = input.parse().unwrap_or_else(|e| panic!("{input:?}: {e}"));
                assert_eq!(reference.path(), Path::new($path));
                assert_eq!(or_empty(reference.tag()), $tag);
                assert_eq!(or_empty(reference.digest()), $digest);
                assert_eq!(reference.to_string(), input);
                assert_eq!(input.parse::<AnyReference>(), Ok(AnyReference::OciLayout(reference)));
            }
        )*
    };
}

macro_rules! oci_invalid {
    ($($name:ident: $input:expr => $expected:pat,)*) => {
        $(
            #[test]
            fn $name() {
                let input: &str = $input;
                match input.parse::<OciLayoutReference>() {
                    Err($expected) => {}
                    other => panic!("{input:?}: expected {}, got {other:?}", stringify!($expected)),
                }
            }
        )*
    };
}

mod repository_reference {
    use super::*;
    use ReferenceError as E;

    repo_valid! {
        bare: "aci-helloworld" => "aci-helloworld", "", "";
        tagged: "aci-helloworld:latest" => "aci-helloworld", "latest", "";
        namespaced: "samples/aci-helloworld:latest" => "samples/aci-helloworld", "latest", "";
        digest: concat!("repo@sha256:", h256!()) => "repo", "", concat!("sha256:", h256!());
        tag_and_digest: concat!("repo:v1@sha256:", h256!()) => "repo", "v1", concat!("sha256:", h256!());
        no_library_added: "library/hello-world" => "library/hello-world", "", "";
        dotted_first_component_is_a_path: "myreg.azurecr.io/app:1" => "myreg.azurecr.io/app", "1", "";
        localhost_is_a_path: "localhost/app" => "localhost/app", "", "";
    }

    repo_invalid! {
        empty: "" => E::Empty,
        scheme: "https://myreg.azurecr.io/app" => E::UrlScheme { .. },
        only_tag: ":v1" => E::MissingRepository { position: 0 },
        port_is_not_a_path: "myreg.azurecr.io:5000/app" => E::InvalidRepositoryCharacter { position: 16, character: ':', .. },
        uppercase: "Samples/App:1" => E::Uppercase { position: 0, .. },
        uppercase_digest: concat!("repo@sha256:", h256_upper!()) => E::DigestUppercase { position: 12, .. },
        trailing_slash: "samples/" => E::EmptyComponent { position: 8, .. },
        bad_tag: "repo:v1!" => E::InvalidTag { position: 7, character: '!', .. },
    }

    #[test]
    fn strips_a_repeated_login_server() {
        let reference: RepositoryReference = "MyReg.azurecr.io/samples/app:1"
            .to_lowercase()
            .parse()
            .unwrap();
        assert!(reference.starts_with_login_server("MyReg.azurecr.io"));
        let stripped = reference.strip_login_server("myreg.azurecr.io").unwrap();
        assert_eq!(stripped.to_string(), "samples/app:1");
        assert!(!stripped.starts_with_login_server("myreg.azurecr.io"));
        assert_eq!(reference.strip_login_server("other.azurecr.io"), None);
        // The login server alone is a repository named like it, not an empty path.
        let alone: RepositoryReference = "myreg.azurecr.io".parse().unwrap();
        assert!(!alone.starts_with_login_server("myreg.azurecr.io"));
    }

    #[test]
    fn in_registry_builds_a_full_reference() {
        let reference: RepositoryReference = "samples/app:1".parse().unwrap();
        let full = reference
            .in_registry(&"myreg.azurecr.io".parse().unwrap())
            .unwrap();
        assert_eq!(full.to_string(), "myreg.azurecr.io/samples/app:1");
        assert_eq!(full.to_repository_reference(), reference);
        let hub = "nats:2.1.8".parse::<RepositoryReference>().unwrap();
        let full = hub.in_registry(&"docker.io".parse().unwrap()).unwrap();
        assert_eq!(
            full.normalized().to_string(),
            "docker.io/library/nats:2.1.8"
        );
    }

    #[test]
    fn in_registry_checks_the_name_length() {
        let path = format!("a/{}", "b".repeat(240));
        let reference: RepositoryReference = path.parse().unwrap();
        let domain = "registry.example.com".parse().unwrap();
        assert!(matches!(
            reference.in_registry(&domain),
            Err(ReferenceError::NameTooLong {
                length: 263,
                max: 255
            })
        ));
    }

    #[test]
    fn with_and_without() {
        let reference: RepositoryReference = "repo:v1".parse().unwrap();
        let digest = concat!("sha256:", h256!()).parse().unwrap();
        let both = reference.with_digest(digest);
        assert_eq!(both.to_string(), concat!("repo:v1@sha256:", h256!()));
        assert_eq!(both.without_digest(), reference);
        assert_eq!(
            reference.with_tag("v2".parse().unwrap()).to_string(),
            "repo:v2"
        );
    }
}

mod oci_layout {
    use super::*;
    use ReferenceError as E;

    oci_valid! {
        relative: "oci:layout" => "layout", "", "";
        dot_relative: "oci:./layout" => "./layout", "", "";
        absolute_tag: "oci:/srv/images:v1" => "/srv/images", "v1", "";
        digest: concat!("oci:/srv/images@sha256:", h256!()) => "/srv/images", "", concat!("sha256:", h256!());
        tag_and_digest: concat!("oci:/srv/images:v1@sha256:", h256!()) => "/srv/images", "v1", concat!("sha256:", h256!());
        at_in_path: "oci:/tmp/user@example/layout:v1" => "/tmp/user@example/layout", "v1", "";
        windows_drive_backslash: "oci:C:\\images\\app:v1" => "C:\\images\\app", "v1", "";
        windows_drive_slash: "oci:d:/images" => "d:/images", "", "";
        looks_like_docker_tag: "oci:1.0" => "1.0", "", "";
    }

    oci_invalid! {
        not_oci: "docker.io/library/nginx" => E::NotOciLayout,
        missing_path: "oci:" => E::MissingLayoutPath { position: 4 },
        missing_path_with_tag: "oci::v1" => E::MissingLayoutPath { position: 4 },
        missing_path_with_digest: concat!("oci:@sha256:", h256!()) => E::MissingLayoutPath { position: 4 },
        empty_tag: "oci:/srv/images:" => E::EmptyTag { position: 16 },
        colon_in_tag: "oci:/srv/images:a:b" => E::InvalidTag { position: 17, character: ':', .. },
        bad_digest: "oci:/srv/images@sha256:abc" => E::DigestLength { position: 23, .. },
        uppercase_digest: concat!("oci:/srv/images@sha256:", h256_upper!()) => E::DigestUppercase { .. },
        unknown_algorithm: "oci:/srv/images@md5:d41d8cd98f00b204e9800998ecf8427e" => E::UnsupportedDigestAlgorithm { position: 16, .. },
    }

    #[test]
    fn any_reference_takes_registry_references_too() {
        let any: AnyReference = "mcr.microsoft.com/dotnet/aspnet:8.0".parse().unwrap();
        assert!(
            matches!(&any, AnyReference::Registry(r) if r.repository().as_str() == "dotnet/aspnet")
        );
        assert_eq!(any.to_string(), "mcr.microsoft.com/dotnet/aspnet:8.0");
        assert!(matches!(
            "https://x.io/a".parse::<AnyReference>(),
            Err(ReferenceError::UrlScheme { .. })
        ));
        assert!(matches!(
            "oci:".parse::<AnyReference>(),
            Err(ReferenceError::MissingLayoutPath { .. })
        ));
    }
}
