use pollstream_wire::{OptionCount, PollSnapshot, PollStatus, SCHEMA_VERSION};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{option_id, spawn_app};

#[tokio::test]
async fn created_poll_is_readable_by_code() {
    let app = spawn_app().await;
    let poll = app.create_poll("single", &["Red", "Blue"], None).await;
    let code = poll["code"].as_str().unwrap();
    assert_eq!(code.len(), 6);
    assert_eq!(poll["status"], "open");
    assert_eq!(poll["maxChoices"], 1);

    let (status, read) = app
        .get(&format!("/api/v1/polls/{}", code.to_lowercase()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["id"], poll["id"]);
    assert_eq!(read["options"][1]["text"], "Blue");
    assert!(
        read["options"][0].get("votes").is_none(),
        "a poll read carries no counts"
    );
}

#[tokio::test]
async fn unknown_code_is_404_with_error_body() {
    let app = spawn_app().await;
    for code in ["ZZZZZZ", "not-a-code!", "x"] {
        let (status, body) = app.get(&format!("/api/v1/polls/{code}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{code}");
        assert_eq!(body["error"], "poll_not_found");
    }
}

#[tokio::test]
async fn invalid_polls_are_422_and_nothing_is_stored() {
    let app = spawn_app().await;
    let token = app.token("owner");
    let cases = [
        (
            json!({"question": "Q", "options": ["a"], "kind": "single"}),
            "invalid_options",
        ),
        (
            json!({"question": "Q", "options": ["a", "a"], "kind": "single"}),
            "duplicate_option",
        ),
        (
            json!({"question": "", "options": ["a", "b"], "kind": "single"}),
            "invalid_question",
        ),
        (
            json!({"question": "Q", "options": ["a", "b"], "kind": "multiple", "maxChoices": 3}),
            "invalid_max_choices",
        ),
        (
            json!({"question": "Q", "options": ["a", "b"], "kind": "ranked"}),
            "invalid_body",
        ),
        (
            json!({"question": "Q", "options": ["a", "b"], "kind": "single", "closesAt": "2000-01-01T00:00:00Z"}),
            "invalid_closes_at",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = app.post("/api/v1/polls", Some(&token), &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {answer}"
        );
        assert_eq!(answer["error"], code, "{body}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM polls")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn creating_a_poll_needs_a_valid_token() {
    let app = spawn_app().await;
    let body = json!({"question": "Q", "options": ["a", "b"], "kind": "single"});
    let (status, answer) = app.post("/api/v1/polls", None, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"], "unauthorized");
    let (status, _) = app.post("/api/v1/polls", Some("not.a.token"), &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/api/v1/polls", app.address))
        .bearer_auth(app.token("owner"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "malformed_json");
}

#[tokio::test]
async fn results_come_from_postgres_then_from_the_cache() {
    let app = spawn_app().await;
    let poll = app.create_poll("single", &["Yes", "No"], None).await;
    let code = poll["code"].as_str().unwrap();
    let (status, results) = app.get(&format!("/api/v1/polls/{code}/results")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(results["total"], 0);
    assert_eq!(results["seq"], 0);
    assert_eq!(results["options"][0]["text"], "Yes");
    assert_eq!(results["options"][0]["votes"], 0);

    // The aggregator refreshes the cache after each flush; simulate one such refresh.
    let poll_id = poll["id"].as_str().unwrap().parse().unwrap();
    let snapshot = PollSnapshot {
        v: SCHEMA_VERSION,
        poll_id,
        seq: 4,
        total: 7,
        status: PollStatus::Open,
        options: vec![
            OptionCount {
                option_id: option_id(&poll, 0).as_str().unwrap().parse().unwrap(),
                votes: 5,
            },
            OptionCount {
                option_id: option_id(&poll, 1).as_str().unwrap().parse().unwrap(),
                votes: 2,
            },
        ],
        at: chrono::Utc::now(),
    };
    let mut redis = pollstream_testkit::redis_connection();
    let write = async |redis: &mut _, snapshot: &PollSnapshot| {
        pollstream_store::results_cache::write_if_newer(redis, &app.db.pool, snapshot)
            .await
            .unwrap()
    };
    // Nothing cached yet: the entry is filled from PostgreSQL (seq 0), not from the snapshot.
    assert!(write(&mut redis, &snapshot).await);
    let cached = pollstream_store::results_cache::read(&mut redis, poll_id)
        .await
        .unwrap()
        .expect("an entry");
    assert_eq!((cached.seq, cached.total), (0, 0));
    assert!(write(&mut redis, &snapshot).await);
    let older = PollSnapshot {
        seq: 3,
        ..snapshot.clone()
    };
    assert!(!write(&mut redis, &older).await);

    let (_, results) = app.get(&format!("/api/v1/polls/{code}/results")).await;
    assert_eq!(results["seq"], 4);
    assert_eq!(results["total"], 7);
    assert_eq!(results["options"][0]["votes"], 5);
    assert_eq!(results["options"][1]["votes"], 2);
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = spawn_app().await;
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["kafka"], "ok");
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
