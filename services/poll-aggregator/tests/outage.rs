//! poll-aggregator while PostgreSQL is down: it keeps its batch, commits no offsets, retries
//! with backoff, reports not ready, and counts everything exactly once when the database is
//! back. The test owns its PostgreSQL cluster so it can stop it.

use std::time::Duration;

use chrono::Utc;
use poll_aggregator::Config;
use pollstream_testkit::owned::OwnedPostgres;
use pollstream_testkit::polls::{NewPoll, raw_vote};
use pollstream_testkit::server::start_server;
use pollstream_testkit::service_env::ServiceEnv;
use pollstream_testkit::topic_writer::TopicWriter;
use pollstream_testkit::{PipelineTopics, unique_topic};
use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn database_outage_loses_and_doubles_nothing() {
    pollstream_testkit::init_logging();
    let postgres = OwnedPostgres::start().await;
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy(&postgres.url())
        .unwrap();
    pollstream_infra::postgres::migrate(&db).await.unwrap();
    let poll = NewPoll::new(1).insert(&db).await;
    let (poll_id, option) = (poll.id, poll.options[0]);

    let PipelineTopics {
        raw_votes,
        poll_updates: updates,
        ..
    } = PipelineTopics::create().await;
    let env = ServiceEnv::new(&postgres.url())
        .set("RAW_VOTES_TOPIC", &raw_votes)
        .set("POLL_UPDATES_TOPIC", updates)
        .set("AGGREGATOR_GROUP_ID", unique_topic("group"))
        .set("FLUSH_INTERVAL_MS", "200");
    let config = Config::from_vars(&env.vars()).unwrap();
    let aggregator =
        start_server(|listener, shutdown| poll_aggregator::run(config, listener, shutdown)).await;
    let health = aggregator.url.clone();

    let votes = TopicWriter::new(&raw_votes);
    let send = |voter: String| {
        let votes = &votes;
        async move {
            votes
                .send_vote(&raw_vote(poll_id, &voter, &[option], Utc::now()))
                .await;
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
    aggregator.stop().await;
}
