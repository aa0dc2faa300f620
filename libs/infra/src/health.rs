//! `/healthz` and `/readyz` answers shared by every service.
//!
//! `/healthz` says the process is alive. `/readyz` says whether each dependency answers right
//! now, each check bounded by one second, so an orchestrator stops routing traffic to a
//! replica that could only answer `503`. A dependency the service can do its main work
//! without (voting-api takes votes with PostgreSQL down) only degrades it: it is named under
//! `degraded` and the replica stays ready.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use redis::aio::ConnectionManager;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

/// Longest any single readiness check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// `/healthz`: alive.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `/readyz`: PostgreSQL and Redis pinged, and `kafka` (a blocking librdkafka call, run off
/// the async threads) checked, all concurrently. `200` when all pass, `503` naming the
/// failures otherwise.
pub async fn readiness(
    db: &PgPool,
    redis: &ConnectionManager,
    kafka: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> (StatusCode, Json<Value>) {
    readiness_without(db, redis, kafka, &[]).await
}

/// Like [`readiness`], but a failing check named in `optional` (`postgres`, `redis`, `kafka`)
/// only degrades the service: still `200` (`status: ready`) if every other check passes, its
/// failure in `checks` as always and its name in `degraded`. Body: `{"status": "ready" |
/// "not_ready", "checks": {name: "ok" | error}, "degraded": [name]}`.
pub async fn readiness_without(
    db: &PgPool,
    redis: &ConnectionManager,
    kafka: impl FnOnce() -> Result<(), String> + Send + 'static,
    optional: &[&str],
) -> (StatusCode, Json<Value>) {
    let postgres = async {
        match tokio::time::timeout(CHECK_TIMEOUT, crate::postgres::ping(db)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    };
    let mut redis_conn = redis.clone();
    let redis = async {
        match tokio::time::timeout(CHECK_TIMEOUT, crate::redis::ping(&mut redis_conn)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    };
    let kafka = async {
        tokio::task::spawn_blocking(kafka)
            .await
            .unwrap_or_else(|err| Err(err.to_string()))
    };
    let (postgres, redis, kafka) = tokio::join!(postgres, redis, kafka);
    let mut checks = Map::new();
    let mut ready = true;
    let mut degraded = Vec::new();
    for (name, result) in [("postgres", postgres), ("redis", redis), ("kafka", kafka)] {
        if result.is_err() && optional.contains(&name) {
            degraded.push(Value::from(name));
        } else {
            ready &= result.is_ok();
        }
        checks.insert(
            name.to_owned(),
            Value::from(result.err().unwrap_or_else(|| "ok".to_owned())),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks,
        "degraded": degraded,
    });
    (status, Json(body))
}
