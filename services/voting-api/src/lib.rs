//! voting-api: takes votes over HTTP and produces them to Kafka `raw-votes`.
//!
//! A vote is answered `202` only after Kafka acknowledged it with `acks=all`; a Redis lock
//! per poll and voter turns repeats into `409`. See `docs/api.md` for the contract.

pub mod config;
pub mod http;

mod accounts;
mod lock_fence;
mod lock_restore;
mod metric_names;
mod poll_cache;
mod polls;
mod rate_limit;
mod state;
mod vote_confirm;
mod vote_lock;
mod votes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::routing::get;
use axum::{Json, Router};
use pollstream_infra::kafka::{CommitWatch, ResilientProducer};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

pub use config::Config;
use http::body_limit::MAX_BODY_BYTES;
pub use http::openapi::OPENAPI_PATH;
use http::security_headers::SecurityHeaders;
use http::web::{self, WebApp};
use http::{cors, every_request, json_errors};
use poll_cache::PollCache;
pub use pollstream_infra::RunError;
use state::{AppState, Shared};

/// Every route of the service with its OpenAPI description: each domain module's router,
/// then the operations routes. Routes are only ever added through `routes!`, so the document
/// and the router cannot drift apart.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::new()
        .merge(accounts::router())
        .merge(polls::router())
        .merge(votes::router())
        .merge(http::health::router())
        .split_for_parts();
    http::openapi::complete(&mut openapi);
    (router, openapi)
}

/// Builds the router with every route of the service and the web app's pages and files
/// (`http::web`). Every error it answers is JSON (see `http::json_errors`), a body over
/// [`MAX_BODY_BYTES`] gets a `413` its sender can read (see `http::body_limit`), and every
/// response carries the security headers (see `http::security_headers`): all three, and the
/// HTTP metrics, in one middleware (`http::every_request`).
fn app(state: AppState) -> Router {
    let (router, openapi) = api();
    let openapi = Arc::new(openapi);
    let headers = SecurityHeaders::new(state.config.realtime_public_url.as_ref());
    let web = WebApp::load(
        &state.config.web_dir,
        state.config.realtime_public_url.as_ref(),
    )
    .map(Arc::new);
    router
        .route(
            OPENAPI_PATH,
            get(move || async move { Json(openapi.as_ref().clone()) }),
        )
        // Both after every route: the method fallback is set on the routes present.
        .fallback(move |request: Request| web::fallback(web.clone(), request))
        .method_not_allowed_fallback(json_errors::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(every_request::Rules {
                body_timeout: state.config.http.header_read_timeout,
                headers,
            }),
            every_request::apply,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(cors::layer(&state.config.cors_origins))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(
                    tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::INFO),
                )
                // Every 5xx is logged where it is decided (`ApiError::into_response`: internal
                // errors as errors, an unavailable dependency as a warning) or counted
                // (`votes_rejected_total{reason="overloaded"}`); the layer's own line per 5xx
                // repeated those, and wrote one per shed vote just when the instance is
                // already past its capacity.
                .on_failure(()),
        )
        .with_state(state)
}

/// Serves voting-api on `listener` until `shutdown` completes, then drains in-flight
/// requests and flushes the Kafka producer.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let db =
        pollstream_infra::postgres::connect_lazy(&config.database_url, config.db_max_connections)
            .map_err(RunError::setup("PostgreSQL pool"))?;
    let redis = config
        .redis
        .connect_lazy()
        .map_err(RunError::setup("Redis client"))?;
    let producer =
        ResilientProducer::new(config.kafka.clone()).map_err(RunError::setup("Kafka producer"))?;
    let commits = CommitWatch::new(
        config.kafka.clone(),
        &config.aggregator_group_id,
        &config.raw_votes_topic,
    );
    let state = AppState::new(Shared {
        vote_slots: Arc::new(tokio::sync::Semaphore::new(config.max_votes_in_flight)),
        jwt: config.jwt.keys(),
        polls: PollCache::new(
            db.clone(),
            redis.clone(),
            config.poll_cache_ttl,
            config.poll_cache_stale_if_error,
        ),
        config: Arc::new(config),
        db,
        redis,
        producer: Arc::new(producer),
        lock_fence: lock_fence::LockFence::default(),
        commits,
    });
    let producer = state.producer.clone();
    let http = state.config.http.clone();
    pollstream_infra::metrics::handle();
    let address: SocketAddr = listener.local_addr()?;
    tracing::info!(%address, "voting-api listening");
    // Every request carries `ConnectInfo<SocketAddr>`, which `client_ip` reads.
    pollstream_infra::http::serve(listener, app(state), &http, shutdown).await?;
    // Votes already answered `202` were delivered; this only bounds the wait for stragglers.
    let _ = tokio::task::spawn_blocking(move || producer.flush(std::time::Duration::from_secs(5)))
        .await;
    tracing::info!("voting-api stopped");
    Ok(())
}
