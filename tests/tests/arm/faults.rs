//! What ARM's front ends do to a long import — throttling, server errors, a 200 that is not the
//! end, both operation headers — and the import riding it out, reporting only real failures.

use std::time::{Duration, Instant};

use super::*;

#[tokio::test]
async fn a_throttled_post_is_sent_again_after_retry_after() {
    let w = ArmWorld::start().await.expect("world");
    let ctx = connect(&w, IMPORTER).await;
    w.arm.throttle_imports(2, 1);
    let started = Instant::now();
    import(&w, &ctx, by_id(&w, "app:v1"), &["throttled:v1"], false)
        .await
        .expect("a throttled POST is retried: nothing had started");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After honoured"
    );
    let posts = w.arm.requests_matching("POST", "");
    assert_eq!(
        posts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 429, 202]
    );
    // The retries of one request share its client request id.
    assert!(
        posts
            .iter()
            .all(|r| r.client_request_id == posts[0].client_request_id)
    );
    w.assert_target_tag("throttled", "v1", &w.app_v1).await;
}

#[tokio::test]
async fn a_200_that_is_not_terminal_keeps_the_import_waiting() {
    let w = ArmWorld::start().await.expect("world");
    let ctx = connect(&w, IMPORTER).await;
    w.arm.set_polls_before_done(4);
    w.arm.set_nonterminal_200s(3, "Updating");
    let (outcome, progress) = import(&w, &ctx, by_id(&w, "app:v1"), &["nonterminal:v1"], false)
        .await
        .expect("import");
    assert_eq!(outcome, ServerOutcome::Completed);
    let polls = w.arm.count("GET", "/operationResults/");
    assert!(polls >= 5, "polled until a terminal answer: {polls} polls");
    assert!(
        progress
            .iter()
            .any(|p| p.status.as_deref() == Some("Updating")),
        "{progress:?}"
    );
    assert_eq!(w.arm.operation_statuses(), ["Succeeded"]);
}

#[tokio::test]
async fn the_status_monitor_is_polled_and_location_read_for_the_result() {
    let w = ArmWorld::start().await.expect("world");
    let ctx = connect(&w, IMPORTER).await;
    w.arm.set_async_operation_header(true);
    import(&w, &ctx, by_id(&w, "app:v2"), &["monitored:v2"], false)
        .await
        .expect("import");
    let gets: Vec<String> = w
        .arm
        .requests_matching("GET", "/locations/")
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert!(gets.len() >= 3, "{gets:?}");
    let (last, monitor) = gets.split_last().unwrap();
    assert!(
        monitor.iter().all(|p| p.contains("/operationStatuses/")),
        "{gets:?}"
    );
    assert!(
        last.contains("/operationResults/"),
        "the final read: {gets:?}"
    );
    w.assert_target_tag("monitored", "v2", &w.app_v2).await;
    // A failure reported by the status monitor is the operation's error, on the source side.
    let err = import(&w, &ctx, by_id(&w, "app:nope"), &["monitored:nope"], false)
        .await
        .expect_err("no such tag");
    match &err {
        AcrError::Arm { side, code, .. } => {
            assert_eq!(*side, Side::Source, "{err}");
            assert_eq!(code, "InvalidParameters");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn every_call_carries_a_client_request_id_and_failures_print_the_ids() {
    let w = ArmWorld::start().await.expect("world");
    let ctx = connect(&w, IMPORTER).await;
    import(&w, &ctx, by_id(&w, "app:v1"), &[], false)
        .await
        .expect("import");
    let requests = w.arm.requests();
    assert!(requests.len() > 3);
    let ids: std::collections::HashSet<_> = requests
        .iter()
        .map(|r| r.client_request_id.clone().expect("x-ms-client-request-id"))
        .collect();
    assert_eq!(ids.len(), requests.len(), "one id per request");
    let err = ctx
        .resolve_target("nosuchreg", Some("rg-target"))
        .await
        .unwrap_err();
    let text = err.to_string();
    let last = w.arm.requests().pop().unwrap();
    assert!(
        text.contains(&format!(
            "x-ms-client-request-id {}",
            last.client_request_id.unwrap()
        )),
        "{text}"
    );
    assert!(text.contains("x-ms-request-id "), "{text}");
    assert!(text.contains("x-ms-correlation-request-id "), "{text}");
}
