//! Corruption, broken connections, rate limits and redirects, through the test proxy.

use crate::Names;
use std::time::{Duration, Instant};

use acr_import_auth::StaticCredentials;
use acr_import_testsupport::{
    FaultAction, FaultRule, Proxy, ProxyOptions, Registry as TestRegistry, basic_auth,
};
use acr_import_transfer::TransferError;
use bytes::Bytes;

use crate::copy::Copies;
use crate::{basic, data, push_image, sha256, transport, transport_with, transport_with_retries};

#[tokio::test]
async fn corrupted_blob_and_manifest_are_detected() {
    let server = TestRegistry::start().await.unwrap();
    let direct = transport().registry(&server.url()).unwrap();
    let m = push_image(&direct, "app", "v1", 5, 50_000).await;
    let layer = m.parse().unwrap().layers[0].clone();
    let proxy = Proxy::start(
        server.addr(),
        ProxyOptions::with_rules([
            FaultRule::new(FaultAction::FlipByte { offset: 1234 })
                .method("GET")
                .path_contains("/blobs/")
                .every(),
            FaultRule::new(FaultAction::FlipByte { offset: 10 })
                .method("GET")
                .path_contains("/manifests/")
                .every(),
        ]),
    )
    .await
    .unwrap();
    let reg = transport().registry(&proxy.url()).unwrap();
    let err = reg
        .get_blob(&"app".repo(), &layer.digest, Some(layer.size), true)
        .await
        .unwrap()
        .collect(1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::DigestMismatch { .. }), "{err}");
    // By digest and by tag.
    for reference in [m.digest.clone().into(), "v1".at()] {
        let err = reg
            .get_manifest(&"app".repo(), &reference)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                TransferError::DigestMismatch { .. } | TransferError::InvalidManifest { .. }
            ),
            "{reference}: {err}"
        );
    }
}

#[tokio::test]
async fn a_dropped_download_resumes_with_range() {
    let server = TestRegistry::start().await.unwrap();
    let direct = transport().registry(&server.url()).unwrap();
    let blob = data(6, 2_000_000);
    let d = sha256(&blob);
    direct
        .push_blob(&"app".repo(), &d, blob.clone(), u64::MAX)
        .await
        .unwrap();
    let proxy = Proxy::start(
        server.addr(),
        ProxyOptions::with_rules([FaultRule::new(FaultAction::CutAfter { bytes: 700_000 })
            .method("GET")
            .path_contains("/blobs/")
            .nth(1)]),
    )
    .await
    .unwrap();
    let reg = transport().registry(&proxy.url()).unwrap();
    let got = reg
        .get_blob(&"app".repo(), &d, Some(blob.len() as u64), true)
        .await
        .unwrap()
        .collect(4 << 20)
        .await
        .unwrap();
    assert_eq!(got, blob);
    let gets: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .collect();
    assert_eq!(gets.len(), 2, "one cut download, one resumed");
    let range = gets[1]
        .header("range")
        .expect("the second request asks for a range");
    let from: u64 = range
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(from > 0 && from <= 700_000, "{range}");
}

#[tokio::test]
async fn rate_limits_honour_retry_after() {
    let server = TestRegistry::start().await.unwrap();
    let direct = transport().registry(&server.url()).unwrap();
    push_image(&direct, "app", "v1", 7, 10).await;
    let proxy = Proxy::start(
        server.addr(),
        ProxyOptions::with_rules([FaultRule::new(FaultAction::too_many_requests(1))
            .method("GET")
            .path_contains("/manifests/")
            .nth(1)]),
    )
    .await
    .unwrap();
    let t = transport();
    let reg = t.registry(&proxy.url()).unwrap();
    let started = Instant::now();
    reg.get_manifest(&"app".repo(), &"v1".at()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(proxy.count("GET", "/manifests/"), 2);
    assert_eq!(t.stats().values().map(|s| s.retries).sum::<u64>(), 1);

    // A 4xx that is not transient is final: one request, no retry.
    proxy.set_rules([FaultRule::new(FaultAction::status(400))
        .method("GET")
        .path_contains("/manifests/")
        .every()]);
    proxy.clear_requests();
    let err = reg
        .get_manifest(&"app".repo(), &"v1".at())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(proxy.count("GET", "/manifests/"), 1);

    // 503 until the retries run out: a Server error naming the retries.
    proxy.set_rules([FaultRule::new(FaultAction::status(503)).every()]);
    let err = reg
        .get_manifest(&"app".repo(), &"v1".at())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransferError::Server { retries: 3, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_origin() {
    let server = TestRegistry::builder()
        .htpasswd(&[("alice", "s3cret")])
        .start()
        .await
        .unwrap();
    let creds = || StaticCredentials::new().with(&server.host(), basic("alice", "s3cret"));
    let direct = transport_with(creds()).registry(&server.url()).unwrap();
    let m = push_image(&direct, "app", "v1", 8, 30_000).await;
    let layer = m.parse().unwrap().layers[0].clone();

    // "Storage": another port, which reaches the registry with credentials of its own (as a
    // signed URL would) and records what the client sent.
    let other_origin = || {
        Proxy::start(
            server.addr(),
            ProxyOptions {
                upstream_authorization: Some(basic_auth("alice", "s3cret")),
                ..ProxyOptions::default()
            },
        )
    };
    let storage = other_origin().await.unwrap();
    let path = format!("/v2/app/blobs/{}", layer.digest);
    let front = Proxy::start(
        server.addr(),
        ProxyOptions::with_rules([FaultRule::new(FaultAction::redirect(
            307,
            &format!("{}{path}?sig=SECRET", storage.url()),
        ))
        .method("GET")
        .path_contains("/blobs/")
        .every()]),
    )
    .await
    .unwrap();
    let t = transport_with(StaticCredentials::new().with(&front.host(), basic("alice", "s3cret")));
    let reg = t.registry(&front.url()).unwrap();
    reg.ping().await.unwrap();
    let got = reg
        .get_blob(&"app".repo(), &layer.digest, Some(layer.size), true)
        .await
        .unwrap()
        .collect(1 << 20)
        .await
        .unwrap();
    assert_eq!(sha256(&got), layer.digest);
    assert!(
        front.saw_authorization(),
        "the registry itself gets the credentials"
    );
    assert!(
        storage.count("GET", "/blobs/") >= 1,
        "the redirect was followed"
    );
    assert!(
        !storage.saw_authorization(),
        "no Authorization header crossed to another origin"
    );

    // The same for an upload session whose Location points at another origin.
    let upload_target = other_origin().await.unwrap();
    front.set_rules([FaultRule::new(FaultAction::RewriteLocation {
        to_base: upload_target.url(),
    })
    .method("POST")
    .path_contains("/blobs/uploads/")
    .every()]);
    let blob = data(9, 20_000);
    let d = sha256(&blob);
    reg.push_blob(&"app".repo(), &d, blob, u64::MAX)
        .await
        .unwrap();
    assert_eq!(upload_target.count("PUT", "/blobs/uploads/"), 1);
    assert!(
        !upload_target.saw_authorization(),
        "no Authorization header on the foreign upload Location"
    );
    assert_eq!(
        direct.head_blob(&"app".repo(), &d).await.unwrap(),
        Some(20_000)
    );
}

#[tokio::test]
async fn bad_manifests_are_refused() {
    let server = TestRegistry::start().await.unwrap();
    let respond = |ct: &str, body: Bytes, extra: Vec<(String, String)>| {
        let mut headers = vec![("Content-Type".to_owned(), ct.to_owned())];
        headers.extend(extra);
        FaultRule::new(FaultAction::Respond {
            status: 200,
            headers,
            body,
        })
        .method("GET")
        .path_contains("/manifests/")
        .every()
    };
    let proxy = Proxy::start(server.addr(), ProxyOptions::default())
        .await
        .unwrap();
    let reg = transport().registry(&proxy.url()).unwrap();

    let huge = Bytes::from(vec![b' '; 5 * 1024 * 1024]);
    proxy.set_rules([respond(
        "application/vnd.oci.image.manifest.v1+json",
        huge,
        vec![],
    )]);
    assert!(matches!(
        reg.get_manifest(&"a".repo(), &"v1".at()).await.unwrap_err(),
        TransferError::ManifestTooLarge { .. }
    ));

    let s1 = Bytes::from_static(br#"{"schemaVersion":1,"name":"a","tag":"v1","fsLayers":[]}"#);
    proxy.set_rules([respond(
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        s1.clone(),
        vec![],
    )]);
    let err = reg.get_manifest(&"a".repo(), &"v1".at()).await.unwrap_err();
    assert!(matches!(err, TransferError::Schema1(_)), "{err}");
    assert!(err.to_string().contains("schema 1"));

    proxy.set_rules([respond(
        "application/vnd.oci.image.manifest.v1+json",
        Bytes::from_static(b"{not json"),
        vec![],
    )]);
    assert!(matches!(
        reg.get_manifest(&"a".repo(), &"v1".at()).await.unwrap_err(),
        TransferError::InvalidManifest { .. }
    ));

    let docker = Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"x","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#);
    proxy.set_rules([respond(
        "application/vnd.oci.image.manifest.v1+json",
        docker.clone(),
        vec![],
    )]);
    let err = reg.get_manifest(&"a".repo(), &"v1".at()).await.unwrap_err();
    assert!(err.to_string().contains("mediaType field says"), "{err}");

    let lying = vec![(
        "Docker-Content-Digest".to_owned(),
        sha256(b"other").to_string(),
    )];
    proxy.set_rules([respond(
        "application/vnd.docker.distribution.manifest.v2+json",
        docker.clone(),
        lying,
    )]);
    let err = reg.get_manifest(&"a".repo(), &"v1".at()).await.unwrap_err();
    assert!(matches!(err, TransferError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("Docker-Content-Digest"));

    let err = reg
        .get_manifest(&"a".repo(), &sha256(b"other").into())
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::DigestMismatch { .. }), "{err}");
    proxy.set_rules([respond(
        "application/vnd.docker.distribution.manifest.v2+json",
        docker.clone(),
        vec![],
    )]);
    let ok = reg.get_manifest(&"a".repo(), &"v1".at()).await.unwrap();
    assert_eq!(ok.bytes, docker, "exact bytes");
    assert_eq!(ok.digest, sha256(&docker));
}

/// A registry that answers `400 MANIFEST_BLOB_UNKNOWN` for a blob the repository holds (as
/// distribution's filesystem storage can while another client writes the same blob into the
/// repository; distribution/distribution issue 4489) gets the manifest again; a blob that is
/// really missing fails the push at once.
#[tokio::test]
async fn a_manifest_refused_for_a_blob_the_repository_holds_is_pushed_again() {
    let server = TestRegistry::start().await.unwrap();
    let direct = transport().registry(&server.url()).unwrap();
    let m = push_image(&direct, "app", "v1", 21, 3_000).await;
    let config = m.parse().unwrap().config.unwrap().digest;
    let lost = format!(
        r#"{{"errors":[{{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}},{{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"{config}"}}]}}"#
    );
    let proxy = Proxy::start(
        server.addr(),
        ProxyOptions::with_rules([FaultRule::new(FaultAction::Respond {
            status: 400,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Bytes::from(lost),
        })
        .method("PUT")
        .path_contains("/manifests/")
        .first(2)]),
    )
    .await
    .unwrap();
    let reg = transport().registry(&proxy.url()).unwrap();
    reg.put_manifest(&"app".repo(), &"v2".at(), &m)
        .await
        .expect("pushed once the blob is found in place");
    assert_eq!(proxy.count("PUT", "/manifests/"), 3);
    assert_eq!(proxy.count("HEAD", &format!("/blobs/{config}")), 2);
    let stored = direct
        .get_manifest(&"app".repo(), &"v2".at())
        .await
        .unwrap();
    assert_eq!(stored.bytes, m.bytes);

    // In a repository without the blobs, the registry's answer is the truth: one PUT.
    proxy.set_rules([]);
    proxy.clear_requests();
    let err = reg
        .put_manifest(&"other".repo(), &"v1".at(), &m)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("MANIFEST_BLOB_UNKNOWN"), "{err}");
    assert_eq!(proxy.count("PUT", "/manifests/"), 1);
}

/// A blob upload that fails is sent again as often as the target's transport retries a
/// request, with the transport's backoff; once those retries are spent, the copy fails with
/// what the target said.
#[tokio::test]
async fn a_failed_blob_upload_is_sent_as_often_as_the_transport_retries() {
    let (a, b) = tokio::join!(TestRegistry::start(), TestRegistry::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    let src = transport().registry(&a.url()).unwrap();
    let m = push_image(&src, "app", "v1", 41, 4_000).await;
    let layer = m.parse().unwrap().layers[0].digest.clone();
    let put_of_layer = format!("digest={}", layer.as_str().replace(':', "%3A"));
    let refuse = |n: Option<usize>| {
        let rule = FaultRule::new(FaultAction::status(503))
            .method("PUT")
            .path_contains(&put_of_layer);
        match n {
            Some(n) => rule.first(n),
            None => rule.every(),
        }
    };
    let proxy = Proxy::start(b.addr(), ProxyOptions::with_rules([refuse(Some(5))]))
        .await
        .unwrap();

    // Five failed uploads, six retries: the sixth retry lands.
    let dst = transport_with_retries(6).registry(&proxy.url()).unwrap();
    let report = Copies::new(&src, &dst).same("app:v1", "app:v1").await;
    assert_eq!(proxy.count("PUT", &put_of_layer), 6);
    let entry = report.blobs.iter().find(|e| e.digest == layer.as_str());
    assert_eq!(entry.map(|e| e.retries), Some(5), "{:?}", report.blobs);

    // Two retries, every upload refused: three uploads, then the target's answer.
    proxy.set_rules([refuse(None)]);
    proxy.clear_requests();
    let dst = transport_with_retries(2).registry(&proxy.url()).unwrap();
    let err = Copies::new(&src, &dst)
        .run("app:v1", "other:v1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransferError::Server { retries: 2, .. }),
        "the error counts the uploads sent again: {err}"
    );
    assert_eq!(proxy.count("PUT", &put_of_layer), 3);
}
