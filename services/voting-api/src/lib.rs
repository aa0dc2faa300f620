//! voting-api: takes votes over HTTP and produces them to Kafka `raw-votes`.
//!
//! A vote is answered `202` only after Kafka acknowledged it with `acks=all`; a Redis lock
//! per poll and voter turns repeats into `409`. See `DESIGN.md` for the contract.

pub mod config;
pub mod error;

mod auth;
mod health;
mod poll_cache;
mod polls;
mod state;
mod votes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use pollstream_infra::jwt::JwtKeys;
use rdkafka::producer::Producer;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use config::Config;
use poll_cache::PollCache;
use state::AppState;

/// Largest request body accepted; a vote or a poll is far smaller.
const MAX_BODY_BYTES: usize = 64 * 1024;

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

/// Builds the router with every route of the service.
fn app(state: AppState) -> Router {
    Router::new()
        .merge(polls::router())
        .merge(votes::router())
        .merge(health::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
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
            .map_err(|err| RunError::Setup {
            what: "PostgreSQL pool",
            detail: err.to_string(),
        })?;
    let redis = pollstream_infra::redis::connect_lazy(&config.redis_url, config.redis_timeout)
        .map_err(|err| RunError::Setup {
            what: "Redis client",
            detail: err.to_string(),
        })?;
    let producer = config.kafka.producer().map_err(|err| RunError::Setup {
        what: "Kafka producer",
        detail: err.to_string(),
    })?;
    let state = AppState {
        jwt: JwtKeys::new(config.jwt_secret.as_bytes()),
        polls: PollCache::new(db.clone(), config.poll_cache_ttl),
        config: Arc::new(config),
        db,
        redis,
        producer: producer.clone(),
    };
    pollstream_infra::metrics::handle();
    tracing::info!(address = %listener.local_addr()?, "voting-api listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    // Votes already answered `202` were delivered; this only bounds the wait for stragglers.
    let _ = tokio::task::spawn_blocking(move || producer.flush(std::time::Duration::from_secs(5)))
        .await;
    tracing::info!("voting-api stopped");
    Ok(())
}
