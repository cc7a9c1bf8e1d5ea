//! `cargo xtask bench --digest-tags`: what finding an image's cosign digest tags costs, each
//! way the copy engine could look for them, on a real distribution registry (behind a 20 ms
//! per direction latency proxy with `--wan`).
//!
//! For repositories of 10 to 3000 tags, and images of 1 manifest (a single-platform image)
//! and 5 (a 3-platform index with an attestation manifest, and the index), it times,
//! interleaved, `runs` times each:
//!
//! - **probe**: one `HEAD` per manifest for each of `.sig`, `.att`, `.sbom` (3 × manifests
//!   requests, 8 at a time, as the engine sends them);
//! - **list**: one `GET …/tags/list?n=1000` (the engine's first page: the whole list of a
//!   small repository; the distribution registry 2.8 answers every tag whatever `n` says).
//!
//! and reports the median time, the requests sent and the size of the tag list (its JSON).

use acr_import_tests::Names;
use std::time::{Duration, Instant};

use acr_import_testsupport::{LatencyProxy, Registry};
use acr_import_transfer::copy::SMALL_REPOSITORY;
use acr_import_transfer::{Manifest, Transport, digest_of, manifest};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use super::WAN_DELAY;
use super::data::human;

/// Tags in the repositories measured.
const SIZES: [usize; 4] = [10, 100, 1000, 3000];
/// Manifests of the images probed.
const MANIFESTS: [usize; 2] = [1, 5];

pub fn run(wan: bool, runs: usize) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(measure(wan, runs))
}

/// The median of some durations, in milliseconds.
fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

async fn measure(wan: bool, runs: usize) -> anyhow::Result<()> {
    let registry = Registry::start().await?;
    let seeding = Transport::builder().proxy_from_env(false).build()?;
    let direct = seeding.registry(&registry.url())?;
    let (_latency, host) = if wan {
        let p = LatencyProxy::start(registry.addr(), WAN_DELAY).await?;
        let host = p.addr().to_string();
        (Some(p), host)
    } else {
        (None, registry.host())
    };
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
    let cd = digest_of(acr_import_reference::DigestAlgorithm::Sha256, &config);
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[]}}"#,
        manifest::OCI_MANIFEST,
        config.len()
    );
    let m = Manifest {
        digest: digest_of(
            acr_import_reference::DigestAlgorithm::Sha256,
            body.as_bytes(),
        ),
        bytes: Bytes::from(body),
        media_type: manifest::OCI_MANIFEST.to_owned(),
    };
    println!(
        "digest-tag lookup on the distribution registry 2.8{}: median of {runs} runs",
        if wan {
            ", 20 ms each way"
        } else {
            ", loopback"
        }
    );
    println!(
        "{:>6}  {:>16}  {:>16}  {:>22}",
        "tags", "probe 1 manifest", "probe 5 manifests", "list (one page)"
    );
    for size in SIZES {
        let repo = format!("tags{size}");
        direct
            .push_blob(&repo.repo(), &cd, config.clone(), u64::MAX)
            .await?;
        futures_util::stream::iter((0..size).map(|i| {
            let (direct, repo, m) = (&direct, &repo, &m);
            async move {
                direct
                    .put_manifest(&repo.repo(), &format!("t{i:05}").at(), m)
                    .await
            }
        }))
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
        let mut probe: Vec<Vec<Duration>> = vec![Vec::new(); MANIFESTS.len()];
        let mut list = Vec::new();
        let mut listed = (0, 0);
        for _ in 0..runs {
            // A fresh transport per measurement: each starts with a new connection.
            for (i, n) in MANIFESTS.iter().enumerate() {
                let t = Transport::builder().proxy_from_env(false).build()?;
                let reg = t.registry(&host)?;
                reg.head_manifest(&repo.repo(), &"t00000".at()).await?;
                let started = Instant::now();
                futures_util::stream::iter((0..n * 3).map(|k| {
                    let (reg, repo) = (&reg, &repo);
                    let tag = format!("sha256-{:064x}.{}", k / 3, ["sig", "att", "sbom"][k % 3]);
                    async move { reg.head_manifest(&repo.repo(), &tag.at()).await }
                }))
                .buffer_unordered(8)
                .try_collect::<Vec<_>>()
                .await?;
                probe[i].push(started.elapsed());
            }
            let t = Transport::builder().proxy_from_env(false).build()?;
            let reg = t.registry(&host)?;
            reg.head_manifest(&repo.repo(), &"t00000".at()).await?;
            let started = Instant::now();
            let page = reg.tags_page(&repo.repo(), SMALL_REPOSITORY).await?;
            list.push(started.elapsed());
            let json = serde_json::json!({"name": repo, "tags": page.tags});
            let bytes = serde_json::to_vec(&json)?.len();
            listed = (page.tags.len(), bytes);
        }
        let ms = |v: Vec<Duration>| format!("{:.1} ms", median_ms(v));
        let [one, five]: [Vec<Duration>; 2] = probe.try_into().expect("two sizes");
        println!(
            "{size:>6}  {:>16}  {:>17}  {:>22}",
            format!("{} (3 req)", ms(one)),
            format!("{} (15 req)", ms(five)),
            format!(
                "{} (1 req, {} tags, {})",
                ms(list),
                listed.0,
                human(listed.1 as u64)
            ),
        );
    }
    Ok(())
}
