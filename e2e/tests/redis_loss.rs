//! Redis losing the vote locks (a restart without persistence) or a lock outliving its TTL
//! while the poll is open: a voter who already voted is never answered `202` again, because
//! until the poll's locks are restored from PostgreSQL a vote is answered only from its
//! counted ballot (`202` if it is this vote's, `409 already_voted` if another's, `503
//! vote_unconfirmed` while that is not known), and every `202` is counted exactly once.

use std::time::{Duration, Instant};

use pollstream_testkit::owned::OwnedRedis;
use pollstream_testkit::polls::{VoteAnswer, cast_vote, option_ids};
use pollstream_testkit::replicas::{ReplicaSettings, ReplicaStack, Service};
use pollstream_testkit::stack::Stack;
use reqwest::StatusCode;
use uuid::Uuid;

/// A short send deadline, so a restore's first wait is short.
const PRODUCE_TIMEOUT_MS: &str = "1000";

/// A Redis of the test's own (so it can be killed) and a stack on it, named `name`, with a
/// short send deadline.
async fn stack_on_own_redis(name: &str) -> (OwnedRedis, Stack) {
    let redis = OwnedRedis::start().await;
    let url = redis.url();
    let stack = Stack::start_with(
        name,
        200,
        &[
            ("REDIS_URL", &url),
            ("KAFKA_PRODUCE_TIMEOUT_MS", PRODUCE_TIMEOUT_MS),
        ],
    )
    .await;
    (redis, stack)
}

async fn vote(stack: &Stack, code: &str, voter: &str, option: &str) -> VoteAnswer {
    stack.cast_vote(code, voter, option).await
}

/// Votes as `voter` every 250 ms while the answer is `503`, for at most `limit`; returns every
/// answer, the last one first of all the one that was not `503` (if any).
async fn vote_through_503s(
    stack: &Stack,
    code: &str,
    voter: &str,
    option: &str,
    limit: Duration,
) -> Vec<VoteAnswer> {
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

fn summary(answers: &[VoteAnswer]) -> Vec<(u16, Option<&str>)> {
    answers
        .iter()
        .map(|a| (a.status.as_u16(), a.error.as_deref()))
        .collect()
}

/// The answers of a voter who already has a ballot: never `202`, and in the end `409
/// already_voted`.
fn assert_never_accepted_then_already_voted(answers: &[VoteAnswer]) {
    let seen = summary(answers);
    assert!(
        answers.iter().all(|a| a.status != StatusCode::ACCEPTED),
        "a second vote was accepted: {seen:?}"
    );
    let last = answers.last().unwrap();
    assert_eq!(
        (last.status, last.error.as_deref()),
        (StatusCode::CONFLICT, Some("already_voted")),
        "{seen:?}"
    );
}

/// The count of `votes_confirmed_total` with `outcome` in voting-api's metrics.
async fn confirmed(stack: &Stack, outcome: &str) -> f64 {
    let metrics = stack.metrics(&stack.api).await;
    pollstream_testkit::metric_sample(
        &metrics,
        "votes_confirmed_total",
        &[&format!(r#"outcome="{outcome}""#)],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_voter_is_refused_after_redis_loses_its_locks() {
    let (mut redis, stack) = stack_on_own_redis("redis-loss-counted").await;
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
    // Bob, new to the poll, votes while its locks are being restored: his vote is taken
    // unvouched and answered once the aggregator counted it as his ballot.
    let (answers, other_answers, bob) = tokio::join!(
        vote_through_503s(&stack, code, "alice", &options[1], limit),
        vote_through_503s(&stack, other_code, "alice", &other_options[0], limit),
        vote_through_503s(&stack, code, "bob", &options[1], limit),
    );
    assert_never_accepted_then_already_voted(&answers);
    assert_never_accepted_then_already_voted(&other_answers);
    let bob = bob.last().unwrap();
    assert_eq!(bob.status, StatusCode::ACCEPTED, "{}", bob.body);
    assert_eq!(
        stack.counts(poll_id).await,
        (2, vec![1, 1]),
        "bob's 202 before his ballot"
    );
    assert_eq!(stack.counts(other_id).await, (1, vec![0, 1]));
    assert_eq!(confirmed(&stack, "counted").await, 1.0);
    assert!(confirmed(&stack, "already_voted").await >= 2.0);
    let restored = pollstream_testkit::eventually(Duration::from_secs(60), || async {
        let metrics = stack.metrics(&stack.api).await;
        (pollstream_testkit::metric_sample(
            &metrics,
            "vote_lock_restores_total",
            &[r#"outcome="restored""#],
        ) == Some(2.0))
        .then_some(())
    })
    .await;
    assert!(restored.is_some(), "the two polls' locks were not restored");

    // After the restore the poll takes new voters, and counts them.
    let carl = vote(&stack, code, "carl", &options[1]).await;
    assert_eq!(carl.status, StatusCode::ACCEPTED, "{}", carl.body);
    wait_for_ballots(&stack, poll_id, 3).await;
    assert_eq!(stack.counts(poll_id).await, (3, vec![1, 2]));
    for voter in ["alice", "bob"] {
        let again = vote(&stack, code, voter, &options[0]).await;
        assert_eq!(
            again.status,
            StatusCode::CONFLICT,
            "{voter}: {}",
            again.body
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncounted_vote_is_counted_before_a_retry_is_answered_after_redis_loss() {
    let (mut redis, mut stack) = stack_on_own_redis("redis-loss-uncounted").await;
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

    // With the aggregator down nothing can be confirmed: carol's new vote is taken unvouched,
    // in Kafka after her first, and not confirmed in time; its lock stays, so her retries are
    // `409`. Longer than the restore's own first wait and than its lease's TTL (renewed
    // meanwhile): the restore must still be waiting for the aggregator.
    let started = Instant::now();
    let waiting =
        vote_through_503s(&stack, code, "carol", &options[1], Duration::from_secs(12)).await;
    let seen = summary(&waiting);
    let first_answer = waiting
        .iter()
        .find(|a| a.error.as_deref() != Some("redis_unavailable"))
        .expect("no answer once Redis was back");
    assert_eq!(
        (first_answer.status, first_answer.error.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("vote_unconfirmed")),
        "{seen:?}"
    );
    assert!(first_answer.retry_after.is_some(), "{}", first_answer.body);
    assert_never_accepted_then_already_voted(&waiting);
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(started.elapsed())).await;
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

    // The aggregator counts her first vote, the first of hers in the partition.
    stack.start_aggregator();
    wait_for_ballots(&stack, poll_id, 1).await;
    let again = vote(&stack, code, "carol", &options[1]).await;
    assert_eq!(
        (again.status, again.error.as_deref()),
        (StatusCode::CONFLICT, Some("already_voted")),
        "{}",
        again.body
    );
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
    assert_never_accepted_then_already_voted(&answers);
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

/// A vote whose lock Redis loses while Kafka is still acknowledging it, and a second vote of
/// the same voter taken (unvouched) in the empty Redis meanwhile: both reach Kafka, and exactly
/// one is answered `202`, the one counted (the first in the partition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_acknowledged_after_redis_lost_its_lock_is_answered_from_its_ballot() {
    let settings = ReplicaSettings {
        replicas: 1,
        brokers: 1,
        // Confirmations wait for a flush: a short interval keeps them well inside their limit.
        flush_interval_ms: 200,
        extra: vec![("KAFKA_PRODUCE_TIMEOUT_MS".to_owned(), "5000".to_owned())],
        ..ReplicaSettings::new("late-ack")
    };
    let mut stack = ReplicaStack::start(settings).await;
    let api = stack.urls(Service::VotingApi)[0].clone();
    let poll = pollstream_testkit::polls::create_poll(
        &stack.http,
        &api,
        &stack.token("owner"),
        &serde_json::json!({"question": "Which one?", "options": ["first", "second"], "kind": "single"}),
    )
    .await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let options = option_ids(&poll);
    let warm = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let answer = cast_vote(
            &stack.http,
            &api,
            &stack.token("warm-up"),
            &code,
            &options[0],
        )
        .await;
        (answer.status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    assert!(warm.is_some(), "no vote accepted with the broker up");

    let (http, token) = (stack.http.clone(), stack.token("zoe"));
    let attempt = |option: String| {
        let (http, api, token, code) = (http.clone(), api.clone(), token.clone(), code.clone());
        tokio::spawn(async move { cast_vote(&http, &api, &token, &code, &option).await })
    };
    // The first vote takes its lock, then waits for the frozen broker; Redis loses the lock.
    stack.kafka.node(1).pause();
    let first = attempt(options[0].clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.restart_redis().await;
    let second = pollstream_testkit::eventually(Duration::from_secs(10), || async {
        // Redis may still be starting: a vote it did not answer took no lock.
        let answer = attempt(options[1].clone());
        tokio::time::sleep(Duration::from_millis(700)).await;
        if answer.is_finished() {
            let answer = answer.await.unwrap();
            assert_eq!(
                answer.error.as_deref(),
                Some("redis_unavailable"),
                "{}",
                answer.body
            );
            return None;
        }
        Some(answer)
    })
    .await
    .expect("the second vote never got past Redis");
    stack.kafka.node(1).unpause();
    let (first, second) = (first.await.unwrap(), second.await.unwrap());

    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(
        (second.status, second.error.as_deref()),
        (StatusCode::CONFLICT, Some("already_voted")),
        "{}",
        second.body
    );
    let (counted,): (Uuid,) =
        sqlx::query_as("SELECT vote_id FROM ballots WHERE poll_id = $1 AND voter_id = 'zoe'")
            .bind(poll_id)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(counted.to_string(), first.body["voteId"].as_str().unwrap());
    let metrics = stack
        .http
        .get(format!("{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["counted", "already_voted"] {
        assert_eq!(
            pollstream_testkit::metric_sample(
                &metrics,
                "votes_confirmed_total",
                &[&format!(r#"outcome="{outcome}""#)]
            ),
            Some(1.0),
            "{outcome}: {metrics}"
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_sent_while_redis_restarts_is_taken_once_it_is_back() {
    let (mut redis, stack) = stack_on_own_redis("redis-loss-restarting").await;
    let poll = stack.create_poll(&["yes", "no"]).await;
    let code = poll["code"].as_str().unwrap();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let options = option_ids(&poll);
    let first = vote(&stack, code, "alice", &options[0]).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    wait_for_ballots(&stack, poll_id, 1).await;

    // Redis is down for half a second, as in a restart: a vote sent meanwhile waits for it
    // instead of being refused `503 redis_unavailable`.
    redis.kill().await;
    let (bob, ()) = tokio::join!(vote(&stack, code, "bob", &options[1]), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        redis.resume().await;
    });
    assert_eq!(bob.status, StatusCode::ACCEPTED, "{}", bob.body);
    wait_for_ballots(&stack, poll_id, 2).await;
    assert_eq!(stack.counts(poll_id).await, (2, vec![1, 1]));
    let again = vote_through_503s(&stack, code, "bob", &options[0], Duration::from_secs(60)).await;
    assert_never_accepted_then_already_voted(&again);
    stack.stop().await;
}
