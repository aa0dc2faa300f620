//! realtime-service: pushes poll snapshots from Kafka `poll-updates` to Socket.IO clients.
//!
//! Each replica consumes every update (its consumer group is unique) and emits it to the room
//! of its poll on its own sockets; a client joins a room per poll and gets the current
//! snapshot as acknowledgement.

pub mod config;
pub mod rooms;

mod hub;
mod sockets;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use pollstream_wire::PollSnapshot;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use hub::Hub;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A client could not be created from the configuration.
    #[error("cannot set up {what}: {detail}")]
    Setup {
        /// Which client.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(#[from] std::io::Error),
}

#[derive(Clone)]
struct HealthState {
    hub: Arc<Hub>,
    consumer: Arc<StreamConsumer>,
}

/// Serves Socket.IO, health and metrics on `listener` until `shutdown` completes, then closes
/// every socket cleanly.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let setup = |what: &'static str| {
        move |err: &dyn std::fmt::Display| RunError::Setup {
            what,
            detail: err.to_string(),
        }
    };
    let db = pollstream_infra::postgres::connect_lazy(&config.database_url, 8)
        .map_err(|e| setup("PostgreSQL pool")(&e))?;
    let redis = pollstream_infra::redis::connect_lazy(&config.redis_url, config.redis_timeout)
        .map_err(|e| setup("Redis client")(&e))?;
    let group_id = format!("{}-{}", config.group_prefix, uuid::Uuid::new_v4());
    let consumer = config
        .kafka
        .consumer(&group_id, "latest")
        .map_err(|e| setup("Kafka consumer")(&e))?;
    consumer
        .subscribe(&[&config.poll_updates_topic])
        .map_err(|e| setup("Kafka subscription")(&e))?;
    let consumer = Arc::new(consumer);

    let (layer, io) = SocketIo::builder()
        .ping_interval(Duration::from_secs(25))
        .ping_timeout(Duration::from_secs(20))
        .max_payload(16 * 1024)
        .build_layer();
    let hub = Arc::new(Hub::new(io.clone(), db, redis));
    let connect_hub = hub.clone();
    io.ns("/", async move |socket: SocketRef| {
        sockets::on_connect(socket, connect_hub.clone())
    });

    pollstream_infra::metrics::handle();
    let app = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(pollstream_infra::metrics::render))
        .with_state(HealthState {
            hub: hub.clone(),
            consumer: consumer.clone(),
        })
        .layer(layer);

    let token = CancellationToken::new();
    let consumer_task = tokio::spawn(consume(consumer, hub.clone(), token.clone()));
    tracing::info!(address = %listener.local_addr()?, group_id, "realtime-service listening");
    let server_token = token.clone();
    let close_io = io.clone();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            server_token.cancel();
            // Close sockets first: open WebSockets would otherwise hold the drain forever.
            close_io.close().await;
        })
        .await;
    token.cancel();
    let _ = consumer_task.await;
    tracing::info!("realtime-service stopped");
    result.map_err(RunError::from)
}

/// Forwards every update from `poll-updates` to its room until `shutdown`.
async fn consume(consumer: Arc<StreamConsumer>, hub: Arc<Hub>, shutdown: CancellationToken) {
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return,
            message = consumer.recv() => message,
        };
        match message {
            Ok(message) => match PollSnapshot::decode(message.payload().unwrap_or_default()) {
                Ok(snapshot) => hub.publish(snapshot).await,
                Err(err) => {
                    metrics::counter!("undecodable_updates_total").increment(1);
                    tracing::warn!(partition = message.partition(), offset = message.offset(), error = %err, "Undecodable poll update skipped");
                }
            },
            Err(err) => {
                tracing::warn!(error = %err, "Kafka consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Ready when PostgreSQL, Redis and the Kafka cluster answer within a second.
async fn readyz(State(state): State<HealthState>) -> (StatusCode, Json<Value>) {
    let timeout = Duration::from_secs(1);
    let postgres = tokio::time::timeout(timeout, pollstream_infra::postgres::ping(&state.hub.db));
    let mut redis_conn = state.hub.redis.clone();
    let redis = tokio::time::timeout(timeout, pollstream_infra::redis::ping(&mut redis_conn));
    let consumer = state.consumer.clone();
    let kafka =
        tokio::task::spawn_blocking(move || consumer.fetch_metadata(None, timeout).map(|_| ()));
    let (postgres, redis, kafka) = tokio::join!(postgres, redis, kafka);
    let checks = [
        (
            "postgres",
            flatten(
                postgres
                    .map_err(|_| "timed out".to_owned())
                    .map(|r| r.map_err(|e| e.to_string())),
            ),
        ),
        (
            "redis",
            flatten(
                redis
                    .map_err(|_| "timed out".to_owned())
                    .map(|r| r.map_err(|e| e.to_string())),
            ),
        ),
        (
            "kafka",
            flatten(
                kafka
                    .map_err(|e| e.to_string())
                    .map(|r| r.map_err(|e| e.to_string())),
            ),
        ),
    ];
    let ready = checks.iter().all(|(_, status)| status == "ok");
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks.iter().map(|(name, status)| (name.to_string(), Value::from(status.clone()))).collect::<serde_json::Map<_, _>>(),
    });
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}

fn flatten(result: Result<Result<(), String>, String>) -> String {
    match result {
        Ok(Ok(())) => "ok".into(),
        Ok(Err(err)) | Err(err) => err,
    }
}
