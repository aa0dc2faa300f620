//! poll-aggregator against real PostgreSQL, Redis and a Kafka-compatible broker: votes are
//! produced straight to a throwaway `raw-votes` topic, as voting-api would.

use std::time::Duration;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use poll_aggregator::{Config, RunError};
use pollstream_testkit::polls::{NewPoll, raw_vote};
use pollstream_testkit::server::{RunningServer, start_server};
use pollstream_testkit::service_env::ServiceEnv;
use pollstream_testkit::topic_writer::TopicWriter;
use pollstream_testkit::{PipelineTopics, TestDatabase, read_messages, topic_reader, unique_topic};
use pollstream_wire::{PollSnapshot, RawVote};
use uuid::Uuid;

struct Harness {
    db: TestDatabase,
    raw_votes: String,
    poll_updates: String,
    dead_letters: String,
    group: String,
    votes: TopicWriter,
}

impl Harness {
    async fn new() -> Self {
        pollstream_testkit::init_logging();
        let PipelineTopics {
            raw_votes,
            poll_updates,
            dead_letters,
        } = PipelineTopics::create().await;
        Self {
            db: TestDatabase::create().await,
            group: unique_topic("group"),
            votes: TopicWriter::new(&raw_votes),
            raw_votes,
            poll_updates,
            dead_letters,
        }
    }

    async fn start(&self, flush_interval_ms: &str) -> RunningServer<RunError> {
        let env = ServiceEnv::new(&self.db.url)
            .set("RAW_VOTES_TOPIC", &self.raw_votes)
            .set("POLL_UPDATES_TOPIC", &self.poll_updates)
            .set("AGGREGATOR_GROUP_ID", &self.group)
            .set("FLUSH_INTERVAL_MS", flush_interval_ms);
        let config = Config::from_vars(&env.vars()).unwrap();
        start_server(|listener, shutdown| poll_aggregator::run(config, listener, shutdown)).await
    }

    /// Inserts a poll with `options` options straight into the database.
    async fn poll(&self, options: usize, max_choices: i32) -> (Uuid, Vec<Uuid>) {
        let poll = NewPoll::new(options)
            .max_choices(max_choices)
            .insert(&self.db.pool)
            .await;
        (poll.id, poll.options)
    }

    /// Produces `payload` to `raw-votes`; returns the partition and offset it landed at.
    async fn send_raw(&self, key: &str, payload: &[u8]) -> (i32, i64) {
        self.votes.send(key, payload).await
    }

    /// Produces a vote with any voter id and `castAt`, as one made by hand could be; returns it
    /// with the partition and offset it landed at.
    async fn send_crafted(
        &self,
        poll_id: Uuid,
        voter: &str,
        options: &[Uuid],
        cast_at: DateTime<Utc>,
    ) -> (RawVote, (i32, i64)) {
        let vote = raw_vote(poll_id, voter, options, cast_at);
        let source = self.votes.send_vote(&vote).await;
        (vote, source)
    }

    async fn send_vote(&self, poll_id: Uuid, voter: &str, options: &[Uuid]) -> RawVote {
        let vote = raw_vote(poll_id, voter, options, Utc::now());
        self.votes.send_vote(&vote).await;
        vote
    }

    async fn counts(&self, poll_id: Uuid) -> (i64, i64, Vec<i64>) {
        self.db.counts(poll_id).await
    }

    async fn wait_for_total(&self, poll_id: Uuid, total: i64) -> (i64, i64, Vec<i64>) {
        pollstream_testkit::eventually(Duration::from_secs(30), || async {
            let counts = self.counts(poll_id).await;
            (counts.1 >= total).then_some(counts)
        })
        .await
        .unwrap_or_else(|| panic!("the poll's total never reached {total} within 30 s"))
    }
}

#[tokio::test]
async fn every_ballot_is_counted_once_and_snapshots_are_published() {
    let h = Harness::new().await;
    let updates = topic_reader(&h.poll_updates).await;
    let (poll_id, options) = h.poll(3, 1).await;
    let running = h.start("100").await;

    for i in 0..60 {
        h.send_vote(poll_id, &format!("voter-{i}"), &[options[i % 3]])
            .await;
    }
    // Repeats of ten voters, with other choices: none may count.
    for i in 0..10 {
        h.send_vote(poll_id, &format!("voter-{i}"), &[options[(i + 1) % 3]])
            .await;
    }
    let (_, total, votes) = h.wait_for_total(poll_id, 60).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (seq, total_after, votes_after) = h.counts(poll_id).await;
    assert_eq!((total, votes.clone()), (60, vec![20, 20, 20]));
    assert_eq!(
        (total_after, votes_after),
        (60, votes),
        "repeats changed the counts"
    );
    let ballots = h.db.ballots(poll_id).await;
    assert_eq!(ballots, 60);

    let snapshots: Vec<PollSnapshot> = read_messages(&updates, 100, Duration::from_secs(3))
        .await
        .iter()
        .map(|m| PollSnapshot::decode(&m.payload).unwrap())
        .collect();
    let last = snapshots.last().expect("no snapshot published");
    assert_eq!(last.total, 60);
    assert_eq!(last.seq, seq);
    assert!(
        snapshots.windows(2).all(|w| w[0].seq <= w[1].seq),
        "seq went backwards"
    );

    let mut redis = pollstream_testkit::redis_connection();
    let cached = pollstream_store::results_cache::read(&mut redis, poll_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((cached.seq, cached.total), (seq, 60));
    running.stop().await;
}

/// The scenario of a chaos run: replica A flushes `seq` n, replica B flushes n + 1 and caches
/// it, Redis restarts empty, then A's delayed cache write arrives. Caching A's snapshot would
/// hand screens that join now an older count than they were sent.
#[tokio::test]
async fn a_results_entry_lost_with_redis_is_refilled_from_postgresql_not_from_an_older_snapshot() {
    let h = Harness::new().await;
    let (poll_id, options) = h.poll(2, 1).await;
    let running = h.start("50").await;
    h.send_vote(poll_id, "a", &[options[0]]).await;
    h.wait_for_total(poll_id, 1).await;
    h.send_vote(poll_id, "b", &[options[1]]).await;
    let (seq, _, _) = h.wait_for_total(poll_id, 2).await;
    running.stop().await;

    let mut redis = pollstream_testkit::redis_connection();
    let mut stale = pollstream_store::snapshots::load(&h.db.pool, poll_id)
        .await
        .unwrap()
        .unwrap();
    stale.seq -= 1;
    stale.total -= 1;
    stale.options[1].votes -= 1;
    let _: () = redis::cmd("DEL")
        .arg(pollstream_wire::results_cache_key(poll_id))
        .query_async(&mut redis)
        .await
        .unwrap();
    let stored = pollstream_store::results_cache::write_if_newer(&mut redis, &h.db.pool, &stale)
        .await
        .unwrap();
    let cached = pollstream_store::results_cache::read(&mut redis, poll_id)
        .await
        .unwrap()
        .expect("the entry was refilled");
    assert!(stored);
    assert_eq!((cached.seq, cached.total), (seq, 2));
    assert!(
        !pollstream_store::results_cache::write_if_newer(&mut redis, &h.db.pool, &stale)
            .await
            .unwrap(),
        "an older snapshot replaced the refilled entry"
    );
}

#[tokio::test]
async fn multiple_choice_ballot_counts_each_chosen_option() {
    let h = Harness::new().await;
    let (poll_id, options) = h.poll(3, 2).await;
    let running = h.start("100").await;
    h.send_vote(poll_id, "a", &[options[0], options[2]]).await;
    h.send_vote(poll_id, "b", &[options[2]]).await;
    let (_, total, votes) = h.wait_for_total(poll_id, 2).await;
    assert_eq!(total, 2, "total counts ballots, not choices");
    assert_eq!(votes, vec![1, 0, 2]);
    running.stop().await;
}

#[tokio::test]
async fn undecodable_and_invalid_votes_are_parked_and_the_rest_counted() {
    let h = Harness::new().await;
    let dead = topic_reader(&h.dead_letters).await;
    let (poll_id, options) = h.poll(2, 1).await;
    let running = h.start("100").await;

    h.send_vote(poll_id, "before", &[options[0]]).await;
    h.send_raw(&poll_id.to_string(), b"{ this is not json")
        .await;
    h.send_raw(&poll_id.to_string(), br#"{"v":9,"voteId":"x"}"#)
        .await;
    h.send_vote(poll_id, "foreign-option", &[Uuid::now_v7()])
        .await;
    h.send_vote(Uuid::now_v7(), "unknown-poll", &[options[0]])
        .await;
    h.send_vote(poll_id, "after", &[options[1]]).await;

    let (_, total, votes) = h.wait_for_total(poll_id, 2).await;
    assert_eq!((total, votes), (2, vec![1, 1]));
    let parked = read_messages(&dead, 4, Duration::from_secs(20)).await;
    let mut reasons: Vec<String> = parked
        .iter()
        .map(|m| m.header("dlq-reason").unwrap_or_default().to_owned())
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.starts_with("malformed message")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("unsupported schema version") || r.starts_with("malformed")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"unknown_option".to_owned()),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"unknown_poll".to_owned()), "{reasons:?}");
    assert!(
        parked.iter().any(|m| m.payload == b"{ this is not json"),
        "the original bytes are kept"
    );
    running.stop().await;
}

/// One vote PostgreSQL cannot store (a NUL in the voter id, an index key over 2.7 KB) used to
/// fail every flush of its batch forever, and nothing was counted again (fixed in `b1f3356`).
#[tokio::test]
async fn poisonous_votes_are_parked_and_the_votes_around_them_counted() {
    let h = Harness::new().await;
    let dead = topic_reader(&h.dead_letters).await;
    let (poll_id, options) = h.poll(2, 1).await;
    let running = h.start("100").await;

    h.send_vote(poll_id, "before", &[options[0]]).await;
    let now = Utc::now();
    let poison = [
        ("nul\u{0}voter".to_owned(), now, "voter_id_not_printable"),
        ("x".repeat(3_000), now, "voter_id_too_long"),
        (
            "time-traveller".to_owned(),
            now + chrono::Duration::days(3_650),
            "cast_at_out_of_range",
        ),
    ];
    let mut expected = HashMap::new();
    for (i, (voter, cast_at, reason)) in poison.into_iter().enumerate() {
        let (vote, source) = h
            .send_crafted(poll_id, &voter, &[options[1]], cast_at)
            .await;
        expected.insert(vote.vote_id, (reason, source));
        h.send_vote(poll_id, &format!("between-{i}"), &[options[1]])
            .await;
    }
    h.send_vote(poll_id, "after", &[options[0]]).await;

    let (_, total, votes) = h.wait_for_total(poll_id, 5).await;
    assert_eq!((total, votes), (5, vec![2, 3]));
    let parked = read_messages(&dead, 3, Duration::from_secs(20)).await;
    assert_eq!(parked.len(), 3, "every poisonous vote is parked");
    for message in &parked {
        let vote = RawVote::decode(&message.payload).expect("a parked vote stays decodable");
        let (reason, (partition, offset)) = expected[&vote.vote_id];
        assert_eq!(message.header("dlq-reason"), Some(reason));
        assert_eq!(
            message.header("dlq-source-topic"),
            Some(h.raw_votes.as_str())
        );
        assert_eq!(
            message.header("dlq-source-partition"),
            Some(partition.to_string().as_str()),
            "{reason}: the real source partition"
        );
        assert_eq!(
            message.header("dlq-source-offset"),
            Some(offset.to_string().as_str()),
            "{reason}: the real source offset"
        );
        assert_eq!(message.key.as_deref(), Some(vote.key().as_str()));
    }

    // The batches after it flow too: its offsets were committed, nothing is stuck behind it.
    h.send_vote(poll_id, "later", &[options[0]]).await;
    let (_, total, votes) = h.wait_for_total(poll_id, 6).await;
    assert_eq!((total, votes), (6, vec![3, 3]));
    running.stop().await;
    assert!(
        read_messages(&dead, 1, Duration::from_secs(1))
            .await
            .is_empty(),
        "nothing parked twice"
    );
}

/// A refusal validation cannot foresee (here a constraint the aggregator knows nothing of)
/// is isolated by splitting the batch: the refused vote is parked with PostgreSQL's SQLSTATE
/// and the rest of the same batch is counted in the same flush.
#[tokio::test]
async fn a_vote_the_database_refuses_is_parked_and_the_rest_of_its_batch_counted() {
    let h = Harness::new().await;
    let dead = topic_reader(&h.dead_letters).await;
    let updates = topic_reader(&h.poll_updates).await;
    let (poll_id, options) = h.poll(2, 1).await;
    sqlx::query("ALTER TABLE ballots ADD CONSTRAINT no_mallory CHECK (voter_id <> 'mallory')")
        .execute(&h.db.pool)
        .await
        .unwrap();
    // A flush interval far longer than the test: only the drain at shutdown flushes, so all
    // these votes are one batch, counted in one flush cycle.
    let running = h.start("600000").await;
    for i in 0..3 {
        h.send_vote(poll_id, &format!("v{i}"), &[options[i % 2]])
            .await;
    }
    let (mallory, (partition, offset)) = h
        .send_crafted(poll_id, "mallory", &[options[0]], Utc::now())
        .await;
    for i in 3..6 {
        h.send_vote(poll_id, &format!("v{i}"), &[options[i % 2]])
            .await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        h.counts(poll_id).await.1,
        0,
        "nothing flushed before the drain"
    );
    running.stop().await;

    let (seq, total, votes) = h.counts(poll_id).await;
    assert_eq!((total, votes), (6, vec![3, 3]));
    let parked = read_messages(&dead, 2, Duration::from_secs(10)).await;
    assert_eq!(parked.len(), 1, "only the refused vote is parked");
    let message = &parked[0];
    assert_eq!(
        RawVote::decode(&message.payload).unwrap().vote_id,
        mallory.vote_id
    );
    assert_eq!(message.header("dlq-reason"), Some("database_refused"));
    assert_eq!(message.header("dlq-sqlstate"), Some("23514"));
    assert!(
        message
            .header("dlq-database-message")
            .is_some_and(|m| m.contains("no_mallory")),
        "{:?}",
        message.headers
    );
    assert_eq!(
        message.header("dlq-source-partition"),
        Some(partition.to_string().as_str())
    );
    assert_eq!(
        message.header("dlq-source-offset"),
        Some(offset.to_string().as_str())
    );

    // One snapshot per poll and cycle, published after the last part: the final state.
    let snapshots: Vec<PollSnapshot> = read_messages(&updates, 10, Duration::from_secs(3))
        .await
        .iter()
        .map(|m| PollSnapshot::decode(&m.payload).unwrap())
        .collect();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!((snapshots[0].seq, snapshots[0].total), (seq, 6));
}

#[tokio::test]
async fn shutdown_flushes_the_buffered_batch() {
    let h = Harness::new().await;
    let (poll_id, options) = h.poll(2, 1).await;
    // A flush interval far longer than the test: only the drain can count these votes.
    let running = h.start("600000").await;
    for i in 0..25 {
        h.send_vote(poll_id, &format!("v{i}"), &[options[i % 2]])
            .await;
    }
    // Wait until the aggregator has the votes in its buffer: its group committed nothing yet,
    // so the evidence is only that nothing is counted while they are consumed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        h.counts(poll_id).await.1,
        0,
        "nothing is flushed before the interval"
    );
    running.stop().await;
    let (_, total, votes) = h.counts(poll_id).await;
    assert_eq!((total, votes), (25, vec![13, 12]));
}

#[tokio::test]
async fn replaying_the_topic_after_a_restart_counts_nothing_twice() {
    let h = Harness::new().await;
    let (poll_id, options) = h.poll(2, 1).await;
    let running = h.start("100").await;
    let mut sent = Vec::new();
    for i in 0..30 {
        sent.push(
            h.send_vote(poll_id, &format!("r{i}"), &[options[i % 2]])
                .await,
        );
    }
    h.wait_for_total(poll_id, 30).await;
    running.stop().await;
    let before = h.counts(poll_id).await;

    // The same votes delivered again (a producer retry, a replay after a crash).
    for vote in &sent {
        h.send_raw(&poll_id.to_string(), &vote.encode()).await;
    }
    let marker = h.send_vote(poll_id, "marker", &[options[0]]).await;
    let running = h.start("100").await;
    let (_, total, votes) = h.wait_for_total(poll_id, 31).await;
    assert_eq!(total, 31, "only the marker vote is new");
    assert_eq!(votes, vec![before.2[0] + 1, before.2[1]]);
    let (vote_id,): (Uuid,) =
        sqlx::query_as("SELECT vote_id FROM ballots WHERE poll_id = $1 AND voter_id = 'marker'")
            .bind(poll_id)
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
    assert_eq!(vote_id, marker.vote_id);
    running.stop().await;
}

#[tokio::test]
async fn polls_close_on_time_votes_cast_after_are_parked_and_the_close_is_announced() {
    let h = Harness::new().await;
    let updates = topic_reader(&h.poll_updates).await;
    let dead = topic_reader(&h.dead_letters).await;
    let (poll_id, options) = h.poll(2, 1).await;
    let closes_at = Utc::now() + chrono::Duration::milliseconds(1500);
    sqlx::query("UPDATE polls SET closes_at = $2 WHERE id = $1")
        .bind(poll_id)
        .bind(closes_at)
        .execute(&h.db.pool)
        .await
        .unwrap();
    let running = h.start("100").await;
    h.send_vote(poll_id, "in-time", &[options[0]]).await;
    // Cast (accepted by an API replica) after closesAt: it raced the close and must not count.
    let late = raw_vote(
        poll_id,
        "raced",
        &[options[1]],
        closes_at + chrono::Duration::milliseconds(1),
    );
    h.votes.send_vote(&late).await;

    let closing = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let messages = read_messages(&updates, 1, Duration::from_millis(200)).await;
        messages
            .iter()
            .map(|m| PollSnapshot::decode(&m.payload).unwrap())
            .find(|s| s.status == pollstream_wire::PollStatus::Closed)
    })
    .await
    .expect("the close was never announced");
    assert_eq!(closing.total, 1);
    // The closer marks the poll announced once the snapshot is produced, so a reader of
    // `poll-updates` may see the snapshot a moment before the mark.
    let (status, closed_at) = pollstream_testkit::eventually(Duration::from_secs(10), || async {
        let (status, announced, closed_at): (String, bool, Option<chrono::DateTime<Utc>>) =
            sqlx::query_as("SELECT status, close_announced, closed_at FROM polls WHERE id = $1")
                .bind(poll_id)
                .fetch_one(&h.db.pool)
                .await
                .unwrap();
        announced.then_some((status, closed_at))
    })
    .await
    .expect("the poll was never marked announced");
    assert_eq!(status, "closed");
    assert_eq!(
        closed_at.map(|t| t.timestamp_millis()),
        Some(closes_at.timestamp_millis())
    );
    let parked = read_messages(&dead, 1, Duration::from_secs(10)).await;
    assert_eq!(parked.len(), 1);
    assert!(
        parked[0]
            .headers
            .contains(&("dlq-reason".to_owned(), "cast_after_close".to_owned()))
    );
    assert_eq!(h.counts(poll_id).await.1, 1);
    let mut redis = pollstream_testkit::redis_connection();
    let flag: Option<String> = redis::cmd("GET")
        .arg(format!("poll-closed:{poll_id}"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(flag.is_some(), "voting-api replicas are told at once");
    running.stop().await;
}

#[tokio::test]
async fn a_close_by_the_owner_is_announced() {
    let h = Harness::new().await;
    let updates = topic_reader(&h.poll_updates).await;
    let (poll_id, options) = h.poll(2, 1).await;
    let running = h.start("100").await;
    h.send_vote(poll_id, "before", &[options[0]]).await;
    h.wait_for_total(poll_id, 1).await;
    // What voting-api's close endpoint writes.
    pollstream_store::polls::close(&h.db.pool, poll_id)
        .await
        .unwrap();
    let seen = std::sync::Mutex::new(Vec::<PollSnapshot>::new());
    let closing = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let read = read_messages(&updates, 1, Duration::from_millis(200)).await;
        let mut seen = seen.lock().unwrap();
        seen.extend(
            read.iter()
                .map(|m| PollSnapshot::decode(&m.payload).unwrap()),
        );
        seen.iter()
            .find(|s| s.status == pollstream_wire::PollStatus::Closed)
            .cloned()
    })
    .await
    .expect("the close was never announced");
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.iter()
            .any(|s| s.status == pollstream_wire::PollStatus::Closing && s.seq < closing.seq),
        "the closing is announced before the final count: {seen:?}"
    );
    assert_eq!((closing.total, closing.options[0].votes), (1, 1));
    running.stop().await;
}

/// Once a poll's final count is announced, nothing changes it: a vote cast in time that lands
/// later still (a send voting-api gave up on) is parked, and a replay of a counted voter's
/// vote is a repeat as ever, not a dead letter.
#[tokio::test]
async fn a_vote_arriving_after_the_final_count_is_parked_and_a_replay_is_a_repeat() {
    let h = Harness::new().await;
    let dead = topic_reader(&h.dead_letters).await;
    let (poll_id, options) = h.poll(2, 1).await;
    let running = h.start("100").await;
    let counted = h.send_vote(poll_id, "counted", &[options[0]]).await;
    h.wait_for_total(poll_id, 1).await;
    let cast_in_time = Utc::now();
    pollstream_store::polls::close(&h.db.pool, poll_id)
        .await
        .unwrap();
    pollstream_testkit::eventually(Duration::from_secs(60), || async {
        let status: String = sqlx::query_scalar("SELECT status FROM polls WHERE id = $1")
            .bind(poll_id)
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
        (status == "closed").then_some(())
    })
    .await
    .expect("the poll was never finalized");

    h.votes.send_vote(&counted).await;
    let late = raw_vote(poll_id, "late", &[options[1]], cast_in_time);
    h.votes.send_vote(&late).await;
    let parked = read_messages(&dead, 2, Duration::from_secs(20)).await;
    assert_eq!(parked.len(), 1, "only the late vote is parked");
    assert_eq!(parked[0].header("dlq-reason"), Some("after_final_count"));
    assert_eq!(parked[0].key, Some(format!("{poll_id}/late")));
    assert_eq!(h.counts(poll_id).await.1, 1, "the final count stands");
    running.stop().await;
}
