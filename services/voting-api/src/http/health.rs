//! `/healthz`, `/readyz` and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rdkafka::producer::Producer;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Health and metrics routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
async fn healthz() -> Json<Value> {
    pollstream_infra::health::healthz().await
}

/// Redis and Kafka (the votes topic's metadata) answer right now: what votes need. PostgreSQL
/// is checked too; without it the instance still takes votes on the polls it has read, so it
/// is only named under `degraded`, and the routes that need it answer `503
/// database_unavailable` with `Retry-After`.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready: Redis and Kafka answer; `degraded` lists `postgres` while PostgreSQL does not (votes on polls this instance knows are still taken)"),
        (status = 503, description = "Redis or Kafka is down; `checks` names it")))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let producer = state.producer.get();
    let topic = state.config.raw_votes_topic.clone();
    let kafka = move || {
        producer
            .client()
            .fetch_metadata(Some(&topic), pollstream_infra::health::CHECK_TIMEOUT)
            .map(|_| ())
            .map_err(|err| err.to_string())
    };
    pollstream_infra::health::readiness_without(&state.db, &state.redis, kafka, &["postgres"]).await
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics() -> impl IntoResponse {
    pollstream_infra::metrics::render().await
}
