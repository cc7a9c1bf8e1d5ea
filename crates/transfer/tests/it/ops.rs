//! Every operation against an anonymous registry.

use crate::Names;
use acr_import_testsupport::Registry as TestRegistry;
use acr_import_transfer::{ReferrersSource, TransferError, UploadStart, manifest};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::{data, push_image, sha256, transport};

#[tokio::test]
async fn ping_manifests_blobs_tags_delete() {
    let server = TestRegistry::start().await.unwrap();
    let reg = transport().registry(&server.url()).unwrap();
    let ping = reg.ping().await.unwrap();
    assert_eq!(ping.api_version.as_deref(), Some("registry/2.0"));

    let m = push_image(&reg, "team/app", "v1", 1, 100_000).await;
    let by_tag = reg
        .get_manifest(&"team/app".repo(), &"v1".at())
        .await
        .unwrap();
    assert_eq!(by_tag, m, "bytes, media type and digest round-trip exactly");
    let by_digest = reg
        .get_manifest(&"team/app".repo(), &m.digest.clone().into())
        .await
        .unwrap();
    assert_eq!(by_digest.bytes, m.bytes);
    let head = reg
        .head_manifest(&"team/app".repo(), &"v1".at())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.digest.as_ref(), Some(&m.digest));
    assert_eq!(head.media_type.as_deref(), Some(manifest::OCI_MANIFEST));
    assert!(
        reg.head_manifest(&"team/app".repo(), &"nope".at())
            .await
            .unwrap()
            .is_none()
    );
    let missing = reg
        .get_manifest(&"team/app".repo(), &"nope".at())
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    assert_eq!(missing.details().unwrap().code(), Some("MANIFEST_UNKNOWN"));

    let content = m.parse().unwrap();
    let layer = &content.layers[0];
    assert_eq!(
        reg.head_blob(&"team/app".repo(), &layer.digest)
            .await
            .unwrap(),
        Some(100_000)
    );
    let stream = reg
        .get_blob(&"team/app".repo(), &layer.digest, Some(layer.size), true)
        .await
        .unwrap();
    let got = stream.collect(1 << 20).await.unwrap();
    assert_eq!(got, data(1, 100_000));
    assert_eq!(
        reg.head_blob(&"team/app".repo(), &sha256(b"absent"))
            .await
            .unwrap(),
        None
    );

    for t in ["a", "b", "c", "d", "e"] {
        reg.put_manifest(&"team/app".repo(), &t.at(), &m)
            .await
            .unwrap();
    }
    let mut tags = reg.list_tags(&"team/app".repo(), Some(2)).await.unwrap();
    tags.sort();
    assert_eq!(
        tags,
        ["a", "b", "c", "d", "e", "v1"],
        "pagination followed to the end"
    );
    assert!(
        reg.catalog(Some(1))
            .await
            .unwrap()
            .contains(&"team/app".to_owned())
    );

    reg.delete_manifest(&"team/app".repo(), &m.digest)
        .await
        .unwrap();
    assert!(
        reg.get_manifest(&"team/app".repo(), &"v1".at())
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn chunked_upload_and_mounts() {
    let server = TestRegistry::start().await.unwrap();
    let reg = transport().registry(&server.url()).unwrap();
    let blob = data(7, 300_000);
    let d = sha256(&blob);
    reg.push_blob(&"src/a".repo(), &d, blob.clone(), 64 * 1024)
        .await
        .unwrap();
    let back = reg
        .get_blob(&"src/a".repo(), &d, Some(300_000), true)
        .await
        .unwrap()
        .collect(1 << 20)
        .await
        .unwrap();
    assert_eq!(back, blob);

    // Same registry, another repository: mounted, no bytes sent.
    let start = reg
        .start_upload(&"dst/b".repo(), Some((&d, &"src/a".repo())))
        .await
        .unwrap();
    assert!(matches!(start, UploadStart::Mounted));
    assert_eq!(
        reg.head_blob(&"dst/b".repo(), &d).await.unwrap(),
        Some(300_000)
    );

    // Mounting what the source does not hold opens an upload session instead.
    let other = data(8, 1000);
    let od = sha256(&other);
    match reg
        .start_upload(&"dst/b".repo(), Some((&od, &"src/a".repo())))
        .await
        .unwrap()
    {
        UploadStart::Session(s) => {
            let stream = futures_util::stream::iter([
                Ok::<_, TransferError>(other.slice(..500)),
                Ok(other.slice(500..)),
            ]);
            reg.put_blob(s, &od, 1000, stream).await.unwrap();
        }
        UploadStart::Mounted => panic!("mounted a blob the source does not hold"),
    }
    assert_eq!(
        reg.head_blob(&"dst/b".repo(), &od).await.unwrap(),
        Some(1000)
    );

    // A wrong digest on PUT is refused by the registry, and nothing is stored.
    let UploadStart::Session(s) = reg.start_upload(&"dst/b".repo(), None).await.unwrap() else {
        panic!()
    };
    let wrong = sha256(b"not this");
    let err = reg
        .put_blob_bytes(s, &wrong, Bytes::from_static(b"some bytes"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert_eq!(reg.head_blob(&"dst/b".repo(), &wrong).await.unwrap(), None);
}

#[tokio::test]
async fn referrers_fall_back_to_the_tag_schema() {
    let server = TestRegistry::start().await.unwrap();
    let reg = transport().registry(&server.url()).unwrap();
    let subject = push_image(&reg, "app", "v1", 3, 10).await;
    let none = reg
        .referrers(&"app".repo(), &subject.digest, None)
        .await
        .unwrap();
    assert!(none.descriptors.is_empty());
    assert_eq!(none.source, ReferrersSource::TagSchema);

    let empty = Bytes::from_static(b"{}");
    let ed = sha256(&empty);
    reg.push_blob(&"app".repo(), &ed, empty, u64::MAX)
        .await
        .unwrap();
    let sig = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{ed}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{ed}","size":2}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{}}}}}"#,
        subject.digest,
        subject.bytes.len()
    );
    let sig = acr_import_transfer::Manifest {
        digest: sha256(sig.as_bytes()),
        bytes: Bytes::from(sig),
        media_type: manifest::OCI_MANIFEST.to_owned(),
    };
    reg.put_manifest(&"app".repo(), &sig.digest.clone().into(), &sig)
        .await
        .unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"artifactType":"application/vnd.example.sig"}}]}}"#,
        sig.digest,
        sig.bytes.len()
    );
    let index = acr_import_transfer::Manifest {
        digest: sha256(index.as_bytes()),
        bytes: Bytes::from(index),
        media_type: manifest::OCI_INDEX.to_owned(),
    };
    reg.put_manifest(
        &"app".repo(),
        &subject.digest.referrers_tag().clone().into(),
        &index,
    )
    .await
    .unwrap();

    let found = reg
        .referrers(&"app".repo(), &subject.digest, None)
        .await
        .unwrap();
    assert_eq!(found.source, ReferrersSource::TagSchema);
    assert_eq!(found.descriptors.len(), 1);
    assert_eq!(found.descriptors[0].digest, sig.digest);
    assert_eq!(found.fallback_index.unwrap().digest, index.digest);
    let filtered = reg
        .referrers(
            &"app".repo(),
            &subject.digest,
            Some("application/vnd.other"),
        )
        .await
        .unwrap();
    assert!(filtered.descriptors.is_empty());
}

#[tokio::test]
async fn blob_stream_is_flat_and_streams() {
    let server = TestRegistry::start().await.unwrap();
    let reg = transport().registry(&server.url()).unwrap();
    let blob = data(9, 8 * 1024 * 1024);
    let d = sha256(&blob);
    reg.push_blob(&"big".repo(), &d, blob.clone(), 2 * 1024 * 1024)
        .await
        .unwrap();
    let mut stream = reg
        .get_blob(&"big".repo(), &d, Some(blob.len() as u64), true)
        .await
        .unwrap();
    let mut chunks = 0;
    let mut total = 0;
    while let Some(c) = stream.next().await {
        let c = c.unwrap();
        assert!(c.len() <= 1024 * 1024, "frames stay small: {}", c.len());
        total += c.len();
        chunks += 1;
    }
    assert_eq!(total, blob.len());
    assert!(chunks > 8);
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback() {
    let t = transport();
    let err = t.registry("http://registry.example.com").unwrap_err();
    assert!(matches!(err, TransferError::Refused { .. }), "{err}");
    assert!(t.registry("http://127.0.0.1:5000").is_ok());
    assert!(t.registry("http://[::1]:5000").is_ok());
    let named = acr_import_transfer::Transport::builder()
        .insecure_host("registry.example.com")
        .build()
        .unwrap();
    assert!(named.registry("http://registry.example.com").is_ok());
    assert!(matches!(t.registry("a/b"), Err(TransferError::Config(_))));
}

#[tokio::test]
async fn loopback_without_scheme_falls_back_to_http() {
    let server = TestRegistry::start().await.unwrap();
    let reg = transport().registry(&server.host()).unwrap();
    let ping = reg.ping().await.unwrap();
    assert_eq!(ping.scheme, "http");
}

/// A first page (`body`) whose `Link` names `link` as the next page, served by a proxy in
/// front of a real registry; every later request goes through to the registry.
async fn first_page_links_to(
    server: &TestRegistry,
    path: &str,
    body: &'static str,
    link: &str,
) -> acr_import_testsupport::Proxy {
    use acr_import_testsupport::{FaultAction, FaultRule, Proxy, ProxyOptions};
    let page = FaultAction::Respond {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Link".into(), format!("{link}; rel=\"next\"")),
        ],
        body: Bytes::from_static(body.as_bytes()),
    };
    let rule = FaultRule::new(page).path_contains(path).nth(1);
    Proxy::start(server.addr(), ProxyOptions::with_rules([rule]))
        .await
        .unwrap()
}

#[tokio::test]
async fn pagination_links_stay_on_the_listing_endpoint() {
    let server = TestRegistry::start().await.unwrap();
    push_image(
        &transport().registry(&server.url()).unwrap(),
        "app",
        "v1",
        9,
        10,
    )
    .await;
    // Userinfo tricks, another host, another listing: refused, never requested.
    for link in [
        "<@evil.example/x>",
        "<//evil.example/v2/_catalog?n=1>",
        "<http://evil.example/v2/_catalog?n=1>",
        "</v2/app/tags/list?n=1>",
    ] {
        let proxy =
            first_page_links_to(&server, "/v2/_catalog", r#"{"repositories":["a"]}"#, link).await;
        let reg = transport().registry(&proxy.host()).unwrap();
        let err = reg.catalog(Some(1)).await.unwrap_err();
        assert!(
            matches!(err, TransferError::Refused { .. }) && err.to_string().contains("Link"),
            "{link}: {err}"
        );
        assert_eq!(proxy.requests().len(), 1, "{link}: only the first page");
    }
    // The same endpoint with other query parameters is the next page.
    let proxy = first_page_links_to(
        &server,
        "/tags/list",
        r#"{"name":"app","tags":["v0"]}"#,
        "</v2/app/tags/list?n=1&last=v0>",
    )
    .await;
    let reg = transport().registry(&proxy.host()).unwrap();
    assert_eq!(
        reg.list_tags(&"app".repo(), Some(1)).await.unwrap(),
        ["v0", "v1"]
    );
    assert_eq!(proxy.requests()[1].path, "/v2/app/tags/list?n=1&last=v0");
}
