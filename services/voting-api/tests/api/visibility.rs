use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

async fn poll_with(app: &TestApp, visibility: &str) -> serde_json::Value {
    app.create_poll_with(&json!({"question": "Q", "options": ["a", "b"], "kind": "single", "resultsVisibility": visibility}))
        .await
}

async fn results(
    app: &TestApp,
    poll: &serde_json::Value,
    viewer: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let token = viewer.map(|v| app.token(v));
    app.get_as(
        &format!("/api/v1/polls/{}/results", poll["code"].as_str().unwrap()),
        token.as_deref(),
    )
    .await
}

#[tokio::test]
async fn always_visible_results_need_no_token() {
    let app = spawn_app().await;
    let poll = poll_with(&app, "always").await;
    assert_eq!(poll["resultsVisibility"], "always");
    assert_eq!(results(&app, &poll, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn owner_only_results_are_hidden_from_everyone_else() {
    let app = spawn_app().await;
    let poll = poll_with(&app, "owner_only").await;
    let (status, body) = results(&app, &poll, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("results_hidden"))
    );
    app.count_ballot(&poll, "voter", 0).await;
    assert_eq!(
        results(&app, &poll, Some("voter")).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = results(&app, &poll, Some("owner")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["total"].is_i64());
    // Closing does not change who sees them.
    app.post(
        &format!("/api/v1/polls/{}/close", poll["code"].as_str().unwrap()),
        Some(&app.token("owner")),
        &json!({}),
    )
    .await;
    assert_eq!(
        results(&app, &poll, Some("voter")).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn after_close_results_appear_when_the_poll_closes() {
    let app = spawn_app().await;
    let poll = poll_with(&app, "after_close").await;
    assert_eq!(results(&app, &poll, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(results(&app, &poll, Some("owner")).await.0, StatusCode::OK);
    let (status, _) = app
        .post(
            &format!("/api/v1/polls/{}/close", poll["code"].as_str().unwrap()),
            Some(&app.token("owner")),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = results(&app, &poll, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("results_hidden")),
        "hidden while closing: the counts are not final yet"
    );
    // What the aggregator's closer does once every accepted vote is counted.
    let poll_id: uuid::Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    pollstream_store::polls::finalize(&app.db.pool, &[poll_id])
        .await
        .unwrap();
    let (status, body) = results(&app, &poll, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "closed");
}

#[tokio::test]
async fn after_vote_results_appear_once_the_voters_ballot_is_counted() {
    let app = spawn_app().await;
    let poll = poll_with(&app, "after_vote").await;
    assert_eq!(results(&app, &poll, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        results(&app, &poll, Some("gus")).await.0,
        StatusCode::FORBIDDEN
    );
    app.count_ballot(&poll, "gus", 1).await;
    let (status, body) = results(&app, &poll, Some("gus")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        results(&app, &poll, Some("hal")).await.0,
        StatusCode::FORBIDDEN,
        "only the voter"
    );
}

#[tokio::test]
async fn unknown_visibility_is_422() {
    let app = spawn_app().await;
    let (status, body) = app
        .post("/api/v1/polls", Some(&app.token("owner")), &json!({"question": "Q", "options": ["a", "b"], "kind": "single", "resultsVisibility": "sometimes"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body"))
    );
}
