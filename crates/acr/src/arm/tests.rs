//! The client: endpoints, audiences, retries, request ids.

use super::*;
use bytes::Bytes;

#[test]
fn geo_endpoints_map_to_the_login_server() {
    assert_eq!(
        normalize_login_server("MyReg.EastUS.geo.azurecr.io"),
        "myreg.azurecr.io"
    );
    assert_eq!(
        normalize_login_server("myreg.azurecr.io"),
        "myreg.azurecr.io"
    );
    assert_eq!(normalize_login_server("ghcr.io"), "ghcr.io");
    assert_eq!(
        normalize_login_server("https://x.y.geo.azurecr.cn/"),
        "x.azurecr.cn"
    );
}

/// A credential that answers every request with `token` and records the scopes asked for.
#[derive(Debug)]
struct FakeCredential {
    token: String,
    scopes: std::sync::Mutex<Vec<String>>,
}

impl FakeCredential {
    fn new(token: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            token: token.into(),
            scopes: Default::default(),
        })
    }

    fn scopes(&self) -> Vec<String> {
        self.scopes.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.scopes
            .lock()
            .unwrap()
            .extend(scopes.iter().map(|s| s.to_string()));
        Ok(AccessToken::new(
            self.token.clone(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

struct FakeHttp(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl HttpExchange for FakeHttp {
    async fn exchange(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, acr_import_auth::ExchangeError> {
        self.0.lock().unwrap().push(request.uri().to_string());
        let body = br#"{"id":"/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg1","name":"myreg1","properties":{"loginServer":"myreg1.azurecr.cn"}}"#;
        Ok(http::Response::new(Bytes::from_static(body)))
    }
}

#[tokio::test]
async fn sovereign_clouds_use_their_endpoint_and_audience() {
    let id: RegistryResourceId = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg1".parse().unwrap();
    for (cloud, host, scope) in [
        (
            Cloud::azure_china_cloud(),
            "management.chinacloudapi.cn",
            "https://management.chinacloudapi.cn/.default",
        ),
        (
            Cloud::azure_us_government(),
            "management.usgovcloudapi.net",
            "https://management.usgovcloudapi.net/.default",
        ),
        (
            Cloud::azure_cloud(),
            "management.azure.com",
            "https://management.azure.com/.default",
        ),
    ] {
        let cred = FakeCredential::new("fake-Token~secret");
        let http = Arc::new(FakeHttp(Default::default()));
        let arm = ArmClient::new(&cloud, http.clone(), cred.clone()).unwrap();
        assert!(!format!("{arm:?}").contains("fake-Token"));
        arm.get_registry(&id).await.unwrap();
        arm.get_registry(&id).await.unwrap();
        assert_eq!(cred.scopes(), [scope], "one token, cached");
        let urls = http.0.lock().unwrap().clone();
        assert_eq!(urls.len(), 2);
        assert!(
            urls[0].starts_with(&format!("https://{host}/subscriptions/")),
            "{urls:?}"
        );
        assert!(urls[0].ends_with("?api-version=2025-11-01"), "{urls:?}");
    }
    // An emulator endpoint keeps the cloud's audience.
    let cloud = Cloud::azure_cloud().with_overrides(|k| {
        (k == "ACR_IMPORT_ARM_ENDPOINT").then(|| "https://127.0.0.1:9".to_owned())
    });
    let cred = FakeCredential::new("fake-Token~secret");
    let http = Arc::new(FakeHttp(Default::default()));
    let arm = ArmClient::new(&cloud, http.clone(), cred.clone())
        .unwrap()
        .with_api_version("2023-07-01");
    arm.get_registry(&id).await.unwrap();
    assert_eq!(cred.scopes(), ["https://management.azure.com/.default"]);
    assert!(http.0.lock().unwrap()[0].starts_with("https://127.0.0.1:9/subscriptions/"));
    assert!(http.0.lock().unwrap()[0].ends_with("api-version=2023-07-01"));
    // A subscription is one path segment, whatever it holds.
    let http = Arc::new(FakeHttp(Default::default()));
    let arm = ArmClient::new(&cloud, http.clone(), cred.clone()).unwrap();
    let _ = arm.list_registries("../x?y=1/z").await;
    let urls = http.0.lock().unwrap().clone();
    assert!(
        urls[0].starts_with(
            "https://127.0.0.1:9/subscriptions/..%2Fx%3Fy=1%2Fz/providers/Microsoft.ContainerRegistry/registries?"
        ),
        "{urls:?}"
    );
    // A nextLink or Location elsewhere never gets the token.
    assert!(arm.same_origin("https://evil.example/x").is_err());
    assert!(
        arm.same_origin("https://127.0.0.1:9/x?api-version=1")
            .is_ok()
    );
}

#[test]
fn endpoints() {
    assert!(check_endpoint("https://management.azure.com").is_ok());
    assert!(check_endpoint("http://127.0.0.1:8080").is_ok());
    assert!(check_endpoint("http://management.azure.com").is_err());
    assert!(check_endpoint("ftp://x").is_err());
}

/// Answers from a script, in order; records each request's method, URI and client request id.
pub(super) struct Script {
    answers: std::sync::Mutex<std::collections::VecDeque<http::Response<Bytes>>>,
    pub(super) seen: std::sync::Mutex<Vec<(String, String, String)>>,
}

impl Script {
    pub(super) fn new(answers: Vec<http::Response<Bytes>>) -> Arc<Self> {
        Arc::new(Self {
            answers: std::sync::Mutex::new(answers.into()),
            seen: std::sync::Mutex::default(),
        })
    }

    pub(super) fn seen(&self) -> Vec<(String, String, String)> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl HttpExchange for Script {
    async fn exchange(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, acr_import_auth::ExchangeError> {
        let id = request
            .headers()
            .get(CLIENT_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.seen.lock().unwrap().push((
            request.method().to_string(),
            request.uri().to_string(),
            id,
        ));
        self.answers
            .lock()
            .unwrap()
            .pop_front()
            .ok_or_else(|| acr_import_auth::ExchangeError::new("the script ran out"))
    }
}

/// An answer: status, headers, body.
pub(super) fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response<Bytes> {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Bytes::from(body.to_owned())).unwrap()
}

/// A client of `script` at `https://arm.test`, with fast retries.
pub(super) fn client(script: Arc<Script>) -> ArmClient {
    let cloud = Cloud::azure_cloud()
        .with_overrides(|k| (k == "ACR_IMPORT_ARM_ENDPOINT").then(|| "https://arm.test".into()));
    ArmClient::new(&cloud, script, FakeCredential::new("fake-Token~secret"))
        .unwrap()
        .with_retry_policy(RetryPolicy {
            initial_delay: std::time::Duration::from_millis(10),
            ..RetryPolicy::default()
        })
}

pub(super) fn target() -> RegistryResourceId {
    "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg1".parse().unwrap()
}

const REGISTRY: &str = r#"{"id":"/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg1","name":"myreg1","properties":{"loginServer":"myreg1.azurecr.io"}}"#;

#[tokio::test(start_paused = true)]
async fn transient_answers_are_retried_with_one_client_request_id() {
    let script = Script::new(vec![
        answer(429, &[("retry-after", "7")], ""),
        answer(
            500,
            &[],
            r#"{"error":{"code":"InternalServerError","message":"x"}}"#,
        ),
        answer(503, &[], ""),
        answer(200, &[("x-ms-request-id", "r-1")], REGISTRY),
    ]);
    let arm = client(script.clone());
    let started = tokio::time::Instant::now();
    arm.get_registry(&target()).await.unwrap();
    // Retry-After (7 s), then the back-off of the second and third retries (20 ms, 40 ms).
    assert_eq!(started.elapsed(), std::time::Duration::from_millis(7060));
    let seen = script.seen();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter()
            .all(|(_, _, id)| id == &seen[0].2 && id.len() == 36)
    );
    // The next request gets its own id.
    let script = Script::new(vec![answer(200, &[], REGISTRY), answer(200, &[], REGISTRY)]);
    let arm = client(script.clone());
    arm.get_registry(&target()).await.unwrap();
    arm.get_registry(&target()).await.unwrap();
    let seen = script.seen();
    assert_ne!(seen[0].2, seen[1].2);
}

#[tokio::test(start_paused = true)]
async fn retries_end_and_the_failure_carries_the_ids() {
    let busy = || {
        answer(
            503,
            &[
                ("x-ms-request-id", "req-9"),
                ("x-ms-correlation-request-id", "corr-9"),
            ],
            r#"{"error":{"code":"ServiceUnavailable","message":"busy"}}"#,
        )
    };
    let script = Script::new(vec![busy(), busy(), busy(), busy(), busy()]);
    let arm = client(script.clone());
    let err = arm.get_registry(&target()).await.unwrap_err();
    assert_eq!(script.seen().len(), 4, "one try and three retries");
    let text = err.to_string();
    let id = &script.seen()[0].2;
    for want in [
        "HTTP 503 ServiceUnavailable",
        &format!("x-ms-client-request-id {id}"),
        "x-ms-request-id req-9",
        "x-ms-correlation-request-id corr-9",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    // A 4xx without Retry-After is not retried; with one it is.
    let script = Script::new(vec![answer(
        403,
        &[],
        r#"{"error":{"code":"AuthorizationFailed","message":"no"}}"#,
    )]);
    assert!(
        client(script.clone())
            .get_registry(&target())
            .await
            .is_err()
    );
    assert_eq!(script.seen().len(), 1);
    let script = Script::new(vec![
        answer(409, &[("retry-after", "1")], ""),
        answer(200, &[], REGISTRY),
    ]);
    client(script.clone())
        .get_registry(&target())
        .await
        .unwrap();
    assert_eq!(script.seen().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_after_past_the_deadline_is_not_waited_for() {
    let script = Script::new(vec![answer(
        429,
        &[("retry-after", "30")],
        r#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#,
    )]);
    let arm = client(script.clone());
    let url = arm
        .resource_url(target().as_str(), &[], "2025-11-01")
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let started = tokio::time::Instant::now();
    let answer = arm
        .send(Method::GET, &url, None, Some(deadline))
        .await
        .unwrap();
    assert_eq!(answer.response.status(), 429);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // Without a deadline, a Retry-After beyond the policy's longest is not waited for either.
    let script = Script::new(vec![answer_429(600)]);
    let arm = client(script.clone());
    assert!(arm.get_registry(&target()).await.is_err());
    assert_eq!(script.seen().len(), 1);
}

fn answer_429(secs: u64) -> http::Response<Bytes> {
    answer(429, &[("retry-after", &secs.to_string())], "")
}

/// An import of `docker.io/app:v1` with no target tags.
pub(super) fn body() -> crate::model::ImportImageParameters {
    crate::model::ImportImageParameters {
        source: crate::model::ImportSource {
            source_image: "app:v1".into(),
            resource_id: None,
            registry_uri: Some("docker.io".into()),
            credentials: None,
        },
        target_tags: vec![],
        untagged_target_repositories: vec![],
        mode: crate::model::ImportMode::NoForce,
    }
}

#[tokio::test(start_paused = true)]
async fn a_post_is_retried_on_answers_but_not_on_lost_connections() {
    let body = body();
    let script = Script::new(vec![
        answer_429(1),
        answer(
            202,
            &[("location", "https://arm.test/op/1?api-version=x")],
            "",
        ),
    ]);
    let arm = client(script.clone());
    let start = arm.begin_import(&target(), &body).await.unwrap();
    assert!(
        matches!(start, ImportStart::Accepted { ref operation_url, .. } if operation_url == "https://arm.test/op/1?api-version=x")
    );
    assert_eq!(script.seen().len(), 2);
    assert!(script.seen().iter().all(|(m, _, _)| m == "POST"));
    // The script runs out: no answer, and the POST is not sent again.
    let script = Script::new(vec![]);
    let err = client(script.clone())
        .begin_import(&target(), &body)
        .await
        .unwrap_err();
    assert_eq!(script.seen().len(), 1);
    assert!(err.to_string().contains("x-ms-client-request-id"), "{err}");
}

#[tokio::test]
async fn the_caller_object_id_comes_from_the_token() {
    use base64::Engine as _;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let with_oid = FakeCredential::new(format!(
        "{}.{}.sig",
        e.encode("{}"),
        e.encode(r#"{"oid":"0000-oid-1"}"#)
    ));
    let arm = ArmClient::new(&Cloud::azure_cloud(), Script::new(vec![]), with_oid).unwrap();
    assert_eq!(
        arm.caller_object_id().await.unwrap().as_deref(),
        Some("0000-oid-1")
    );
    let arm = client(Script::new(vec![]));
    assert_eq!(arm.caller_object_id().await.unwrap(), None);
}
