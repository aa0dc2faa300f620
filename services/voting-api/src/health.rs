//! `/healthz`, `/readyz` and `/metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use rdkafka::producer::Producer;
use serde_json::{Value, json};

use crate::state::AppState;

/// Health and metrics routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(pollstream_infra::metrics::render))
}

/// Ready when PostgreSQL, Redis and Kafka all answer within a second.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let timeout = Duration::from_secs(1);
    let postgres = tokio::time::timeout(timeout, pollstream_infra::postgres::ping(&state.db));
    let mut redis_conn = state.redis.clone();
    let redis = tokio::time::timeout(timeout, pollstream_infra::redis::ping(&mut redis_conn));
    let producer = state.producer.clone();
    let topic = state.config.raw_votes_topic.clone();
    let kafka = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&topic), timeout)
            .map(|_| ())
    });
    let (postgres, redis, kafka) = tokio::join!(postgres, redis, kafka);
    let checks = [
        (
            "postgres",
            describe(
                postgres
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|r| r.map_err(|e| e.to_string())),
            ),
        ),
        (
            "redis",
            describe(
                redis
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|r| r.map_err(|e| e.to_string())),
            ),
        ),
        (
            "kafka",
            describe(
                kafka
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string())),
            ),
        ),
    ];
    let ready = checks.iter().all(|(_, status)| status == "ok");
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks.iter().map(|(name, status)| (name.to_string(), Value::from(status.clone()))).collect::<serde_json::Map<_, _>>(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

fn describe(result: Result<(), String>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(err) => err,
    }
}
