//! Redis losing the vote locks (a restart without persistence) or a lock outliving its TTL
//! while the poll is open: a voter who already voted is never answered `202` again, because
//! no vote is taken for the poll until its locks are restored from PostgreSQL (`503
//! vote_locks_restoring` meanwhile), and every `202` is counted exactly once.

use std::time::{Duration, Instant};

use pollstream_testkit::owned::OwnedRedis;
use pollstream_testkit::polls::option_ids;
use pollstream_testkit::stack::Stack;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// A short send deadline, so a restore's first wait is short.
const PRODUCE_TIMEOUT_MS: &str = "1000";

/// One vote's answer: status, `error` code, `Retry-After`, and the body.
struct Answer {
    status: StatusCode,
    error: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

async fn vote(stack: &Stack, code: &str, voter: &str, option: &str) -> Answer {
    let response = stack
        .http
        .post(format!("{}/api/v1/votes/{code}", stack.api))
        .bearer_auth(stack.token(voter))
        .json(&json!({ "optionIds": [option] }))
        .send()
        .await
        .expect("vote request failed");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        error: body["error"].as_str().map(str::to_owned),
        retry_after,
        body,
    }
}

/// Votes as `voter` every 250 ms while the answer is `503`, for at most `limit`; returns every
/// answer, the last one first of all the one that was not `503` (if any).
async fn vote_through_503s(
    stack: &Stack,
    code: &str,
    voter: &str,
    option: &str,
    limit: Duration,
) -> Vec<Answer> {
    let started = Instant::now();
    let mut answers = Vec::new();
    loop {
        let answer = vote(stack, code, voter, option).await;
        let done = answer.status != StatusCode::SERVICE_UNAVAILABLE;
        answers.push(answer);
        if done || started.elapsed() > limit {
            return answers;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_for_ballots(stack: &Stack, poll_id: Uuid, want: i64) {
    let counted = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        (stack.ballots(poll_id).await == want).then_some(())
    })
    .await;
    assert!(counted.is_some(), "{want} ballot(s) never counted");
}

fn summary(answers: &[Answer]) -> Vec<(u16, Option<&str>)> {
    answers
        .iter()
        .map(|a| (a.status.as_u16(), a.error.as_deref()))
        .collect()
}

/// The answers after the first lock-less attempt: never `202`, `503 vote_locks_restoring`
/// with `Retry-After` while restoring, then `409 already_voted`.
fn assert_refused_then_already_voted(answers: &[Answer]) {
    let seen = summary(answers);
    assert!(
        answers.iter().all(|a| a.status != StatusCode::ACCEPTED),
        "a second vote was accepted: {seen:?}"
    );
    let restoring = answers
        .iter()
        .find(|a| a.error.as_deref() == Some("vote_locks_restoring"))
        .unwrap_or_else(|| panic!("never told the locks are being restored: {seen:?}"));
    assert_eq!(restoring.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(restoring.retry_after.is_some(), "{}", restoring.body);
    let last = answers.last().unwrap();
    assert_eq!(
        (last.status, last.error.as_deref()),
        (StatusCode::CONFLICT, Some("already_voted")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_voter_is_refused_after_redis_loses_its_locks() {
    let mut redis = OwnedRedis::start().await;
    let url = redis.url();
    let stack = Stack::start_with(
        "redis-loss-counted",
        200,
        &[
            ("REDIS_URL", &url),
            ("KAFKA_PRODUCE_TIMEOUT_MS", PRODUCE_TIMEOUT_MS),
        ],
    )
    .await;
    let poll = stack.create_poll(&["yes", "no"]).await;
    let code = poll["code"].as_str().unwrap();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let options = option_ids(&poll);

    // A second poll, restored at the same time (the two restores share one fence).
    let other = stack.create_poll(&["left", "right"]).await;
    let other_code = other["code"].as_str().unwrap();
    let other_id: Uuid = other["id"].as_str().unwrap().parse().unwrap();
    let other_options = option_ids(&other);

    let first = vote(&stack, code, "alice", &options[0]).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let elsewhere = vote(&stack, other_code, "alice", &other_options[1]).await;
    assert_eq!(elsewhere.status, StatusCode::ACCEPTED, "{}", elsewhere.body);
    wait_for_ballots(&stack, poll_id, 1).await;
    wait_for_ballots(&stack, other_id, 1).await;

    redis.kill().await;
    redis.resume().await;
    let limit = Duration::from_secs(60);
    let (answers, other_answers) = tokio::join!(
        vote_through_503s(&stack, code, "alice", &options[1], limit),
        vote_through_503s(&stack, other_code, "alice", &other_options[0], limit),
    );
    assert_refused_then_already_voted(&answers);
    assert_refused_then_already_voted(&other_answers);
    assert_eq!(stack.counts(poll_id).await, (1, vec![1, 0]));
    assert_eq!(stack.counts(other_id).await, (1, vec![0, 1]));
    let metrics = stack.metrics(&stack.api).await;
    assert_eq!(
        pollstream_testkit::metric_sample(
            &metrics,
            "vote_lock_restores_total",
            &[r#"outcome="restored""#]
        ),
        Some(2.0),
        "{metrics}"
    );

    // After the restore the poll takes new voters, and counts them.
    let bob = vote(&stack, code, "bob", &options[1]).await;
    assert_eq!(bob.status, StatusCode::ACCEPTED, "{}", bob.body);
    wait_for_ballots(&stack, poll_id, 2).await;
    assert_eq!(stack.counts(poll_id).await, (2, vec![1, 1]));
    let again = vote(&stack, code, "alice", &options[0]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncounted_vote_is_counted_before_a_retry_is_answered_after_redis_loss() {
    let mut redis = OwnedRedis::start().await;
    let url = redis.url();
    let mut stack = Stack::start_with(
        "redis-loss-uncounted",
        200,
        &[
            ("REDIS_URL", &url),
            ("KAFKA_PRODUCE_TIMEOUT_MS", PRODUCE_TIMEOUT_MS),
        ],
    )
    .await;
    let poll = stack.create_poll(&["yes", "no"]).await;
    let code = poll["code"].as_str().unwrap();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let options = option_ids(&poll);

    // The aggregator is down: the first vote is in Kafka but not counted when Redis goes.
    stack.kill_aggregator().await;
    let first = vote(&stack, code, "carol", &options[0]).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    redis.kill().await;
    redis.resume().await;

    // Longer than the restore's own first wait and than its lease's TTL (renewed meanwhile):
    // it must still be waiting for the aggregator.
    let waiting =
        vote_through_503s(&stack, code, "carol", &options[1], Duration::from_secs(12)).await;
    assert!(
        waiting
            .iter()
            .all(|a| a.status == StatusCode::SERVICE_UNAVAILABLE),
        "answered before the first vote was counted: {:?}",
        summary(&waiting)
    );
    assert_eq!(stack.ballots(poll_id).await, 0);
    let lease = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "EXISTS"])
        .arg(format!("vote-locks-restoring:{poll_id}"))
        .output()
        .expect("running redis-cli");
    assert_eq!(
        String::from_utf8_lossy(&lease.stdout).trim(),
        "1",
        "the restore's lease lapsed while it ran"
    );

    stack.start_aggregator();
    let answers =
        vote_through_503s(&stack, code, "carol", &options[1], Duration::from_secs(90)).await;
    assert_refused_then_already_voted(&answers);
    wait_for_ballots(&stack, poll_id, 1).await;
    assert_eq!(stack.counts(poll_id).await, (1, vec![1, 0]));
    let (counted_vote,): (Uuid,) =
        sqlx::query_as("SELECT vote_id FROM ballots WHERE poll_id = $1 AND voter_id = 'carol'")
            .bind(poll_id)
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
    assert_eq!(
        counted_vote.to_string(),
        first.body["voteId"].as_str().unwrap()
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lock_does_not_let_a_voter_vote_twice() {
    let stack = Stack::start_with(
        "expired-vote-lock",
        200,
        &[
            ("VOTE_LOCK_TTL_SECS", "3"),
            ("KAFKA_PRODUCE_TIMEOUT_MS", PRODUCE_TIMEOUT_MS),
        ],
    )
    .await;
    let poll = stack.create_poll(&["yes", "no"]).await;
    let code = poll["code"].as_str().unwrap();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let options = option_ids(&poll);

    let first = vote(&stack, code, "dave", &options[0]).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    wait_for_ballots(&stack, poll_id, 1).await;
    // The lock and the poll's marker are both gone now.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let answers =
        vote_through_503s(&stack, code, "dave", &options[1], Duration::from_secs(60)).await;
    assert_refused_then_already_voted(&answers);
    assert_eq!(stack.counts(poll_id).await, (1, vec![1, 0]));

    // A new voter gets in (once a restore has run, the marker may lapse again meanwhile).
    let erin = vote_through_503s(&stack, code, "erin", &options[1], Duration::from_secs(60)).await;
    let last = erin.last().unwrap();
    assert_eq!(last.status, StatusCode::ACCEPTED, "{:?}", summary(&erin));
    wait_for_ballots(&stack, poll_id, 2).await;
    assert_eq!(stack.counts(poll_id).await, (2, vec![1, 1]));
    stack.stop().await;
}

/// A lock still in Redis when its poll's marker lapses must not expire before the marker a
/// restore sets: the restore rewrites it with a full TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_older_than_the_restored_marker_does_not_lapse_before_it() {
    let stack = Stack::start_with(
        "lock-outlives-restore",
        200,
        &[
            ("VOTE_LOCK_TTL_SECS", "4"),
            ("KAFKA_PRODUCE_TIMEOUT_MS", PRODUCE_TIMEOUT_MS),
        ],
    )
    .await;
    let poll = stack.create_poll(&["yes", "no"]).await;
    let created = Instant::now();
    let code = poll["code"].as_str().unwrap();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let options = option_ids(&poll);

    // Frank's lock is taken a second before the poll's marker lapses, so it is still there when
    // the restore runs, and would expire while the restored marker still vouches for it.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(created.elapsed())).await;
    let first = vote(&stack, code, "frank", &options[0]).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    wait_for_ballots(&stack, poll_id, 1).await;
    tokio::time::sleep(Duration::from_millis(4_500).saturating_sub(created.elapsed())).await;

    let mut answers = Vec::new();
    while created.elapsed() < Duration::from_secs(14) {
        answers.push(vote(&stack, code, "frank", &options[1]).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seen = summary(&answers);
    assert!(
        answers.iter().all(|a| a.status != StatusCode::ACCEPTED),
        "a second vote was accepted: {seen:?}"
    );
    assert!(
        answers.iter().any(|a| a.status == StatusCode::CONFLICT),
        "{seen:?}"
    );
    assert_eq!(stack.counts(poll_id).await, (1, vec![1, 0]));
    stack.stop().await;
}
