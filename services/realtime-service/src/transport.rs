//! The transport: the Socket.IO service and its limits, the health, readiness and metrics routes
//! beside it on one listener, the origin check in front of Socket.IO (see
//! [`crate::allowed_origins`]), CORS for the long-polling transport, and the drain at shutdown
//! that closes every socket before the server's connections; also the `rooms_active` gauge of
//! this replica's Socket.IO rooms. What the sockets say is [`crate::socket_handlers`]'s; what
//! reaches the rooms from Kafka is [`crate::broadcast`]'s.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::routing::{any_service, get};
use axum::{Json, Router};
use pollstream_infra::http::HttpSettings;
use pollstream_infra::kafka::GroupConsumer;
use rdkafka::consumer::Consumer;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::allowed_origins::{self, AllowedOrigins};
use crate::state::AppState;
use crate::{metric_names, socket_handlers};

/// What the readiness route checks: the hub's PostgreSQL and Redis, and the consumer's
/// partitions.
#[derive(Clone)]
pub(crate) struct HealthState {
    /// Its PostgreSQL pool and Redis connection are what readiness pings.
    pub(crate) hub: Arc<AppState>,
    /// Ready only once it has partitions: before, updates would be missed.
    pub(crate) consumer: Arc<GroupConsumer>,
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

/// Where socketioxide serves Socket.IO (its default `req_path`): the path itself and all below.
const SOCKET_IO_ROUTES: [&str; 3] = ["/socket.io", "/socket.io/", "/socket.io/{*rest}"];

/// The Socket.IO layer and its handle, with the transport limits.
pub(crate) fn socket_io_layer() -> (SocketIoLayer, SocketIo) {
    SocketIo::builder()
        .ping_interval(Duration::from_secs(25))
        .ping_timeout(Duration::from_secs(20))
        // One limit on both transports: a long-polling request body (`max_payload`) and a
        // WebSocket message or frame. Past it the connection is closed, as a polling request
        // over the limit is refused; before, a WebSocket message could be 8 MiB while a
        // polling request was refused past 16 KiB.
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
pub(crate) fn register_socket_handlers(io: &SocketIo, hub: Arc<AppState>) {
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

/// Health and metrics routes, with Socket.IO on the same listener, which pages of other
/// origins than `allowed_origins` and the server's own may not use (`403`, on both
/// transports); cross-origin long-polling from `allowed_origins` gets CORS headers.
pub(crate) fn router(
    socket_io: SocketIoLayer,
    state: HealthState,
    allowed_origins: &[String],
) -> Router {
    pollstream_infra::metrics::handle();
    let health = Router::new()
        .route("/healthz", get(pollstream_infra::health::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(pollstream_infra::metrics::render))
        .layer(axum::middleware::from_fn(
            pollstream_infra::metrics::track_http,
        ))
        .with_state(state);
    // Socket.IO on routes of its own rather than as a layer around the whole router, so that
    // the origin check runs in front of it and of nothing else: health and metrics are not
    // browser routes. The empty router only carries the layer (its fallback, a `404`, is never
    // reached: every path routed here is socketioxide's).
    let socket_io = Router::new().layer(socket_io);
    let sockets = SOCKET_IO_ROUTES
        .into_iter()
        .fold(Router::new(), |sockets, path| {
            sockets.route(path, any_service(socket_io.clone()))
        })
        .route_layer(axum::middleware::from_fn_with_state(
            AllowedOrigins::new(allowed_origins),
            allowed_origins::refuse_other_origins,
        ));
    let app = sockets
        .merge(health)
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
/// same replica. WebSocket is not subject to CORS; other origins are refused by
/// [`allowed_origins::refuse_other_origins`], not here.
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
pub(crate) fn spawn_room_gauge(io: SocketIo, stop: CancellationToken) {
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
pub(crate) async fn serve_until_drained(
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

/// Ready when Redis and the Kafka cluster answer and this replica's consumer has its
/// partitions: before that, the updates it will read are late. PostgreSQL is only
/// `degraded`: broadcasting needs none of it, joins to polls already seen are answered from
/// the access cache and the results cache, and every replica shares one database, so taking
/// them all out of the load balancer during its outage would only drop every screen.
async fn readyz(State(state): State<HealthState>) -> (StatusCode, Json<Value>) {
    let consumer = state.consumer.get();
    let kafka = move || {
        consumer
            .fetch_metadata(None, pollstream_infra::health::CHECK_TIMEOUT)
            .map_err(|err| err.to_string())?;
        match consumer.assignment() {
            Ok(assigned) if assigned.count() > 0 => Ok(()),
            Ok(_) => Err("no partitions assigned yet".to_owned()),
            Err(err) => Err(err.to_string()),
        }
    };
    pollstream_infra::health::readiness_without(
        &state.hub.db,
        &state.hub.redis,
        kafka,
        &["postgres"],
    )
    .await
}
