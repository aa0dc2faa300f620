//! `/healthz`, `/readyz` and `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use rdkafka::producer::Producer;
use serde_json::Value;

use crate::state::AppState;

/// Health and metrics routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(pollstream_infra::health::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(pollstream_infra::metrics::render))
}

/// Ready when PostgreSQL, Redis and Kafka (the votes topic's metadata) answer.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let producer = state.producer.clone();
    let topic = state.config.raw_votes_topic.clone();
    pollstream_infra::health::readiness(&state.db, &state.redis, move || {
        producer
            .client()
            .fetch_metadata(Some(&topic), pollstream_infra::health::CHECK_TIMEOUT)
            .map(|_| ())
            .map_err(|err| err.to_string())
    })
    .await
}
