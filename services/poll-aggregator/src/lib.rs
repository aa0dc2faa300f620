//! poll-aggregator: counts votes from Kafka `raw-votes` into PostgreSQL, exactly once, and
//! publishes a snapshot of every touched poll to `poll-updates` after each flush.

pub mod batch;
pub mod config;
pub mod flush;
pub mod rules;

mod aggregator;
mod closer;
mod dead_letter;
mod metric_names;
mod publish;
mod retry;
mod state;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use pollstream_infra::http::HttpSettings;
use pollstream_infra::kafka::{GroupConsumer, ResilientProducer};
use rdkafka::consumer::Consumer;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use aggregator::Aggregator;
use closer::Closer;
pub use config::Config;
pub use pollstream_infra::RunError;
use publish::SnapshotPublisher;
use state::AppState;

/// How often `kafka_consumer_lag` is refreshed.
const LAG_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Longest the producer may take at shutdown to deliver what it still holds.
const PRODUCER_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the aggregator until `shutdown` completes, serving health and metrics on `listener`;
/// then flushes and commits the buffered batch.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let clients = AppState::connect(&config)?;
    let token = cancel_on(shutdown);
    tracing::info!(address = %listener.local_addr()?, topic = %config.raw_votes_topic, "poll-aggregator listening");
    let health_server = spawn_health_server(listener, &config.http, &clients, token.clone());
    spawn_lag_reporter(clients.consumer.clone(), token.clone());
    let publisher = SnapshotPublisher {
        producer: clients.producer.clone(),
        redis: clients.redis.clone(),
        db: clients.db.clone(),
        topic: config.poll_updates_topic.clone(),
    };
    let closer = spawn_closer(&config, &clients, publisher.clone(), token.clone());
    count_votes(config, &clients, publisher, token.clone()).await;

    token.cancel();
    let _ = closer.await;
    flush_producer(clients.producer).await;
    match health_server.await {
        Ok(result) => result?,
        Err(err) => tracing::error!(error = %err, "Health server task failed"),
    }
    Ok(())
}

/// A token cancelled once `shutdown` completes.
fn cancel_on(shutdown: impl Future<Output = ()> + Send + 'static) -> CancellationToken {
    let token = CancellationToken::new();
    let signal = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.cancel();
    });
    token
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until `stop` is cancelled.
fn spawn_health_server(
    listener: TcpListener,
    http: &HttpSettings,
    clients: &AppState,
    stop: CancellationToken,
) -> JoinHandle<std::io::Result<()>> {
    pollstream_infra::metrics::handle();
    let health = Router::new()
        .route("/healthz", get(pollstream_infra::health::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(pollstream_infra::metrics::render))
        .with_state(clients.clone());
    let http = http.clone();
    tokio::spawn(async move {
        pollstream_infra::http::serve(
            listener,
            health,
            &http,
            async move { stop.cancelled().await },
        )
        .await
    })
}

/// Closes polls that are due, finalizes closings once their votes are counted, and announces
/// both (see [`closer`]) until `stop` is cancelled.
fn spawn_closer(
    config: &Config,
    clients: &AppState,
    publisher: SnapshotPublisher,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(
        Closer {
            db: clients.db.clone(),
            redis: clients.redis.clone(),
            publisher,
            kafka: config.kafka.clone(),
            group_id: config.group_id.clone(),
            raw_votes_topic: config.raw_votes_topic.clone(),
        }
        .run(stop),
    )
}

/// Counts the votes of `raw-votes` (see [`aggregator`]) until `stop` is cancelled, then
/// drains the last batch.
async fn count_votes(
    config: Config,
    clients: &AppState,
    publisher: SnapshotPublisher,
    stop: CancellationToken,
) {
    Aggregator {
        config: Arc::new(config),
        db: clients.db.clone(),
        producer: clients.producer.clone(),
        publisher,
        consumer: clients.consumer.clone(),
    }
    .run(stop)
    .await;
}

/// Refreshes `kafka_consumer_lag` every [`LAG_REPORT_INTERVAL`] until `stop` is cancelled.
fn spawn_lag_reporter(consumer: Arc<GroupConsumer>, stop: CancellationToken) {
    tokio::spawn(async move {
        consumer.report_lag_every(LAG_REPORT_INTERVAL, stop).await;
    });
}

/// Waits for the producer to deliver what it still holds (dead letters, snapshots), off the
/// async threads since it blocks.
async fn flush_producer(producer: Arc<ResilientProducer>) {
    let _ = tokio::task::spawn_blocking(move || producer.flush(PRODUCER_FLUSH_TIMEOUT)).await;
}

/// Ready when PostgreSQL, Redis and the Kafka cluster answer.
async fn readyz(State(clients): State<AppState>) -> (StatusCode, Json<Value>) {
    let consumer = clients.consumer.get();
    pollstream_infra::health::readiness(&clients.db, &clients.redis, move || {
        consumer
            .fetch_metadata(None, pollstream_infra::health::CHECK_TIMEOUT)
            .map(|_| ())
            .map_err(|err| err.to_string())
    })
    .await
}
