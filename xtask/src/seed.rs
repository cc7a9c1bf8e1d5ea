//! Generated content for the demo: a 3-platform image, a Helm chart, a signed artifact, made
//! with the shared seeding helpers of the test support crate.

use acr_import_testsupport::seed::{self, Blob, Child, Manifest, Seeder};

/// A 3-platform OCI index (`linux/amd64`, `linux/arm64`, `linux/arm/v7`) sharing a base layer.
pub async fn multi_arch(reg: &Seeder, repo: &str, tag: &str) -> anyhow::Result<Manifest> {
    let base = Blob::layer(1, 2 << 20);
    let platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7"];
    let mut images = Vec::new();
    for (i, platform) in platforms.iter().enumerate() {
        let own = Blob::layer(10 + i as u64, 512 << 10);
        let mut parts = platform.split('/');
        let (os, arch) = (parts.next().unwrap_or("linux"), parts.next().unwrap_or(""));
        images.push(seed::image(reg, repo, os, arch, &[&base, &own], false).await?);
    }
    let children: Vec<Child<'_>> = images
        .iter()
        .zip(platforms)
        .map(|(m, p)| (m, Some(p), None))
        .collect();
    seed::index(reg, repo, Some(tag), &children, false).await
}

/// A Helm 3 chart as `helm push` stores it.
pub async fn helm_chart(reg: &Seeder, repo: &str, tag: &str) -> anyhow::Result<Manifest> {
    seed::helm_chart(reg, repo, tag, "hello").await
}

/// A signature artifact attached to `subject` (through the referrers tag schema, which is
/// what a registry without the referrers API uses).
pub async fn sign(reg: &Seeder, repo: &str, subject: &Manifest) -> anyhow::Result<Manifest> {
    let artifact_type = "application/vnd.dev.cosign.artifact.sig.v1+json";
    let payload = Blob {
        bytes: seed::data(30, 700),
        media_type: "application/vnd.dev.cosign.simplesigning.v1+json",
    };
    let sig = seed::artifact_with(reg, repo, artifact_type, &payload, Some(subject)).await?;
    seed::attach(reg, repo, subject, &[(&sig, artifact_type)]).await?;
    Ok(sig)
}
