//! One definition of valid input: token subjects and time claims, and poll texts the way
//! people read them. Each case was once accepted (or answered `500`).

use pollstream_testkit::JWT_SECRET;
use pollstream_testkit::tokens::{claims, sign_claims};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, option_id, spawn_app};

/// A token for `subject` with extra or replaced claims, signed with the test secret.
fn token_with(subject: &str, extra: Value) -> String {
    let mut claims = claims(subject);
    for (key, value) in extra.as_object().unwrap() {
        claims[key] = value.clone();
    }
    sign_claims(&claims, JWT_SECRET)
}

async fn vote_with(app: &TestApp, poll: &Value, token: &str) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/votes/{}", poll["code"].as_str().unwrap()),
        Some(token),
        &json!({ "optionIds": [option_id(poll, 0)] }),
    )
    .await
}

#[tokio::test]
async fn subjects_breaking_the_shared_rule_are_401_everywhere() {
    let app = spawn_app().await;
    let poll = app.create_poll("single", &["A", "B"], None).await;
    let code = poll["code"].as_str().unwrap();
    let long = "v".repeat(3000);
    for subject in ["nul\u{0}voter", "zero\u{200B}width", "line\nbreak", &long] {
        let token = app.token(subject);
        let (status, body) = vote_with(&app, &poll, &token).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "vote as {subject:?}: {body}"
        );
        assert_eq!(body["error"], "unauthorized");
        let (status, body) = app
            .get_as(&format!("/api/v1/votes/{code}/me"), Some(&token))
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "me as {subject:?}: {body}"
        );
        let (status, _) = app
            .post(
                "/api/v1/polls",
                Some(&token),
                &json!({"question": "Q", "options": ["a", "b"], "kind": "single"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "create as {subject:?}");
    }
    assert_eq!(app.vote_lock(&poll, "nul\u{0}voter").await, None);
    let (status, _) = vote_with(&app, &poll, &app.token("ordinary-voter")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn tokens_not_yet_valid_or_issued_in_the_future_are_401() {
    let app = spawn_app().await;
    let poll = app.create_poll("single", &["A", "B"], None).await;
    let now = jsonwebtoken::get_current_timestamp();
    for (what, extra) in [
        (
            "nbf an hour ahead",
            json!({"nbf": now + 3600, "exp": now + 7200}),
        ),
        (
            "iat an hour ahead",
            json!({"iat": now + 3600, "exp": now + 7200}),
        ),
    ] {
        let (status, body) = vote_with(&app, &poll, &token_with("early", extra)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("invalid token"),
            "{what}: {body}"
        );
    }
    let (status, body) = vote_with(
        &app,
        &poll,
        &token_with("on-time", json!({"nbf": now - 10})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn poll_texts_are_normalised_and_invisible_differences_refused() {
    let app = spawn_app().await;
    let token = app.token("owner");
    let refused = [
        (json!(["a", "b"]), "Lunch\u{0}?", "invalid_question"),
        (json!(["a", "b\u{0}"]), "Q", "invalid_options"),
        (json!(["a", "\u{200B}"]), "Q", "invalid_options"),
        (json!(["Yes", "Yes\u{200B}"]), "Q", "duplicate_option"),
        (json!(["Caf\u{e9}", "Cafe\u{301}"]), "Q", "duplicate_option"),
        (json!(["a", "b"]), "\u{200B} \u{3164}", "invalid_question"),
    ];
    for (options, question, code) in refused {
        let body = json!({"question": question, "options": options, "kind": "single"});
        let (status, answer) = app.post("/api/v1/polls", Some(&token), &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"], code, "{body}: {answer}");
        let field = if code == "invalid_question" {
            "question"
        } else {
            "options[1]"
        };
        assert!(
            answer["message"].as_str().unwrap().contains(field),
            "{answer} names {field}"
        );
    }
    let (status, listed) = app.get_as("/api/v1/polls/mine", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(0),
        "nothing stored: {listed}"
    );

    let poll = app
        .create_poll_with(&json!({
            "question": "  Caf\u{e9}\u{200B} or\ttea? ",
            "options": ["Cafe\u{301}", "T\u{FEFF}ea"],
            "kind": "single",
        }))
        .await;
    assert_eq!(poll["question"], "Caf\u{e9} or tea?");
    assert_eq!(poll["options"][0]["text"], "Caf\u{e9}");
    assert_eq!(poll["options"][1]["text"], "Tea");
}

#[tokio::test]
async fn login_with_a_nul_in_the_email_is_401_not_500() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"email": "a\u{0}@example.com", "password": "long enough password"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "a\u{0}@example.com", "password": "long enough password"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "invalid_email");
}
