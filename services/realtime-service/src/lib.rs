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
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::Config;
use hub::Hub;
pub use pollstream_infra::RunError;

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
    let db = pollstream_infra::postgres::connect_lazy(&config.database_url, 8)
        .map_err(RunError::setup("PostgreSQL pool"))?;
    let redis = config
        .redis
        .connect_lazy()
        .map_err(RunError::setup("Redis client"))?;
    let group_id = format!("{}-{}", config.group_prefix, uuid::Uuid::new_v4());
    let consumer = config
        .kafka
        .consumer(&group_id, "latest")
        .map_err(RunError::setup("Kafka consumer"))?;
    consumer
        .subscribe(&[&config.poll_updates_topic])
        .map_err(RunError::setup("Kafka subscription"))?;
    let consumer = Arc::new(consumer);

    let (layer, io) = SocketIo::builder()
        .ping_interval(Duration::from_secs(25))
        .ping_timeout(Duration::from_secs(20))
        // One limit on both transports: a long-polling request body (`max_payload`) and a
        // WebSocket message or frame. Past it the connection is closed, as a polling request
        // over the limit is refused (issue 11, finding 5: before, WebSocket took 8 MiB).
        .max_payload(MAX_PACKET_BYTES as u64)
        .ws_max_message_size(MAX_PACKET_BYTES)
        .ws_max_frame_size(MAX_PACKET_BYTES)
        // Packets queued per socket before it counts as too slow and misses one; the default
        // (128) drops updates for clients that stall briefly under a burst.
        .max_buffer_size(1024)
        .build_layer();
    let hub = Arc::new(Hub::new(io.clone(), db, redis, config.jwt.keys()));
    // The handlers are registered in a connect *middleware*: socketioxide awaits it before it
    // sends the client its CONNECT packet, whereas a connect handler runs in a task spawned
    // after that packet went out. A client that emits `join` as soon as it is connected (as
    // every screen does) could otherwise reach the server before `join` had a handler, and
    // the event would be dropped without an acknowledgement (seen: 9 of 10,000 screens).
    let connect_hub = hub.clone();
    let register = move |socket: SocketRef| {
        let hub = connect_hub.clone();
        async move {
            sockets::on_connect(socket, hub);
            Ok::<(), std::convert::Infallible>(())
        }
    };
    io.ns("/", (|| async {}).with(register));

    pollstream_infra::metrics::handle();
    let app = Router::new()
        .route("/healthz", get(pollstream_infra::health::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(pollstream_infra::metrics::render))
        .layer(axum::middleware::from_fn(
            pollstream_infra::metrics::track_http,
        ))
        .with_state(HealthState {
            hub: hub.clone(),
            consumer: consumer.clone(),
        })
        .layer(layer);

    let token = CancellationToken::new();
    let gauges_io = io.clone();
    let gauges_token = token.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                () = gauges_token.cancelled() => return,
                _ = ticker.tick() => {
                    let Ok(rooms) = gauges_io.rooms().await;
                    metrics::gauge!("rooms_active").set(rooms.len() as f64);
                }
            }
        }
    });
    let consumer_task = tokio::spawn(consume(consumer, hub.clone(), token.clone()));
    tracing::info!(address = %listener.local_addr()?, group_id, "realtime-service listening");
    let server_token = token.clone();
    let close_io = io.clone();
    let serve = pollstream_infra::http::serve(listener, app, &config.http, async move {
        shutdown.await;
        server_token.cancel();
        // Close sockets first: open WebSockets would otherwise hold the drain forever.
        // socketioxide waits for each socket's transport to close, which a client caught
        // between long-polling and the WebSocket upgrade may not do promptly: bounded.
        if tokio::time::timeout(SOCKETS_CLOSE_TIMEOUT, close_io.close())
            .await
            .is_err()
        {
            tracing::warn!("Some sockets were not closed in time; stopping anyway");
        }
    });
    let drain_deadline = token.clone();
    let result = tokio::select! {
        result = serve => result,
        () = async move {
            drain_deadline.cancelled().await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => {
            tracing::warn!("Connections still open after the drain deadline; stopping anyway");
            Ok(())
        }
    };
    token.cancel();
    let _ = consumer_task.await;
    tracing::info!("realtime-service stopped");
    result.map_err(RunError::from)
}

/// Largest Socket.IO message a client may send, on either transport; a `join` is ~100 bytes.
const MAX_PACKET_BYTES: usize = 16 * 1024;

/// Longest wait for socketioxide to close every socket at shutdown.
const SOCKETS_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a shutdown waits for the server's connections once it began; past it the process
/// stops anyway (clients reconnect to another replica).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Forwards every update from `poll-updates` to its room until `shutdown`.
async fn consume(consumer: Arc<StreamConsumer>, hub: Arc<Hub>, shutdown: CancellationToken) {
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return,
            message = consumer.recv() => message,
        };
        match message {
            Ok(message) => match PollSnapshot::decode(message.payload().unwrap_or_default()) {
                Ok(snapshot) => {
                    let span = tracing::info_span!("broadcast", poll_id = %snapshot.poll_id, seq = snapshot.seq);
                    pollstream_infra::telemetry::trace_context::adopt(&span, message.headers());
                    hub.publish(snapshot).instrument(span).await;
                }
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

/// Ready when PostgreSQL, Redis and the Kafka cluster answer and this replica's consumer has
/// its partitions: before that, updates would be missed.
async fn readyz(State(state): State<HealthState>) -> (StatusCode, Json<Value>) {
    let consumer = state.consumer.clone();
    pollstream_infra::health::readiness(&state.hub.db, &state.hub.redis, move || {
        consumer
            .fetch_metadata(None, pollstream_infra::health::CHECK_TIMEOUT)
            .map_err(|err| err.to_string())?;
        match consumer.assignment() {
            Ok(assigned) if assigned.count() > 0 => Ok(()),
            Ok(_) => Err("no partitions assigned yet".to_owned()),
            Err(err) => Err(err.to_string()),
        }
    })
    .await
}
