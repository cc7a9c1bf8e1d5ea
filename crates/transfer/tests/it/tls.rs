//! TLS: verification is always on unless a host is named; a private CA is trusted by file.

use acr_import_testsupport::AadEmulator;
use acr_import_transfer::{TransferError, Transport};

fn reached(r: Result<acr_import_transfer::PingInfo, TransferError>) -> bool {
    // The emulator is no registry: any HTTP answer proves the TLS handshake succeeded.
    match r {
        Ok(_) => true,
        Err(TransferError::Connection { .. }) => false,
        Err(e) => e.status().is_some(),
    }
}

#[tokio::test]
async fn self_signed_is_refused_unless_trusted_or_named() {
    let server = AadEmulator::builder().start().await.unwrap();
    let url = format!("https://127.0.0.1:{}", server.addr().port());

    let plain = Transport::builder()
        .proxy_from_env(false)
        .retry(acr_import_transfer::RetryPolicy::none())
        .build()
        .unwrap();
    let err = plain.registry(&url).unwrap().ping().await.unwrap_err();
    assert!(matches!(err, TransferError::Connection { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    server.write_ca_file(&ca).unwrap();
    let trusting = Transport::builder()
        .proxy_from_env(false)
        .ca_file(&ca)
        .build()
        .unwrap();
    assert!(reached(trusting.registry(&url).unwrap().ping().await));
    let by_name = format!("https://localhost:{}", server.addr().port());
    assert!(reached(trusting.registry(&by_name).unwrap().ping().await));
    // Without a scheme, a loopback host is tried over plain http by the first request
    // itself; a TLS server there is found out, and the request goes again over https.
    let bare = trusting
        .registry(&format!("127.0.0.1:{}", server.addr().port()))
        .unwrap();
    let answer = bare.ping().await;
    assert!(reached(answer), "reached over https without a scheme");
    let answer = bare.ping().await;
    assert!(reached(answer), "and again, with the scheme known");

    let named = Transport::builder()
        .proxy_from_env(false)
        .insecure_host("127.0.0.1")
        .build()
        .unwrap();
    assert!(reached(named.registry(&url).unwrap().ping().await));
    // Naming one host turns nothing off for another.
    let err = named.registry(&by_name).unwrap().ping().await.unwrap_err();
    assert!(matches!(err, TransferError::Connection { .. }), "{err}");

    // `host:port` names exactly that port: verification is off there, and only there.
    let port = server.addr().port();
    let with_port = Transport::builder()
        .proxy_from_env(false)
        .retry(acr_import_transfer::RetryPolicy::none())
        .insecure_host(format!("127.0.0.1:{port}"))
        .insecure_host(format!("LOCALHOST:{}", port.wrapping_add(1)))
        .build()
        .unwrap();
    assert!(
        reached(with_port.registry(&url).unwrap().ping().await),
        "127.0.0.1:{port} was named insecure"
    );
    let err = with_port
        .registry(&by_name)
        .unwrap()
        .ping()
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransferError::Connection { .. }) && err.to_string().contains("certificate"),
        "localhost was named with another port only: {err}"
    );
    // Without a scheme, a host named with its port is settled over https as well.
    let bare_named = with_port.registry(&format!("127.0.0.1:{port}")).unwrap();
    assert!(reached(bare_named.ping().await));

    let bad_ca = dir.path().join("empty.pem");
    std::fs::write(&bad_ca, "not a certificate").unwrap();
    let err = Transport::builder().ca_file(&bad_ca).build().unwrap_err();
    assert!(
        matches!(err, TransferError::Config(_)) && err.to_string().contains("empty.pem"),
        "{err}"
    );
}

#[tokio::test]
async fn https_goes_through_a_connect_proxy() {
    let server = AadEmulator::builder().start().await.unwrap();
    let proxy = acr_import_testsupport::ConnectProxy::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    server.write_ca_file(&ca).unwrap();
    let url = format!("https://127.0.0.1:{}", server.addr().port());
    let t = Transport::builder()
        .proxy(proxy.url())
        .ca_file(&ca)
        .build()
        .unwrap();
    assert!(
        reached(t.registry(&url).unwrap().ping().await),
        "TLS inside the tunnel still verifies"
    );
    let connects = proxy.connects();
    assert_eq!(connects.len(), 1, "{connects:?}");
    assert_eq!(connects[0].0, format!("127.0.0.1:{}", server.addr().port()));
    // Proxy credentials from the URL go in Proxy-Authorization, on the CONNECT only.
    let with_auth = format!(
        "http://user:pw@{}",
        proxy.url().trim_start_matches("http://")
    );
    let t = Transport::builder()
        .proxy(with_auth)
        .ca_file(&ca)
        .build()
        .unwrap();
    assert!(reached(t.registry(&url).unwrap().ping().await));
    assert!(
        proxy.connects().last().unwrap().1,
        "Proxy-Authorization sent"
    );
}
