//! Seeded content for the transfer tests, and checks on it. The seeding is
//! `acr_import_testsupport::seed` (a client of its own, not the one under test); these
//! wrappers take and give the transfer crate's types, seeding what [`Seeds`] names: the
//! plain-HTTP loopback registry a [`Registry`] handle addresses (without credentials), or a
//! registry personality (signed in as its publishers are).

use crate::Names;
use acr_import_reference::TagOrDigest;
use acr_import_testsupport::Personality;
use acr_import_testsupport::seed::{self, Seeder};
use acr_import_transfer::{Manifest, Registry};
use serde_json::Value;

pub use acr_import_testsupport::seed::{Blob, DOCKER_LAYER, OCI_LAYER};

/// An entry of an index: the manifest, its platform (`os/architecture[/variant]`), its
/// annotations.
pub type Child<'a> = (&'a Manifest, Option<&'a str>, Option<Value>);

/// Where seeded content goes.
pub trait Seeds {
    /// The seeding client.
    fn seeder(&self) -> anyhow::Result<Seeder>;
}

impl Seeds for Registry {
    fn seeder(&self) -> anyhow::Result<Seeder> {
        Seeder::new(self.host())
    }
}

impl Seeds for Personality {
    fn seeder(&self) -> anyhow::Result<Seeder> {
        Personality::seeder(self)
    }
}

/// The seed crate's form of `m`.
fn raw(m: &Manifest) -> seed::Manifest {
    seed::Manifest {
        bytes: m.bytes.clone(),
        digest: m.digest.to_string(),
        media_type: m.media_type.clone(),
    }
}

/// The transfer crate's form of `m`.
pub fn typed(m: seed::Manifest) -> anyhow::Result<Manifest> {
    Ok(Manifest {
        digest: m.digest.parse()?,
        bytes: m.bytes,
        media_type: m.media_type,
    })
}

/// [`seed::manifest_of`].
pub fn manifest_of(value: &Value, media_type: &str) -> anyhow::Result<Manifest> {
    typed(seed::manifest_of(value, media_type)?)
}

/// [`seed::push_blobs`].
pub async fn push_blobs(reg: &impl Seeds, repo: &str, blobs: &[&Blob]) -> anyhow::Result<()> {
    seed::push_blobs(&reg.seeder()?, repo, blobs).await
}

/// [`seed::push_manifest`].
pub async fn push_manifest(
    reg: &impl Seeds,
    repo: &str,
    reference: Option<&str>,
    m: &Manifest,
) -> anyhow::Result<()> {
    seed::push_manifest(&reg.seeder()?, repo, reference, &raw(m)).await
}

/// [`seed::image`].
pub async fn image(
    reg: &impl Seeds,
    repo: &str,
    os: &str,
    arch: &str,
    layers: &[&Blob],
    docker: bool,
) -> anyhow::Result<Manifest> {
    typed(seed::image(&reg.seeder()?, repo, os, arch, layers, docker).await?)
}

/// [`seed::index`].
pub async fn index(
    reg: &impl Seeds,
    repo: &str,
    tag: Option<&str>,
    children: &[Child<'_>],
    docker: bool,
) -> anyhow::Result<Manifest> {
    let raws: Vec<seed::Manifest> = children.iter().map(|(m, ..)| raw(m)).collect();
    let children: Vec<seed::Child<'_>> = raws
        .iter()
        .zip(children)
        .map(|(m, (_, platform, annotations))| (m, *platform, annotations.clone()))
        .collect();
    typed(seed::index(&reg.seeder()?, repo, tag, &children, docker).await?)
}

/// [`seed::multi_arch`].
pub async fn multi_arch(
    reg: &impl Seeds,
    repo: &str,
    tag: &str,
    n: u64,
) -> anyhow::Result<Manifest> {
    typed(seed::multi_arch(&reg.seeder()?, repo, tag, n).await?)
}

/// [`seed::artifact`].
pub async fn artifact(
    reg: &impl Seeds,
    repo: &str,
    artifact_type: &str,
    n: u64,
    subject: Option<&Manifest>,
) -> anyhow::Result<Manifest> {
    let subject = subject.map(raw);
    typed(seed::artifact(&reg.seeder()?, repo, artifact_type, n, subject.as_ref()).await?)
}

/// [`seed::attach`].
pub async fn attach(
    reg: &impl Seeds,
    repo: &str,
    subject: &Manifest,
    referrers: &[(&Manifest, &str)],
) -> anyhow::Result<Manifest> {
    let raws: Vec<seed::Manifest> = referrers.iter().map(|(m, _)| raw(m)).collect();
    let referrers: Vec<(&seed::Manifest, &str)> = raws
        .iter()
        .zip(referrers)
        .map(|(m, (_, t))| (m, *t))
        .collect();
    typed(seed::attach(&reg.seeder()?, repo, &raw(subject), &referrers).await?)
}

/// [`seed::helm_chart`].
pub async fn helm_chart(
    reg: &impl Seeds,
    repo: &str,
    tag: &str,
    name: &str,
) -> anyhow::Result<Manifest> {
    typed(seed::helm_chart(&reg.seeder()?, repo, tag, name).await?)
}

/// Every manifest and blob reachable from `reference` in `repo`, compared byte for byte
/// between two registries, following referrers too when `referrers` is set.
pub async fn assert_same(
    src: &Registry,
    src_repo: &str,
    dst: &Registry,
    dst_repo: &str,
    reference: &str,
    referrers: bool,
) -> usize {
    let (src_repo, dst_repo) = (src_repo.repo(), dst_repo.repo());
    let mut todo: Vec<TagOrDigest> = vec![reference.at()];
    let mut seen = std::collections::HashSet::new();
    let mut blobs = 0;
    while let Some(r) = todo.pop() {
        if !seen.insert(r.clone()) {
            continue;
        }
        let a = src.get_manifest(&src_repo, &r).await.unwrap();
        let b = dst
            .get_manifest(&dst_repo, &r)
            .await
            .unwrap_or_else(|e| panic!("target lacks {r}: {e}"));
        assert_eq!(a, b, "manifest {r}: bytes, media type and digest");
        let content = a.parse().unwrap();
        for c in &content.manifests {
            todo.push(c.digest.clone().into());
        }
        for l in content.config.iter().chain(content.layers.iter()) {
            if l.is_foreign() {
                continue;
            }
            assert_eq!(
                dst.head_blob(&dst_repo, &l.digest).await.unwrap(),
                Some(l.size),
                "blob {}",
                l.digest
            );
            blobs += 1;
        }
        if referrers {
            for d in src
                .referrers(&src_repo, &a.digest, None)
                .await
                .unwrap()
                .descriptors
            {
                let found = dst.referrers(&dst_repo, &a.digest, None).await.unwrap();
                assert!(
                    found.descriptors.iter().any(|x| x.digest == d.digest),
                    "referrer {} of {} is on the target",
                    d.digest,
                    a.digest
                );
                todo.push(d.digest.into());
            }
        }
    }
    blobs
}

/// `skopeo inspect --raw` of a reference on a plain-http loopback registry (a test without
/// skopeo fails, saying so in one line).
pub fn skopeo_raw(host: &str, repo: &str, reference: &str) -> Vec<u8> {
    let sep = if reference.contains(':') { "@" } else { ":" };
    acr_import_testsupport::run_tool(
        &acr_import_testsupport::skopeo(),
        [
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/{repo}{sep}{reference}"),
        ],
    )
}
