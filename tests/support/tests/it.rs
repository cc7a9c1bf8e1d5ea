//! Self-tests of the test-support crate against the real distribution registry.

use std::time::{Duration, Instant};

use acr_import_testsupport::{
    Access, FaultAction, FaultRule, Grant, LatencyProxy, Proxy, ProxyOptions, Registry,
    TokenServer, basic_auth, decode_claims_unverified, seed, sha256_digest,
};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A response read completely (or up to a transport error).
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
    /// Set when the body ended in a transport error (connection cut).
    body_error: Option<String>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Splits `http://host:port/path?q` into (`host:port`, `/path?q`).
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

/// One request over a fresh HTTP/1.1 connection. Errors only if no
/// response head arrives; body errors land in `Resp::body_error`.
async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> anyhow::Result<Resp> {
    let (host, path) = split_url(url);
    let stream = TcpStream::connect(&host).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes())?)
        .uri(path)
        .header("Host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(body.into()))?)
        .await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut incoming = resp.into_body();
    let mut body = Vec::new();
    let mut body_error = None;
    while let Some(frame) = incoming.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    body.extend_from_slice(d);
                }
            }
            Err(e) => {
                body_error = Some(e.to_string());
                break;
            }
        }
    }
    Ok(Resp {
        status,
        headers,
        body,
        body_error,
    })
}

/// Resolves a `Location` header against `base` (`http://host:port`).
fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}

/// Monolithic blob upload: POST then PUT `<location>&digest=`. Returns the
/// upload `Location` (for inspection).
async fn push_blob(
    base: &str,
    repo: &str,
    data: &[u8],
    auth: Option<&str>,
) -> anyhow::Result<String> {
    let mut h: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = auth {
        h.push(("Authorization", a));
    }
    let r = send(
        "POST",
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        &h,
        Bytes::new(),
    )
    .await?;
    anyhow::ensure!(
        r.status == 202,
        "POST upload: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    let location = r.header("location").expect("Location").to_string();
    let digest = sha256_digest(data);
    let sep = if location.contains('?') { '&' } else { '?' };
    let put_url = format!("{}{sep}digest={digest}", resolve(base, &location));
    let mut h2 = h.clone();
    h2.push(("Content-Type", "application/octet-stream"));
    let r = send("PUT", &put_url, &h2, Bytes::copy_from_slice(data)).await?;
    anyhow::ensure!(
        r.status == 201,
        "PUT blob: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    Ok(location)
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

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

fn test_blob(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
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
    let r = send(
        "GET",
        &format!("{base}/v2/team/app/blobs/{ldigest}"),
        &[],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, layer);
    assert_eq!(r.header("docker-content-digest"), Some(ldigest.as_str()));

    // Same storage and port after a restart.
    let addr = reg.addr();
    reg.restart().await?;
    assert_eq!(reg.addr(), addr);
    let r = send(
        "GET",
        &format!("{base}/v2/team/app/blobs/{ldigest}"),
        &[],
        Bytes::new(),
    )
    .await?;
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
    let r = send("GET", &format!("{}/v2/", reg.url()), &[], Bytes::new()).await?;
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Basic "), "{challenge}");

    let good = basic_auth("alice", "s3cret");
    let r = send(
        "GET",
        &format!("{}/v2/", reg.url()),
        &[("Authorization", &good)],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 200);
    let bad = basic_auth("alice", "wrong");
    let r = send(
        "GET",
        &format!("{}/v2/", reg.url()),
        &[("Authorization", &bad)],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 401);
    Ok(())
}

#[tokio::test]
async fn seeding_pushes_exact_bytes_with_its_own_client() -> anyhow::Result<()> {
    assert!(
        seed::Seeder::new("example.com:443").is_err(),
        "loopback only"
    );
    let reg = Registry::builder()
        .htpasswd(&[("alice", "s3cret")])
        .start()
        .await?;
    let anonymous = seed::Seeder::new(&reg.host())?;
    let refused = seed::multi_arch(&anonymous, "lib/app", "1.0", 3).await;
    assert!(refused.is_err(), "a 401 fails the seeding");
    let seeder = anonymous.basic("alice", "s3cret");
    let top = seed::multi_arch(&seeder, "lib/app", "1.0", 3).await?;
    let sig_type = "application/vnd.example.sig";
    let sig = seed::artifact(&seeder, "lib/app", sig_type, 9, Some(&top)).await?;
    let fallback = seed::attach(&seeder, "lib/app", &top, &[(&sig, sig_type)]).await?;

    let auth = basic_auth("alice", "s3cret");
    let base = format!("{}/v2/lib/app", reg.url());
    let get = |path: String, accept: &'static str| {
        let auth = auth.clone();
        async move {
            let headers = [("Authorization", auth.as_str()), ("Accept", accept)];
            send("GET", &path, &headers, Bytes::new()).await
        }
    };
    for (reference, m) in [("1.0".to_owned(), &top), (top.referrers_tag(), &fallback)] {
        let r = get(format!("{base}/manifests/{reference}"), seed::OCI_INDEX).await?;
        assert_eq!(r.status, 200, "{reference}");
        assert_eq!(r.body, m.bytes, "{reference}: the bytes seeded");
        assert_eq!(r.header("docker-content-digest"), Some(m.digest.as_str()));
    }
    let index: serde_json::Value = serde_json::from_slice(&top.bytes)?;
    let children = index["manifests"].as_array().expect("manifests");
    assert_eq!(children.len(), 4, "three platforms and an attestation");
    for child in children {
        let digest = child["digest"].as_str().expect("digest");
        let r = get(format!("{base}/manifests/{digest}"), OCI_MANIFEST).await?;
        assert_eq!(r.status, 200, "{digest}");
        assert_eq!(sha256_digest(&r.body), digest);
        let image: serde_json::Value = serde_json::from_slice(&r.body)?;
        let layers = image["layers"].as_array().expect("layers");
        for blob in std::iter::once(&image["config"]).chain(layers) {
            let digest = blob["digest"].as_str().expect("digest");
            let r = get(format!("{base}/blobs/{digest}"), "*/*").await?;
            assert_eq!(sha256_digest(&r.body), digest, "blob {digest}");
            assert_eq!(Some(r.body.len() as u64), blob["size"].as_u64());
        }
    }
    Ok(())
}

async fn get_token(ts: &TokenServer, scope: &str, auth: Option<&str>) -> anyhow::Result<Resp> {
    let url = format!(
        "{}?service={}&scope={}",
        ts.realm(),
        acr_import_testsupport::form_encode(ts.service()),
        acr_import_testsupport::form_encode(scope)
    );
    let h: Vec<(&str, &str)> = auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
    send("GET", &url, &h, Bytes::new()).await
}

fn token_of(r: &Resp) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("token json");
    v["token"].as_str().expect("token").to_string()
}

#[tokio::test]
async fn token_registry_accepts_our_tokens_and_enforces_scope() -> anyhow::Result<()> {
    let ts = TokenServer::builder().default_users().start().await?;
    let reg = Registry::builder().token_auth(&ts).start().await?;
    let base = reg.url();

    // Challenge names our realm and service.
    let r = send("GET", &format!("{base}/v2/"), &[], Bytes::new()).await?;
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap_or_default().to_string();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!("realm=\"{}\"", ts.realm())),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("service=\"{}\"", ts.service())),
        "{challenge}"
    );

    // alice: pull+push; the self-signed x5c certificate is accepted.
    let alice = basic_auth(TokenServer::ALICE.0, TokenServer::ALICE.1);
    let r = get_token(&ts, "repository:team/app:pull,push", Some(&alice)).await?;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    assert_eq!(v["token"], v["access_token"]);
    assert_eq!(v["expires_in"], 300);
    assert!(v["issued_at"].as_str().is_some_and(|s| s.ends_with('Z')));
    assert!(v.get("refresh_token").is_none());
    let token = token_of(&r);
    let bearer = format!("Bearer {token}");
    let blob = test_blob(5000, 1);
    push_blob(&base, "team/app", &blob, Some(&bearer)).await?;
    let d = sha256_digest(&blob);
    let r = send(
        "GET",
        &format!("{base}/v2/team/app/blobs/{d}"),
        &[("Authorization", &bearer)],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, blob);
    let r = send(
        "GET",
        &format!("{base}/v2/"),
        &[("Authorization", &bearer)],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 200);

    // reader asks for pull,push, gets pull only; push is refused.
    let reader = basic_auth(TokenServer::READER.0, TokenServer::READER.1);
    let r = get_token(&ts, "repository:team/app:pull,push", Some(&reader)).await?;
    assert_eq!(r.status, 200);
    let reader_token = token_of(&r);
    let claims = decode_claims_unverified(&reader_token)?;
    assert_eq!(
        claims["access"],
        serde_json::json!([{"type":"repository","name":"team/app","actions":["pull"]}])
    );
    let rb = format!("Bearer {reader_token}");
    let r = send(
        "GET",
        &format!("{base}/v2/team/app/blobs/{d}"),
        &[("Authorization", &rb)],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 200);
    let r = send(
        "POST",
        &format!("{base}/v2/team/app/blobs/uploads/"),
        &[("Authorization", &rb)],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 401, "distribution 2.8 answers 401, not 403");
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    // distribution lists the actions in random order (a Go map).
    assert!(
        challenge.contains("scope=\"repository:team/app:pull,push\"")
            || challenge.contains("scope=\"repository:team/app:push,pull\""),
        "{challenge}"
    );

    // Wrong password and unknown service.
    let r = get_token(
        &ts,
        "repository:team/app:pull",
        Some(&basic_auth("alice", "nope")),
    )
    .await?;
    assert_eq!(r.status, 401);
    let r = send(
        "GET",
        &format!("{}?service=other", ts.realm()),
        &[],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 400);

    // Anonymous: a token with no access, refused by the registry.
    let r = get_token(&ts, "repository:team/app:pull", None).await?;
    assert_eq!(r.status, 200);
    let anon = token_of(&r);
    assert_eq!(
        decode_claims_unverified(&anon)?["access"],
        serde_json::json!([])
    );
    let r = send(
        "GET",
        &format!("{base}/v2/team/app/blobs/{d}"),
        &[("Authorization", &format!("Bearer {anon}"))],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 401);

    // Expiry: distribution allows 60 s of leeway past exp.
    let blob_url = format!("{base}/v2/team/app/blobs/{d}");
    let mut claims = ts.issuer().claims(
        "alice",
        &[Access::repository("team/app", &["pull"])],
        Duration::from_secs(1),
    );
    claims["exp"] = serde_json::json!(claims["iat"].as_i64().unwrap_or(0) - 30);
    let within_leeway = ts.issuer().sign_claims(&claims)?;
    let r = send(
        "GET",
        &blob_url,
        &[("Authorization", &format!("Bearer {within_leeway}"))],
        Bytes::new(),
    )
    .await?;
    assert_eq!(
        r.status, 200,
        "a token 30 s past exp is still accepted (60 s leeway)"
    );
    claims["exp"] = serde_json::json!(claims["iat"].as_i64().unwrap_or(0) - 90);
    let past_leeway = ts.issuer().sign_claims(&claims)?;
    let r = send(
        "GET",
        &blob_url,
        &[("Authorization", &format!("Bearer {past_leeway}"))],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 401, "a token 90 s past exp is refused");
    assert!(
        r.header("www-authenticate")
            .unwrap_or_default()
            .contains("error=\"invalid_token\"")
    );
    // expires_in says 300 s, but exp lies 120 s in the past.
    ts.set_expiry_skew(-420);
    let r = get_token(&ts, "repository:team/app:pull", Some(&alice)).await?;
    let expired = token_of(&r);
    let r = send(
        "GET",
        &blob_url,
        &[("Authorization", &format!("Bearer {expired}"))],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 401);
    ts.set_expiry_skew(0);

    // The log records what happened.
    let log = ts.requests();
    assert!(log.iter().any(|r| r.username.as_deref() == Some("reader")
        && r.granted == vec![Access::repository("team/app", &["pull"])]));
    assert!(log.iter().any(|r| r.status == 401 && r.had_authorization));
    assert!(log.iter().any(|r| r.status == 400));
    Ok(())
}

#[tokio::test]
async fn token_server_oauth_post_and_refresh() -> anyhow::Result<()> {
    let ts = TokenServer::builder()
        .user("bob", "pw", [Grant::repository("bob/*", &["pull", "push"])])
        .anonymous([Grant::repository("public/*", &["pull"])])
        .token_lifetime(Duration::from_secs(42))
        .start()
        .await?;
    let form = format!(
        "grant_type=password&service={}&client_id=test&access_type=offline&username=bob&password=pw&scope={}",
        acr_import_testsupport::form_encode(ts.service()),
        acr_import_testsupport::form_encode(
            "repository:bob/x:pull,push,delete repository:other:pull"
        )
    );
    let ct = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = send("POST", &ts.realm(), &ct, form).await?;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    assert_eq!(v["expires_in"], 42);
    let rt = v["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_string();
    let claims = ts
        .issuer()
        .verify(v["access_token"].as_str().expect("token"))?;
    assert_eq!(claims["sub"], "bob");
    assert_eq!(
        claims["access"],
        serde_json::json!([{"type":"repository","name":"bob/x","actions":["pull","push"]}])
    );

    let form = format!(
        "grant_type=refresh_token&service={}&client_id=test&refresh_token={rt}&scope=repository:bob/y:pull",
        acr_import_testsupport::form_encode(ts.service())
    );
    let r = send("POST", &ts.realm(), &ct, form.clone()).await?;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    assert_eq!(
        decode_claims_unverified(v["token"].as_str().expect("token"))?["sub"],
        "bob"
    );

    ts.fail_next(503, "try later");
    let r = send("POST", &ts.realm(), &ct, form.clone()).await?;
    assert_eq!((r.status, r.body.as_slice()), (503, &b"try later"[..]));

    assert_eq!(ts.refresh_token_count(), 1);
    ts.revoke_refresh_tokens();
    let r = send("POST", &ts.realm(), &ct, form).await?;
    assert_eq!(r.status, 401);

    let r = send(
        "POST",
        &ts.realm(),
        &ct,
        format!(
            "grant_type=password&service={}&username=bob&password=bad",
            ts.service()
        ),
    )
    .await?;
    assert_eq!(r.status, 401);
    let r = send(
        "POST",
        &ts.realm(),
        &ct,
        format!("grant_type=magic&service={}", ts.service()),
    )
    .await?;
    assert_eq!(r.status, 400);

    // Anonymous GET gets the anonymous grants only.
    let r = get_token(&ts, "repository:public/a:pull,push", None).await?;
    let anon = decode_claims_unverified(&token_of(&r))?;
    assert_eq!(
        anon["access"],
        serde_json::json!([{"type":"repository","name":"public/a","actions":["pull"]}])
    );
    ts.set_anonymous(None);
    let r = get_token(&ts, "repository:public/a:pull", None).await?;
    assert_eq!(r.status, 401);

    let log = ts.requests();
    assert_eq!(log.len(), ts.request_count());
    assert!(log[0].offline && log[0].grant_type.as_deref() == Some("password"));
    assert!(
        log[0]
            .params
            .iter()
            .any(|(k, v)| k == "password" && v == "<redacted>")
    );
    assert_eq!(log[0].requested.len(), 2);
    Ok(())
}

#[tokio::test]
async fn proxy_forwards_logs_and_injects_faults() -> anyhow::Result<()> {
    let reg = Registry::start().await?;
    let proxy = Proxy::start(reg.addr(), ProxyOptions::default()).await?;
    let pbase = proxy.url();

    // Plain forwarding; Host is kept so Location points back at the proxy.
    let r = send("GET", &format!("{pbase}/v2/"), &[], Bytes::new()).await?;
    assert_eq!(r.status, 200);
    let blob = test_blob(200_000, 3);
    let location = push_blob(&pbase, "p/app", &blob, None).await?;
    assert!(
        location.starts_with(&format!("{pbase}/v2/p/app/blobs/uploads/")),
        "{location}"
    );
    let d = sha256_digest(&blob);
    let blob_url = format!("{pbase}/v2/p/app/blobs/{d}");
    let r = send(
        "GET",
        &blob_url,
        &[("Authorization", "Bearer x")],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, blob);

    let log = proxy.requests();
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, "/v2/");
    assert_eq!(log[0].status, Some(200));
    let put = log.iter().find(|r| r.method == "PUT").expect("PUT logged");
    assert_eq!(put.request_body_bytes, blob.len() as u64);
    assert_eq!(put.status, Some(201));
    let get = log.last().expect("GET logged");
    assert_eq!(get.response_body_bytes, blob.len() as u64);
    assert!(get.completed && get.forwarded && get.has_authorization());
    assert_eq!(proxy.count("GET", "/blobs/"), 1);
    assert_eq!(proxy.count("", "/v2/p/app/"), 3);
    assert!(proxy.saw_authorization());

    // FlipByte alters exactly one byte.
    proxy.add_rule(
        FaultRule::new(FaultAction::FlipByte { offset: 100_001 })
            .method("GET")
            .path_contains("/blobs/")
            .nth(1)
            .label("flip"),
    );
    let r = send("GET", &blob_url, &[], Bytes::new()).await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), blob.len());
    let diffs: Vec<usize> = (0..blob.len()).filter(|&i| r.body[i] != blob[i]).collect();
    assert_eq!(diffs, vec![100_001]);
    assert_eq!(proxy.fired("flip"), 1);
    let r = send("GET", &blob_url, &[], Bytes::new()).await?;
    assert_eq!(r.body, blob, "nth(1) fires once");

    // 429 with Retry-After, not forwarded.
    proxy.set_rules([FaultRule::new(FaultAction::too_many_requests(1))
        .method("GET")
        .path_contains("/blobs/")]);
    let before = proxy.requests().len();
    let r = send("GET", &blob_url, &[], Bytes::new()).await?;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    let rec = &proxy.requests()[before];
    assert!(!rec.forwarded && rec.status == Some(429) && rec.fault.is_some());

    // CutAfter: headers and 1000 bytes, then the connection drops.
    proxy.set_rules([
        FaultRule::new(FaultAction::CutAfter { bytes: 1000 }).path_contains("/blobs/")
    ]);
    let r = send("GET", &blob_url, &[], Bytes::new()).await?;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(blob.len().to_string().as_str())
    );
    assert_eq!(r.body, &blob[..1000]);
    assert!(r.body_error.is_some(), "connection should be cut");

    // Truncate: all but the last 10 bytes.
    proxy.set_rules([
        FaultRule::new(FaultAction::Truncate { missing: 10 }).path_contains("/blobs/")
    ]);
    let r = send("GET", &blob_url, &[], Bytes::new()).await?;
    assert_eq!(r.body, &blob[..blob.len() - 10]);
    assert!(r.body_error.is_some());

    // Stall mid-body.
    proxy.set_rules([FaultRule::new(FaultAction::Stall {
        duration: Duration::from_millis(300),
        after_bytes: Some(10),
    })
    .path_contains("/blobs/")]);
    let t = Instant::now();
    let r = send("GET", &blob_url, &[], Bytes::new()).await?;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.body, blob);

    // Stall before forwarding, then a dropped connection.
    proxy.set_rules([
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
    let r = send("GET", &blob_url, &[], Bytes::new()).await?;
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(r.body, blob);
    assert!(send("GET", &blob_url, &[], Bytes::new()).await.is_err());

    // Redirect and Location rewrite.
    proxy.set_rules([
        FaultRule::new(FaultAction::redirect(307, "http://127.0.0.1:1/elsewhere"))
            .path_contains("/blobs/sha256"),
    ]);
    let r = send("GET", &blob_url, &[], Bytes::new()).await?;
    assert_eq!(
        (r.status, r.header("location")),
        (307, Some("http://127.0.0.1:1/elsewhere"))
    );
    proxy.set_rules([FaultRule::new(FaultAction::RewriteLocation {
        to_base: "http://127.0.0.1:9".into(),
    })
    .method("POST")]);
    let r = send(
        "POST",
        &format!("{pbase}/v2/p/app/blobs/uploads/"),
        &[],
        Bytes::new(),
    )
    .await?;
    assert_eq!(r.status, 202);
    assert!(
        r.header("location")
            .unwrap_or_default()
            .starts_with("http://127.0.0.1:9/v2/p/app/blobs/uploads/")
    );

    // Reset during upload: nothing reaches the registry.
    proxy.set_rules([
        FaultRule::new(FaultAction::ResetDuringUpload { after_bytes: 1 }).method("PUT"),
    ]);
    let r = send(
        "POST",
        &format!("{pbase}/v2/p/app/blobs/uploads/"),
        &[],
        Bytes::new(),
    )
    .await?;
    let loc = resolve(&pbase, r.header("location").expect("location"));
    let big = test_blob(2_000_000, 9);
    let res = send(
        "PUT",
        &format!("{loc}&digest={}", sha256_digest(&big)),
        &[],
        big.clone(),
    )
    .await;
    assert!(res.is_err(), "the connection should be reset, got {res:?}");
    let last = proxy.requests().pop().expect("logged");
    assert_eq!(
        (last.method.as_str(), last.status, last.forwarded),
        ("PUT", None, false)
    );
    assert!(last.request_body_bytes >= 1);

    // Upstream down: 502.
    proxy.clear_rules();
    reg.stop();
    let r = send("GET", &format!("{pbase}/v2/"), &[], Bytes::new()).await?;
    assert_eq!(r.status, 502);
    reg.start_again().await?;
    let r = send("GET", &format!("{pbase}/v2/"), &[], Bytes::new()).await?;
    assert_eq!(r.status, 200);
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
    let r = send("GET", &format!("{}/v2/", proxy.url()), &[], Bytes::new()).await?;
    assert_eq!(r.status, 200);
    assert!(!proxy.saw_authorization(), "the client sent none");
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
async fn latency_proxy_delays_both_directions() -> anyhow::Result<()> {
    let reg = Registry::start().await?;
    let lp = LatencyProxy::start(reg.addr(), Duration::from_millis(100)).await?;
    let t = Instant::now();
    let r = send("GET", &format!("{}/v2/", lp.url()), &[], Bytes::new()).await?;
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    Ok(())
}
