//! Registries as they really are (the test support's personalities): Docker Hub's pull
//! budget, rate limits, CDN redirects, ECR, Quay and MCR manners, through the copy engine.

use crate::Names;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acr_import_auth::StaticCredentials;
use acr_import_testsupport::{DOCKER_HUB_429, Kind, Personality, Registry as TestRegistry};
use acr_import_transfer::{
    Copier, CopyOptions, CopyReport, Endpoint, Manifest, RateLimitPolicy, RateLimitWait, Registry,
    RetryPolicy, Source, Target, TransferError, Transport,
};

use crate::fixtures::{Blob, Seeds, image, index, push_manifest};
use crate::{basic, source, target};

/// Manifest `GET`s each scenario may spend, at most; a scenario that spends more is a
/// regression. Measured against the Docker Hub personality (which counts what the registry
/// served) and the copy report's `source_pulls` (what the engine sent): both must agree.
/// Before HEAD-first resolution, the copier's manifest cache and reading what a target holds
/// from the target, these were 4, 1, 10 and 5.
const FIRST_IMPORT_PULLS: u64 = 4; // the index and its three platforms
const RERUN_PULLS: u64 = 0; // every target holds the digest: no manifest is read
const BATCH_PULLS: u64 = 6; // one 3-platform image under two tags (read once) and two images
const SIGNED_FIRST_PULLS: u64 = 3; // an image, its referrers index and its signature
const SIGNED_RERUN_PULLS: u64 = 1; // the referrers index; the signature is read on the target
const GROWN_INDEX_PULLS: u64 = 2; // the new index and its new platform; the three the target
// holds are read there

fn transport(creds: StaticCredentials, rate_limit: RateLimitPolicy) -> Transport {
    Transport::builder()
        .credentials(Arc::new(creds))
        .retry(RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(2),
        })
        .rate_limit(rate_limit)
        .proxy_from_env(false)
        .build()
        .expect("transport")
}

fn anonymous() -> Transport {
    transport(StaticCredentials::new(), RateLimitPolicy::default())
}

/// The registry as its publishers see it: signed in with the kind's account, where content
/// is pushed (seeding goes through the test support's own client, [`Seeds`]).
fn signed_in(p: &Personality) -> Registry {
    let mut creds = StaticCredentials::new();
    if let Some((user, password)) = p.kind().credentials() {
        creds.insert(&p.host(), basic(user, password));
    }
    transport(creds, RateLimitPolicy::default())
        .registry(&p.publish_url())
        .unwrap()
}

/// Docker Hub's personality with an anonymous budget of `pulls` an hour.
async fn docker_hub(pulls: u64) -> Personality {
    Personality::builder(Kind::DockerHub)
        .anonymous_budget(pulls, Duration::from_secs(3600))
        .start()
        .await
        .unwrap()
}

/// A 3-platform image (no attestations) tagged `tag`.
async fn three_platforms(reg: &impl Seeds, repo: &str, tag: &str, seed: u64) -> Manifest {
    let base = Blob::layer(seed, 20_000);
    let mut children = Vec::new();
    for (i, arch) in ["amd64", "arm64", "s390x"].iter().enumerate() {
        let own = Blob::layer(seed * 10 + i as u64, 3_000 + i * 100);
        children.push((
            image(reg, repo, "linux", arch, &[&base, &own], false)
                .await
                .unwrap(),
            *arch,
        ));
    }
    let platforms: Vec<String> = children.iter().map(|(_, a)| format!("linux/{a}")).collect();
    let entries: Vec<_> = children
        .iter()
        .zip(&platforms)
        .map(|((m, _), p)| (m, Some(p.as_str()), None))
        .collect();
    index(reg, repo, Some(tag), &entries, false).await.unwrap()
}

/// A one-platform image tagged `tag`.
async fn single(reg: &impl Seeds, repo: &str, tag: &str, seed: u64) -> Manifest {
    let layer = Blob::layer(seed, 5_000);
    let m = image(reg, repo, "linux", "amd64", &[&layer], false)
        .await
        .unwrap();
    push_manifest(reg, repo, Some(tag), &m).await.unwrap();
    m
}

/// [`copy`] with a copier of its own (nothing read before).
async fn copy_once(
    from: &Registry,
    repo: &str,
    tag: &str,
    to: &Registry,
) -> Result<CopyReport, TransferError> {
    copy(&Copier::new(CopyOptions::default()), from, repo, tag, to).await
}

async fn copy(
    copier: &Copier,
    from: &Registry,
    repo: &str,
    tag: &str,
    to: &Registry,
) -> Result<CopyReport, TransferError> {
    copier
        .copy(&source(from, repo, tag), &[target(to, repo, Some(tag))])
        .await
}

#[tokio::test]
async fn docker_hub_pulls_per_scenario_and_a_spent_budget() {
    let hub = docker_hub(10).await;
    let target = TestRegistry::start().await.unwrap();
    let publish = signed_in(&hub);
    let app = three_platforms(&hub, "library/app", "v1", 1).await;
    push_manifest(&hub, "library/app", Some("latest"), &app)
        .await
        .unwrap();
    for (i, name) in ["library/one", "library/two"].iter().enumerate() {
        single(&hub, name, "v1", 50 + i as u64).await;
    }
    let src = anonymous().registry(&hub.url()).unwrap();
    let dst = anonymous().registry(&target.url()).unwrap();

    // First import of a 3-platform image.
    let report = copy_once(&src, "library/app", "v1", &dst).await.unwrap();
    assert_eq!(report.source_pulls, FIRST_IMPORT_PULLS, "{report:#?}");
    assert_eq!(hub.anonymous_pulls() as u64, FIRST_IMPORT_PULLS);
    assert_eq!(report.totals.platforms, 3);

    // The unchanged re-run.
    let report = copy_once(&src, "library/app", "v1", &dst).await.unwrap();
    assert!(report.up_to_date);
    assert_eq!(report.source_pulls, RERUN_PULLS);
    assert_eq!(hub.anonymous_pulls() as u64, FIRST_IMPORT_PULLS);

    // The index grows a platform: the target holds three of its four children already.
    let children: Vec<Manifest> = {
        let content = app.parse().unwrap();
        let mut v = Vec::new();
        for d in &content.manifests {
            v.push(
                publish
                    .get_manifest(&"library/app".repo(), &d.digest.clone().into())
                    .await
                    .unwrap(),
            );
        }
        v
    };
    let ppc = image(
        &hub,
        "library/app",
        "linux",
        "ppc64le",
        &[&Blob::layer(90, 4_000)],
        false,
    )
    .await
    .unwrap();
    let mut entries: Vec<_> = children
        .iter()
        .zip(["linux/amd64", "linux/arm64", "linux/s390x"])
        .map(|(m, p)| (m, Some(p), None))
        .collect();
    entries.push((&ppc, Some("linux/ppc64le"), None));
    index(&hub, "library/app", Some("v2"), &entries, false)
        .await
        .unwrap();
    let before = hub.anonymous_pulls() as u64;
    let report = copy_once(&src, "library/app", "v2", &dst).await.unwrap();
    assert_eq!(report.source_pulls, GROWN_INDEX_PULLS, "{report:#?}");
    assert_eq!(hub.anonymous_pulls() as u64 - before, GROWN_INDEX_PULLS);
    assert_eq!(report.totals.platforms, 4);

    // A batch: one copier, the same index under two tags, two more images.
    hub.refill();
    let fresh = TestRegistry::start().await.unwrap();
    let dst2 = anonymous().registry(&fresh.url()).unwrap();
    let copier = Copier::new(CopyOptions::default());
    let mut spent = 0;
    for (repo, tag) in [
        ("library/app", "v1"),
        ("library/app", "latest"),
        ("library/one", "v1"),
        ("library/two", "v1"),
    ] {
        spent += copy(&copier, &src, repo, tag, &dst2)
            .await
            .unwrap()
            .source_pulls;
    }
    assert_eq!(spent, BATCH_PULLS);
    assert_eq!(hub.anonymous_pulls() as u64, BATCH_PULLS);

    // The budget spent (by others behind the same address): a new image fails before
    // its manifest is read, saying what it needs, what remains and what to do; no tag.
    single(&hub, "library/new", "v1", 70).await;
    hub.spend_anonymous(10);
    let gets = hub.manifest_gets();
    let err = copy_once(&src, "library/new", "v1", &dst)
        .await
        .unwrap_err();
    let TransferError::RateLimitReached(stop) = &err else {
        panic!("expected a rate-limit stop, got {err}");
    };
    assert_eq!(stop.needed, Some(1), "{err}");
    let text = err.to_string();
    for part in [
        "this import needs 1 pull, 0 remain until",
        "a limit of 10 pulls per 1 h",
        "Docker Hub access token",
        "--platform",
        "--wait-rate-limit",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert_eq!(hub.manifest_gets(), gets, "no manifest GET was sent");
    assert!(
        dst.head_manifest(&"library/new".repo(), &"v1".at())
            .await
            .unwrap()
            .is_none(),
        "no tag was written"
    );
    // An unchanged image still needs nothing: it succeeds with the budget spent.
    let report = copy_once(&src, "library/app", "v1", &dst).await.unwrap();
    assert!(report.up_to_date && report.source_pulls == 0);

    // With a Docker Hub token the same import succeeds, and the CDN origin the blobs are
    // redirected to never sees a credential.
    let (user, _) = Kind::DockerHub.credentials().unwrap();
    let signed_in = signed_in(&hub);
    hub.clear_requests();
    let report = copy_once(&signed_in, "library/new", "v1", &dst)
        .await
        .unwrap();
    assert_eq!(report.source_pulls, 1, "{report:#?} {:#?}", hub.requests());
    assert_eq!(hub.pulls_of(user), 1);
    let cdn = hub.cdn_requests();
    assert_eq!(
        cdn.len(),
        2,
        "the config and the layer came from the CDN: {cdn:#?}"
    );
    assert!(cdn.iter().all(|r| r.status == Some(200)), "{cdn:#?}");
    assert!(!hub.cdn_saw_authorization());
}

/// A signed image re-imported unchanged: its signature, already on the target, is read
/// there, not pulled again; only the source's referrers index (a tag the target does not
/// hold byte for byte) is read from the source.
#[tokio::test]
async fn referrers_already_copied_cost_no_pull_on_a_rerun() {
    let hub = docker_hub(10).await;
    let target = TestRegistry::start().await.unwrap();
    let top = single(&hub, "library/signed", "v1", 5).await;
    let sig = crate::fixtures::artifact(
        &hub,
        "library/signed",
        "application/vnd.dev.cosign.simplesigning.v1+json",
        6,
        Some(&top),
    )
    .await
    .unwrap();
    crate::fixtures::attach(
        &hub,
        "library/signed",
        &top,
        &[(&sig, "application/vnd.dev.cosign.simplesigning.v1+json")],
    )
    .await
    .unwrap();
    let src = anonymous().registry(&hub.url()).unwrap();
    let dst = anonymous().registry(&target.url()).unwrap();
    let first = copy_once(&src, "library/signed", "v1", &dst).await.unwrap();
    assert_eq!(
        first.source_pulls, SIGNED_FIRST_PULLS,
        "the image, its referrers index and the signature"
    );
    let again = copy_once(&src, "library/signed", "v1", &dst).await.unwrap();
    assert!(again.up_to_date);
    assert_eq!(again.source_pulls, SIGNED_RERUN_PULLS, "{again:#?}");
    assert_eq!(
        hub.anonymous_pulls() as u64,
        SIGNED_FIRST_PULLS + SIGNED_RERUN_PULLS
    );
}

#[tokio::test]
async fn a_long_429_stops_the_registry_for_every_later_request() {
    let hub = docker_hub(3).await;
    single(&hub, "library/a", "v1", 1).await;
    single(&hub, "library/b", "v1", 2).await;
    hub.spend_anonymous(3);
    let src = anonymous().registry(&hub.url()).unwrap();
    // A read that is not planned (no budget known yet): the 429 itself.
    let err = src
        .get_manifest(&"library/a".repo(), &"v1".at())
        .await
        .unwrap_err();
    let TransferError::RateLimitReached(stop) = &err else {
        panic!("expected a rate-limit stop, got {err}");
    };
    assert!(stop.needed.is_none() && stop.anonymous && stop.docker_hub);
    let text = err.to_string();
    for part in [
        "the pull rate limit is reached (3 pulls per 1 h)",
        "resets by",
        DOCKER_HUB_429,
        "no tag was moved",
        "Docker Hub access token",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    let refused: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.status == Some(429))
        .collect();
    assert_eq!(refused.len(), 1, "no retry of a 429 that resets in an hour");
    // Every later request to the registry fails the same way without being sent.
    let sent = hub.requests().len();
    let target = TestRegistry::start().await.unwrap();
    let dst = anonymous().registry(&target.url()).unwrap();
    let err = copy_once(&src, "library/b", "v1", &dst).await.unwrap_err();
    assert!(matches!(err, TransferError::RateLimitReached(_)), "{err}");
    assert_eq!(
        hub.requests().len(),
        sent,
        "nothing more reached the registry"
    );
    assert!(
        dst.head_manifest(&"library/b".repo(), &"v1".at())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn waiting_for_a_rate_limit_counts_down_and_resumes_when_the_budget_is_back() {
    let hub = docker_hub(2).await;
    three_platforms(&hub, "library/app", "v1", 3).await;
    let target = TestRegistry::start().await.unwrap();
    let ticks: Arc<Mutex<Vec<RateLimitWait>>> = Arc::default();
    let seen = ticks.clone();
    let policy = RateLimitPolicy {
        wait: true,
        probe_every: Duration::from_millis(300),
        on_wait: Some(Arc::new(move |w: &RateLimitWait| {
            seen.lock().unwrap().push(w.clone())
        })),
        ..RateLimitPolicy::default()
    };
    let src = transport(StaticCredentials::new(), policy)
        .registry(&hub.url())
        .unwrap();
    let dst = anonymous().registry(&target.url()).unwrap();
    // The budget comes back while the copy waits (the window passes).
    let refill = async {
        for _ in 0..200 {
            if !ticks.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        hub.refill();
    };
    let copier = Copier::new(CopyOptions::default());
    let (report, ()) = tokio::join!(copy(&copier, &src, "library/app", "v1", &dst), refill);
    let report = report.unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("this import needs 3 pulls, 1 remains until")
                && n.contains("waiting for the budget")),
        "the shortfall is said before any byte moves: {:?}",
        report.notes
    );
    let ticks = ticks.lock().unwrap().clone();
    assert!(ticks.len() >= 2, "a countdown each second: {ticks:?}");
    assert!(ticks.windows(2).all(|w| w[0].left >= w[1].left));
    assert!(
        ticks[0]
            .to_string()
            .contains("waiting for the rate limit to reset")
    );
    dst.head_manifest(&"library/app".repo(), &"v1".at())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_schema1_tag_is_refused_without_a_pull() {
    let quay = Personality::builder(Kind::Quay)
        .schema1_tag("coreos/etcd", "v2.0.0")
        .start()
        .await
        .unwrap();
    let target = TestRegistry::start().await.unwrap();
    let src = anonymous().registry(&quay.url()).unwrap();
    let dst = anonymous().registry(&target.url()).unwrap();
    let err = copy_once(&src, "coreos/etcd", "v2.0.0", &dst)
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Schema1(_)), "{err}");
    let text = err.to_string();
    for part in ["coreos/etcd:v2.0.0", "schema 1", "import a newer tag"] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert_eq!(quay.manifest_gets(), 0, "the HEAD told: nothing was read");
}

#[tokio::test]
async fn ecr_basic_auth_no_mount_no_digest_header_and_s3_redirects() {
    let ecr = Personality::start(Kind::Ecr).await.unwrap();
    let m = single(&ecr, "team/app", "v1", 9).await;
    let reg = signed_in(&ecr);
    // A GET by tag has no Docker-Content-Digest: the digest is computed.
    assert_eq!(
        reg.get_manifest(&"team/app".repo(), &"v1".at())
            .await
            .unwrap()
            .digest,
        m.digest
    );
    // Anonymous clients get a Basic challenge, not a token.
    let err = anonymous()
        .registry(&ecr.url())
        .unwrap()
        .get_manifest(&"team/app".repo(), &"v1".at())
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err}");
    // Within the registry, blobs cannot be mounted: they are uploaded (streamed from the
    // S3 origin, which never sees the Basic credentials).
    ecr.clear_requests();
    let report = Copier::new(CopyOptions::default())
        .copy(
            &Source {
                endpoint: Endpoint::registry(reg.clone(), "team/app".repo()),
                reference: "v1".parse().unwrap(),
            },
            &[Target {
                endpoint: Endpoint::registry(reg.clone(), "team/copy".repo()),
                tag: Some("v1".parse().unwrap()),
            }],
        )
        .await
        .unwrap();
    assert_eq!(report.totals.blobs_mounted, 0);
    assert_eq!(report.totals.blobs_copied, 2);
    assert!(!ecr.cdn_requests().is_empty());
    assert!(!ecr.cdn_saw_authorization());
    assert_eq!(
        reg.get_manifest(&"team/copy".repo(), &"v1".at())
            .await
            .unwrap()
            .digest,
        m.digest
    );
}
