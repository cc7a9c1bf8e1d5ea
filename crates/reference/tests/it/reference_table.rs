//! The registry reference grammar as a table: one named case a line.
//!
//! Cases come from distribution's grammar and tests and from real references (Docker Hub
//! official images, MCR, ACR, GHCR, quay.io, ECR, local registries).

use acr_import_reference::{Reference, ReferenceError};

use crate::{h256, h256_upper, h512};

/// Checks a valid reference: its parts as written (`""` = absent), its normalized form and its
/// familiar form, and that it prints back as written.
fn check_valid(
    input: &str,
    domain: &str,
    repository: &str,
    tag: &str,
    digest: &str,
    normalized: &str,
    familiar: &str,
) {
    let reference: Reference = match input.parse() {
        Ok(reference) => reference,
        Err(err) => panic!("{input:?} should parse, got {err:?}: {err}"),
    };
    let or_empty = |s: Option<&str>| s.unwrap_or("").to_owned();
    assert_eq!(
        or_empty(reference.domain().map(|d| d.as_str())),
        domain,
        "domain of {input:?}"
    );
    assert_eq!(
        reference.repository().as_str(),
        repository,
        "repository of {input:?}"
    );
    assert_eq!(
        or_empty(reference.tag().map(|t| t.as_str())),
        tag,
        "tag of {input:?}"
    );
    assert_eq!(
        or_empty(reference.digest().map(|d| d.as_str())),
        digest,
        "digest of {input:?}"
    );
    assert_eq!(reference.to_string(), input, "display of {input:?}");
    assert_eq!(
        reference.normalized().to_string(),
        normalized,
        "normalized {input:?}"
    );
    assert_eq!(reference.familiar(), familiar, "familiar {input:?}");
}

macro_rules! valid {
    ($($name:ident: $input:expr => $domain:expr, $repo:expr, $tag:expr, $digest:expr, $normalized:expr, $familiar:expr;)*) => {
        $(
            #[test]
            fn $name() {
                check_valid($input, $domain, $repo, $tag, $digest, $normalized, $familiar);
            }
        )*
    };
}

macro_rules! invalid {
    ($($name:ident: $input:expr => $expected:pat,)*) => {
        $(
            #[test]
            fn $name() {
                let input: &str = $input;
                match input.parse::<Reference>() {
                    Err($expected) => {}
                    Err(other) => panic!("{input:?}: expected {}, got {other:?}: {other}", stringify!($expected)),
                    Ok(reference) => panic!("{input:?}: expected {}, but it parsed as {reference:?}", stringify!($expected)),
                }
            }
        )*
    };
}

mod valid {
    use super::*;

    valid! {
        official_image: "nginx" => "", "nginx", "", "", "docker.io/library/nginx:latest", "nginx";
        official_image_tag: "nginx:1.25" => "", "nginx", "1.25", "", "docker.io/library/nginx:1.25", "nginx:1.25";
        official_image_latest: "nginx:latest" => "", "nginx", "latest", "", "docker.io/library/nginx:latest", "nginx:latest";
        official_with_library: "library/nginx" => "", "library/nginx", "", "", "docker.io/library/nginx:latest", "nginx";
        docker_io_single: "docker.io/nginx" => "docker.io", "nginx", "", "", "docker.io/library/nginx:latest", "nginx";
        docker_io_full: "docker.io/library/nginx:1.25-alpine" => "docker.io", "library/nginx", "1.25-alpine", "", "docker.io/library/nginx:1.25-alpine", "nginx:1.25-alpine";
        docker_io_hello_world: "docker.io/library/hello-world:latest" => "docker.io", "library/hello-world", "latest", "", "docker.io/library/hello-world:latest", "hello-world:latest";
        index_docker_io: "index.docker.io/library/ubuntu:22.04" => "index.docker.io", "library/ubuntu", "22.04", "", "docker.io/library/ubuntu:22.04", "ubuntu:22.04";
        index_docker_io_single: "index.docker.io/alpine" => "index.docker.io", "alpine", "", "", "docker.io/library/alpine:latest", "alpine";
        registry_1_docker_io: "registry-1.docker.io/bitnami/redis:7.2" => "registry-1.docker.io", "bitnami/redis", "7.2", "", "docker.io/bitnami/redis:7.2", "bitnami/redis:7.2";
        registry_hub_docker_com: "registry.hub.docker.com/library/alpine" => "registry.hub.docker.com", "library/alpine", "", "", "docker.io/library/alpine:latest", "alpine";
        hub_user_repo: "bitnami/redis" => "", "bitnami/redis", "", "", "docker.io/bitnami/redis:latest", "bitnami/redis";
        hub_user_repo_tag: "user/app:v2" => "", "user/app", "v2", "", "docker.io/user/app:v2", "user/app:v2";
        hub_three_components: "library/foo/bar" => "", "library/foo/bar", "", "", "docker.io/library/foo/bar:latest", "library/foo/bar";
        official_digest: concat!("ubuntu@sha256:", h256!()) => "", "ubuntu", "", concat!("sha256:", h256!()), concat!("docker.io/library/ubuntu@sha256:", h256!()), concat!("ubuntu@sha256:", h256!());
        official_tag_and_digest: concat!("ubuntu:22.04@sha256:", h256!()) => "", "ubuntu", "22.04", concat!("sha256:", h256!()), concat!("docker.io/library/ubuntu:22.04@sha256:", h256!()), concat!("ubuntu:22.04@sha256:", h256!());
        sha512_digest: concat!("app@sha512:", h512!()) => "", "app", "", concat!("sha512:", h512!()), concat!("docker.io/library/app@sha512:", h512!()), concat!("app@sha512:", h512!());
        mcr_aspnet: "mcr.microsoft.com/dotnet/aspnet:8.0" => "mcr.microsoft.com", "dotnet/aspnet", "8.0", "", "mcr.microsoft.com/dotnet/aspnet:8.0", "mcr.microsoft.com/dotnet/aspnet:8.0";
        mcr_servercore: "mcr.microsoft.com/windows/servercore:ltsc2022" => "mcr.microsoft.com", "windows/servercore", "ltsc2022", "", "mcr.microsoft.com/windows/servercore:ltsc2022", "mcr.microsoft.com/windows/servercore:ltsc2022";
        mcr_no_tag: "mcr.microsoft.com/azuredocs/aci-helloworld" => "mcr.microsoft.com", "azuredocs/aci-helloworld", "", "", "mcr.microsoft.com/azuredocs/aci-helloworld:latest", "mcr.microsoft.com/azuredocs/aci-helloworld";
        mcr_deep_tag_digest: concat!("mcr.microsoft.com/oss/kubernetes/pause:3.6@sha256:", h256!()) => "mcr.microsoft.com", "oss/kubernetes/pause", "3.6", concat!("sha256:", h256!()), concat!("mcr.microsoft.com/oss/kubernetes/pause:3.6@sha256:", h256!()), concat!("mcr.microsoft.com/oss/kubernetes/pause:3.6@sha256:", h256!());
        acr_digest: concat!("myregistry.azurecr.io/samples/app@sha256:", h256!()) => "myregistry.azurecr.io", "samples/app", "", concat!("sha256:", h256!()), concat!("myregistry.azurecr.io/samples/app@sha256:", h256!()), concat!("myregistry.azurecr.io/samples/app@sha256:", h256!());
        acr_tag_digest: concat!("myregistry.azurecr.io/samples/app:v1@sha256:", h256!()) => "myregistry.azurecr.io", "samples/app", "v1", concat!("sha256:", h256!()), concat!("myregistry.azurecr.io/samples/app:v1@sha256:", h256!()), concat!("myregistry.azurecr.io/samples/app:v1@sha256:", h256!());
        acr_geo_endpoint: "sourceregistry.eastus.geo.azurecr.io/repo:tag" => "sourceregistry.eastus.geo.azurecr.io", "repo", "tag", "", "sourceregistry.eastus.geo.azurecr.io/repo:tag", "sourceregistry.eastus.geo.azurecr.io/repo:tag";
        ghcr: "ghcr.io/oras-project/oras:v1.2.0" => "ghcr.io", "oras-project/oras", "v1.2.0", "", "ghcr.io/oras-project/oras:v1.2.0", "ghcr.io/oras-project/oras:v1.2.0";
        ghcr_deep: "ghcr.io/a/b/c/d/e:tag" => "ghcr.io", "a/b/c/d/e", "tag", "", "ghcr.io/a/b/c/d/e:tag", "ghcr.io/a/b/c/d/e:tag";
        quay: "quay.io/prometheus/node-exporter:v1.8.0" => "quay.io", "prometheus/node-exporter", "v1.8.0", "", "quay.io/prometheus/node-exporter:v1.8.0", "quay.io/prometheus/node-exporter:v1.8.0";
        quay_sha512: concat!("quay.io/coreos/etcd@sha512:", h512!()) => "quay.io", "coreos/etcd", "", concat!("sha512:", h512!()), concat!("quay.io/coreos/etcd@sha512:", h512!()), concat!("quay.io/coreos/etcd@sha512:", h512!());
        ecr_public: "public.ecr.aws/lambda/python:3.12" => "public.ecr.aws", "lambda/python", "3.12", "", "public.ecr.aws/lambda/python:3.12", "public.ecr.aws/lambda/python:3.12";
        gcr_distroless: "gcr.io/distroless/static-debian12:nonroot" => "gcr.io", "distroless/static-debian12", "nonroot", "", "gcr.io/distroless/static-debian12:nonroot", "gcr.io/distroless/static-debian12:nonroot";
        k8s_registry: "registry.k8s.io/pause:3.9" => "registry.k8s.io", "pause", "3.9", "", "registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9";
        localhost_domain: "localhost/app" => "localhost", "app", "", "", "localhost/app:latest", "localhost/app";
        localhost_port: "localhost:5000/x" => "localhost:5000", "x", "", "", "localhost:5000/x:latest", "localhost:5000/x";
        localhost_port_tag: "localhost:5000/x:dev" => "localhost:5000", "x", "dev", "", "localhost:5000/x:dev", "localhost:5000/x:dev";
        localhost_alone_is_a_repo: "localhost" => "", "localhost", "", "", "docker.io/library/localhost:latest", "localhost";
        localhost_port_alone_is_a_tag: "localhost:5000" => "", "localhost", "5000", "", "docker.io/library/localhost:5000", "localhost:5000";
        ipv6_loopback_port: "[::1]:5000/x" => "[::1]:5000", "x", "", "", "[::1]:5000/x:latest", "[::1]:5000/x";
        ipv6_no_port: "[2001:db8::1]/x" => "[2001:db8::1]", "x", "", "", "[2001:db8::1]/x:latest", "[2001:db8::1]/x";
        ipv6_tag: "[::1]/x:tag" => "[::1]", "x", "tag", "", "[::1]/x:tag", "[::1]/x:tag";
        ipv4_port: "192.168.1.10:5000/team/app:1.0" => "192.168.1.10:5000", "team/app", "1.0", "", "192.168.1.10:5000/team/app:1.0", "192.168.1.10:5000/team/app:1.0";
        ipv4: "10.0.0.1/app" => "10.0.0.1", "app", "", "", "10.0.0.1/app:latest", "10.0.0.1/app";
        single_label_with_port: "myhost:443/app:v2" => "myhost:443", "app", "v2", "", "myhost:443/app:v2", "myhost:443/app:v2";
        max_port: "example.com:65535/app" => "example.com:65535", "app", "", "", "example.com:65535/app:latest", "example.com:65535/app";
        hyphenated_host: "my-registry.example.com/app" => "my-registry.example.com", "app", "", "", "my-registry.example.com/app:latest", "my-registry.example.com/app";
        dotted_alone_is_a_repo: "example.com" => "", "example.com", "", "", "docker.io/library/example.com:latest", "example.com";
        dotted_alone_with_tag: "foo.bar:baz" => "", "foo.bar", "baz", "", "docker.io/library/foo.bar:baz", "foo.bar:baz";
        uppercase_first_is_domain: "MyRegistry/app" => "MyRegistry", "app", "", "", "MyRegistry/app:latest", "MyRegistry/app";
        uppercase_dotted_domain: "Registry.Example.COM/app:1" => "Registry.Example.COM", "app", "1", "", "Registry.Example.COM/app:1", "Registry.Example.COM/app:1";
        uppercase_docker_hub_alias: "Docker.IO/nginx" => "Docker.IO", "nginx", "", "", "docker.io/library/nginx:latest", "nginx";
        three_label_domain: "x.y.z/a" => "x.y.z", "a", "", "", "x.y.z/a:latest", "x.y.z/a";
        single_chars: "a/b" => "", "a/b", "", "", "docker.io/a/b:latest", "a/b";
        single_char: "a" => "", "a", "", "", "docker.io/library/a:latest", "a";
        digits_only: "0/1:2" => "", "0/1", "2", "", "docker.io/0/1:2", "0/1:2";
        every_separator: "a_b/c__d/e-f/g--h/i.j" => "", "a_b/c__d/e-f/g--h/i.j", "", "", "docker.io/a_b/c__d/e-f/g--h/i.j:latest", "a_b/c__d/e-f/g--h/i.j";
        long_dash_run: "foo-----bar" => "", "foo-----bar", "", "", "docker.io/library/foo-----bar:latest", "foo-----bar";
        tag_uppercase: "app:V1.0_RC" => "", "app", "V1.0_RC", "", "docker.io/library/app:V1.0_RC", "app:V1.0_RC";
        tag_leading_underscore: "app:_private" => "", "app", "_private", "", "docker.io/library/app:_private", "app:_private";
        tag_digits: "app:2024" => "", "app", "2024", "", "docker.io/library/app:2024", "app:2024";
        tag_semver_pre: "registry.example.com/ns/app_name:v1.0.0-rc.1" => "registry.example.com", "ns/app_name", "v1.0.0-rc.1", "", "registry.example.com/ns/app_name:v1.0.0-rc.1", "registry.example.com/ns/app_name:v1.0.0-rc.1";
        familiar_keeps_dotted_namespace: "docker.io/my.org/app" => "docker.io", "my.org/app", "", "", "docker.io/my.org/app:latest", "docker.io/my.org/app";
        familiar_keeps_localhost_namespace: "docker.io/localhost/app" => "docker.io", "localhost/app", "", "", "docker.io/localhost/app:latest", "docker.io/localhost/app";
        familiar_keeps_nested_library: "docker.io/library/foo.bar/x" => "docker.io", "library/foo.bar/x", "", "", "docker.io/library/foo.bar/x:latest", "library/foo.bar/x";
        hex_name_with_tag: concat!(h256!(), ":v1") => "", h256!(), "v1", "", concat!("docker.io/library/", h256!(), ":v1"), concat!(h256!(), ":v1");
        hex_name_in_library: concat!("library/", h256!()) => "", concat!("library/", h256!()), "", "", concat!("docker.io/library/", h256!(), ":latest"), concat!("library/", h256!());
    }
}

mod invalid {
    use super::*;
    use ReferenceError as E;

    invalid! {
        empty: "" => E::Empty,
        https_scheme: "https://myreg.azurecr.io/app" => E::UrlScheme { .. },
        docker_scheme: "docker://nginx" => E::UrlScheme { .. },
        http_scheme_with_port: "http://localhost:5000/x" => E::UrlScheme { .. },
        only_tag: ":tag" => E::MissingRepository { position: 0 },
        only_digest: concat!("@sha256:", h256!()) => E::MissingRepository { position: 0 },
        domain_with_port_no_repo: "localhost:5000/" => E::MissingRepository { position: 15 },
        domain_no_repo: "myreg.azurecr.io/" => E::MissingRepository { position: 17 },
        domain_no_repo_with_tag: "myreg.azurecr.io/:v1" => E::MissingRepository { position: 17 },
        double_slash: "a//b" => E::EmptyComponent { position: 2, .. },
        leading_slash: "/a" => E::EmptyComponent { position: 0, .. },
        trailing_slash: "a/" => E::EmptyComponent { position: 2, .. },
        domain_then_double_slash: "localhost//x" => E::EmptyComponent { position: 10, .. },
        leading_dash: "-app" => E::LeadingSeparator { position: 0, .. },
        leading_underscore: "org/_app" => E::LeadingSeparator { position: 4, .. },
        leading_dot: ".app" => E::LeadingSeparator { position: 0, .. },
        trailing_dash: "app-" => E::TrailingSeparator { position: 3, .. },
        trailing_underscore: "org/app_" => E::TrailingSeparator { position: 7, .. },
        double_dot: "a..b" => E::DoubleDot { position: 1, .. },
        dot_dot_component: "org/../etc" => E::DoubleDot { position: 4, .. },
        triple_underscore: "a___b" => E::InvalidSeparator { position: 1, .. },
        dot_underscore: "a._b" => E::InvalidSeparator { position: 1, .. },
        dash_dot: "a-.b" => E::InvalidSeparator { position: 1, .. },
        space: "my app" => E::InvalidRepositoryCharacter { position: 2, character: ' ', .. },
        leading_space: " nginx" => E::InvalidRepositoryCharacter { position: 0, character: ' ', .. },
        trailing_newline: "nginx\n" => E::InvalidRepositoryCharacter { position: 5, character: '\n', .. },
        non_ascii: "café" => E::InvalidRepositoryCharacter { position: 3, character: 'é', .. },
        colon_in_path: "a/b:c/d" => E::InvalidRepositoryCharacter { position: 3, character: ':', .. },
        two_tags: "nginx:1.0:2.0" => E::InvalidRepositoryCharacter { position: 5, character: ':', .. },
        ipv6_without_path: "[::1]:5000" => E::InvalidRepositoryCharacter { position: 0, character: '[', .. },
        uppercase_and_bang: "My!App" => E::InvalidRepositoryCharacter { position: 2, character: '!', .. },
        uppercase: "MyApp" => E::Uppercase { position: 0, .. },
        uppercase_after_domain: "myreg.azurecr.io/MyApp:1" => E::Uppercase { position: 17, .. },
        uppercase_after_uppercase_domain: "MyOrg/MyApp" => E::Uppercase { position: 6, .. },
        uppercase_library: "docker.io/Library/Nginx" => E::Uppercase { position: 10, .. },
        image_id: h256!() => E::LooksLikeImageId { .. },
        empty_tag: "nginx:" => E::EmptyTag { position: 6 },
        tag_leading_dash: "nginx:-1" => E::InvalidTag { position: 6, character: '-', .. },
        tag_leading_dot: "nginx:.hidden" => E::InvalidTag { position: 6, character: '.', .. },
        tag_plus: "nginx:1.0+build" => E::InvalidTag { position: 9, character: '+', .. },
        tag_non_ascii: "nginx:vé" => E::InvalidTag { position: 7, character: 'é', .. },
        port_word: "nginx:tag/x" => E::InvalidPort { position: 6, .. },
        port_zero: "localhost:0/x" => E::InvalidPort { position: 10, .. },
        port_too_big: "localhost:65536/x" => E::InvalidPort { position: 10, .. },
        port_empty: "localhost:/x" => E::InvalidPort { position: 10, .. },
        ipv6_port_word: "[::1]:http/x" => E::InvalidPort { position: 6, .. },
        domain_underscore: "my_registry.com/x" => E::InvalidDomain { position: 0, .. },
        domain_leading_hyphen: "-bad.example.com/x" => E::InvalidDomain { .. },
        domain_trailing_hyphen: "bad-.example.com/x" => E::InvalidDomain { .. },
        domain_empty_label: "example..com/x" => E::InvalidDomain { .. },
        ipv6_unclosed: "[::1/x" => E::InvalidDomain { .. },
        ipv6_not_hex: "[::g]/x" => E::InvalidDomain { .. },
        ipv6_junk_after: "[::1]x/y" => E::InvalidDomain { .. },
        ipv6_too_short: "[1:2]/x" => E::InvalidDomain { .. },
        ipv6_zone: "[fe80::1%eth0]/x" => E::InvalidDomain { .. },
        empty_digest: "nginx@" => E::EmptyDigest { position: 6 },
        digest_no_colon: "nginx@sha256" => E::MalformedDigest { position: 6, .. },
        digest_bad_algorithm_syntax: concat!("nginx@1sha:", h256!()) => E::MalformedDigest { position: 6, .. },
        at_in_name: "user@host/app" => E::MalformedDigest { position: 5, .. },
        digest_short: "nginx@sha256:abc" => E::DigestLength { position: 13, expected: 64, found: 3, .. },
        digest_sha512_with_sha256_length: concat!("nginx@sha512:", h256!()) => E::DigestLength { expected: 128, found: 64, .. },
        digest_empty_hex: "nginx@sha256:" => E::DigestLength { found: 0, .. },
        digest_uppercase: concat!("nginx@sha256:", h256_upper!()) => E::DigestUppercase { position: 13, .. },
        digest_not_hex: "nginx@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g" => E::InvalidDigestCharacter { position: 76, character: 'g' },
        digest_twice: concat!("nginx@sha256:", h256!(), "@sha256:", h256!()) => E::InvalidDigestCharacter { position: 77, character: '@' },
        digest_sha384: "nginx@sha384:38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b" => E::UnsupportedDigestAlgorithm { position: 6, .. },
        digest_md5: "nginx@md5:d41d8cd98f00b204e9800998ecf8427e" => E::UnsupportedDigestAlgorithm { .. },
        digest_blake3: concat!("nginx@blake3:", h256!()) => E::UnsupportedDigestAlgorithm { .. },
        digest_uppercase_algorithm: concat!("nginx@SHA256:", h256!()) => E::UnsupportedDigestAlgorithm { .. },
    }
}
