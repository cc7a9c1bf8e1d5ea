//! A resolved source: what the user named, as the importer and the preflight see it.

use acr_import_auth::Secret;
use acr_import_reference::RepositoryReference;

use crate::arm::normalize_login_server;
use crate::model::Registry;
use crate::preflight::{PreflightSource, Unreadable};
use crate::{Cloud, RegistryResourceId};

/// The source as the user gave it.
#[derive(Debug, Clone, Default)]
pub struct SourceArgs {
    /// `--source`.
    pub source: String,
    /// `--registry`.
    pub registry: Option<String>,
    /// `--username`.
    pub username: Option<String>,
    /// `--password`.
    pub password: Option<Secret>,
}

/// Where the image comes from, resolved.
#[derive(Debug, Clone)]
pub enum ResolvedSource {
    /// An Azure registry named by (or resolved to) its resource ID.
    Azure {
        /// The resource ID, sent verbatim.
        id: RegistryResourceId,
        /// The registry, when it could be read.
        registry: Option<Box<Registry>>,
        /// Why it could not be read.
        unreadable: Option<Unreadable>,
        /// `repo:tag` or `repo@digest`.
        image: String,
        /// Whether its subscription is in another tenant than the target's.
        cross_tenant: bool,
    },
    /// Any registry by `host[:port]` (`registryUri`).
    External {
        /// `host[:port]`.
        host: String,
        /// `repo:tag` or `repo@digest`.
        image: String,
        /// Credentials (username optional).
        credentials: Option<(Option<String>, Secret)>,
        /// The host is an ACR login server no visible subscription holds.
        unknown_acr: bool,
        /// The Azure registry behind the host, when found (named by login server).
        registry: Option<Box<Registry>>,
    },
    /// A local OCI layout (client-side only).
    Layout {
        /// The `oci:PATH[:TAG]` reference.
        reference: String,
    },
}

impl ResolvedSource {
    /// `sourceImage`.
    pub fn image(&self) -> Option<&str> {
        match self {
            ResolvedSource::Azure { image, .. } | ResolvedSource::External { image, .. } => {
                Some(image)
            }
            ResolvedSource::Layout { .. } => None,
        }
    }

    /// The host a client-side copy pulls from.
    pub fn pull_host(&self) -> Option<String> {
        match self {
            ResolvedSource::Azure { registry, .. } => {
                registry.as_ref().map(|r| r.login_server().to_owned())
            }
            ResolvedSource::External { host, .. } => Some(host.clone()),
            ResolvedSource::Layout { .. } => None,
        }
    }

    /// `(repository, tag or digest, tag)` of the image.
    pub fn image_parts(&self) -> Option<(String, String, Option<String>)> {
        let image = self.image()?;
        let r: RepositoryReference = image.parse().ok()?;
        let reference = r
            .digest()
            .map(|d| d.to_string())
            .or_else(|| r.tag().map(|t| t.to_string()))
            .unwrap_or_else(|| "latest".to_owned());
        Some((
            r.repository().to_string(),
            reference,
            r.tag().map(|t| t.to_string()),
        ))
    }

    /// The preflight's view of this source.
    pub fn preflight(&self) -> PreflightSource {
        match self {
            ResolvedSource::Azure {
                id,
                registry: Some(r),
                cross_tenant,
                ..
            } => {
                let _ = id;
                PreflightSource::Azure {
                    registry: r.network(),
                    by_resource_id: true,
                    cross_tenant: *cross_tenant,
                }
            }
            ResolvedSource::Azure { id, unreadable, .. } => PreflightSource::Unreadable {
                id: id.to_string(),
                why: unreadable.unwrap_or(Unreadable::Forbidden),
            },
            ResolvedSource::External {
                registry: Some(r), ..
            } => PreflightSource::Azure {
                registry: r.network(),
                by_resource_id: false,
                cross_tenant: false,
            },
            ResolvedSource::External {
                host,
                unknown_acr: true,
                ..
            } => PreflightSource::UnknownAcr {
                login_server: host.clone(),
            },
            ResolvedSource::External { host, .. } => {
                PreflightSource::External { host: host.clone() }
            }
            ResolvedSource::Layout { .. } => PreflightSource::Local,
        }
    }
}

/// A resolved source with what the user should be told about it.
#[derive(Debug, Clone)]
pub struct SourceResolution {
    /// The source.
    pub source: ResolvedSource,
    /// Warnings (printed as `WARNING:`).
    pub warnings: Vec<String>,
    /// Notes (what was looked up, normalized, chosen).
    pub notes: Vec<String>,
}

/// Whether a host is worth an ARM lookup: an ACR login server of the cloud (or a regional
/// endpoint of one), or a loopback host (local emulators and mirrors).
pub fn is_acr_candidate(host: &str, cloud: &Cloud) -> bool {
    let h = normalize_login_server(host);
    let bare = h.rsplit_once(':').map_or(h.as_str(), |(a, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            a
        } else {
            h.as_str()
        }
    });
    bare.ends_with(&cloud.login_server_suffix) || acr_import_auth::is_loopback_host(bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates() {
        let cloud = Cloud::azure_cloud();
        assert!(is_acr_candidate("myreg.azurecr.io", &cloud));
        assert!(is_acr_candidate("myreg.westus.geo.azurecr.io", &cloud));
        assert!(is_acr_candidate("127.0.0.1:5000", &cloud));
        assert!(!is_acr_candidate("docker.io", &cloud));
        assert!(!is_acr_candidate("myreg.azurecr.cn", &cloud));
        assert!(is_acr_candidate(
            "myreg.azurecr.cn",
            &Cloud::azure_china_cloud()
        ));
    }
}
