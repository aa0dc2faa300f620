use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{option_id, spawn_app};

#[tokio::test]
async fn owner_closes_a_poll_and_votes_stop() {
    let app = spawn_app().await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let code = poll["code"].as_str().unwrap();
    let (status, _) = app.vote(code, "early", &[option_id(&poll, 0)]).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let close = format!("/api/v1/polls/{code}/close");
    let (status, body) = app
        .post(&close, Some(&app.token("stranger")), &json!({}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_owner"))
    );
    let (status, closed) = app
        .post(&close, Some(&app.token("owner")), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(
        closed["status"], "closing",
        "closed only once the aggregator has counted every accepted vote"
    );
    assert!(closed["closedAt"].is_string());
    let (status, again) = app
        .post(&close, Some(&app.token("owner")), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "closing twice is harmless");
    assert_eq!(again["closedAt"], closed["closedAt"]);

    let (status, body) = app.vote(code, "late", &[option_id(&poll, 0)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("poll_closed"))
    );
    let (_, read) = app.get(&format!("/api/v1/polls/{code}")).await;
    assert_eq!(read["status"], "closing");
    let (_, results) = app.get(&format!("/api/v1/polls/{code}/results")).await;
    assert_eq!(results["status"], "closing", "{results}");
    let (seq, announced): (i64, bool) =
        sqlx::query_as("SELECT seq, close_announced FROM polls WHERE code = $1")
            .bind(code)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        (seq, announced),
        (1, false),
        "the close is a new snapshot the aggregator announces"
    );
}

#[tokio::test]
async fn poll_closes_itself_at_closes_at() {
    let app = spawn_app().await;
    let closes_at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let poll = app
        .create_poll_with(&json!({"question": "Quick?", "options": ["y", "n"], "kind": "single", "closesAt": closes_at}))
        .await;
    let code = poll["code"].as_str().unwrap();
    let (status, _) = app.vote(code, "in-time", &[option_id(&poll, 0)]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let (status, body) = app.vote(code, "too-late", &[option_id(&poll, 0)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("poll_closed"))
    );
    let (_, read) = app.get(&format!("/api/v1/polls/{code}")).await;
    assert_eq!(read["status"], "closing");
}

#[tokio::test]
async fn owners_list_and_delete_their_polls() {
    let app = spawn_app().await;
    let first = app.create_poll("single", &["a", "b"], None).await;
    let second = app.create_poll("single", &["c", "d"], None).await;
    let (_, theirs) = app
        .post(
            "/api/v1/polls",
            Some(&app.token("someone-else")),
            &json!({"question": "Mine?", "options": ["x", "y"], "kind": "single"}),
        )
        .await;

    let (status, mine) = app
        .get_as("/api/v1/polls/mine", Some(&app.token("owner")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        vec![
            second["code"].as_str().unwrap(),
            first["code"].as_str().unwrap()
        ],
        "newest first, own polls only"
    );
    let (_, limited) = app
        .get_as(
            "/api/v1/polls/mine?limit=1&offset=1",
            Some(&app.token("owner")),
        )
        .await;
    assert_eq!(limited[0]["code"], first["code"]);
    let (status, _) = app.get("/api/v1/polls/mine").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let path = format!("/api/v1/polls/{}", theirs["code"].as_str().unwrap());
    assert_eq!(
        app.delete(&path, &app.token("owner")).await,
        StatusCode::FORBIDDEN
    );
    let path = format!("/api/v1/polls/{}", first["code"].as_str().unwrap());
    app.count_ballot(&first, "v1", 0).await;
    assert_eq!(
        app.delete(&path, &app.token("owner")).await,
        StatusCode::NO_CONTENT
    );
    let (status, _) = app.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (ballots,): (i64,) = sqlx::query_as("SELECT count(*) FROM ballots")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(ballots, 0, "ballots go with their poll");
    assert_eq!(
        app.delete(&path, &app.token("owner")).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn min_and_max_choices_are_enforced() {
    let app = spawn_app().await;
    let (status, body) = app
        .post("/api/v1/polls", Some(&app.token("owner")), &json!({"question": "Q", "options": ["a", "b", "c"], "kind": "multiple", "minChoices": 3, "maxChoices": 2}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_min_choices")
        )
    );
    let poll = app
        .create_poll_with(&json!({"question": "Pick two or three", "options": ["a", "b", "c", "d"], "kind": "multiple", "minChoices": 2, "maxChoices": 3}))
        .await;
    assert_eq!(
        (poll["minChoices"].as_i64(), poll["maxChoices"].as_i64()),
        (Some(2), Some(3))
    );
    let code = poll["code"].as_str().unwrap();
    let (status, body) = app.vote(code, "one", &[option_id(&poll, 0)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("too_few_choices"))
    );
    let all: Vec<_> = (0..4).map(|i| option_id(&poll, i)).collect();
    let (status, body) = app.vote(code, "four", &all).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("too_many_choices"))
    );
    let (status, body) = app
        .vote(code, "dup", &[option_id(&poll, 1), option_id(&poll, 1)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("duplicate_option"))
    );
    let (status, _) = app
        .vote(code, "two", &[option_id(&poll, 1), option_id(&poll, 3)])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn my_vote_goes_from_none_to_pending_to_counted() {
    let app = spawn_app().await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let code = poll["code"].as_str().unwrap();
    let me = format!("/api/v1/votes/{code}/me");
    let (status, none) = app.get_as(&me, Some(&app.token("fay"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["status"], "none");

    let (_, accepted) = app.vote(code, "fay", &[option_id(&poll, 1)]).await;
    let (_, pending) = app.get_as(&me, Some(&app.token("fay"))).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["voteId"], accepted["voteId"]);
    assert_eq!(pending["optionIds"], json!([option_id(&poll, 1)]));

    // What the aggregator does when it counts it.
    app.count_ballot(&poll, "fay", 1).await;
    let (_, counted) = app.get_as(&me, Some(&app.token("fay"))).await;
    assert_eq!(counted["status"], "counted");
    assert_eq!(counted["optionIds"], json!([option_id(&poll, 1)]));
    assert!(counted["countedAt"].is_string());
    let (status, _) = app.get(&me).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn owner_exports_every_ballot_as_csv() {
    let app = spawn_app().await;
    let poll = app
        .create_poll("single", &["Yes, please", "No \"thanks\""], None)
        .await;
    let tricky = "voter, \"quoted\"";
    app.count_ballot(&poll, "plain", 0).await;
    app.count_ballot(&poll, tricky, 1).await;
    let path = format!(
        "{}/api/v1/polls/{}/ballots.csv",
        app.address,
        poll["code"].as_str().unwrap()
    );

    let response = app
        .client
        .get(&path)
        .bearer_auth(app.token("stranger"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app
        .client
        .get(&path)
        .bearer_auth(app.token("owner"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let body = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        vec![
            "vote_id",
            "voter_id",
            "option_ids",
            "options",
            "cast_at",
            "counted_at"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{body}");
    let by_voter = |voter: &str| {
        rows.iter()
            .find(|r| &r[1] == voter)
            .unwrap_or_else(|| panic!("{voter} missing: {body}"))
    };
    assert_eq!(&by_voter("plain")[3], "Yes, please");
    assert_eq!(&by_voter(tricky)[3], "No \"thanks\"");
    assert_eq!(&by_voter(tricky)[2], option_id(&poll, 1).as_str().unwrap());
}
