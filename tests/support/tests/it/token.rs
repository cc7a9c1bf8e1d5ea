//! The token server, and a registry behind it accepting (and refusing) its tokens.

use std::time::Duration;

use acr_import_testsupport::{
    Access, Grant, Registry, TokenServer, basic_auth, decode_claims_unverified, form_encode,
    sha256_digest,
};

use super::*;

async fn get_token(ts: &TokenServer, scope: &str, auth: Option<&str>) -> anyhow::Result<Resp> {
    let url = format!(
        "{}?service={}&scope={}",
        ts.realm(),
        form_encode(ts.service()),
        form_encode(scope)
    );
    get(&url, auth).await
}

fn token_of(r: &Resp) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("token json");
    v["token"].as_str().expect("token").to_string()
}

/// A token server with the default users, a registry behind it, and a blob alice pushed to
/// `team/app`: its URL and its bytes.
async fn token_registry() -> anyhow::Result<(TokenServer, Registry, String, Vec<u8>)> {
    let ts = TokenServer::builder().default_users().start().await?;
    let reg = Registry::builder().token_auth(&ts).start().await?;
    let alice = basic_auth(TokenServer::ALICE.0, TokenServer::ALICE.1);
    let r = get_token(&ts, "repository:team/app:pull,push", Some(&alice)).await?;
    let blob = test_blob(5000, 1);
    push_blob(&reg.url(), "team/app", &blob, Some(&bearer(&token_of(&r)))).await?;
    let url = format!("{}/v2/team/app/blobs/{}", reg.url(), sha256_digest(&blob));
    Ok((ts, reg, url, blob))
}

#[tokio::test]
async fn the_registry_challenges_with_our_realm_and_accepts_our_tokens() -> anyhow::Result<()> {
    let (ts, reg, blob_url, blob) = token_registry().await?;
    let r = get(&format!("{}/v2/", reg.url()), None).await?;
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
    let token = bearer(&token_of(&r));
    let r = get(&blob_url, Some(&token)).await?;
    assert_eq!((r.status, &r.body), (200, &blob));
    let r = get(&format!("{}/v2/", reg.url()), Some(&token)).await?;
    assert_eq!(r.status, 200);
    Ok(())
}

#[tokio::test]
async fn grants_are_intersected_and_enforced() -> anyhow::Result<()> {
    let (ts, reg, blob_url, _) = token_registry().await?;
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
    let rb = bearer(&reader_token);
    assert_eq!(get(&blob_url, Some(&rb)).await?.status, 200);
    let uploads = format!("{}/v2/team/app/blobs/uploads/", reg.url());
    let r = send("POST", &uploads, &[("Authorization", &rb)], Bytes::new()).await?;
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
    let wrong = basic_auth("alice", "nope");
    let r = get_token(&ts, "repository:team/app:pull", Some(&wrong)).await?;
    assert_eq!(r.status, 401);
    let r = get(&format!("{}?service=other", ts.realm()), None).await?;
    assert_eq!(r.status, 400);

    // Anonymous: a token with no access, refused by the registry.
    let r = get_token(&ts, "repository:team/app:pull", None).await?;
    assert_eq!(r.status, 200);
    let anon = token_of(&r);
    assert_eq!(
        decode_claims_unverified(&anon)?["access"],
        serde_json::json!([])
    );
    assert_eq!(get(&blob_url, Some(&bearer(&anon))).await?.status, 401);

    // The log records what happened.
    let log = ts.requests();
    assert!(log.iter().any(|r| r.username.as_deref() == Some("reader")
        && r.granted == vec![Access::repository("team/app", &["pull"])]));
    assert!(log.iter().any(|r| r.status == 401 && r.had_authorization));
    assert!(log.iter().any(|r| r.status == 400));
    Ok(())
}

#[tokio::test]
async fn expired_tokens_are_refused_after_the_registrys_leeway() -> anyhow::Result<()> {
    let (ts, _reg, blob_url, _) = token_registry().await?;
    // distribution allows 60 s of leeway past exp.
    let mut claims = ts.issuer().claims(
        "alice",
        &[Access::repository("team/app", &["pull"])],
        Duration::from_secs(1),
    );
    let iat = claims["iat"].as_i64().unwrap_or(0);
    claims["exp"] = serde_json::json!(iat - 30);
    let within_leeway = ts.issuer().sign_claims(&claims)?;
    let r = get(&blob_url, Some(&bearer(&within_leeway))).await?;
    assert_eq!(
        r.status, 200,
        "a token 30 s past exp is still accepted (60 s leeway)"
    );
    claims["exp"] = serde_json::json!(iat - 90);
    let past_leeway = ts.issuer().sign_claims(&claims)?;
    let r = get(&blob_url, Some(&bearer(&past_leeway))).await?;
    assert_eq!(r.status, 401, "a token 90 s past exp is refused");
    assert!(
        r.header("www-authenticate")
            .unwrap_or_default()
            .contains("error=\"invalid_token\"")
    );
    // expires_in says 300 s, but exp lies 120 s in the past.
    ts.set_expiry_skew(-420);
    let alice = basic_auth(TokenServer::ALICE.0, TokenServer::ALICE.1);
    let r = get_token(&ts, "repository:team/app:pull", Some(&alice)).await?;
    let r = get(&blob_url, Some(&bearer(&token_of(&r)))).await?;
    assert_eq!(r.status, 401);
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
