//! The registry itself: push and pull, restart, htpasswd, teardown; the latency proxy.

use std::time::{Duration, Instant};

use acr_import_testsupport::{
    LatencyProxy, Proxy, Registry, TokenServer, basic_auth, sha256_digest,
};
use tokio::net::TcpStream;

use super::*;

fn manifest_for(config: &[u8], layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256_digest(config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha256_digest(layer),
            "size": layer.len(),
        }],
    }))
    .expect("json")
}

#[tokio::test]
async fn plain_registry_push_and_pull_round_trip() -> anyhow::Result<()> {
    let reg = Registry::start().await?;
    let base = reg.url();
    assert_eq!(reg.host(), reg.addr().to_string());
    assert!(reg.storage_dir().starts_with(reg.dir()));

    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = test_blob(100_000, 7);
    let location = push_blob(&base, "team/app", config, None).await?;
    // distribution 2.8 answers with an absolute Location built from Host.
    assert!(
        location.starts_with(&format!("{base}/v2/team/app/blobs/uploads/")),
        "Location {location}"
    );
    assert!(location.contains("_state="), "Location {location}");
    push_blob(&base, "team/app", &layer, None).await?;

    let manifest = manifest_for(config, &layer);
    let mdigest = sha256_digest(&manifest);
    let r = send(
        "PUT",
        &format!("{base}/v2/team/app/manifests/v1"),
        &[("Content-Type", OCI_MANIFEST)],
        manifest.clone(),
    )
    .await?;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("docker-content-digest"), Some(mdigest.as_str()));

    let r = send(
        "GET",
        &format!("{base}/v2/team/app/manifests/v1"),
        &[("Accept", OCI_MANIFEST)],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, manifest);
    assert_eq!(r.header("docker-content-digest"), Some(mdigest.as_str()));
    assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));

    let ldigest = sha256_digest(&layer);
    let r = get(&format!("{base}/v2/team/app/blobs/{ldigest}"), None).await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, layer);
    assert_eq!(r.header("docker-content-digest"), Some(ldigest.as_str()));

    // Same storage and port after a restart.
    let addr = reg.addr();
    reg.restart().await?;
    assert_eq!(reg.addr(), addr);
    let r = get(&format!("{base}/v2/team/app/blobs/{ldigest}"), None).await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, layer);
    Ok(())
}

#[tokio::test]
async fn htpasswd_registry_demands_basic_auth() -> anyhow::Result<()> {
    let reg = Registry::builder()
        .htpasswd(&[("alice", "s3cret")])
        .start()
        .await?;
    let r = get(&format!("{}/v2/", reg.url()), None).await?;
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Basic "), "{challenge}");

    let good = basic_auth("alice", "s3cret");
    let r = get(&format!("{}/v2/", reg.url()), Some(&good)).await?;
    assert_eq!(r.status, 200);
    let bad = basic_auth("alice", "wrong");
    let r = get(&format!("{}/v2/", reg.url()), Some(&bad)).await?;
    assert_eq!(r.status, 401);
    Ok(())
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Registry>();
    check::<TokenServer>();
    check::<Proxy>();
    check::<LatencyProxy>();
    check::<acr_import_testsupport::TokenIssuer>();
}

#[tokio::test]
async fn dropping_a_registry_kills_it_and_removes_storage() -> anyhow::Result<()> {
    let reg = Registry::start().await?;
    let addr = reg.addr();
    let dir = reg.dir().to_path_buf();
    let log = reg.log_path().to_path_buf();
    assert!(dir.is_dir() && log.is_file());
    assert!(reg.is_running());
    drop(reg);
    assert!(TcpStream::connect(addr).await.is_err(), "port still open");
    assert!(!dir.exists(), "temp dir still there");
    Ok(())
}

#[tokio::test]
async fn dropping_a_proxy_closes_its_port() -> anyhow::Result<()> {
    let reg = Registry::start().await?;
    let proxy = Proxy::start(reg.addr(), Default::default()).await?;
    let latency = LatencyProxy::start(reg.addr(), Duration::from_millis(1)).await?;
    let addrs = [proxy.addr(), latency.addr()];
    for addr in addrs {
        assert!(TcpStream::connect(addr).await.is_ok(), "{addr} not serving");
    }
    drop((proxy, latency));
    for addr in addrs {
        // The accept loop is cancelled on its runtime's next turn.
        let mut open = true;
        for _ in 0..200 {
            tokio::task::yield_now().await;
            if TcpStream::connect(addr).await.is_err() {
                open = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !open,
            "{addr} still accepts connections after its handle was dropped"
        );
    }
    Ok(())
}

#[tokio::test]
async fn latency_proxy_delays_both_directions() -> anyhow::Result<()> {
    let reg = Registry::start().await?;
    let lp = LatencyProxy::start(reg.addr(), Duration::from_millis(100)).await?;
    let t = Instant::now();
    let r = get(&format!("http://{}/v2/", lp.host()), None).await?;
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    Ok(())
}
