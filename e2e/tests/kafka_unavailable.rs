//! The contract of a vote answered `503 kafka_unavailable`: not known to be counted, retrying
//! is safe. On a stack of one replica of each service and one Kafka node of the test's own,
//! the broker is frozen (SIGSTOP) while a dozen voters vote, so every vote times out with
//! `503 kafka_unavailable` after `KAFKA_PRODUCE_TIMEOUT_MS`; some of those sends are already
//! with the frozen broker and are written when it goes on, the others never reach it. Once it
//! goes on, half the voters retry with the other option and half with the same one, until
//! answered. Whichever attempt Kafka wrote first, each voter must end with exactly one ballot
//! in the tally, and `GET /api/v1/votes/{code}/me` must name the options that were counted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pollstream_infra::kafka::{KafkaSettings, fence};
use pollstream_testkit::polls::{cast_vote, option_ids};
use pollstream_testkit::replicas::{ReplicaSettings, ReplicaStack, Service};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// voting-api's send deadline here (5 s by default), so the frozen broker's votes are
/// answered quickly and the whole test stays well under a minute.
const PRODUCE_TIMEOUT: Duration = Duration::from_millis(1_500);

/// Voters per case (a retry with the other option, a retry with the same one).
const VOTERS_PER_CASE: usize = 6;

/// Between two voters' first attempts while the broker is frozen: each send becomes a request
/// of its own, so the first few are in flight (sent to the frozen broker, written when it goes
/// on) while the later ones wait in the producer's queue (and are dropped with it), and both
/// outcomes happen in one run.
const FIRST_ATTEMPT_EVERY: Duration = Duration::from_millis(100);

/// One voter: its first attempt is for option 0; its retry is for option 1 or option 0.
struct Voter {
    name: String,
    retry_option: usize,
}

async fn vote(
    stack: &ReplicaStack,
    api: &str,
    code: &str,
    voter: &str,
    option: &str,
) -> (StatusCode, Value) {
    let answer = cast_vote(&stack.http, api, &stack.token(voter), code, option).await;
    (answer.status, answer.body)
}

async fn my_vote(stack: &ReplicaStack, api: &str, code: &str, voter: &str) -> Value {
    let response = stack
        .http
        .get(format!("{api}/api/v1/votes/{code}/me"))
        .bearer_auth(stack.token(voter))
        .send()
        .await
        .expect("/me request failed");
    assert_eq!(response.status(), StatusCode::OK, "/me of {voter}");
    response.json().await.expect("/me body")
}

/// `(voter, vote id, options)` of every ballot of `poll_id`.
async fn ballots(stack: &ReplicaStack, poll_id: Uuid) -> Vec<(String, Uuid, Vec<Uuid>)> {
    sqlx::query_as("SELECT voter_id, vote_id, option_ids FROM ballots WHERE poll_id = $1")
        .bind(poll_id)
        .fetch_all(&stack.pool)
        .await
        .expect("reading the ballots")
}

/// The poll's counters: its total, and each option's votes in position order.
async fn tally(stack: &ReplicaStack, poll_id: Uuid) -> (i64, Vec<i64>) {
    let total: i64 = sqlx::query_scalar("SELECT total FROM polls WHERE id = $1")
        .bind(poll_id)
        .fetch_one(&stack.pool)
        .await
        .expect("reading the poll's total");
    let votes: Vec<i64> =
        sqlx::query_scalar("SELECT votes FROM options WHERE poll_id = $1 ORDER BY position")
            .bind(poll_id)
            .fetch_all(&stack.pool)
            .await
            .expect("reading the option counters");
    (total, votes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_answered_kafka_unavailable_is_counted_at_most_once_and_me_names_the_ballot() {
    let started = Instant::now();
    let settings = ReplicaSettings {
        replicas: 1,
        brokers: 1,
        extra: vec![(
            "KAFKA_PRODUCE_TIMEOUT_MS".to_owned(),
            PRODUCE_TIMEOUT.as_millis().to_string(),
        )],
        ..ReplicaSettings::new("kafka-unavailable")
    };
    let mut stack = ReplicaStack::start(settings).await;
    let api = stack.urls(Service::VotingApi)[0].clone();
    let poll = pollstream_testkit::polls::create_poll(
        &stack.http,
        &api,
        &stack.token("owner"),
        &json!({"question": "Counted once?", "options": ["first", "second"], "kind": "single"}),
    )
    .await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let options = option_ids(&poll);

    // A vote through first: the producer has its connection and every partition's leader.
    let warm = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let (status, _) = vote(&stack, &api, &code, "warm-up", &options[0]).await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    assert!(warm.is_some(), "no vote accepted with the broker up");
    // And counted: the aggregator has joined its group and its coordinator has loaded, so the
    // freeze below meets a running pipeline rather than a group still forming.
    let warm_counted = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        (ballots(&stack, poll_id).await.len() == 1).then_some(())
    })
    .await;
    assert!(warm_counted.is_some(), "the warm-up vote was never counted");

    let voters: Vec<Voter> = (0..2 * VOTERS_PER_CASE)
        .map(|i| {
            let (case, retry_option) = if i % 2 == 0 {
                ("other", 1)
            } else {
                ("same", 0)
            };
            Voter {
                name: format!("{case}-{}", i / 2),
                retry_option,
            }
        })
        .collect();

    stack.kafka.node(1).pause();
    let first_attempts = futures::future::join_all(voters.iter().enumerate().map(|(i, voter)| {
        let (stack, api, code, option) = (&stack, &api, &code, &options[0]);
        async move {
            tokio::time::sleep(FIRST_ATTEMPT_EVERY * i as u32).await;
            vote(stack, api, code, &voter.name, option).await
        }
    }))
    .await;
    stack.kafka.node(1).unpause();
    for (voter, (status, body)) in voters.iter().zip(&first_attempts) {
        assert_eq!(
            (*status, body["error"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("kafka_unavailable")),
            "{}'s vote while the broker was frozen: {body}",
            voter.name
        );
    }

    // Every voter retries until answered: 202, or 409 should another attempt of its own hold
    // the lock. A retry may meet the broker still recovering and get another 503.
    let mut retried: HashMap<&str, (StatusCode, Option<Uuid>)> = HashMap::new();
    for voter in &voters {
        let option = &options[voter.retry_option];
        let answer = pollstream_testkit::eventually(Duration::from_secs(30), || async {
            let (status, body) = vote(&stack, &api, &code, &voter.name, option).await;
            match status {
                StatusCode::ACCEPTED => Some((status, body["voteId"].as_str()?.parse().ok())),
                StatusCode::CONFLICT => Some((status, None)),
                StatusCode::SERVICE_UNAVAILABLE => None,
                other => panic!("{}'s retry answered {other}: {body}", voter.name),
            }
        })
        .await;
        let answer = answer.unwrap_or_else(|| {
            panic!(
                "{}'s retry never got through; broker log:\n{}",
                voter.name,
                stack.kafka.logs()
            )
        });
        retried.insert(&voter.name, answer);
    }

    // Every attempt that reached Kafka is read and counted (or found a repeat) once the
    // aggregator's group has committed past the end of every partition. A freeze longer than
    // the node's KRaft broker session (1.5 s) gets the node fenced by its own controller when it
    // wakes, which reloads the group coordinator; librdkafka's member can lose it for good,
    // and the aggregator replaces a consumer whose commit is unanswered for 5 s.
    let counted_all = pollstream_testkit::eventually(Duration::from_secs(60), || async {
        let counted = ballots(&stack, poll_id).await;
        (counted.len() > voters.len()).then_some(()) // every voter, and the warm-up
    })
    .await;
    assert!(
        counted_all.is_some(),
        "not every voter was counted: {:?}; broker log:\n{}",
        ballots(&stack, poll_id).await,
        stack.kafka.logs()
    );
    fence::wait_until_committed(
        &KafkaSettings::new(stack.kafka.brokers()),
        "poll-aggregator",
        &stack.topics.raw_votes,
        Duration::from_secs(30),
    )
    .await
    .expect("the aggregator read every vote in raw-votes");

    let counted = ballots(&stack, poll_id).await;
    let mut per_voter: HashMap<&str, Vec<(Uuid, Vec<Uuid>)>> = HashMap::new();
    for (voter, vote_id, option_ids) in &counted {
        per_voter
            .entry(voter.as_str())
            .or_default()
            .push((*vote_id, option_ids.clone()));
    }
    let option_uuids: Vec<Uuid> = options.iter().map(|o| o.parse().unwrap()).collect();
    // Per case (0: the retry chose the other option, 1: the same), how many voters' counted
    // ballot was the first attempt (answered 503) and how many a retry's.
    let mut first_counted = [0usize; 2];
    let mut retry_counted = [0usize; 2];
    let mut expected_votes = vec![0i64; options.len()];
    expected_votes[0] += 1; // warm-up
    for voter in &voters {
        let mine = &per_voter[voter.name.as_str()];
        assert_eq!(mine.len(), 1, "{} has {} ballots", voter.name, mine.len());
        let (vote_id, option_ids) = &mine[0];
        let me = my_vote(&stack, &api, &code, &voter.name).await;
        assert_eq!(me["status"], "counted", "{}'s /me: {me}", voter.name);
        assert_eq!(
            me["voteId"].as_str().and_then(|id| id.parse::<Uuid>().ok()),
            Some(*vote_id),
            "{}'s /me names another vote than the counted one: {me}",
            voter.name
        );
        let me_options: Vec<Uuid> = me["optionIds"]
            .as_array()
            .expect("/me optionIds")
            .iter()
            .map(|id| id.as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            &me_options, option_ids,
            "{}'s /me names other options than the counted ones",
            voter.name
        );
        let chosen = option_uuids
            .iter()
            .position(|o| option_ids == &vec![*o])
            .unwrap_or_else(|| panic!("{} counted for {option_ids:?}", voter.name));
        assert!(
            chosen == 0 || chosen == voter.retry_option,
            "{} counted for an option it never chose",
            voter.name
        );
        expected_votes[chosen] += 1;
        // With the other option, the options tell which attempt was counted; with the same
        // one, the vote id does (a retry that was itself answered 503 may be the one counted).
        let case = usize::from(voter.retry_option == 0);
        let retry_won = if case == 0 {
            chosen == voter.retry_option
        } else {
            retried[voter.name.as_str()].1 == Some(*vote_id)
        };
        if retry_won {
            retry_counted[case] += 1;
        } else {
            first_counted[case] += 1;
        }
    }

    // The tally agrees: one ballot per voter, each option counted as the ballots say.
    let expected_total = voters.len() as i64 + 1;
    assert_eq!(counted.len() as i64, expected_total, "{counted:?}");
    let settled = pollstream_testkit::eventually(Duration::from_secs(10), || async {
        let (total, votes) = tally(&stack, poll_id).await;
        (total == expected_total && votes == expected_votes).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "the tally {:?} disagrees with the ballots (total {expected_total}, votes {expected_votes:?})",
        tally(&stack, poll_id).await
    );
    let conflicts = retried
        .values()
        .filter(|(status, _)| *status == StatusCode::CONFLICT)
        .count();
    println!(
        "after 503 kafka_unavailable: retry with the other option: {} counted an attempt \
         answered 503, {} the retry answered 202; retry with the same option: {} an attempt \
         answered 503, {} the retry answered 202; {conflicts} retries answered 409; {:?} in all",
        first_counted[0],
        retry_counted[0],
        first_counted[1],
        retry_counted[1],
        started.elapsed()
    );
    stack.stop().await;
}
