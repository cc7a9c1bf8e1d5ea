//! The ACR metadata listing (`/acr/v1/{repo}/_manifests`) and its pagination.

use acr_import_acr::metadata::list_manifests;
use acr_import_testsupport::{FaultAction, FaultRule, Proxy, ProxyOptions, Registry};
use acr_import_transfer::{TransferError, Transport};
use bytes::Bytes;

/// A canned metadata page listing `digest`, linking to `next` when given.
fn page(digest: &str, next: Option<&str>) -> FaultAction {
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(link) = next {
        headers.push(("Link".to_owned(), format!("{link}; rel=\"next\"")));
    }
    FaultAction::Respond {
        status: 200,
        headers,
        body: Bytes::from(format!(r#"{{"manifests":[{{"digest":"{digest}"}}]}}"#)),
    }
}

/// A proxy in front of a real registry whose first two `/acr/v1/` answers are these pages.
async fn serving(registry: &Registry, first: FaultAction, second: FaultAction) -> Proxy {
    Proxy::start(
        registry.addr(),
        ProxyOptions::with_rules([
            FaultRule::new(first).path_contains("/acr/v1/").nth(1),
            FaultRule::new(second).path_contains("/acr/v1/").nth(2),
        ]),
    )
    .await
    .unwrap()
}

fn transport() -> Transport {
    Transport::builder()
        .proxy_from_env(false)
        .retry(acr_import_transfer::RetryPolicy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn next_pages_are_followed_on_the_same_endpoint_only() {
    let registry = Registry::start().await.unwrap();
    let proxy = serving(
        &registry,
        page(
            "sha256:a",
            Some("</acr/v1/app/_manifests?last=sha256:a&n=100>"),
        ),
        page("sha256:b", None),
    )
    .await;
    let reg = transport().registry(&proxy.host()).unwrap();
    let listed = list_manifests(&reg, &"app".parse().unwrap(), None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.len(), 2);
    let paths: Vec<String> = proxy.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/acr/v1/app/_manifests?n=100",
            "/acr/v1/app/_manifests?last=sha256:a&n=100"
        ]
    );

    // A Link that is not a next page of this listing is refused, and not requested.
    for link in [
        "<@evil.example/x>",
        "<https://evil.example/acr/v1/app/_manifests?n=100>",
        "</acr/v1/other/_manifests?n=100>",
    ] {
        let proxy = serving(
            &registry,
            page("sha256:a", Some(link)),
            page("sha256:b", None),
        )
        .await;
        let reg = transport().registry(&proxy.host()).unwrap();
        let err = list_manifests(&reg, &"app".parse().unwrap(), None, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, TransferError::Refused { .. }),
            "{link}: {err}"
        );
        assert_eq!(proxy.requests().len(), 1, "{link}");
    }
}
