//! Graceful shutdown of the real binaries: SIGTERM makes the aggregator flush and commit what
//! it buffered; SIGINT makes voting-api stop accepting and exit cleanly.

use std::time::Duration;

use pollstream_testkit::SocketClient;
use pollstream_testkit::stack::Stack;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_the_aggregators_buffer() {
    // A flush interval far beyond the test: only the drain on SIGTERM can count these votes.
    let mut stack = Stack::start("sigterm-drain", 600_000).await;
    let poll = stack.create_poll(&["yes", "no"]).await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let option = poll["options"][1]["id"].as_str().unwrap().to_owned();
    for i in 0..25 {
        assert_eq!(
            stack.vote(&code, &format!("drain-{i}"), &option).await,
            StatusCode::ACCEPTED
        );
    }
    // Let the aggregator read them into its buffer; nothing is counted yet.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        stack.counts(poll_id).await.0,
        0,
        "nothing flushes before the interval"
    );

    assert!(
        stack.signal_aggregator("TERM").await,
        "the aggregator did not exit cleanly on SIGTERM"
    );
    assert_eq!(
        stack.counts(poll_id).await,
        (25, vec![0, 25]),
        "the drained batch was not counted"
    );

    // Its offsets were committed: a new aggregator replays nothing (the total stays 25) and
    // counts new votes.
    stack.start_aggregator();
    assert_eq!(
        stack.vote(&code, "after-restart", &option).await,
        StatusCode::ACCEPTED
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(stack.signal_aggregator("TERM").await);
    assert_eq!(stack.counts(poll_id).await, (26, vec![0, 26]));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_voting_api_cleanly() {
    let mut stack = Stack::start("sigint-api", 500).await;
    let poll = stack.create_poll(&["a", "b"]).await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let option = poll["options"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        stack.vote(&code, "before-sigint", &option).await,
        StatusCode::ACCEPTED
    );
    assert!(
        stack.signal_voting_api("INT").await,
        "voting-api did not exit cleanly on SIGINT"
    );
    let refused = stack
        .http
        .get(format!("{}/healthz", stack.api))
        .send()
        .await;
    assert!(refused.is_err(), "voting-api still answers after SIGINT");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_cleanly() {
    let mut stack = Stack::start("sigterm-realtime", 500).await;
    let poll = stack.create_poll(&["a", "b"]).await;
    let mut screen = SocketClient::connect(&stack.realtime).await;
    screen
        .request("join", json!({ "code": poll["code"] }))
        .await;
    assert!(
        stack.signal_realtime("TERM").await,
        "realtime-service did not exit cleanly on SIGTERM"
    );
    let disconnect = screen
        .wait_for(Duration::from_secs(10), |l| l["event"] == "disconnect")
        .await
        .expect("the socket was not closed");
    // The connection is closed, not the Socket.IO session refused: socket.io-client
    // reconnects by itself (to another replica during a rolling restart) and joins again.
    assert_eq!(disconnect["reason"], "transport close", "{disconnect}");
    screen.close().await;
    stack.stop().await;
}
