//! poll-aggregator: counts votes from Kafka `raw-votes` into PostgreSQL, exactly once, and
//! publishes a snapshot of every touched poll to `poll-updates` after each flush.

pub mod batch;
pub mod config;
pub mod flush;
pub mod rules;

mod aggregator;
mod closer;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use pollstream_infra::kafka::GroupConsumer;
use rdkafka::consumer::Consumer;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use aggregator::Aggregator;
pub use config::Config;
pub use pollstream_infra::RunError;

#[derive(Clone)]
struct HealthState {
    db: sqlx::PgPool,
    redis: redis::aio::ConnectionManager,
    consumer: Arc<GroupConsumer>,
}

/// Runs the aggregator until `shutdown` completes, serving health and metrics on `listener`;
/// then flushes and commits the buffered batch.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let db = pollstream_infra::postgres::connect_lazy(&config.database_url, 4)
        .map_err(RunError::setup("PostgreSQL pool"))?;
    let redis = config
        .redis
        .connect_lazy()
        .map_err(RunError::setup("Redis client"))?;
    let producer = Arc::new(
        pollstream_infra::kafka::ResilientProducer::new(config.kafka.clone())
            .map_err(RunError::setup("Kafka producer"))?,
    );
    let consumer = Arc::new(
        GroupConsumer::subscribe(
            &config.kafka,
            &config.group_id,
            "earliest",
            config.fetch_wait,
            config.instance_id.as_deref(),
            &[&config.raw_votes_topic],
        )
        .map_err(RunError::setup("Kafka consumer"))?,
    );

    let token = CancellationToken::new();
    let signal = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.cancel();
    });

    pollstream_infra::metrics::handle();
    let health = Router::new()
        .route("/healthz", get(pollstream_infra::health::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(pollstream_infra::metrics::render))
        .with_state(HealthState {
            db: db.clone(),
            redis: redis.clone(),
            consumer: consumer.clone(),
        });
    tracing::info!(address = %listener.local_addr()?, topic = %config.raw_votes_topic, "poll-aggregator listening");
    let server_token = token.clone();
    let http = config.http.clone();
    let server = tokio::spawn(async move {
        pollstream_infra::http::serve(listener, health, &http, async move {
            server_token.cancelled().await
        })
        .await
    });

    let lag_consumer = consumer.clone();
    let lag_token = token.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                () = lag_token.cancelled() => return,
                _ = ticker.tick() => {
                    let consumer = lag_consumer.get();
                    let _ = tokio::task::spawn_blocking(move || pollstream_infra::kafka::report_lag(&consumer)).await;
                }
            }
        }
    });
    let closer = tokio::spawn(
        closer::Closer {
            db: db.clone(),
            redis: redis.clone(),
            producer: producer.clone(),
            topic: config.poll_updates_topic.clone(),
        }
        .run(token.clone()),
    );
    let aggregator = Aggregator {
        config: Arc::new(config),
        db,
        redis,
        producer: producer.clone(),
        consumer,
    };
    aggregator.run(token.clone()).await;
    token.cancel();
    let _ = closer.await;
    let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
    match server.await {
        Ok(result) => result?,
        Err(err) => tracing::error!(error = %err, "Health server task failed"),
    }
    Ok(())
}

/// Ready when PostgreSQL, Redis and the Kafka cluster answer.
async fn readyz(State(state): State<HealthState>) -> (StatusCode, Json<Value>) {
    let consumer = state.consumer.get();
    pollstream_infra::health::readiness(&state.db, &state.redis, move || {
        consumer
            .fetch_metadata(None, pollstream_infra::health::CHECK_TIMEOUT)
            .map(|_| ())
            .map_err(|err| err.to_string())
    })
    .await
}
