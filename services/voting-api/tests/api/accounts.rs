use pollstream_testkit::tokens::sign_claims;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, option_id, spawn_app};

async fn register(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value) {
    app.post(
        "/api/v1/auth/register",
        None,
        &json!({ "email": email, "password": password }),
    )
    .await
}

async fn create_poll_as(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.post(
        "/api/v1/polls",
        Some(token),
        &json!({ "question": "Q?", "options": ["a", "b"], "kind": "single" }),
    )
    .await
}

#[tokio::test]
async fn registered_account_can_create_polls_and_emails_are_unique() {
    let app = spawn_app().await;
    let (status, session) = register(&app, "Ada@Example.com", "correct horse").await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!(session["tokenType"], "Bearer");
    assert_eq!(session["expiresIn"], 900, "access tokens live 15 minutes");
    let access = session["accessToken"].as_str().unwrap();
    let (status, poll) = create_poll_as(&app, access).await;
    assert_eq!(status, StatusCode::CREATED, "{poll}");

    let (status, body) = register(&app, "ada@EXAMPLE.com", "another password").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "email_taken");
    let (status, body) = register(&app, "not-an-email", "long enough").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_email"))
    );
    let (status, body) = register(&app, "bob@example.com", "short").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("weak_password"))
    );
    let (hash,): (String,) =
        sqlx::query_as("SELECT password_hash FROM users WHERE email = 'ada@example.com'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(
        hash.starts_with("$argon2id$"),
        "passwords are hashed with Argon2id"
    );
}

#[tokio::test]
async fn login_checks_the_password() {
    let app = spawn_app().await;
    register(&app, "cy@example.com", "open sesame").await;
    let (status, session) = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({ "email": "CY@example.com", "password": "open sesame" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert!(
        session["refreshToken"]
            .as_str()
            .is_some_and(|t| t.len() >= 43)
    );
    for (email, password) in [
        ("cy@example.com", "wrong"),
        ("nobody@example.com", "open sesame"),
    ] {
        let (status, body) = app
            .post(
                "/api/v1/auth/login",
                None,
                &json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body["message"], "wrong email or password",
            "no hint which part was wrong"
        );
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let (_, first) = register(&app, "dee@example.com", "a fine password").await;
    let old = first["refreshToken"].as_str().unwrap();

    let (status, second) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            &json!({ "refreshToken": old }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let newer = second["refreshToken"].as_str().unwrap();
    assert_ne!(newer, old);
    assert_eq!(second["userId"], first["userId"]);

    // The old token again: someone else has it. Everything from this login is revoked.
    let (status, body) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            &json!({ "refreshToken": old }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            &json!({ "refreshToken": newer }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the rotated token died with its family"
    );

    // Another login is another family, unaffected.
    let (_, other) = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({ "email": "dee@example.com", "password": "a fine password" }),
        )
        .await;
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            &json!({ "refreshToken": other["refreshToken"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let app = spawn_app().await;
    let (_, session) = register(&app, "eve@example.com", "a fine password").await;
    let refresh = session["refreshToken"].clone();
    let (status, _) = app
        .post(
            "/api/v1/auth/logout",
            None,
            &json!({ "refreshToken": refresh }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            &json!({ "refreshToken": refresh }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            &json!({ "refreshToken": "made-up" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn guests_vote_without_an_account_but_cannot_create_polls() {
    let app = spawn_app().await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let (status, guest) = app.post("/api/v1/auth/guest", None, &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{guest}");
    assert_eq!(
        guest["expiresIn"], 43_200,
        "a guest token lasts an event (12 h): a reload stays the same voter"
    );
    let (_, other_guest) = app.post("/api/v1/auth/guest", None, &json!({})).await;
    assert_ne!(
        guest["subject"], other_guest["subject"],
        "every guest is a fresh subject"
    );
    let token = guest["accessToken"].as_str().unwrap();
    let (status, _) = app
        .post(
            &format!("/api/v1/votes/{}", poll["code"].as_str().unwrap()),
            Some(token),
            &json!({ "optionIds": [option_id(&poll, 0)] }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = create_poll_as(&app, token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "account_required");
}

#[tokio::test]
async fn expired_foreign_or_misaddressed_tokens_are_401() {
    let app = spawn_app().await;
    let now = jsonwebtoken::get_current_timestamp();
    let secret = pollstream_testkit::JWT_SECRET;
    let cases = [
        (
            "expired",
            sign_claims(
                &json!({"sub": "x", "iat": now - 120, "exp": now - 60, "iss": "pollstream", "aud": "pollstream"}),
                secret,
            ),
        ),
        (
            "wrong issuer",
            sign_claims(
                &json!({"sub": "x", "iat": now, "exp": now + 60, "iss": "elsewhere", "aud": "pollstream"}),
                secret,
            ),
        ),
        (
            "wrong audience",
            sign_claims(
                &json!({"sub": "x", "iat": now, "exp": now + 60, "iss": "pollstream", "aud": "elsewhere"}),
                secret,
            ),
        ),
        (
            "no audience",
            sign_claims(
                &json!({"sub": "x", "iat": now, "exp": now + 60, "iss": "pollstream"}),
                secret,
            ),
        ),
        (
            "other secret",
            sign_claims(
                &json!({"sub": "x", "iat": now, "exp": now + 60, "iss": "pollstream", "aud": "pollstream"}),
                "some-other-secret-some-other-secret",
            ),
        ),
    ];
    for (case, token) in cases {
        let (status, body) = create_poll_as(&app, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert_eq!(body["error"], "unauthorized");
    }
}
