//! Basic and token authentication against real registries.

use crate::Names;
use acr_import_auth::StaticCredentials;
use acr_import_testsupport::{Registry as TestRegistry, TokenServer};
use acr_import_transfer::TransferError;

use crate::{basic, push_image, transport, transport_with};

/// A registry behind the token server with its default users (alice may push and pull).
async fn token_registry() -> (TokenServer, TestRegistry) {
    let tokens = TokenServer::builder()
        .default_users()
        .start()
        .await
        .unwrap();
    let server = TestRegistry::builder()
        .token_auth(&tokens)
        .start()
        .await
        .unwrap();
    (tokens, server)
}

#[tokio::test]
async fn basic_auth_registry() {
    let server = TestRegistry::builder()
        .htpasswd(&[("alice", "s3cret")])
        .start()
        .await
        .unwrap();
    let anon = transport().registry(&server.url()).unwrap();
    let err = anon.ping().await.unwrap_err();
    assert!(
        matches!(
            err,
            TransferError::Auth { .. } | TransferError::Unauthorized(_)
        ),
        "{err}"
    );

    let wrong =
        transport_with(StaticCredentials::new().with(&server.host(), basic("alice", "nope")))
            .registry(&server.url())
            .unwrap();
    let err = wrong.ping().await.unwrap_err();
    assert!(matches!(err, TransferError::Unauthorized(_)), "{err}");
    assert!(!format!("{err} {err:?}").contains("nope"));

    let t = transport_with(StaticCredentials::new().with(&server.host(), basic("alice", "s3cret")));
    let reg = t.registry(&server.url()).unwrap();
    reg.ping().await.unwrap();
    let m = push_image(&reg, "app", "v1", 1, 1000).await;
    assert_eq!(
        reg.get_manifest(&"app".repo(), &"v1".at()).await.unwrap(),
        m
    );
    // After the first challenge, Basic goes with every request: a ping is one request, not
    // a 401 and a retry.
    let gets = |t: &acr_import_transfer::Transport| -> u64 {
        t.stats()
            .values()
            .map(|s| s.by_method.get("GET").copied().unwrap_or(0))
            .sum()
    };
    let before = gets(&t);
    reg.ping().await.unwrap();
    assert_eq!(gets(&t) - before, 1);
}

#[tokio::test]
async fn token_auth_scopes_cache_and_denial() {
    let (tokens, server) = token_registry().await;
    let alice =
        transport_with(StaticCredentials::new().with(&server.host(), basic("alice", "s3cret")));
    let reg = alice.registry(&server.url()).unwrap();
    let m = push_image(&reg, "team/app", "v1", 2, 5000).await;
    let before = tokens.request_count();
    for _ in 0..3 {
        reg.get_manifest(&"team/app".repo(), &"v1".at())
            .await
            .unwrap();
    }
    assert!(
        tokens.request_count() - before <= 1,
        "tokens are cached per scope"
    );
    for r in tokens.requests() {
        assert!(!format!("{r:?}").contains("s3cret"));
    }

    let reader =
        transport_with(StaticCredentials::new().with(&server.host(), basic("reader", "r3ader")))
            .registry(&server.url())
            .unwrap();
    assert_eq!(
        reader
            .get_manifest(&"team/app".repo(), &"v1".at())
            .await
            .unwrap(),
        m
    );
    let err = reader
        .put_manifest(&"team/app".repo(), &"v2".at(), &m)
        .await
        .unwrap_err();
    match &err {
        TransferError::ScopeDenied {
            repository,
            action,
            identity,
            ..
        } => {
            assert_eq!(repository, "team/app");
            assert_eq!(action, "push");
            assert!(identity.contains("reader"));
        }
        other => panic!("expected ScopeDenied, got {other}"),
    }
    assert!(
        err.to_string()
            .contains("may not push repository `team/app`"),
        "{err}"
    );

    let anon = transport().registry(&server.url()).unwrap();
    let err = anon
        .get_manifest(&"team/app".repo(), &"v1".at())
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err}");

    let wrong =
        transport_with(StaticCredentials::new().with(&server.host(), basic("alice", "bad")))
            .registry(&server.url())
            .unwrap();
    let err = wrong
        .get_manifest(&"team/app".repo(), &"v1".at())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            TransferError::Auth {
                source: acr_import_auth::AuthError::CredentialsRejected { status: 401, .. },
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn refused_cached_tokens_are_replaced() {
    let (tokens, server) = token_registry().await;
    let creds = || StaticCredentials::new().with(&server.host(), basic("alice", "s3cret"));
    let pusher = transport_with(creds()).registry(&server.url()).unwrap();
    push_image(&pusher, "app", "v1", 4, 10).await;

    // Tokens that the registry finds expired although the response promised 300 s: both the
    // first token and the one fetched after the 401 are refused, and the error says so.
    tokens.set_expiry_skew(-3600);
    let reg = transport_with(creds()).registry(&server.url()).unwrap();
    let err = reg
        .get_manifest(&"app".repo(), &"v1".at())
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Unauthorized(_)), "{err}");

    // The cached token is still the refused one; the next 401 replaces it.
    tokens.set_expiry_skew(0);
    let before = tokens.request_count();
    reg.get_manifest(&"app".repo(), &"v1".at()).await.unwrap();
    assert_eq!(
        tokens.request_count() - before,
        1,
        "one new token after the refusal"
    );
}
