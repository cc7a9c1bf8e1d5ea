//! Docker Hub's host rules, in one place for every crate: the names that mean Docker Hub, the
//! domain references and credentials name it by, and the host that serves its registry API.
//!
//! ```
//! use acr_import_reference::docker_hub;
//!
//! assert!(docker_hub::is_docker_hub("Index.Docker.IO"));
//! assert!(!docker_hub::is_docker_hub("docker.io:443"));
//! assert_eq!(docker_hub::api_host("docker.io"), "registry-1.docker.io");
//! assert_eq!(docker_hub::api_host("ghcr.io"), "ghcr.io");
//! assert_eq!(docker_hub::canonical("registry-1.docker.io"), "docker.io");
//! ```

/// The domain references and credential stores name Docker Hub by.
pub const DOMAIN: &str = "docker.io";

/// The host that serves Docker Hub's registry API (where `docker.io` is sent).
pub const API_HOST: &str = "registry-1.docker.io";

/// Every name that means Docker Hub; normalization rewrites each to [`DOMAIN`].
pub const NAMES: [&str; 4] = [
    DOMAIN,
    "index.docker.io",
    API_HOST,
    "registry.hub.docker.com",
];

/// Whether `host` (`host[:port]` as written) is one of Docker Hub's [`NAMES`], compared without
/// regard to case, as host names are. A name with a port is not Docker Hub.
pub fn is_docker_hub(host: &str) -> bool {
    NAMES.iter().any(|name| host.eq_ignore_ascii_case(name))
}

/// The host to connect to for `host`: [`API_HOST`] for Docker Hub, `host` itself otherwise.
pub fn api_host(host: &str) -> &str {
    if is_docker_hub(host) { API_HOST } else { host }
}

/// The name to key `host` by: [`DOMAIN`] for Docker Hub, `host` itself otherwise.
pub fn canonical(host: &str) -> &str {
    if is_docker_hub(host) { DOMAIN } else { host }
}
