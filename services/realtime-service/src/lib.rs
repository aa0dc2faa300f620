//! realtime-service: pushes poll snapshots from Kafka `poll-updates` to Socket.IO clients.
//!
//! Each replica consumes every update (its consumer group is unique) and emits it to the room
//! of its poll on its own sockets; a client joins a room per poll and gets the current
//! snapshot as acknowledgement. The replicas count their screens together in Redis and send
//! each poll its audience as `poll-presence`.

pub mod config;
pub mod metric_names;
pub mod rooms;
pub mod snapshot_ledger;

mod broadcast;
mod hub;
mod poll_access;
mod presence;
mod socket_handlers;
mod waiting_voters;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::routing::get;
use axum::{Json, Router};
use pollstream_infra::http::HttpSettings;
use pollstream_infra::kafka::{ConsumeHandler, GroupConsumer, KafkaSettings, Progress, consume};
use pollstream_wire::{DecodeError, PollSnapshot};
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::BorrowedMessage;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

pub use config::Config;
use hub::Hub;
pub use pollstream_infra::RunError;
use presence::Presence;

#[derive(Clone)]
struct HealthState {
    hub: Arc<Hub>,
    consumer: Arc<GroupConsumer>,
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
    let consumer = Arc::new(
        subscribe_to_updates(&config.kafka, &group_id, &config.poll_updates_topic)
            .map_err(RunError::setup("Kafka consumer"))?,
    );
    let (layer, io) = socket_io_layer();
    let presence = Presence::new(config.presence);
    let replica_id = presence.replica_id().to_owned();
    let hub = Arc::new(Hub::new(
        io.clone(),
        db,
        redis.clone(),
        config.jwt.keys(),
        presence,
    ));
    register_socket_handlers(&io, hub.clone());
    let app = router(
        layer,
        HealthState {
            hub: hub.clone(),
            consumer: consumer.clone(),
        },
        &config.allowed_origins,
    );

    let token = CancellationToken::new();
    spawn_room_gauge(io.clone(), token.clone());
    let presence = tokio::spawn(hub.presence.clone().run(io.clone(), redis, token.clone()));
    let anchor = {
        let (consumer, stop) = (consumer.clone(), token.clone());
        tokio::spawn(async move { consumer.anchor_positions(stop).await })
    };
    let updates = tokio::spawn(forward_updates(consumer, hub, token.clone()));
    tracing::info!(address = %listener.local_addr()?, group_id, replica_id, "realtime-service listening");
    let result =
        serve_until_drained(listener, app, &config.http, io, shutdown, token.clone()).await;
    token.cancel();
    let _ = updates.await;
    let _ = presence.await;
    let _ = anchor.await;
    tracing::info!("realtime-service stopped");
    result.map_err(RunError::from)
}

/// Largest Socket.IO message a client may send, on either transport; a `join` is ~100 bytes.
const MAX_PACKET_BYTES: usize = 16 * 1024;

/// Read buffer of a WebSocket: a larger message is read in several steps.
const WS_READ_BUFFER_BYTES: usize = 1024;

/// Longest wait for socketioxide to close every socket at shutdown.
const SOCKETS_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a shutdown waits for the server's connections once it began; past it the process
/// stops anyway (clients reconnect to another replica).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a browser may reuse a CORS preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(3600);

/// How often `rooms_active` is refreshed.
const ROOM_GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// A consumer of `topic` in `group_id`, a group of its own, from the newest update: a replica
/// receives every update, and only those sent after it started. Its position is committed in
/// the background, so that a rebalance (its session lapsed while the group coordinator's
/// broker was down) resumes where it was: from `latest`, the updates sent while it rejoined
/// were skipped, and a poll whose last update fell there stayed wrong on its screens.
fn subscribe_to_updates(
    kafka: &KafkaSettings,
    group_id: &str,
    topic: &str,
) -> Result<GroupConsumer, rdkafka::error::KafkaError> {
    GroupConsumer::subscribe(
        kafka,
        group_id,
        "latest",
        KafkaSettings::DEFAULT_FETCH_WAIT,
        None,
        Progress::AutoCommitted,
        &[topic],
    )
}

/// The Socket.IO layer and its handle, with the transport limits.
fn socket_io_layer() -> (SocketIoLayer, SocketIo) {
    SocketIo::builder()
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
        // Each WebSocket's read buffer is allocated and zeroed whole; clients only send `join`,
        // `leave` and pongs (a `join` with a token is ~400 bytes). The default is 4 KiB.
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .build_layer()
}

/// Gives every socket of the default namespace its event handlers.
fn register_socket_handlers(io: &SocketIo, hub: Arc<Hub>) {
    // The handlers are registered in a connect *middleware*: socketioxide awaits it before it
    // sends the client its CONNECT packet, whereas a connect handler runs in a task spawned
    // after that packet went out. A client that emits `join` as soon as it is connected (as
    // every screen does) could otherwise reach the server before `join` had a handler, and
    // the event would be dropped without an acknowledgement (seen: 9 of 10,000 screens).
    let register = move |socket: SocketRef| {
        let hub = hub.clone();
        async move {
            socket_handlers::on_connect(socket, hub);
            Ok::<(), std::convert::Infallible>(())
        }
    };
    io.ns("/", (|| async {}).with(register));
}

/// Health and metrics routes, with Socket.IO on the same listener, answering cross-origin
/// requests from `allowed_origins` only.
fn router(socket_io: SocketIoLayer, state: HealthState, allowed_origins: &[String]) -> Router {
    pollstream_infra::metrics::handle();
    let app = Router::new()
        .route("/healthz", get(pollstream_infra::health::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(pollstream_infra::metrics::render))
        .layer(axum::middleware::from_fn(
            pollstream_infra::metrics::track_http,
        ))
        .with_state(state)
        .layer(socket_io)
        .layer(axum::middleware::map_request(detach_request_head));
    match cross_origin(allowed_origins) {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// CORS for the long-polling transport, whose requests are `fetch`/XHR and so need the
/// browser's permission when the page comes from another origin (voting-api's, in
/// development); `None` (no CORS headers at all, same origin only) when nothing is allowed.
/// Credentials are allowed so that the sticky-session cookie of a load balancer reaches the
/// same replica. WebSocket is not subject to CORS.
fn cross_origin(allowed_origins: &[String]) -> Option<CorsLayer> {
    if allowed_origins.is_empty() {
        return None;
    }
    let origins = allowed_origins
        .iter()
        .map(|origin| HeaderValue::from_str(origin).expect("origins are checked in Config"));
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE])
            .allow_credentials(true)
            .max_age(CORS_MAX_AGE),
    )
}

/// The request's URI and header values copied out of the connection's read buffer.
///
/// hyper parses them as slices of that buffer (8 KiB or more), and engineioxide keeps every
/// session's request head for the socket's whole life: each WebSocket kept its connection's
/// whole read buffer alive, ~8 KiB of the ~28 KiB a screen cost (heaptrack, 2,000 screens).
/// The copies take a few hundred bytes. The router's [`OriginalUri`] is a clone of the URI,
/// so it is replaced too.
async fn detach_request_head(request: axum::extract::Request) -> axum::extract::Request {
    let (mut head, body) = request.into_parts();
    let detach = |uri: &mut Uri| {
        if let Ok(copy) = uri.to_string().parse() {
            *uri = copy;
        }
    };
    detach(&mut head.uri);
    if let Some(OriginalUri(original)) = head.extensions.get_mut::<OriginalUri>() {
        detach(original);
    }
    for value in head.headers.values_mut() {
        if let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
    }
    axum::extract::Request::from_parts(head, body)
}

/// Refreshes `rooms_active` every [`ROOM_GAUGE_INTERVAL`] until `stop` is cancelled.
fn spawn_room_gauge(io: SocketIo, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(ROOM_GAUGE_INTERVAL);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {
                    let Ok(rooms) = io.rooms().await;
                    metrics::gauge!(metric_names::ROOMS_ACTIVE).set(rooms.len() as f64);
                }
            }
        }
    });
}

/// Serves `app` until `shutdown` completes, then cancels `stopping`, closes every socket and
/// waits for the connections to drain, for at most [`DRAIN_TIMEOUT`].
async fn serve_until_drained(
    listener: TcpListener,
    app: Router,
    http: &HttpSettings,
    io: SocketIo,
    shutdown: impl Future<Output = ()> + Send + 'static,
    stopping: CancellationToken,
) -> std::io::Result<()> {
    let server_token = stopping.clone();
    let serve = pollstream_infra::http::serve(listener, app, http, async move {
        shutdown.await;
        server_token.cancel();
        // Close sockets first: open WebSockets would otherwise hold the drain forever.
        // socketioxide waits for each socket's transport to close, which a client caught
        // between long-polling and the WebSocket upgrade may not do promptly: bounded.
        if tokio::time::timeout(SOCKETS_CLOSE_TIMEOUT, io.close())
            .await
            .is_err()
        {
            tracing::warn!("Some sockets were not closed in time; stopping anyway");
        }
    });
    tokio::select! {
        result = serve => result,
        () = async move {
            stopping.cancelled().await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => {
            tracing::warn!("Connections still open after the drain deadline; stopping anyway");
            Ok(())
        }
    }
}

/// Forwards every update from `poll-updates` to its room until `shutdown`.
async fn forward_updates(consumer: Arc<GroupConsumer>, hub: Arc<Hub>, shutdown: CancellationToken) {
    consume(&consumer, &mut UpdateForwarder { hub }, &shutdown).await;
}

/// Hands each decoded update to the hub, which broadcasts it unless it is stale; skips the
/// undecodable ones.
struct UpdateForwarder {
    hub: Arc<Hub>,
}

impl ConsumeHandler for UpdateForwarder {
    type Value = PollSnapshot;
    type DecodeError = DecodeError;

    fn decode(payload: &[u8]) -> Result<PollSnapshot, DecodeError> {
        PollSnapshot::decode(payload)
    }

    async fn handle(
        &mut self,
        message: &BorrowedMessage<'_>,
        snapshot: Result<PollSnapshot, DecodeError>,
    ) {
        match snapshot {
            Ok(snapshot) => {
                let span = tracing::info_span!("broadcast", poll_id = %snapshot.poll_id, seq = snapshot.seq);
                pollstream_infra::telemetry::trace_context::adopt(&span, message.headers());
                broadcast::publish(&self.hub, snapshot)
                    .instrument(span)
                    .await;
            }
            Err(err) => {
                metrics::counter!(metric_names::UNDECODABLE_UPDATES_TOTAL).increment(1);
                tracing::warn!(partition = message.partition(), offset = message.offset(), error = %err, "Undecodable poll update skipped");
            }
        }
    }
}

/// Ready when PostgreSQL, Redis and the Kafka cluster answer and this replica's consumer has
/// its partitions: before that, updates would be missed.
async fn readyz(State(state): State<HealthState>) -> (StatusCode, Json<Value>) {
    let consumer = state.consumer.get();
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
