//! poll-aggregator while PostgreSQL is down: it keeps its batch, commits no offsets, retries
//! with backoff, reports not ready, and counts everything exactly once when the database is
//! back. The test owns its PostgreSQL cluster so it can stop it.

use std::time::Duration;

use chrono::Utc;
use poll_aggregator::Config;
use pollstream_infra::env::Vars;
use pollstream_infra::kafka::KafkaSettings;
use pollstream_testkit::owned::OwnedPostgres;
use pollstream_testkit::unique_topic;
use pollstream_wire::{RawVote, SCHEMA_VERSION};
use rdkafka::producer::FutureRecord;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

#[tokio::test]
async fn database_outage_loses_and_doubles_nothing() {
    pollstream_testkit::init_logging();
    let postgres = OwnedPostgres::start().await;
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy(&postgres.url())
        .unwrap();
    pollstream_infra::postgres::migrate(&db).await.unwrap();
    let poll_id = Uuid::now_v7();
    let option = Uuid::now_v7();
    sqlx::query("INSERT INTO polls (id, code, owner_id, question, kind, max_choices) VALUES ($1, 'OUTAGE1', 'o', 'Q', 'single', 1)")
        .bind(poll_id)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO options (id, poll_id, position, text) VALUES ($1, $2, 0, 'a')")
        .bind(option)
        .bind(poll_id)
        .execute(&db)
        .await
        .unwrap();

    let raw_votes = unique_topic("raw-votes");
    let updates = unique_topic("poll-updates");
    let dead = format!("{raw_votes}.dlq");
    pollstream_testkit::create_topics(&[(&raw_votes, 3), (&updates, 1), (&dead, 1)]).await;
    let brokers = pollstream_testkit::kafka_brokers();
    let redis = pollstream_testkit::redis_url();
    let group = unique_topic("group");
    let url = postgres.url();
    let config = Config::from_vars(&Vars::from_pairs([
        ("DATABASE_URL", url.as_str()),
        ("REDIS_URL", &redis),
        ("KAFKA_BROKERS", &brokers),
        ("RAW_VOTES_TOPIC", &raw_votes),
        ("POLL_UPDATES_TOPIC", &updates),
        ("AGGREGATOR_GROUP_ID", &group),
        ("FLUSH_INTERVAL_MS", "200"),
    ]))
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let health = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let aggregator = tokio::spawn(poll_aggregator::run(config, listener, async move {
        let _ = stopped.await;
    }));

    let producer = KafkaSettings::new(&brokers).producer().unwrap();
    let send = |voter: String| {
        let producer = producer.clone();
        let topic = raw_votes.clone();
        async move {
            let vote = RawVote {
                v: SCHEMA_VERSION,
                vote_id: Uuid::now_v7(),
                poll_id,
                voter_id: voter,
                option_ids: vec![option],
                cast_at: Utc::now(),
            };
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key(&poll_id.to_string())
                        .payload(&vote.encode()),
                    Duration::from_secs(5),
                )
                .await
                .map_err(|(err, _)| err)
                .unwrap();
        }
    };
    let total = || async {
        sqlx::query_scalar::<_, i64>("SELECT total FROM polls WHERE id = $1")
            .bind(poll_id)
            .fetch_one(&db)
            .await
            .ok()
    };
    for i in 0..20 {
        send(format!("before-{i}")).await;
    }
    assert!(
        pollstream_testkit::eventually(Duration::from_secs(30), || async {
            (total().await == Some(20)).then_some(())
        })
        .await
        .is_some(),
        "the first votes were never counted"
    );

    postgres.kill().await;
    for i in 0..30 {
        send(format!("during-{i}")).await;
    }
    let http = reqwest::Client::new();
    let not_ready = pollstream_testkit::eventually(Duration::from_secs(10), || async {
        let response = http.get(format!("{health}/readyz")).send().await.ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        (body["checks"]["postgres"] != "ok").then_some(body)
    })
    .await;
    assert!(
        not_ready.is_some(),
        "readiness never reported the database outage"
    );
    // Several flush attempts fail meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;

    postgres.resume().await;
    for i in 0..5 {
        send(format!("after-{i}")).await;
    }
    assert!(
        pollstream_testkit::eventually(Duration::from_secs(60), || async {
            (total().await == Some(55)).then_some(())
        })
        .await
        .is_some(),
        "votes were lost across the outage: total {:?}",
        total().await
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(total().await, Some(55), "votes were counted twice");
    let ballots: i64 = sqlx::query_scalar("SELECT count(*) FROM ballots")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(ballots, 55);
    let votes: i64 = sqlx::query_scalar("SELECT votes FROM options WHERE id = $1")
        .bind(option)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(votes, 55);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), aggregator).await;
}
