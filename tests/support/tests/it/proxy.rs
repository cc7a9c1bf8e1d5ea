//! The fault-injection proxy: forwarding, its log, and each fault.

use std::time::{Duration, Instant};

use acr_import_testsupport::{
    FaultAction, FaultRule, Proxy, ProxyOptions, Registry, basic_auth, sha256_digest,
};

use super::*;

/// A registry, a proxy in front of it, and a 200 000-byte blob pushed through the proxy to
/// `p/app`: the blob and its URL through the proxy.
struct Proxied {
    reg: Registry,
    proxy: Proxy,
    blob: Vec<u8>,
    blob_url: String,
}

impl Proxied {
    async fn start() -> anyhow::Result<Self> {
        let reg = Registry::start().await?;
        let proxy = Proxy::start(reg.addr(), ProxyOptions::default()).await?;
        let blob = test_blob(200_000, 3);
        let location = push_blob(&proxy.url(), "p/app", &blob, None).await?;
        // Host is kept, so the upload's Location points back at the proxy.
        assert!(
            location.starts_with(&format!("{}/v2/p/app/blobs/uploads/", proxy.url())),
            "{location}"
        );
        let blob_url = format!("{}/v2/p/app/blobs/{}", proxy.url(), sha256_digest(&blob));
        Ok(Self {
            reg,
            proxy,
            blob,
            blob_url,
        })
    }

    /// `GET` of the blob through the proxy.
    async fn get_blob(&self) -> anyhow::Result<Resp> {
        get(&self.blob_url, None).await
    }

    /// Opens an upload session of `p/app` through the proxy.
    async fn post_upload(&self) -> anyhow::Result<Resp> {
        let url = format!("{}/v2/p/app/blobs/uploads/", self.proxy.url());
        send("POST", &url, &[], Bytes::new()).await
    }
}

#[tokio::test]
async fn proxy_forwards_and_logs() -> anyhow::Result<()> {
    let p = Proxied::start().await?;
    let r = get(&format!("{}/v2/", p.proxy.url()), None).await?;
    assert_eq!(r.status, 200);
    let r = get(&p.blob_url, Some("Bearer x")).await?;
    assert_eq!((r.status, &r.body), (200, &p.blob));

    let log = p.proxy.requests();
    let post = &log[0];
    assert_eq!((post.method.as_str(), post.status), ("POST", Some(202)));
    let put = log.iter().find(|r| r.method == "PUT").expect("PUT logged");
    assert_eq!(put.request_body_bytes, p.blob.len() as u64);
    assert_eq!(put.status, Some(201));
    let v2 = log
        .iter()
        .find(|r| r.path == "/v2/")
        .expect("GET /v2/ logged");
    assert_eq!((v2.method.as_str(), v2.status), ("GET", Some(200)));
    let get = log.last().expect("GET logged");
    assert_eq!(get.response_body_bytes, p.blob.len() as u64);
    assert!(get.completed && get.forwarded && get.has_authorization());
    assert_eq!(p.proxy.count("GET", "/blobs/"), 1);
    assert_eq!(p.proxy.count("", "/v2/p/app/"), 3);
    assert!(p.proxy.saw_authorization());
    Ok(())
}

#[tokio::test]
async fn proxy_flips_cuts_and_truncates_bodies() -> anyhow::Result<()> {
    let p = Proxied::start().await?;
    let blob = &p.blob;
    // FlipByte alters exactly one byte.
    p.proxy.add_rule(
        FaultRule::new(FaultAction::FlipByte { offset: 100_001 })
            .method("GET")
            .path_contains("/blobs/")
            .nth(1)
            .label("flip"),
    );
    let r = p.get_blob().await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), blob.len());
    let diffs: Vec<usize> = (0..blob.len()).filter(|&i| r.body[i] != blob[i]).collect();
    assert_eq!(diffs, vec![100_001]);
    assert_eq!(p.proxy.fired("flip"), 1);
    assert_eq!(&p.get_blob().await?.body, blob, "nth(1) fires once");

    // CutAfter: headers and 1000 bytes, then the connection drops.
    p.proxy.set_rules([
        FaultRule::new(FaultAction::CutAfter { bytes: 1000 }).path_contains("/blobs/")
    ]);
    let r = p.get_blob().await?;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(blob.len().to_string().as_str())
    );
    assert_eq!(r.body, &blob[..1000]);
    assert!(r.body_error.is_some(), "connection should be cut");

    // Truncate: all but the last 10 bytes.
    p.proxy.set_rules([
        FaultRule::new(FaultAction::Truncate { missing: 10 }).path_contains("/blobs/")
    ]);
    let r = p.get_blob().await?;
    assert_eq!(r.body, &blob[..blob.len() - 10]);
    assert!(r.body_error.is_some());
    Ok(())
}

#[tokio::test]
async fn proxy_answers_itself_stalls_and_drops() -> anyhow::Result<()> {
    let p = Proxied::start().await?;
    // 429 with Retry-After, not forwarded.
    p.proxy
        .set_rules([FaultRule::new(FaultAction::too_many_requests(1))
            .method("GET")
            .path_contains("/blobs/")]);
    let before = p.proxy.requests().len();
    let r = p.get_blob().await?;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    let rec = &p.proxy.requests()[before];
    assert!(!rec.forwarded && rec.status == Some(429) && rec.fault.is_some());

    // Stall mid-body.
    p.proxy.set_rules([FaultRule::new(FaultAction::Stall {
        duration: Duration::from_millis(300),
        after_bytes: Some(10),
    })
    .path_contains("/blobs/")]);
    let t = Instant::now();
    let r = p.get_blob().await?;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.body, p.blob);

    // Stall before forwarding, then a dropped connection.
    p.proxy.set_rules([
        FaultRule::new(FaultAction::Stall {
            duration: Duration::from_millis(200),
            after_bytes: None,
        })
        .path_contains("/blobs/")
        .nth(1),
        FaultRule::new(FaultAction::DropConnection)
            .path_contains("/blobs/")
            .nth(2),
    ]);
    let t = Instant::now();
    let r = p.get_blob().await?;
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(r.body, p.blob);
    assert!(p.get_blob().await.is_err());
    Ok(())
}

#[tokio::test]
async fn proxy_redirects_and_rewrites_locations() -> anyhow::Result<()> {
    let p = Proxied::start().await?;
    p.proxy.set_rules([
        FaultRule::new(FaultAction::redirect(307, "http://127.0.0.1:1/elsewhere"))
            .path_contains("/blobs/sha256"),
    ]);
    let r = p.get_blob().await?;
    assert_eq!(
        (r.status, r.header("location")),
        (307, Some("http://127.0.0.1:1/elsewhere"))
    );
    p.proxy
        .set_rules([FaultRule::new(FaultAction::RewriteLocation {
            to_base: "http://127.0.0.1:9".into(),
        })
        .method("POST")]);
    let r = p.post_upload().await?;
    assert_eq!(r.status, 202);
    assert!(
        r.header("location")
            .unwrap_or_default()
            .starts_with("http://127.0.0.1:9/v2/p/app/blobs/uploads/")
    );
    Ok(())
}

#[tokio::test]
async fn proxy_resets_uploads_and_reports_a_down_upstream() -> anyhow::Result<()> {
    let p = Proxied::start().await?;
    // Reset during upload: nothing reaches the registry.
    p.proxy.set_rules([
        FaultRule::new(FaultAction::ResetDuringUpload { after_bytes: 1 }).method("PUT"),
    ]);
    let r = p.post_upload().await?;
    let loc = resolve(&p.proxy.url(), r.header("location").expect("location"));
    let big = test_blob(2_000_000, 9);
    let url = format!("{loc}&digest={}", sha256_digest(&big));
    let res = send("PUT", &url, &[], big.clone()).await;
    assert!(res.is_err(), "the connection should be reset, got {res:?}");
    let last = p.proxy.requests().pop().expect("logged");
    assert_eq!(
        (last.method.as_str(), last.status, last.forwarded),
        ("PUT", None, false)
    );
    assert!(last.request_body_bytes >= 1);

    // Upstream down: 502.
    p.proxy.clear_rules();
    p.reg.stop();
    let v2 = format!("{}/v2/", p.proxy.url());
    assert_eq!(get(&v2, None).await?.status, 502);
    p.reg.start_again().await?;
    assert_eq!(get(&v2, None).await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn proxy_can_authenticate_upstream_itself() -> anyhow::Result<()> {
    let reg = Registry::builder()
        .htpasswd(&[("svc", "pw")])
        .start()
        .await?;
    let proxy = Proxy::start_url(
        &reg.url(),
        ProxyOptions {
            upstream_authorization: Some(basic_auth("svc", "pw")),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let r = get(&format!("{}/v2/", proxy.url()), None).await?;
    assert_eq!(r.status, 200);
    assert!(!proxy.saw_authorization(), "the client sent none");
    Ok(())
}
