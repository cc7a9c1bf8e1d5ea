//! The validated parts on their own, the methods of `Reference`, limits and messages.

use acr_import_reference::{
    Digest, DigestAlgorithm, Domain, Reference, ReferenceError, Repository, Tag,
};

use crate::{h256, h512};

fn reference(s: &str) -> Reference {
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn error(s: &str) -> ReferenceError {
    s.parse::<Reference>().expect_err(s)
}

#[test]
fn tag_limits() {
    assert!(format!("a{}", "b".repeat(127)).parse::<Tag>().is_ok());
    let too_long = format!("a{}", "b".repeat(128));
    assert_eq!(
        too_long.parse::<Tag>(),
        Err(ReferenceError::TagTooLong {
            position: 0,
            length: 129
        })
    );
    assert_eq!(
        format!("app:{too_long}").parse::<Reference>(),
        Err(ReferenceError::TagTooLong {
            position: 4,
            length: 129
        })
    );
    assert_eq!(Tag::latest().as_str(), "latest");
    assert_eq!(
        "".parse::<Tag>(),
        Err(ReferenceError::EmptyTag { position: 0 })
    );
}

#[test]
fn name_length_limit_counts_the_domain() {
    // 255 bytes in total: `example.com/` (12) + 243.
    let at_limit = format!("example.com/a/{}", "b".repeat(241));
    assert_eq!(at_limit.len(), 255);
    assert!(at_limit.parse::<Reference>().is_ok());
    let over = format!("example.com/a/{}", "b".repeat(242));
    assert_eq!(
        over.parse::<Reference>(),
        Err(ReferenceError::NameTooLong {
            length: 256,
            max: 255
        })
    );
}

#[test]
fn name_length_limit_counts_the_normalized_form() {
    // `docker.io/library/` adds 18 bytes: a one-component name of 238 bytes normalizes to 256.
    let name = "a".repeat(238);
    assert_eq!(
        name.parse::<Reference>(),
        Err(ReferenceError::NameTooLong {
            length: 256,
            max: 255
        })
    );
    let name = "a".repeat(237);
    let parsed = reference(&name);
    assert_eq!(
        parsed.normalized().repository().as_str().len() + "docker.io/".len(),
        255
    );
    // The repository alone is limited to 255 bytes.
    assert!("a".repeat(255).parse::<Repository>().is_ok());
    assert!(matches!(
        "a".repeat(256).parse::<Repository>(),
        Err(ReferenceError::NameTooLong { length: 256, .. })
    ));
}

#[test]
fn huge_and_strange_inputs_do_not_panic() {
    let huge = "a".repeat(1 << 20);
    assert!(matches!(
        huge.parse::<Reference>(),
        Err(ReferenceError::NameTooLong { .. })
    ));
    let huge_tag = format!("app:{}", "a".repeat(1 << 20));
    assert!(matches!(
        huge_tag.parse::<Reference>(),
        Err(ReferenceError::TagTooLong { .. })
    ));
    for input in [
        "\0",
        "@",
        ":",
        "/",
        "::",
        "@@",
        "[",
        "]",
        "[]/x",
        "[:]/x",
        "é/x",
        "日本/x",
        "x/日本",
        "a:é",
        "a@é",
        "a@sha256:é",
        "ä:1/x",
        "\u{1F600}",
        "oci:\u{1F600}:é",
    ] {
        let _ = input.parse::<Reference>();
        let _ = input.parse::<acr_import_reference::AnyReference>();
        let _ = input.parse::<acr_import_reference::RepositoryReference>();
        let _ = input.parse::<Domain>().map_err(|e| e.to_string());
    }
}

#[test]
fn digest_constructors_and_accessors() {
    let digest = Digest::sha256_from_hex(h256!()).unwrap();
    assert_eq!(digest.algorithm(), DigestAlgorithm::Sha256);
    assert_eq!(digest.encoded(), h256!());
    assert_eq!(digest.as_str(), concat!("sha256:", h256!()));
    assert_eq!(digest.to_string().parse::<Digest>(), Ok(digest.clone()));
    assert_eq!(digest.referrers_tag().as_str(), concat!("sha256-", h256!()));

    let digest = Digest::sha512_from_hex(h512!()).unwrap();
    assert_eq!(digest.algorithm().hex_len(), 128);
    assert_eq!(
        digest.referrers_tag().as_str(),
        format!("sha512-{}", &h512!()[..64])
    );
    assert_eq!(
        Digest::new(DigestAlgorithm::Sha256, h512!()),
        Err(ReferenceError::DigestLength {
            position: 0,
            algorithm: DigestAlgorithm::Sha256,
            expected: 64,
            found: 128
        })
    );
    assert!(matches!(
        Digest::sha256_from_hex(&h256!().to_uppercase()),
        Err(ReferenceError::DigestUppercase { .. })
    ));
}

#[test]
fn domain_accessors() {
    let domain: Domain = "localhost:5000".parse().unwrap();
    assert_eq!((domain.host(), domain.port()), ("localhost", Some(5000)));
    let domain: Domain = "[2001:db8::1]:443".parse().unwrap();
    assert_eq!((domain.host(), domain.port()), ("[2001:db8::1]", Some(443)));
    let domain: Domain = "[::1]".parse().unwrap();
    assert_eq!((domain.host(), domain.port()), ("[::1]", None));
    let domain: Domain = "mcr.microsoft.com".parse().unwrap();
    assert_eq!(domain.api_host(), "mcr.microsoft.com");
    assert!(!domain.is_docker_hub());
    for hub in [
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "registry.hub.docker.com",
    ] {
        let domain: Domain = hub.parse().unwrap();
        assert!(domain.is_docker_hub(), "{hub}");
        assert_eq!(domain.api_host(), "registry-1.docker.io");
    }
    assert_eq!(Domain::docker_hub().as_str(), "docker.io");
}

#[test]
fn a_domain_must_be_recognizable_as_one() {
    assert_eq!(
        "myregistry".parse::<Domain>(),
        Err(ReferenceError::NotADomain {
            text: "myregistry".into()
        })
    );
    assert!("MyRegistry".parse::<Domain>().is_ok());
    assert!("myregistry:5000".parse::<Domain>().is_ok());
    assert!(matches!(
        "".parse::<Domain>(),
        Err(ReferenceError::InvalidDomain { .. })
    ));
    assert!(matches!(
        "a/b".parse::<Domain>(),
        Err(ReferenceError::InvalidDomain { .. })
    ));
}

#[test]
fn api_host_and_manifest_reference() {
    assert_eq!(reference("nginx").api_host(), "registry-1.docker.io");
    assert_eq!(
        reference("index.docker.io/nginx").api_host(),
        "registry-1.docker.io"
    );
    assert_eq!(reference("localhost:5000/x").api_host(), "localhost:5000");
    let selects = |r: &str| reference(r).manifest_reference().to_string();
    assert_eq!(selects("nginx"), "latest");
    assert_eq!(selects("nginx:1.25"), "1.25");
    // The digest wins for fetching; the tag is kept for display.
    let both = reference(concat!("nginx:1.25@sha256:", h256!()));
    assert_eq!(
        both.manifest_reference().to_string(),
        concat!("sha256:", h256!())
    );
    assert!(both.manifest_reference().digest().is_some());
    assert_eq!(both.tag().unwrap().as_str(), "1.25");
    // An OCI layout reference selects the same way.
    let layout = |r: &str| {
        r.parse::<acr_import_reference::OciLayoutReference>()
            .unwrap()
            .manifest_reference()
            .to_string()
    };
    assert_eq!(layout("oci:./out"), "latest");
    assert_eq!(layout("oci:./out:v1"), "v1");
    assert_eq!(
        layout(concat!("oci:./out:v1@sha256:", h256!())),
        concat!("sha256:", h256!())
    );
}

#[test]
fn normalization_reports_what_it_changed() {
    let n = reference("nginx").normalization();
    assert!(n.added_domain && n.added_library && n.added_latest_tag && !n.canonicalized_domain);
    let n = reference("docker.io/nats:2.1.8").normalization();
    assert!(!n.added_domain && n.added_library && !n.added_latest_tag);
    assert_eq!(n.reference.to_string(), "docker.io/library/nats:2.1.8");
    let n = reference("index.docker.io/library/nats").normalization();
    assert!(n.canonicalized_domain && !n.added_library && n.added_latest_tag);
    let n = reference("mcr.microsoft.com/dotnet/aspnet:8.0").normalization();
    assert!(!(n.added_domain || n.added_library || n.added_latest_tag || n.canonicalized_domain));
    let n = reference(concat!("bitnami/redis@sha256:", h256!())).normalization();
    assert!(n.added_domain && !n.added_library && !n.added_latest_tag);
}

#[test]
fn with_and_without() {
    let base = reference("nginx:1.25");
    let digest: Digest = concat!("sha256:", h256!()).parse().unwrap();
    let pinned = base.with_digest(digest.clone());
    assert_eq!(pinned.to_string(), concat!("nginx:1.25@sha256:", h256!()));
    assert_eq!(pinned.without_digest(), base);
    assert_eq!(
        base.with_tag("1.26".parse().unwrap()).to_string(),
        "nginx:1.26"
    );
    assert_eq!(
        pinned.to_repository_reference().to_string(),
        concat!("nginx:1.25@sha256:", h256!())
    );
    // Removing the digest of a bare 64-hex name would leave something that reads as an image
    // ID; the result names the same repository with its domain written.
    let hex_name = reference(concat!(h256!(), "@sha256:", h256!()));
    let stripped = hex_name.without_digest();
    assert_eq!(stripped.to_string(), concat!("docker.io/", h256!()));
    assert_eq!(
        stripped.to_string().parse::<Reference>(),
        Ok(stripped.clone())
    );
    assert_eq!(
        stripped.normalized(),
        hex_name
            .normalized()
            .without_digest()
            .with_tag(Tag::latest())
    );
}

#[test]
fn messages_say_what_to_do() {
    let cases = [
        (
            "MyApp",
            "repository name must be lowercase: `MyApp` at position 0; use `myapp`",
        ),
        (
            "https://myreg.azurecr.io/app:1",
            "image references take no URL scheme: `https://` at position 0; use `myreg.azurecr.io/app:1`",
        ),
        (
            "a..b",
            "path component `a..b` contains `..` at position 1; `..` is not a separator and there are no relative paths in repository names",
        ),
        (
            "nginx@sha384:00",
            "unsupported digest algorithm `sha384` at position 6; only `sha256` and `sha512` are supported",
        ),
        (
            concat!(
                "nginx@sha256:",
                "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
            ),
            concat!(
                "digest hex must be lowercase: `E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855` at position 13; use `",
                h256!(),
                "`"
            ),
        ),
        (
            "nginx@sha256:abc",
            "sha256 digest at position 13 has 3 hex digits; it must have exactly 64",
        ),
        (
            "localhost:5000/",
            "missing repository name at position 15; expected `[registry/]repository[:tag][@digest]`",
        ),
    ];
    for (input, message) in cases {
        assert_eq!(error(input).to_string(), message, "{input:?}");
    }
}
