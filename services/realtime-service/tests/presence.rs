//! Presence across replicas: every screen joined to a poll, on any replica, is counted in
//! `poll-presence`, and a replica that is gone stops counting.

mod common;

use common::{replica_env, start_replica, test_ground};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pollstream_testkit::polls::{NewPoll, StoredPoll};
use pollstream_testkit::server::RunningServer;
use pollstream_testkit::socket_client::publish_until_seen;
use pollstream_testkit::topic_writer::TopicWriter;
use pollstream_testkit::{SocketClient, TestDatabase};
use pollstream_wire::PollStatus;
use realtime_service::RunError;
use serde_json::{Value, json};

/// Tick of the replicas under test, as in production.
const INTERVAL: Duration = Duration::from_millis(1_000);
/// Heartbeat lifetime of the replicas under test, shorter than the default to keep tests quick.
const TTL: Duration = Duration::from_millis(2_500);

struct Harness {
    db: TestDatabase,
    updates: TopicWriter,
    servers: Vec<Option<RunningServer<RunError>>>,
    urls: Vec<String>,
}

impl Harness {
    async fn new(replicas: usize) -> Self {
        Self::with(replicas, &[]).await
    }

    /// `replicas` replicas with these settings on top of the test's own.
    async fn with(replicas: usize, settings: &[(&str, &str)]) -> Self {
        let (topic, db) = test_ground(1).await;
        let mut servers = Vec::new();
        for _ in 0..replicas {
            let env = replica_env(&topic, &db)
                .set("PRESENCE_INTERVAL_MS", INTERVAL.as_millis().to_string())
                .set("PRESENCE_TTL_MS", TTL.as_millis().to_string())
                .set_all(settings);
            servers.push(Some(start_replica(&env).await));
        }
        Self {
            db,
            updates: TopicWriter::new(&topic),
            urls: servers
                .iter()
                .map(|server| server.as_ref().unwrap().url.clone())
                .collect(),
            servers,
        }
    }

    async fn poll(&self) -> StoredPoll {
        NewPoll::new(2).insert(&self.db.pool).await
    }

    /// A screen on replica `replica` joined to `poll`.
    async fn screen(&self, replica: usize, poll: &StoredPoll) -> SocketClient {
        let mut screen = SocketClient::connect(&self.urls[replica]).await;
        let ack = screen.request("join", json!({ "pollId": poll.id })).await;
        assert_eq!(ack["pollId"], poll.id.to_string(), "join failed: {ack}");
        screen
    }
}

/// Milliseconds since the epoch, the clock of the client's `receivedAt`.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits for a `poll-presence` of `poll` with `viewers` received after `since_ms`; returns the
/// line (with its `receivedAt`).
async fn viewers_seen(
    screen: &mut SocketClient,
    poll: &StoredPoll,
    viewers: u64,
    since_ms: i64,
    timeout: Duration,
) -> Value {
    let poll_id = poll.id.to_string();
    screen
        .wait_for(timeout, |line| {
            line["event"] == "poll-presence"
                && line["data"]["pollId"] == poll_id.as_str()
                && line["data"]["viewers"] == viewers
                && line["receivedAt"].as_i64().is_some_and(|at| at > since_ms)
        })
        .await
        .unwrap_or_else(|| {
            let seen: Vec<Value> = screen.events("poll-presence");
            panic!("no poll-presence with {viewers} viewers within {timeout:?}; seen: {seen:?}")
        })
}

#[tokio::test]
async fn screens_on_every_replica_are_counted_and_a_gone_replica_stops_counting() {
    let mut h = Harness::new(2).await;
    let poll = h.poll().await;
    let start = now_ms();
    let mut a1 = h.screen(0, &poll).await;
    let a2 = h.screen(0, &poll).await;
    let mut b1 = h.screen(1, &poll).await;
    let mut a2 = Some(a2);
    let settle = INTERVAL * 3;
    for screen in [&mut a1, a2.as_mut().unwrap(), &mut b1] {
        viewers_seen(screen, &poll, 3, start, settle).await;
    }

    // One screen goes: every other screen sees 2.
    let left = now_ms();
    a2.take().unwrap().close().await;
    viewers_seen(&mut a1, &poll, 2, left, settle).await;
    viewers_seen(&mut b1, &poll, 2, left, settle).await;

    // A replica that died without a goodbye: its count holds while its heartbeat lives, then
    // stops counting and its field is removed.
    let mut redis = pollstream_testkit::redis_connection();
    let key = format!("presence:{}", poll.id);
    let ghost = format!("ghost-{}", uuid::Uuid::new_v4().simple());
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(format!("presence:replica:{ghost}"))
        .arg(1)
        .arg("PX")
        .arg(TTL.as_millis() as u64)
        .ignore()
        .cmd("HSET")
        .arg(&key)
        .arg(&ghost)
        .arg(5)
        .ignore()
        .query_async(&mut redis)
        .await
        .unwrap();
    let haunted = now_ms();
    let seven = viewers_seen(&mut a1, &poll, 7, haunted, settle).await;
    let died = now_ms().max(seven["receivedAt"].as_i64().unwrap());
    viewers_seen(&mut a1, &poll, 2, died, TTL + settle).await;
    let ghost_left: bool = redis::cmd("HEXISTS")
        .arg(&key)
        .arg(&ghost)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!ghost_left, "the dead replica's field was not removed");

    // Replica B stops: A's screen is all that is left, within the heartbeat's life and a tick.
    let stopped = now_ms();
    h.servers[1].take().unwrap().stop().await;
    let alone = viewers_seen(&mut a1, &poll, 1, stopped, TTL + INTERVAL * 2).await;
    let took = alone["receivedAt"].as_i64().unwrap() - stopped;
    assert!(
        took <= (TTL + INTERVAL * 2).as_millis() as i64,
        "A's share came {took} ms after B stopped"
    );
    a1.close().await;
    b1.close().await;
}

#[tokio::test]
async fn the_presenters_own_screen_is_not_counted() {
    let h = Harness::new(1).await;
    let poll = h.poll().await;
    let start = now_ms();
    let mut presenter = SocketClient::connect(&h.urls[0]).await;
    let token = pollstream_testkit::tokens::token("owner");
    let ack = presenter
        .request("join", json!({ "pollId": poll.id, "token": token }))
        .await;
    assert_eq!(ack["pollId"], poll.id.to_string(), "join failed: {ack}");
    viewers_seen(&mut presenter, &poll, 0, start, INTERVAL * 3).await;
    let joined = now_ms();
    let mut audience = h.screen(0, &poll).await;
    let _second = h.screen(0, &poll).await;
    viewers_seen(&mut presenter, &poll, 2, joined, INTERVAL * 3).await;
    viewers_seen(&mut audience, &poll, 2, joined, INTERVAL * 3).await;
}

#[tokio::test]
async fn presence_goes_out_at_most_once_a_second_per_poll() {
    let h = Harness::new(1).await;
    let poll = h.poll().await;
    let start = now_ms();
    let mut observer = h.screen(0, &poll).await;
    let mut joiners = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        joiners.push(h.screen(0, &poll).await);
    }
    viewers_seen(&mut observer, &poll, 7, start, INTERVAL * 3).await;
    tokio::time::sleep(INTERVAL * 2).await;
    let end = now_ms();
    let poll_id = poll.id.to_string();
    let events: Vec<Value> = observer
        .events("poll-presence")
        .into_iter()
        .filter(|data| data["pollId"] == poll_id.as_str())
        .collect();
    let window_secs = (end - start) as f64 / 1_000.0;
    assert!(events.len() >= 2, "the count changed, yet: {events:?}");
    assert!(
        events.len() as f64 <= window_secs.floor() + 1.0,
        "{} poll-presence events in {window_secs:.1} s: {events:?}",
        events.len()
    );
    assert_eq!(events.last().unwrap()["viewers"], 7);
    for screen in joiners {
        screen.close().await;
    }
    observer.close().await;
}

#[tokio::test]
async fn without_redis_presence_pauses_and_broadcasts_go_on() {
    let nowhere = format!("redis://127.0.0.1:{}", pollstream_testkit::free_port());
    let h = Harness::with(1, &[("REDIS_URL", &nowhere), ("REDIS_TIMEOUT_MS", "200")]).await;
    let poll = h.poll().await;
    let mut screen = h.screen(0, &poll).await;
    let snapshot = poll.snapshot(1, &[1, 0], PollStatus::Open);
    publish_until_seen(&h.updates, &snapshot, &mut [&mut screen]).await;

    let metrics = pollstream_testkit::eventually(INTERVAL * 5, || async {
        let text = reqwest::get(format!("{}/metrics", h.urls[0]))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        pollstream_testkit::metric_sample(&text, "presence_failures_total", &[])
            .is_some_and(|failures| failures > 0.0)
            .then_some(text)
    })
    .await;
    assert!(metrics.is_some(), "presence_failures_total never counted");
    assert!(
        screen.events("poll-presence").is_empty(),
        "a count went out without Redis"
    );
    screen.close().await;
}
