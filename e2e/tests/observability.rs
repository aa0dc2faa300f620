//! Every service's `/metrics` is valid Prometheus exposition (checked by `promtool`) and its
//! counters move when votes flow; `/readyz` names what it checked.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use pollstream_testkit::stack::Stack;
use pollstream_testkit::{SocketClient, metric_sample};
use reqwest::StatusCode;
use serde_json::json;

fn promtool_check(service: &str, exposition: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: install Debian's prometheus package (scripts/test does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    // promtool exits 3 for lint warnings only (e.g. naming advice); 1 means it cannot parse.
    assert!(
        output.status.success() || output.status.code() == Some(3),
        "{service} /metrics does not parse: {report}\n{exposition}"
    );
    assert!(!report.contains("error"), "{service}: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_votes() {
    let stack = Stack::start("metrics", 200).await;
    let poll = stack.create_poll(&["a", "b"]).await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let option = poll["options"][0]["id"].as_str().unwrap().to_owned();
    let mut screen = SocketClient::connect(&stack.realtime).await;
    screen.request("join", json!({ "code": code })).await;
    for i in 0..12 {
        assert_eq!(
            stack.vote(&code, &format!("m{i}"), &option).await,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(stack.vote(&code, "m0", &option).await, StatusCode::CONFLICT);
    screen
        .wait_for(Duration::from_secs(30), |l| {
            l["event"] == "poll-results" && l["data"]["total"] == 12
        })
        .await
        .expect("votes never reached the screen");
    // Give the aggregator's lag reporter one round.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let api = stack.metrics(&stack.api).await;
    promtool_check("voting-api", &api);
    assert!(
        metric_sample(&api, "votes_accepted_total", &[]) >= Some(12.0),
        "{api}"
    );
    assert!(
        metric_sample(&api, "votes_rejected_total", &["reason=\"already_voted\""]) >= Some(1.0),
        "{api}"
    );
    assert!(
        metric_sample(
            &api,
            "http_request_duration_seconds_count",
            &["route=\"/api/v1/votes/{code}\"", "status=\"202\""]
        ) >= Some(12.0),
        "{api}"
    );
    assert!(
        metric_sample(&api, "kafka_produce_duration_seconds_count", &[]) >= Some(12.0),
        "{api}"
    );

    let aggregator = stack.metrics(&stack.aggregator_health).await;
    promtool_check("poll-aggregator", &aggregator);
    assert!(
        metric_sample(&aggregator, "votes_counted_total", &[]) >= Some(12.0),
        "{aggregator}"
    );
    assert!(
        metric_sample(&aggregator, "flush_duration_seconds_count", &[]) >= Some(1.0),
        "{aggregator}"
    );
    assert!(
        metric_sample(&aggregator, "flush_batch_votes_count", &[]) >= Some(1.0),
        "{aggregator}"
    );
    assert!(
        metric_sample(&aggregator, "kafka_consumer_lag", &[]).is_some(),
        "lag per partition: {aggregator}"
    );

    let realtime = stack.metrics(&stack.realtime).await;
    promtool_check("realtime-service", &realtime);
    assert!(
        metric_sample(&realtime, "sockets_connected", &[]) >= Some(1.0),
        "{realtime}"
    );
    assert!(
        metric_sample(&realtime, "room_broadcasts_total", &[]) >= Some(1.0),
        "{realtime}"
    );
    assert!(
        metric_sample(&realtime, "rooms_active", &[]) >= Some(1.0),
        "{realtime}"
    );

    for base in [&stack.api, &stack.aggregator_health, &stack.realtime] {
        let ready: serde_json::Value = stack
            .http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            ready["checks"],
            json!({"postgres": "ok", "redis": "ok", "kafka": "ok"}),
            "{base}"
        );
    }
    screen.close().await;
    stack.stop().await;
}
