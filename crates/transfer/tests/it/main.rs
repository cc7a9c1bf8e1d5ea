//! Transport tests against real distribution registries (see `acr-import-testsupport`).

mod auth;
mod badinput;
mod copy;
mod faults;
mod fixtures;
mod ops;
mod properties;
mod registries;
mod signatures;
mod soak;
mod tls;

use std::sync::Arc;

use acr_import_auth::{Credential, Secret, StaticCredentials};
use acr_import_reference::{Digest, DigestAlgorithm, Repository, TagOrDigest};
use acr_import_transfer::{
    Endpoint, Manifest, Registry, RetryPolicy, Source, Target, Transport, digest_of, manifest,
};
use bytes::Bytes;

/// A transport with fast retries and the given credentials.
pub fn transport_with(creds: StaticCredentials) -> Transport {
    build_transport(creds, 3)
}

/// A transport without credentials that retries `max_retries` times.
pub fn transport_with_retries(max_retries: u32) -> Transport {
    build_transport(StaticCredentials::new(), max_retries)
}

fn build_transport(creds: StaticCredentials, max_retries: u32) -> Transport {
    Transport::builder()
        .credentials(Arc::new(creds))
        .retry(RetryPolicy {
            max_retries,
            base_delay: std::time::Duration::from_millis(20),
            max_delay: std::time::Duration::from_secs(3),
        })
        .proxy_from_env(false)
        .build()
        .expect("transport")
}

/// A transport without credentials.
pub fn transport() -> Transport {
    transport_with(StaticCredentials::new())
}

/// Basic credentials.
pub fn basic(user: &str, password: &str) -> Credential {
    Credential::Basic {
        username: user.to_owned(),
        password: Secret::new(password),
    }
}

pub use acr_import_testsupport::seed::data;

/// Shorthands for the typed names the registry API takes, from a test's literals:
/// `reg.get_manifest(&"team/app".repo(), &"v1".at())`. A name that does not parse is a
/// mistake in the test: it panics, naming the text.
pub trait Names {
    /// The text as a repository path.
    fn repo(&self) -> Repository;
    /// The text as a tag, or a digest when it has an `algorithm:`.
    fn at(&self) -> TagOrDigest;
}

impl Names for str {
    fn repo(&self) -> Repository {
        self.parse()
            .unwrap_or_else(|e| panic!("`{self}` is not a repository: {e}"))
    }

    fn at(&self) -> TagOrDigest {
        self.parse()
            .unwrap_or_else(|e| panic!("`{self}` is neither a tag nor a digest: {e}"))
    }
}

/// A copy's source: `repo` of `reg` at `reference` (a tag, or a digest).
pub fn source(reg: &Registry, repo: &str, reference: &str) -> Source {
    Source {
        endpoint: Endpoint::registry(reg.clone(), repo.repo()),
        reference: reference.at(),
    }
}

/// A copy's target: `repo` of `reg`, under `tag` (`None`: an untagged copy).
pub fn target(reg: &Registry, repo: &str, tag: Option<&str>) -> Target {
    Target {
        endpoint: Endpoint::registry(reg.clone(), repo.repo()),
        tag: tag.map(|t| t.parse().unwrap()),
    }
}

/// The sha256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    digest_of(DigestAlgorithm::Sha256, bytes)
}

/// Pushes a one-layer OCI image and returns its manifest.
pub async fn push_image(
    reg: &Registry,
    repo: &str,
    tag: &str,
    seed: u64,
    layer_len: usize,
) -> Manifest {
    let config = Bytes::from(format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"seed":{seed}}}"#
    ));
    let layer = data(seed, layer_len);
    let (cd, ld) = (sha256(&config), sha256(&layer));
    reg.push_blob(&repo.repo(), &cd, config.clone(), u64::MAX)
        .await
        .expect("push config");
    reg.push_blob(&repo.repo(), &ld, layer.clone(), u64::MAX)
        .await
        .expect("push layer");
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{ld}","size":{}}}]}}"#,
        manifest::OCI_MANIFEST,
        config.len(),
        layer.len()
    );
    let m = Manifest {
        digest: sha256(body.as_bytes()),
        bytes: Bytes::from(body),
        media_type: manifest::OCI_MANIFEST.to_owned(),
    };
    reg.put_manifest(&repo.repo(), &tag.at(), &m)
        .await
        .expect("push manifest");
    m
}
