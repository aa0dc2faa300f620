//! voting-api while PostgreSQL is stopped: votes on polls it or another replica already read
//! are still `202` (their definitions served past `POLL_CACHE_TTL_MS`, from its own copy or
//! the one shared in Redis), a repeat is still `409`, closing still
//! takes effect (the Redis closed flag, `closesAt`), `/readyz` stays `200` naming PostgreSQL
//! as degraded, and what needs the database is `503 database_unavailable` with
//! `Retry-After`. The test owns its PostgreSQL so it can stop it.

use std::time::Duration;

use chrono::Utc;
use pollstream_testkit::owned::OwnedPostgres;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, option_id, spawn_app_with, spawn_twin};

/// The cache's TTL in this test: short, so every vote during the outage comes after it.
const TTL_MS: &str = "200";

/// `(status, Retry-After, body)` of a request.
async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Option<String>, Value) {
    let response = request.send().await.expect("request failed");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn vote(
    app: &TestApp,
    code: &str,
    voter: &str,
    poll: &Value,
) -> (StatusCode, Option<String>, Value) {
    send(
        app.client
            .post(format!("{}/api/v1/votes/{code}", app.address))
            .bearer_auth(app.token(voter))
            .json(&json!({ "optionIds": [option_id(poll, 0)] })),
    )
    .await
}

fn code(poll: &Value) -> &str {
    poll["code"].as_str().unwrap()
}

#[tokio::test]
async fn votes_on_known_polls_are_taken_while_postgres_is_stopped() {
    let postgres = OwnedPostgres::start().await;
    let url = postgres.url();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    pollstream_infra::postgres::migrate(&pool).await.unwrap();
    pool.close().await;
    let settings = [
        ("DATABASE_URL", url.as_str()),
        ("POLL_CACHE_TTL_MS", TTL_MS),
    ];
    let app = spawn_app_with(&settings).await;
    // Another replica of the same deployment, which creates the polls this one never reads.
    let twin = spawn_twin(&app, &settings).await;
    // And one that shares no copies of what it reads (`POLL_CACHE_STALE_IF_ERROR_SECS=0`).
    let unsharing = spawn_twin(
        &app,
        &[
            ("DATABASE_URL", url.as_str()),
            ("POLL_CACHE_TTL_MS", TTL_MS),
            ("POLL_CACHE_STALE_IF_ERROR_SECS", "0"),
        ],
    )
    .await;

    let known = app.create_poll("single", &["a", "b"], None).await;
    let closes_at = Utc::now() + chrono::Duration::seconds(3);
    let closing = app
        .create_poll_with(&json!({"question": "Soon?", "options": ["y", "n"], "kind": "single", "closesAt": closes_at.to_rfc3339()}))
        .await;
    let closed_elsewhere = app.create_poll("single", &["a", "b"], None).await;
    let unseen = twin.create_poll("single", &["a", "b"], None).await;
    let uncached = unsharing.create_poll("single", &["a", "b"], None).await;
    for poll in [&known, &closing, &closed_elsewhere] {
        let (status, _, body) = vote(&app, code(poll), "before", poll).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    // Closed through the other replica: this one still holds the poll as open.
    let (status, _, body) = send(
        twin.client
            .post(format!(
                "{}/api/v1/polls/{}/close",
                twin.address,
                code(&closed_elsewhere)
            ))
            .bearer_auth(twin.token("owner")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    postgres.kill().await;

    // New voters over two seconds, ten times the cache's TTL: every one is taken.
    for i in 0..20 {
        let (status, _, body) = vote(&app, code(&known), &format!("during-{i}"), &known).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "vote {i} during the outage: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, body) = vote(&app, code(&known), "before", &known).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_voted")),
        "{body}"
    );
    let (status, _, body) = vote(&app, code(&closed_elsewhere), "late", &closed_elsewhere).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("poll_closed")),
        "the closed flag must hold with a stale definition: {body}"
    );
    let (status, body) = app.get(&format!("/api/v1/polls/{}", code(&known))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A poll this replica never read is taken from the copy the replica that read it shared.
    for i in 0..5 {
        let (status, _, body) = vote(&app, code(&unseen), &format!("shared-{i}"), &unseen).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "vote {i} on a shared copy: {body}"
        );
    }
    let (status, _, body) = vote(&app, code(&unseen), "shared-0", &unseen).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_voted")),
        "{body}"
    );

    // A poll no replica shared a copy of needs the database.
    let (status, retry_after, body) = vote(&app, code(&uncached), "someone", &uncached).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("database_unavailable")
        ),
        "{body}"
    );
    assert!(retry_after.is_some(), "{body}");

    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_ne!(ready["checks"]["postgres"], "ok", "{ready}");
    assert_eq!(ready["degraded"], json!(["postgres"]), "{ready}");
    assert_eq!(ready["status"], "ready", "{ready}");

    // Routes that only PostgreSQL can answer.
    let owner = app.token("owner");
    let requests = [
        (
            "create",
            app.client
                .post(format!("{}/api/v1/polls", app.address))
                .json(&json!({"question": "Q?", "options": ["a", "b"], "kind": "single"})),
        ),
        (
            "close",
            app.client.post(format!(
                "{}/api/v1/polls/{}/close",
                app.address,
                code(&known)
            )),
        ),
        (
            "my polls",
            app.client.get(format!("{}/api/v1/polls/mine", app.address)),
        ),
        (
            "export",
            app.client.get(format!(
                "{}/api/v1/polls/{}/ballots.csv",
                app.address,
                code(&known)
            )),
        ),
    ];
    for (name, request) in requests {
        let (status, retry_after, body) = send(request.bearer_auth(&owner)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("database_unavailable")
            ),
            "{name}: {body}"
        );
        assert!(retry_after.is_some(), "{name}: no Retry-After");
    }

    // Past `closesAt`, the cached definition alone closes the poll.
    let until_closed = closes_at - Utc::now();
    tokio::time::sleep(until_closed.to_std().unwrap_or_default() + Duration::from_millis(100))
        .await;
    let (status, _, body) = vote(&app, code(&closing), "after-close", &closing).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("poll_closed")),
        "{body}"
    );

    postgres.resume().await;
    let recovered = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let (status, ready) = app.get("/readyz").await;
        (status == StatusCode::OK && ready["degraded"] == json!([])).then_some(())
    })
    .await;
    assert!(
        recovered.is_some(),
        "readiness still degraded after PostgreSQL came back"
    );
    let (status, _, body) = vote(&app, code(&uncached), "someone", &uncached).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stale = pollstream_testkit::metric_sample(&metrics, "poll_cache_stale_served_total", &[]);
    assert!(stale.is_some_and(|served| served >= 20.0), "{metrics}");
}
