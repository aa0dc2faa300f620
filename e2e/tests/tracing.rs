//! One vote is one trace: the services export spans over OTLP to a receiver this test runs
//! (it decodes the real protobuf export requests), and the W3C trace context travels in Kafka
//! headers from voting-api through the aggregator to the realtime broadcast.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use pollstream_testkit::SocketClient;
use pollstream_testkit::otlp::OtlpReceiver;
use pollstream_testkit::stack::Stack;
use prost::Message;
use reqwest::StatusCode;
use serde_json::json;

/// (service, trace id, span name) of every span `receiver` has received.
fn received_spans(receiver: &OtlpReceiver) -> Vec<(String, String, String)> {
    let mut spans = Vec::new();
    for body in receiver.requests() {
        let request =
            ExportTraceServiceRequest::decode(body).expect("a protobuf OTLP export request");
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let trace_id: String =
                        span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                    spans.push((service.clone(), trace_id, span.name));
                }
            }
        }
    }
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_vote_is_one_trace_across_the_three_services() {
    let receiver = OtlpReceiver::start().await;
    let stack = Stack::start_with(
        "tracing",
        200,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)],
    )
    .await;
    let poll = stack.create_poll(&["a", "b"]).await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let option = poll["options"][0]["id"].as_str().unwrap().to_owned();
    let mut screen = SocketClient::connect(&stack.realtime).await;
    screen.request("join", json!({ "code": code })).await;
    assert_eq!(
        stack.vote(&code, "traced", &option).await,
        StatusCode::ACCEPTED
    );
    screen
        .wait_for(Duration::from_secs(30), |l| {
            l["event"] == "poll-results" && l["data"]["total"] == 1
        })
        .await
        .expect("the vote never reached the screen");

    let services = ["voting-api", "poll-aggregator", "realtime-service"];
    let trace = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let spans = received_spans(&receiver);
        let mut by_trace: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (service, trace_id, _) in &spans {
            by_trace
                .entry(trace_id.clone())
                .or_default()
                .insert(service.clone());
        }
        by_trace
            .into_iter()
            .find(|(_, seen)| services.iter().all(|s| seen.contains(*s)))
            .map(|(trace_id, _)| trace_id)
    })
    .await;
    let spans = received_spans(&receiver);
    let trace =
        trace.unwrap_or_else(|| panic!("no trace spans all three services; received: {spans:#?}"));
    let names: BTreeSet<&str> = spans
        .iter()
        .filter(|(_, t, _)| *t == trace)
        .map(|(_, _, n)| n.as_str())
        .collect();
    for expected in ["produce_vote", "publish_snapshot", "broadcast"] {
        assert!(
            names.contains(expected),
            "span {expected} missing from the vote's trace: {names:?}"
        );
    }

    // Logs: one JSON object per line, with the service, the trace and span ids and the
    // domain ids of the spans the event happened in.
    let log = std::fs::read_to_string(stack.log_path("voting-api")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(lines.iter().all(|l| l["service"] == "voting-api"
        && l["level"].is_string()
        && l["timestamp"].is_string()));
    let created = lines
        .iter()
        .find(|l| l["message"] == "Poll created")
        .expect("no 'Poll created' line");
    assert_eq!(created["poll_id"], poll["id"]);
    assert!(
        created["trace_id"].as_str().is_some_and(|t| t.len() == 32),
        "{created}"
    );
    assert!(
        created["span_id"].as_str().is_some_and(|t| t.len() == 16),
        "{created}"
    );
    screen.close().await;
    stack.stop().await;
}
