//! A close is announced only with the final count: every vote answered `202` before the poll
//! closed is in the `poll-closed` snapshot, whatever batches and timers the aggregators held
//! at that moment. Until then the poll reads `closing` on REST and on the screens. Checked
//! under load with one and with two aggregator replicas, for a `closesAt` with votes in its
//! last half second, and with an aggregator killed (`kill -9`) during the closing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use pollstream_testkit::SocketClient;
use pollstream_testkit::polls::option_ids;
use pollstream_testkit::stack::Stack;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

/// The aggregators flush every 2 s, as by default: at a close, most of the last votes are
/// still in a batch.
const FLUSH_INTERVAL_MS: u64 = 2_000;

/// Voters sending at once during the load.
const CONCURRENCY: usize = 16;

/// Longest a close may take to be announced here: the send deadline (5 s) plus a second plus a
/// flush, with room for a loaded machine; with a killed aggregator the restart and its replay.
const ANNOUNCE_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_under_load_announces_every_accepted_vote() {
    let stack = Stack::start("close-load", FLUSH_INTERVAL_MS).await;
    close_under_load(&stack).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_under_load_with_two_aggregators_announces_every_accepted_vote() {
    let mut stack = Stack::start("close-load-two", FLUSH_INTERVAL_MS).await;
    stack.add_aggregator_replica().await;
    let group = stack.env_value("AGGREGATOR_GROUP_ID").to_owned();
    let shared = pollstream_testkit::eventually(Duration::from_secs(60), || async {
        (pollstream_testkit::members_with_partitions(&group).await == 2).then_some(())
    })
    .await;
    assert!(shared.is_some(), "the two replicas never shared raw-votes");
    close_under_load(&stack).await;
    // The poll's votes were on every partition, so both replicas held some at the close.
    let raw_votes = stack.env_value("RAW_VOTES_TOPIC").to_owned();
    let ends = pollstream_testkit::partition_ends(&raw_votes).await;
    assert!(
        ends.iter().all(|&n| n > 0),
        "a partition got none: {ends:?}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_killed_while_a_poll_closes_does_not_cut_its_count() {
    let mut stack = Stack::start("close-kill", FLUSH_INTERVAL_MS).await;
    stack.add_aggregator_replica().await;
    let group = stack.env_value("AGGREGATOR_GROUP_ID").to_owned();
    let shared = pollstream_testkit::eventually(Duration::from_secs(60), || async {
        (pollstream_testkit::members_with_partitions(&group).await == 2).then_some(())
    })
    .await;
    assert!(shared.is_some(), "the two replicas never shared raw-votes");
    let poll = stack.create_poll(&["Left", "Right"]).await;
    let load = Load::start(&stack, &poll);
    let mut screen = joined_screen(&stack, &poll).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let code = poll["code"].as_str().unwrap();
    let closed_at = Instant::now();
    let closed = close(&stack, code).await;
    // kill -9 with votes in its batch and its offsets uncommitted; back a second later, as a
    // StatefulSet restarts a pod, under the same instance id.
    stack.kill_aggregator().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.start_aggregator();
    let accepted = load.stop_after_refusals().await;
    assert_eq!(closed["status"], "closing", "{closed}");
    announced_with(&stack, &mut screen, &poll, accepted, closed_at).await;
    screen.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_closing_on_time_counts_the_votes_of_its_last_half_second() {
    let stack = Stack::start("close-on-time", FLUSH_INTERVAL_MS).await;
    let closes_at = Utc::now() + chrono::Duration::milliseconds(4_000);
    let poll = pollstream_testkit::polls::create_poll(
        &stack.http,
        &stack.api,
        &stack.token("presenter"),
        &json!({"question": "In time?", "options": ["y", "n"], "kind": "single", "closesAt": closes_at}),
    )
    .await;
    let mut screen = joined_screen(&stack, &poll).await;
    let load = Load::start(&stack, &poll);
    let closes = Instant::now() + (closes_at - Utc::now()).to_std().unwrap_or_default();
    // A burst in the last half second, on top of the steady load.
    let burst_at = closes_at - chrono::Duration::milliseconds(400);
    tokio::time::sleep((burst_at - Utc::now()).to_std().unwrap_or_default()).await;
    let burst = load.burst(40).await;
    let accepted = load.stop_after_refusals().await;
    println!("closesAt: {accepted} accepted, {burst} of them in the last 400 ms");
    assert!(
        burst > 0,
        "no vote of the burst was accepted before closesAt: the test did not test it"
    );
    let (_, results) = get(
        &stack,
        &format!("/api/v1/polls/{}/results", poll["code"].as_str().unwrap()),
    )
    .await;
    assert_ne!(
        results["status"], "closed",
        "closed before the last votes could be counted: {results}"
    );
    announced_with(&stack, &mut screen, &poll, accepted, closes).await;
    screen.close().await;
    stack.stop().await;
}

/// Votes under load, closes while votes are in flight, then checks the announcement.
async fn close_under_load(stack: &Stack) {
    let poll = stack.create_poll(&["Left", "Right", "Centre"]).await;
    let mut screen = joined_screen(stack, &poll).await;
    let load = Load::start(stack, &poll);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let code = poll["code"].as_str().unwrap();
    let closed_at = Instant::now();
    let closed = close(stack, code).await;
    assert_eq!(closed["status"], "closing", "{closed}");
    let (_, results) = get(stack, &format!("/api/v1/polls/{code}/results")).await;
    assert_eq!(
        results["status"], "closing",
        "right after the close the count cannot be final: {results}"
    );
    let accepted = load.stop_after_refusals().await;
    announced_with(stack, &mut screen, &poll, accepted, closed_at).await;
    screen.close().await;
}

/// Waits for `poll-closed` and checks that it, every `closed` snapshot the screen got, the
/// REST results and PostgreSQL all hold `accepted` votes, and that nothing said `closed`
/// before the final count. Prints how long after `closed_at` the final count arrived.
async fn announced_with(
    stack: &Stack,
    screen: &mut SocketClient,
    poll: &Value,
    accepted: i64,
    closed_at: Instant,
) {
    assert!(accepted > 20, "too few votes to test anything: {accepted}");
    let announced = screen
        .wait_for(ANNOUNCE_LIMIT, |l| l["event"] == "poll-closed")
        .await
        .expect("no poll-closed");
    println!(
        "{accepted} votes accepted; poll-closed {:.2} s after the close",
        closed_at.elapsed().as_secs_f64()
    );
    assert_eq!(
        announced["data"]["total"], accepted,
        "poll-closed must carry every vote answered 202: {announced}"
    );
    assert_eq!(announced["data"]["status"], "closed", "{announced}");
    let shown: Vec<Value> = screen.events("poll-results");
    for snapshot in shown.iter().filter(|s| s["status"] == "closed") {
        assert_eq!(
            snapshot["total"], accepted,
            "a closed snapshot with a partial count: {snapshot}"
        );
    }
    assert!(
        shown.iter().any(|s| s["status"] == "closing"),
        "the screens were told the poll is closing"
    );
    let code = poll["code"].as_str().unwrap();
    let (_, results) = get(stack, &format!("/api/v1/polls/{code}/results")).await;
    assert_eq!(
        (results["status"].as_str(), results["total"].as_i64()),
        (Some("closed"), Some(accepted)),
        "{results}"
    );
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(stack.counts(poll_id).await.0, accepted, "0 lost, 0 doubled");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(screen.events("poll-closed").len(), 1, "poll-closed once");
}

/// A screen joined to `poll`.
async fn joined_screen(stack: &Stack, poll: &Value) -> SocketClient {
    let mut screen = SocketClient::connect(&stack.realtime).await;
    let joined = screen
        .request("join", json!({ "code": poll["code"] }))
        .await;
    assert_eq!(joined["status"], "open", "{joined}");
    screen
}

/// The owner's close; returns the poll it answers.
async fn close(stack: &Stack, code: &str) -> Value {
    let response = stack
        .http
        .post(format!("{}/api/v1/polls/{code}/close", stack.api))
        .bearer_auth(stack.token("presenter"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn get(stack: &Stack, path: &str) -> (StatusCode, Value) {
    let response = stack
        .http
        .get(format!("{}{path}", stack.api))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// Voters with fresh ids voting as fast as the stack answers, counting the `202`s, until the
/// poll refuses them.
struct Load {
    accepted: Arc<AtomicI64>,
    closed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    next_voter: Arc<AtomicI64>,
    voters: JoinSet<()>,
    stack: VoteSender,
}

/// What a voter needs of the stack, cloneable into tasks.
#[derive(Clone)]
struct VoteSender {
    http: reqwest::Client,
    api: String,
    keys: Arc<dyn Fn(&str) -> String + Send + Sync>,
    code: String,
    options: Vec<String>,
}

impl VoteSender {
    /// Casts one vote; `Some(true)` accepted, `Some(false)` refused as closed.
    async fn vote(&self, voter: i64) -> Option<bool> {
        let option = &self.options[voter as usize % self.options.len()];
        let response = self
            .http
            .post(format!("{}/api/v1/votes/{}", self.api, self.code))
            .bearer_auth((self.keys)(&format!("voter-{voter}")))
            .json(&json!({ "optionIds": [option] }))
            .send()
            .await
            .expect("vote request");
        match response.status() {
            StatusCode::ACCEPTED => Some(true),
            StatusCode::CONFLICT => Some(false),
            // A 503 (an aggregator being killed does not cause one) is not counted either way.
            other => panic!("unexpected answer to a vote: {other}"),
        }
    }
}

impl Load {
    fn start(stack: &Stack, poll: &Value) -> Self {
        let voter = VoteSender {
            http: stack.http.clone(),
            api: stack.api.clone(),
            keys: Arc::new(stack.token_issuer()),
            code: poll["code"].as_str().unwrap().to_owned(),
            options: option_ids(poll),
        };
        let mut load = Self {
            accepted: Arc::default(),
            closed: Arc::default(),
            stop: Arc::default(),
            next_voter: Arc::default(),
            voters: JoinSet::new(),
            stack: voter,
        };
        for _ in 0..CONCURRENCY {
            let (voter, accepted, closed, stop, next) = (
                load.stack.clone(),
                load.accepted.clone(),
                load.closed.clone(),
                load.stop.clone(),
                load.next_voter.clone(),
            );
            load.voters.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match voter.vote(next.fetch_add(1, Ordering::Relaxed)).await {
                        Some(true) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(false) => closed.store(true, Ordering::Relaxed),
                        None => {}
                    }
                }
            });
        }
        load
    }

    /// `count` votes at once, on top of the load; returns how many were accepted.
    async fn burst(&self, count: usize) -> i64 {
        let votes = (0..count).map(|_| {
            let voter = self.stack.clone();
            let id = self.next_voter.fetch_add(1, Ordering::Relaxed);
            async move { voter.vote(id).await }
        });
        let accepted = futures::future::join_all(votes)
            .await
            .into_iter()
            .filter(|outcome| *outcome == Some(true))
            .count() as i64;
        self.accepted.fetch_add(accepted, Ordering::Relaxed);
        accepted
    }

    /// Waits until votes are refused as closed, lets the load run a little longer (every vote
    /// then must be refused), stops it and returns how many votes were accepted.
    async fn stop_after_refusals(mut self) -> i64 {
        let refused = pollstream_testkit::eventually(Duration::from_secs(30), || async {
            self.closed.load(Ordering::Relaxed).then_some(())
        })
        .await;
        assert!(refused.is_some(), "votes were never refused as closed");
        let at_refusal = self.accepted.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.stop.store(true, Ordering::Relaxed);
        while let Some(voter) = self.voters.join_next().await {
            voter.expect("a voter task failed");
        }
        let accepted = self.accepted.load(Ordering::Relaxed);
        // Votes still in flight at the first refusal may have been accepted: they took their
        // lock before the closed flag was set. None may be accepted long after.
        assert!(
            accepted - at_refusal <= CONCURRENCY as i64,
            "votes kept being accepted after the close: {at_refusal} then {accepted}"
        );
        accepted
    }
}
