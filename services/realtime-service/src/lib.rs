//! realtime-service: pushes poll snapshots from Kafka `poll-updates` to Socket.IO clients.
//!
//! Each replica consumes every update (its consumer group is unique) and emits it to the room
//! of its poll on its own sockets; a client joins a room per poll and gets the current
//! snapshot as acknowledgement. The replicas count their screens together in Redis and send
//! each poll its audience as `poll-presence`.
//!
//! This file only wires the parts together in [`run`]: `transport` serves Socket.IO beside the
//! health routes and drains it at shutdown, `allowed_origins` keeps other sites' pages from
//! connecting, `broadcast` forwards `poll-updates` to the rooms,
//! `socket_handlers` answers what clients send, `presence` counts the screens.

pub mod config;
pub mod metric_names;
pub mod rooms;
pub mod snapshot_ledger;

mod allowed_origins;
mod broadcast;
mod poll_access;
mod presence;
mod socket_handlers;
mod state;
mod transport;
mod waiting_voters;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use pollstream_infra::RunError;
use presence::Presence;
use state::AppState;
use transport::HealthState;

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
    let consumer = Arc::new(
        broadcast::subscribe_to_updates(&config.kafka, &group_id, &config.poll_updates_topic)
            .map_err(RunError::setup("Kafka consumer"))?,
    );
    let (socket_io, io) = transport::socket_io_layer();
    let presence = Presence::new(config.presence);
    let replica_id = presence.replica_id().to_owned();
    let hub = Arc::new(AppState::new(
        io.clone(),
        db,
        redis.clone(),
        config.jwt.keys(),
        presence,
    ));
    transport::register_socket_handlers(&io, hub.clone());
    let app = transport::router(
        socket_io,
        HealthState {
            hub: hub.clone(),
            consumer: consumer.clone(),
        },
        &config.allowed_origins,
    );

    let token = CancellationToken::new();
    transport::spawn_room_gauge(io.clone(), token.clone());
    let presence = tokio::spawn(hub.presence.clone().run(io.clone(), redis, token.clone()));
    let updates = tokio::spawn(broadcast::forward_updates(consumer, hub, token.clone()));
    tracing::info!(address = %listener.local_addr()?, group_id, replica_id, "realtime-service listening");
    let result =
        transport::serve_until_drained(listener, app, &config.http, io, shutdown, token.clone())
            .await;
    token.cancel();
    let _ = updates.await;
    let _ = presence.await;
    tracing::info!("realtime-service stopped");
    result.map_err(RunError::from)
}
