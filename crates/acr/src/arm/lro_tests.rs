//! Polling per the async-operation guidelines, against scripted answers.

use std::time::Duration;

use super::*;
use crate::arm::RetryPolicy;
use crate::arm::tests::{Script, answer, body, client, target};

fn fast() -> WaitOptions {
    WaitOptions {
        deadline: Some(Duration::from_secs(600)),
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(10),
    }
}

const MONITOR: &str = "https://arm.test/subscriptions/s/providers/Microsoft.ContainerRegistry/locations/WESTUS/operationStatuses/op1?api-version=x";
const LOCATION: &str = "https://arm.test/subscriptions/s/providers/Microsoft.ContainerRegistry/locations/WESTUS/operationResults/op1?api-version=x";

async fn run(
    answers: Vec<http::Response<Bytes>>,
) -> (Result<(), AcrError>, Vec<String>, Vec<ImportProgress>) {
    let script = Script::new(answers);
    let arm = client(script.clone());
    let mut seen = Vec::new();
    let result = match arm.begin_import(&target(), &body()).await {
        Ok(ImportStart::Accepted { operation_url, .. }) => {
            arm.wait(&operation_url, &fast(), &mut |p| seen.push(p.clone()))
                .await
        }
        Ok(ImportStart::Done) => Ok(()),
        Err(e) => Err(e),
    };
    let urls = script
        .seen()
        .into_iter()
        .map(|(m, u, _)| format!("{m} {u}"))
        .collect();
    (result, urls, seen)
}

fn accepted_both() -> http::Response<Bytes> {
    answer(
        202,
        &[
            ("azure-asyncoperation", MONITOR),
            ("location", LOCATION),
            ("retry-after", "0"),
        ],
        "",
    )
}

#[tokio::test(start_paused = true)]
async fn the_status_monitor_decides_and_location_gives_the_result() {
    let (result, urls, seen) = run(vec![
        accepted_both(),
        answer(200, &[], r#"{"status":"NotStarted"}"#),
        answer(
            200,
            &[],
            r#"{"status":"Updating","app@sha256:aa":"Pending"}"#,
        ),
        answer(200, &[], r#"{"id":"x","status":"Succeeded"}"#),
        answer(200, &[], ""),
    ])
    .await;
    result.unwrap();
    assert_eq!(urls[1], format!("GET {MONITOR}"));
    assert_eq!(urls[3], format!("GET {MONITOR}"));
    assert_eq!(urls[4], format!("GET {LOCATION}"), "{urls:?}");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].status.as_deref(), Some("Updating"));
    assert_eq!(
        seen[1].manifests,
        [("app@sha256:aa".to_owned(), "Pending".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn only_terminal_statuses_end_the_wait() {
    // Location only: a 200 whose status is not terminal keeps polling.
    let (result, urls, _) = run(vec![
        answer(202, &[("location", LOCATION)], ""),
        answer(200, &[], r#"{"status":"Running"}"#),
        answer(202, &[], r#"{"status":"Accepted"}"#),
        answer(200, &[], r#"{"status":"succeeded"}"#),
    ])
    .await;
    result.unwrap();
    assert_eq!(urls.len(), 4);
    // Failed and Canceled fail with the operation's error.
    for status in ["Failed", "canceled"] {
        let (result, _, _) = run(vec![
            answer(202, &[("azure-asyncoperation", MONITOR)], ""),
            answer(
                200,
                &[("x-ms-request-id", "req-7")],
                &format!(r#"{{"status":"{status}","error":{{"code":"InvalidParameters","message":"Unable to find manifest digest Repo: app Tag: v9"}}}}"#),
            ),
        ])
        .await;
        let err = result.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("InvalidParameters"), "{text}");
        assert!(text.contains("source side"), "{text}");
        assert!(text.contains("x-ms-request-id req-7"), "{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_is_not_json_is_an_error() {
    for status in [200, 202] {
        let (result, _, _) = run(vec![
            answer(202, &[("location", LOCATION)], ""),
            answer(status, &[], "<html>gateway</html>"),
        ])
        .await;
        let err = result.unwrap_err();
        assert!(matches!(err, AcrError::Protocol { .. }), "{err:?}");
        assert!(err.to_string().contains("not JSON"), "{err}");
    }
}

#[tokio::test(start_paused = true)]
async fn transient_answers_while_polling_are_ridden_out() {
    let (result, urls, _) = run(vec![
        answer(429, &[("retry-after", "1")], ""),
        accepted_both(),
        answer(
            500,
            &[],
            r#"{"error":{"code":"InternalServerError","message":"x"}}"#,
        ),
        answer(200, &[], r#"{"status":"InProgress"}"#),
        answer(429, &[("retry-after", "1")], ""),
        answer(429, &[("retry-after", "1")], ""),
        answer(429, &[("retry-after", "1")], ""),
        answer(200, &[], r#"{"status":"Succeeded"}"#),
        answer(204, &[], ""),
    ])
    .await;
    result.unwrap();
    assert_eq!(urls.len(), 9, "{urls:?}");
    assert!(urls[0].starts_with("POST") && urls[1].starts_with("POST"));
}

#[tokio::test(start_paused = true)]
async fn a_poll_that_keeps_failing_is_reported() {
    let busy = || {
        answer(
            503,
            &[],
            r#"{"error":{"code":"ServiceUnavailable","message":"x"}}"#,
        )
    };
    let (result, urls, _) = run(vec![
        answer(202, &[("location", LOCATION)], ""),
        busy(),
        busy(),
        busy(),
        busy(),
    ])
    .await;
    assert_eq!(result.unwrap_err().arm_status(), Some(503));
    assert_eq!(urls.len(), 5);
    // Without retries, the first one ends it.
    let script = Script::new(vec![answer(202, &[("location", LOCATION)], ""), busy()]);
    let arm = client(script.clone()).with_retry_policy(RetryPolicy::none());
    let ImportStart::Accepted { operation_url, .. } =
        arm.begin_import(&target(), &body()).await.unwrap()
    else {
        panic!("accepted");
    };
    assert!(
        arm.wait(&operation_url, &fast(), &mut |_| {})
            .await
            .is_err()
    );
    assert_eq!(script.seen().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_202_without_an_operation_url_is_an_error() {
    let (result, _, _) = run(vec![answer(202, &[], "")]).await;
    let err = result.unwrap_err();
    assert!(
        err.to_string()
            .contains("without an Azure-AsyncOperation or Location"),
        "{err}"
    );
    // A URL off the ARM endpoint never gets the token.
    let (result, urls, _) = run(vec![answer(
        202,
        &[("location", "https://evil.example/op")],
        "",
    )])
    .await;
    assert!(matches!(result.unwrap_err(), AcrError::ForeignUrl { .. }));
    assert_eq!(urls.len(), 1);
}

#[test]
fn progress_bodies() {
    let p = parse_progress(&serde_json::json!({
        "status": "Accepted", "app@sha256:aa": "Pending", "app@sha256:bb": "Succeeded",
        "id": "/subscriptions/x", "name": "op1"
    }));
    assert_eq!(p.status.as_deref(), Some("Accepted"));
    assert_eq!(p.manifests.len(), 2, "{p:?}");
    assert!(p.to_string().contains("1/2 manifests done"));
}
