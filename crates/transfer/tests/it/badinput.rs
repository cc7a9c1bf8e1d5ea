//! Hostile or broken sources: each gets a clear typed error and moves no target tag.

use crate::Names;
use std::time::Duration;

use acr_import_testsupport::{
    FaultAction, FaultRule, Proxy, ProxyOptions, Registry as TestRegistry,
};
use acr_import_transfer::{Copier, CopyOptions, RetryPolicy, TransferError, Transport, manifest};
use bytes::Bytes;

use crate::fixtures::*;
use crate::{data, sha256, source, target, transport};

struct Bench {
    _src: TestRegistry,
    _dst: TestRegistry,
    proxy: Proxy,
    src: acr_import_transfer::Registry,
    dst: acr_import_transfer::Registry,
    direct: acr_import_transfer::Registry,
}

async fn bench_with(t: Transport) -> Bench {
    let (a, b) = tokio::join!(TestRegistry::start(), TestRegistry::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    let proxy = Proxy::start(a.addr(), ProxyOptions::default())
        .await
        .unwrap();
    let src = t.registry(&proxy.url()).unwrap();
    let dst = t.registry(&b.url()).unwrap();
    let direct = t.registry(&a.url()).unwrap();
    Bench {
        _src: a,
        _dst: b,
        proxy,
        src,
        dst,
        direct,
    }
}

impl Bench {
    async fn copy(
        &self,
        repo: &str,
        reference: &str,
        options: CopyOptions,
    ) -> Result<(), TransferError> {
        let r = Copier::new(options)
            .copy(
                &source(&self.src, repo, reference),
                &[target(&self.dst, "out", Some("t"))],
            )
            .await
            .map(|_| ());
        assert!(
            self.dst
                .head_manifest(&"out".repo(), &"t".at())
                .await
                .unwrap()
                .is_none(),
            "no target tag moved"
        );
        r
    }

    fn serve(&self, path: &str, media_type: &str, body: Bytes) {
        self.proxy.add_rule(
            FaultRule::new(FaultAction::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), media_type.into())],
                body,
            })
            .method("GET")
            .path_contains(path)
            .every(),
        );
    }
}

fn index_of(entries: Vec<serde_json::Value>) -> Bytes {
    Bytes::from(serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": entries})).unwrap())
}

#[tokio::test]
async fn self_listing_deep_and_wide_indexes() {
    let b = bench_with(transport()).await;
    // An index whose child, fetched by digest, is the index itself: the bytes do not hash to
    // the digest they were asked for.
    let fake_child = sha256(b"whatever");
    let looping = index_of(vec![
        serde_json::json!({"mediaType": manifest::OCI_INDEX, "digest": fake_child.to_string(), "size": 100}),
    ]);
    b.serve("/manifests/loop", manifest::OCI_INDEX, looping.clone());
    b.serve(
        &format!("/manifests/{fake_child}"),
        manifest::OCI_INDEX,
        looping,
    );
    let err = b
        .copy("x", "loop", CopyOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransferError::DigestMismatch { .. } | TransferError::SizeMismatch { .. }
        ),
        "{err}"
    );

    // Ten indexes nested in one another: past the depth limit.
    let mut inner = image(
        &b.direct,
        "deep",
        "linux",
        "amd64",
        &[&Blob::layer(1, 10)],
        false,
    )
    .await
    .unwrap();
    for _ in 0..10 {
        inner = index(&b.direct, "deep", None, &[(&inner, None, None)], false)
            .await
            .unwrap();
    }
    b.direct
        .put_manifest(&"deep".repo(), &"v1".at(), &inner)
        .await
        .unwrap();
    let err = b
        .copy("deep", "v1", CopyOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransferError::GraphTooDeep { limit: 8 }),
        "{err}"
    );
    assert!(err.to_string().contains("deeper than 8"));

    // An index of 10 000 children: refused before fetching them.
    let wide: Vec<serde_json::Value> = (0..10_000u64)
        .map(|i| serde_json::json!({"mediaType": manifest::OCI_MANIFEST, "digest": sha256(&i.to_le_bytes()).to_string(), "size": 500, "platform": {"os": "linux", "architecture": "amd64"}}))
        .collect();
    b.proxy.clear_requests();
    b.serve("/manifests/wide", manifest::OCI_INDEX, index_of(wide));
    let err = b
        .copy("x", "wide", CopyOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransferError::TooManyManifests { limit: 1000 }),
        "{err}"
    );
    assert!(
        b.proxy.count("GET", "/manifests/sha256:") == 0,
        "no child was fetched"
    );
}

#[tokio::test]
async fn descriptors_that_lie_about_size_and_unknown_digests() {
    let b = bench_with(transport()).await;
    let layer = Blob::layer(2, 2000);
    let config = Blob {
        bytes: Bytes::from_static(br#"{"os":"linux","architecture":"amd64"}"#),
        media_type: "application/vnd.oci.image.config.v1+json",
    };
    push_blobs(&b.direct, "liar", &[&layer, &config])
        .await
        .unwrap();
    for claimed in [1000u64, 3000] {
        let value = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST, "config": config.descriptor(),
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(&layer.bytes).to_string(), "size": claimed}]});
        let m = manifest_of(&value, manifest::OCI_MANIFEST).unwrap();
        b.direct
            .put_manifest(&"liar".repo(), &format!("s{claimed}").at(), &m)
            .await
            .unwrap();
        let err = b
            .copy("liar", &format!("s{claimed}"), CopyOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, TransferError::SizeMismatch { expected, actual: 2000, .. } if expected == claimed),
            "{claimed}: {err}"
        );
    }

    for (name, digest) in [
        ("md5", "md5:d41d8cd98f00b204e9800998ecf8427e".to_owned()),
        (
            "upper",
            format!("sha256:{}", sha256(b"x").encoded().to_uppercase()),
        ),
        ("short", "sha256:abc".to_owned()),
    ] {
        let body = Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x","digest":"{digest}","size":1}},"layers":[]}}"#,
            manifest::OCI_MANIFEST
        ));
        b.serve(&format!("/manifests/{name}"), manifest::OCI_MANIFEST, body);
        let err = b.copy("x", name, CopyOptions::default()).await.unwrap_err();
        assert!(
            matches!(err, TransferError::InvalidManifest { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains("digest"), "{name}: {err}");
    }
}

#[tokio::test]
async fn endless_streams_and_oversized_headers() {
    let fast = Transport::builder()
        .idle_timeout(Duration::from_millis(400))
        .retry(RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        })
        .proxy_from_env(false)
        .build()
        .unwrap();
    let b = bench_with(fast).await;
    let m = image(
        &b.direct,
        "slow",
        "linux",
        "amd64",
        &[&Blob {
            bytes: data(3, 100_000),
            media_type: OCI_LAYER,
        }],
        false,
    )
    .await
    .unwrap();
    b.direct
        .put_manifest(&"slow".repo(), &"v1".at(), &m)
        .await
        .unwrap();
    // A blob body that stops and never finishes: the idle timeout ends each attempt.
    b.proxy.add_rule(
        FaultRule::new(FaultAction::Stall {
            duration: Duration::from_secs(60),
            after_bytes: Some(1000),
        })
        .method("GET")
        .path_contains("/blobs/")
        .every(),
    );
    let err = b
        .copy("slow", "v1", CopyOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransferError::Connection { .. } | TransferError::Timeout { .. }
        ),
        "{err}"
    );

    // Response headers far beyond what a client should buffer.
    b.proxy.clear_rules();
    b.proxy.add_rule(
        FaultRule::new(FaultAction::Respond {
            status: 200,
            headers: vec![("X-Huge".into(), "a".repeat(1 << 20))],
            body: Bytes::new(),
        })
        .method("GET")
        .path_contains("/manifests/")
        .every(),
    );
    let err = b
        .copy("slow", "v1", CopyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Connection { .. }), "{err}");
}
