//! Registry domains: `host[:port]`.

use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::docker_hub;
use crate::error::ReferenceError;

/// A validated registry domain: a hostname, IPv4 address or bracketed IPv6 address, optionally
/// followed by `:port`, such as `mcr.microsoft.com`, `localhost:5000` or `[::1]:5000`.
///
/// A `Domain` is always something that is read as a domain when written in front of a
/// repository (see [`Reference`](crate::Reference) for the rule): `myregistry` alone is not a
/// `Domain`, because `myregistry/app` means the Docker Hub repository `myregistry/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Docker Hub, `docker.io`.
    pub fn docker_hub() -> Self {
        Domain(docker_hub::DOMAIN.to_owned())
    }

    /// The domain as written, with its port if it has one.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host without the port; an IPv6 address keeps its brackets.
    pub fn host(&self) -> &str {
        match self.port_start() {
            Some(colon) => &self.0[..colon],
            None => &self.0,
        }
    }

    /// The port, if one is written.
    pub fn port(&self) -> Option<u16> {
        // Validation guarantees the digits fit; `ok()` keeps this total anyway.
        self.port_start()
            .and_then(|colon| self.0[colon + 1..].parse().ok())
    }

    /// Whether this is one of Docker Hub's names: `docker.io`, `index.docker.io`,
    /// `registry-1.docker.io` or `registry.hub.docker.com` (compared without regard to case, as
    /// host names are).
    pub fn is_docker_hub(&self) -> bool {
        docker_hub::is_docker_hub(&self.0)
    }

    /// The `host[:port]` that serves the registry API: `registry-1.docker.io` for Docker Hub,
    /// the domain itself for every other registry.
    pub fn api_host(&self) -> &str {
        docker_hub::api_host(&self.0)
    }

    /// The byte offset of the `:` before the port, if there is a port.
    fn port_start(&self) -> Option<usize> {
        let after_host = if self.0.starts_with('[') {
            self.0.find(']')?
        } else {
            0
        };
        self.0[after_host..].find(':').map(|i| after_host + i)
    }

    /// Parses a domain that starts at byte `base` of a larger input. The caller has already
    /// decided the text is in the domain position.
    pub(crate) fn parse_at(text: &str, base: usize) -> Result<Self, ReferenceError> {
        let invalid = || ReferenceError::InvalidDomain {
            position: base,
            domain: text.to_owned(),
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let close = rest.find(']').ok_or_else(invalid)?;
            // Distribution's grammar only asks for hex digits and colons between the brackets;
            // asking for a real IPv6 address as well rejects nothing a client could reach.
            let inside = &rest[..close];
            if !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
                || inside.parse::<Ipv6Addr>().is_err()
            {
                return Err(invalid());
            }
            let after = &rest[close + 1..];
            match after.strip_prefix(':') {
                Some(port) => (&text[..close + 2], Some(port)),
                None if after.is_empty() => (text, None),
                None => return Err(invalid()),
            }
        } else {
            let (host, port) = match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            };
            if !is_domain_name(host) {
                return Err(invalid());
            }
            (host, port)
        };
        if let Some(port) = port {
            let valid = !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
            if !valid {
                return Err(ReferenceError::InvalidPort {
                    position: base + host.len() + 1,
                    port: port.to_owned(),
                });
            }
        }
        Ok(Domain(text.to_owned()))
    }
}

/// Docker's rule (distribution's `splitDockerDomain`, 2.8 and later) for whether the first
/// `/`-separated component of a name is a registry domain: it contains `.` or `:`, is
/// `localhost`, or contains an uppercase letter (repository paths are lowercase, so an
/// uppercase first component can only be a host).
pub(crate) fn looks_like_domain(first_component: &str) -> bool {
    first_component.contains(['.', ':'])
        || first_component == "localhost"
        || first_component.bytes().any(|b| b.is_ascii_uppercase())
}

/// `domain-name := domain-component ['.' domain-component]*` with
/// `domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`. IPv4 addresses are
/// domain names by this grammar.
fn is_domain_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl FromStr for Domain {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ReferenceError::InvalidDomain {
                position: 0,
                domain: String::new(),
            });
        }
        let domain = Domain::parse_at(s, 0)?;
        if !looks_like_domain(s) {
            return Err(ReferenceError::NotADomain { text: s.to_owned() });
        }
        Ok(domain)
    }
}

text_type!(Domain, 0);
