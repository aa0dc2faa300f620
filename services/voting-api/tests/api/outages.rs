//! voting-api while Redis or Kafka is down: bounded `503`s, no lock left behind, readiness
//! says which dependency is missing, and recovery without a restart once it is back (after
//! Redis lost its keys: once the poll's vote locks are restored from the counted ballots).

use std::time::{Duration, Instant};

use pollstream_infra::kafka::KafkaSettings;
use pollstream_testkit::owned::{OwnedBroker, OwnedRedis};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, option_id, spawn_app_with};

#[tokio::test]
async fn redis_outage_gives_quick_503s_and_recovers_by_itself() {
    let mut redis = OwnedRedis::start().await;
    let url = redis.url();
    let group = pollstream_testkit::unique_topic("aggregator");
    let app = spawn_app_with(&[
        ("REDIS_URL", &url),
        ("REDIS_TIMEOUT_MS", "500"),
        ("AGGREGATOR_GROUP_ID", &group),
        ("KAFKA_PRODUCE_TIMEOUT_MS", "1000"),
    ])
    .await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let code = poll["code"].as_str().unwrap();
    assert_eq!(
        app.vote(code, "before", &[option_id(&poll, 0)]).await.0,
        StatusCode::ACCEPTED
    );

    redis.kill().await;
    let started = Instant::now();
    let (status, body) = app.vote(code, "during", &[option_id(&poll, 0)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("redis_unavailable"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_ne!(ready["checks"]["redis"], "ok", "{ready}");
    assert_eq!(ready["checks"]["postgres"], "ok", "{ready}");

    // Redis came back empty: the poll's locks are gone, so a vote is taken unvouched and
    // answered only once its ballot is counted; with no aggregator here, it is not confirmed
    // in time, and its lock stays (the vote is in Kafka and may yet count).
    redis.resume().await;
    let (status, body) = app.vote(code, "during", &[option_id(&poll, 0)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("vote_unconfirmed")),
        "{body}"
    );
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    let (status, body) = app.vote(code, "during", &[option_id(&poll, 1)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_voted")),
        "the retry found no lock: {body}"
    );

    // Counted, as the aggregator would: its ballot, then its group's offsets. The restore
    // then writes the counted ballot's lock back.
    app.count_ballot(&poll, "before", 0).await;
    pollstream_testkit::commit_group_at_ends(&group, &app.raw_votes_topic).await;
    let mut restored = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let poll_id = poll["id"].as_str().unwrap();
    let marked = pollstream_testkit::eventually(Duration::from_secs(60), || {
        let mut redis = restored.clone();
        async move {
            redis::cmd("EXISTS")
                .arg(format!("vote-locks:{poll_id}"))
                .query_async::<bool>(&mut redis)
                .await
                .unwrap()
                .then_some(())
        }
    })
    .await;
    assert!(
        marked.is_some(),
        "the restore never vouched for the poll's locks again"
    );
    let lock: Option<String> = redis::cmd("GET")
        .arg(format!("vote:{poll_id}:before"))
        .query_async(&mut restored)
        .await
        .unwrap();
    assert!(lock.is_some(), "the counted ballot's lock was not restored");
    let (status, body) = app.vote(code, "before", &[option_id(&poll, 1)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_voted")),
        "the restored locks hold the counted ballot"
    );
    let (status, body) = app.vote(code, "after", &[option_id(&poll, 1)]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// A vote whose lock script Redis runs only after voting-api stopped waiting (answered `503`)
/// leaves no lock behind: the voter's retry is taken, not refused as `already_voted`.
#[tokio::test]
async fn a_lock_redis_took_after_the_timeout_is_released_for_the_retry() {
    let redis = OwnedRedis::start().await;
    let url = redis.url();
    let app = spawn_app_with(&[("REDIS_URL", &url), ("REDIS_TIMEOUT_MS", "300")]).await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let code = poll["code"].as_str().unwrap();
    assert_eq!(
        app.vote(code, "warm-up", &[option_id(&poll, 0)]).await.0,
        StatusCode::ACCEPTED,
        "the lock script is loaded"
    );

    // A script that keeps Redis busy for 1.5 s: commands sent meanwhile queue and run after.
    let mut blocker = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let busy_until = Instant::now() + Duration::from_millis(1_600);
    let busy = tokio::spawn(async move {
        // Its own answer may time out too (the client's default); the script runs regardless.
        redis::cmd("EVAL")
            .arg(
                "local s = redis.call('TIME') while true do local n = redis.call('TIME') \
                 if (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > 1500000 then return 1 end end",
            )
            .arg(0)
            .query_async::<i64>(&mut blocker)
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = app.vote(code, "stalled", &[option_id(&poll, 1)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("redis_unavailable")),
        "{body}"
    );
    let _ = busy.await;
    tokio::time::sleep_until(busy_until.into()).await;

    let taken = pollstream_testkit::eventually(Duration::from_secs(10), || async {
        let (status, body) = app.vote(code, "stalled", &[option_id(&poll, 1)]).await;
        assert_ne!(
            status,
            StatusCode::CONFLICT,
            "the retry was refused: {body}"
        );
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    assert!(taken.is_some(), "the retry was never taken");
}

#[tokio::test]
async fn kafka_outage_gives_bounded_503s_leaves_no_lock_and_recovers() {
    let (mut broker, app, poll) = app_on_own_broker("1500", "before").await;
    let code = poll["code"].as_str().unwrap();

    broker.kill().await;
    let started = Instant::now();
    let (status, body) = app.vote(code, "during", &[option_id(&poll, 1)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("kafka_unavailable"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.vote_lock(&poll, "during").await,
        None,
        "a vote Kafka did not take leaves no lock"
    );
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_ne!(ready["checks"]["kafka"], "ok", "{ready}");
    broker.resume().await;
    // The same voter retries and gets through: nothing half-done was left behind.
    let recovered = pollstream_testkit::eventually(Duration::from_secs(60), || async {
        (app.vote(code, "during", &[option_id(&poll, 1)]).await.0 == StatusCode::ACCEPTED)
            .then_some(())
    })
    .await;
    assert!(
        recovered.is_some(),
        "voting never recovered after the broker came back; broker log:\n{}",
        broker.log()
    );
}

/// `KAFKA_PRODUCE_TIMEOUT_MS` bounds every answer while the broker is down, including votes
/// whose produce request was in flight when it died (librdkafka alone let those wait for its
/// request timeout on top: 13.8 s for a 5 s setting).
#[tokio::test]
async fn every_vote_is_answered_within_the_produce_timeout_while_kafka_is_stopped() {
    const TIMEOUT: Duration = Duration::from_millis(2_000);
    let (mut broker, app, poll) = app_on_own_broker("2000", "warm-up").await;
    let code = poll["code"].as_str().unwrap();

    // A vote every 250 ms for 12 s; the broker is killed after the second, with votes in
    // flight, and stays down to the end.
    let option = option_id(&poll, 1);
    let voters: Vec<String> = (0..48).map(|i| format!("stopped-{i}")).collect();
    let votes = voters.iter().enumerate().map(|(i, voter)| {
        let (app, option) = (&app, &option);
        async move {
            tokio::time::sleep(Duration::from_millis(250 * i as u64)).await;
            let started = Instant::now();
            let (status, body) = app.vote(code, voter, &[option]).await;
            (i, status, body, started.elapsed())
        }
    });
    let kill = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        broker.kill().await;
    };
    let (outcomes, ()) = tokio::join!(futures::future::join_all(votes), kill);

    let slowest = outcomes.iter().map(|o| o.3).max().unwrap();
    println!(
        "broker stopped: slowest of {} answers {slowest:?}",
        outcomes.len()
    );
    for (i, status, body, took) in &outcomes {
        assert!(
            *took <= TIMEOUT + Duration::from_millis(750),
            "vote {i} answered {status} after {took:?}"
        );
        if *i >= 4 {
            assert_eq!(
                (*status, body["error"].as_str()),
                (StatusCode::SERVICE_UNAVAILABLE, Some("kafka_unavailable")),
                "vote {i}"
            );
        }
        if *status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(
                app.vote_lock(&poll, &voters[*i]).await,
                None,
                "vote {i} left its lock"
            );
        }
    }
}

/// voting-api on a Kafka node of the test's own with `KAFKA_PRODUCE_TIMEOUT_MS` =
/// `produce_timeout_ms`, and a single-choice poll for which `voter` already got a `202`.
async fn app_on_own_broker(produce_timeout_ms: &str, voter: &str) -> (OwnedBroker, TestApp, Value) {
    let broker = OwnedBroker::start().await;
    let brokers = broker.brokers();
    let app = spawn_app_with(&[
        ("KAFKA_BROKERS", &brokers),
        ("KAFKA_PRODUCE_TIMEOUT_MS", produce_timeout_ms),
    ])
    .await;
    KafkaSettings::new(&brokers)
        .ensure_topics(&[(&app.raw_votes_topic, 3)])
        .await
        .expect("creating the topic on the test's broker");
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let code = poll["code"].as_str().unwrap();
    let accepted = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        (app.vote(code, voter, &[option_id(&poll, 0)]).await.0 == StatusCode::ACCEPTED)
            .then_some(())
    })
    .await;
    assert!(accepted.is_some(), "no vote accepted with the broker up");
    (broker, app, poll)
}
