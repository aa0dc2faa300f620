//! The whole pipeline as users run it: voting-api, poll-aggregator and realtime-service as
//! separate processes, real PostgreSQL, Redis and Kafka-compatible broker, and the official
//! socket.io-client watching the poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pollstream_testkit::polls::{option_ids, option_votes};
use pollstream_testkit::stack::Stack;
use pollstream_testkit::{SocketClient, metric_sample};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const VOTERS: usize = 2_000;

/// The ids of a created poll's options, in order.
const CONCURRENCY: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_voters_are_counted_exactly_and_screens_follow() {
    let stack = Stack::start("two-thousand-voters", 500).await;
    let poll = stack.create_poll(&["Rust", "Go", "Node"]).await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let option_ids = option_ids(&poll);

    let mut screen = SocketClient::connect(&stack.realtime).await;
    let joined = screen.request("join", json!({ "code": code })).await;
    assert_eq!(joined["pollId"], poll_id.to_string(), "{joined}");
    assert_eq!(joined["total"], 0);

    // Every voter votes once; every 10th voter tries a second time and must get 409.
    let started = Instant::now();
    let outcomes: Vec<(usize, StatusCode, Option<StatusCode>)> = futures::stream::iter(0..VOTERS)
        .map(|i| {
            let (stack, code, option) = (&stack, &code, &option_ids[i % option_ids.len()]);
            async move {
                let voter = format!("voter-{i}");
                let first = stack.vote(code, &voter, option).await;
                let second = if i % 10 == 0 {
                    Some(stack.vote(code, &voter, option).await)
                } else {
                    None
                };
                (i, first, second)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = started.elapsed();

    let accepted: Vec<usize> = outcomes
        .iter()
        .filter(|(_, first, _)| *first == StatusCode::ACCEPTED)
        .map(|(i, _, _)| *i)
        .collect();
    assert_eq!(
        accepted.len(),
        VOTERS,
        "every first vote is accepted: {:?}",
        outcomes.iter().find(|o| o.1 != StatusCode::ACCEPTED)
    );
    let repeats: Vec<StatusCode> = outcomes
        .iter()
        .filter_map(|(_, _, second)| *second)
        .collect();
    assert_eq!(repeats.len(), VOTERS / 10);
    assert!(
        repeats.iter().all(|s| *s == StatusCode::CONFLICT),
        "repeats: {repeats:?}"
    );
    println!(
        "e2e: {} votes (+{} repeats) accepted in {:.2?}: {:.0} votes/s through voting-api",
        accepted.len(),
        repeats.len(),
        elapsed,
        (accepted.len() + repeats.len()) as f64 / elapsed.as_secs_f64()
    );

    let mut expected = vec![0i64; option_ids.len()];
    for i in &accepted {
        expected[i % option_ids.len()] += 1;
    }
    let total = accepted.len() as i64;

    // REST results (Redis cache written by the aggregator).
    let results = pollstream_testkit::eventually(Duration::from_secs(60), || async {
        let results = stack.results(&code).await;
        (results["total"] == total).then_some(results)
    })
    .await
    .unwrap_or_else(|| panic!("REST results never reached {total}"));
    let rest_votes = option_votes(&results);
    assert_eq!(rest_votes, expected);

    // PostgreSQL.
    assert_eq!(stack.counts(poll_id).await, (total, expected.clone()));
    assert_eq!(stack.ballots(poll_id).await, total);

    // The screen: its last poll-results shows exactly the accepted votes, and seq only grew.
    screen_ends_at(&mut screen, total, &expected).await;
    assert!(
        !screen.events("poll-stats").is_empty(),
        "older clients get poll-stats too"
    );

    screen.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_aggregator_mid_stream_loses_and_doubles_nothing() {
    let mut stack = Stack::start("aggregator-crash", 300).await;
    let poll = stack.create_poll(&["Yes", "No"]).await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let option_ids = option_ids(&poll);

    let accepted = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let voters = {
        let (api, http, code, option_ids) = (
            stack.api.clone(),
            stack.http.clone(),
            code.clone(),
            option_ids.clone(),
        );
        let tokens: Vec<String> = (0..3_000)
            .map(|i| stack.token(&format!("crash-voter-{i}")))
            .collect();
        let (accepted, sent) = (accepted.clone(), sent.clone());
        tokio::spawn(async move {
            futures::stream::iter(tokens.into_iter().enumerate())
                .for_each_concurrent(20, |(i, token)| {
                    let (api, http, code, accepted, sent) = (&api, &http, &code, &accepted, &sent);
                    let option = &option_ids[i % 2];
                    async move {
                        let response = http
                            .post(format!("{api}/api/v1/votes/{code}"))
                            .bearer_auth(token)
                            .json(&json!({ "optionIds": [option] }))
                            .send()
                            .await;
                        sent.fetch_add(1, Ordering::Relaxed);
                        if response.is_ok_and(|r| r.status() == StatusCode::ACCEPTED) {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .await;
        })
    };

    // Let some flushes happen, then kill -9 while votes keep streaming in.
    let counted_before = pollstream_testkit::eventually(Duration::from_secs(60), || async {
        let (total, _) = stack.counts(poll_id).await;
        (total > 200).then_some(total)
    })
    .await
    .expect("nothing was counted before the crash");
    stack.kill_aggregator().await;
    let sent_at_kill = sent.load(Ordering::Relaxed);
    // Restarted at once, as a supervisor would: with the same group.instance.id, the new run
    // takes the dead run's partitions back without waiting for its session to expire.
    let (counted_at_restart, _) = stack.counts(poll_id).await;
    let restarted = Instant::now();
    stack.start_aggregator();
    let resumed = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let (total, _) = stack.counts(poll_id).await;
        (total > counted_at_restart).then(|| restarted.elapsed())
    })
    .await
    .expect("counting never resumed after the restart");
    println!("crash: counting resumed {resumed:?} after the restart");
    assert!(
        resumed < Duration::from_secs(10),
        "counting resumed only {resumed:?} after the restart"
    );
    voters.await.unwrap();
    let accepted = accepted.load(Ordering::Relaxed) as i64;
    println!(
        "crash: killed after {counted_before} counted and {sent_at_kill} sent; {accepted} accepted in all"
    );
    assert!(
        sent_at_kill < 3_000,
        "the kill must happen while votes stream in"
    );

    let counted = pollstream_testkit::eventually(Duration::from_secs(90), || async {
        let (total, _) = stack.counts(poll_id).await;
        (total >= accepted).then_some(total)
    })
    .await;
    let (total, votes) = stack.counts(poll_id).await;
    assert!(
        counted.is_some(),
        "lost votes: counted {total} of {accepted} accepted"
    );
    // A few more flush intervals: a replay must not add anything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (total_later, votes_later) = stack.counts(poll_id).await;
    assert_eq!(
        total_later, accepted,
        "counted {total_later} for {accepted} accepted votes"
    );
    assert_eq!(votes_later, votes);
    assert_eq!(votes.iter().sum::<i64>(), accepted);
    assert_eq!(stack.ballots(poll_id).await, accepted);

    let results: Value = stack.results(&code).await;
    assert_eq!(results["total"], accepted);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_reaches_every_screen_once_with_the_final_count() {
    let stack = Stack::start("close-broadcast", 300).await;
    let poll = stack.create_poll(&["Left", "Right"]).await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let option = poll["options"][0]["id"].as_str().unwrap().to_owned();
    let mut screens = Vec::new();
    for _ in 0..3 {
        let mut screen = SocketClient::connect(&stack.realtime).await;
        screen.request("join", json!({ "code": code })).await;
        screens.push(screen);
    }
    for i in 0..20 {
        assert_eq!(
            stack.vote(&code, &format!("closer-{i}"), &option).await,
            StatusCode::ACCEPTED
        );
    }
    let response = stack
        .http
        .post(format!("{}/api/v1/polls/{code}/close", stack.api))
        .bearer_auth(stack.token("presenter"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        stack.vote(&code, "after-close", &option).await,
        StatusCode::CONFLICT
    );

    for screen in &mut screens {
        screen
            .wait_for(Duration::from_secs(30), |l| {
                l["event"] == "poll-results"
                    && l["data"]["total"] == 20
                    && l["data"]["status"] == "closed"
            })
            .await
            .expect("the final closed snapshot never arrived");
        screen
            .wait_for(Duration::from_secs(10), |l| l["event"] == "poll-closed")
            .await
            .expect("no poll-closed");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let closes = screen.events("poll-closed");
        assert_eq!(closes.len(), 1, "poll-closed exactly once: {closes:?}");
    }
    for screen in screens {
        screen.close().await;
    }
    stack.stop().await;
}

/// One poll receiving every vote is keyed by voter within the poll, so its votes
/// land on every partition of `raw-votes` and both aggregator replicas of the group count it;
/// the ballot key still counts each voter once and screens still only move forward.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_poll_uses_every_partition_and_two_aggregators_count_it() {
    const HOT_VOTERS: usize = 300;
    let mut stack = Stack::start("hot-poll", 200).await;
    let second = stack.add_aggregator_replica().await;
    let group = stack.env_value("AGGREGATOR_GROUP_ID").to_owned();
    let raw_votes = stack.env_value("RAW_VOTES_TOPIC").to_owned();
    let settled = pollstream_testkit::eventually(Duration::from_secs(60), || async {
        (pollstream_testkit::members_with_partitions(&group).await == 2).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "the two replicas never shared {raw_votes}"
    );

    let poll = stack.create_poll(&["a", "b", "c"]).await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let option_ids = option_ids(&poll);
    let mut screen = SocketClient::connect(&stack.realtime).await;
    let joined = screen.request("join", json!({ "code": code })).await;
    assert_eq!(joined["total"], 0, "{joined}");

    let statuses: Vec<StatusCode> = futures::stream::iter(0..HOT_VOTERS)
        .map(|i| {
            let (stack, code, option) = (&stack, &code, &option_ids[i % option_ids.len()]);
            async move { stack.vote(code, &format!("hot-{i}"), option).await }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::ACCEPTED),
        "{statuses:?}"
    );
    let total = HOT_VOTERS as i64;

    // (a) Every partition of the 3-partition topic holds some of the poll's votes.
    let ends = pollstream_testkit::partition_ends(&raw_votes).await;
    println!("hot poll: votes per partition of {raw_votes}: {ends:?}");
    assert_eq!(ends.len(), 3, "{ends:?}");
    assert!(
        ends.iter().all(|&n| n > 0),
        "a partition got none: {ends:?}"
    );
    assert_eq!(ends.iter().sum::<i64>(), total, "{ends:?}");

    // (b) Counted exactly once, by both replicas.
    let counted = pollstream_testkit::eventually(Duration::from_secs(60), || async {
        let counts = stack.counts(poll_id).await;
        (counts.0 >= total).then_some(counts)
    })
    .await
    .expect("the hot poll was never fully counted");
    let mut expected = vec![0i64; option_ids.len()];
    for i in 0..HOT_VOTERS {
        expected[i % option_ids.len()] += 1;
    }
    assert_eq!(counted, (total, expected.clone()), "0 lost, 0 doubled");
    assert_eq!(stack.ballots(poll_id).await, total);
    // A replica records what it counted once the flush's snapshots are published, just after
    // the commit the counts above read: wait for the last flush's figure to land.
    let bases = [stack.aggregator_health.clone(), second];
    let counted_per_replica = || async {
        let mut per_replica = Vec::new();
        for base in &bases {
            let exposition = stack.metrics(base).await;
            let counted = metric_sample(&exposition, "votes_counted_total", &[]);
            per_replica.push(counted.unwrap_or(0.0) as i64);
        }
        per_replica
    };
    let per_replica = pollstream_testkit::eventually(Duration::from_secs(10), || async {
        let per_replica = counted_per_replica().await;
        (per_replica.iter().sum::<i64>() >= total).then_some(per_replica)
    })
    .await
    .unwrap_or(counted_per_replica().await);
    println!("hot poll: votes counted per aggregator replica: {per_replica:?}");
    assert!(
        per_replica.iter().all(|&n| n > 0),
        "each replica counts some: {per_replica:?}"
    );
    assert_eq!(per_replica.iter().sum::<i64>(), total, "{per_replica:?}");

    // The screen: the final count, and never a step back although two replicas publish.
    screen_ends_at(&mut screen, total, &expected).await;
    let results = stack.results(&code).await;
    assert_eq!(results["total"], total, "{results}");

    screen.close().await;
    stack.stop().await;
}

/// Waits until `screen` shows `total`, then checks everything it was shown: its last
/// `poll-results` holds exactly `expected` per option, `seq` only grew and the total never
/// went back.
async fn screen_ends_at(screen: &mut SocketClient, total: i64, expected: &[i64]) {
    screen
        .wait_for(Duration::from_secs(30), |line| {
            line["event"] == "poll-results" && line["data"]["total"] == total
        })
        .await
        .expect("the screen never showed the final total");
    let updates = screen.events("poll-results");
    assert_eq!(option_votes(updates.last().unwrap()), expected);
    let seqs: Vec<i64> = updates.iter().map(|u| u["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq must strictly increase: {seqs:?}"
    );
    let totals: Vec<i64> = updates
        .iter()
        .map(|u| u["total"].as_i64().unwrap())
        .collect();
    assert!(
        totals.windows(2).all(|w| w[0] <= w[1]),
        "counts moved backwards: {totals:?}"
    );
}
