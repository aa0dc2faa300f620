//! Polls that need accounts (`allowGuests: false`): guests are refused on both vote
//! routes before any lock is taken; accounts vote as usual.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{option_id, spawn_app};

#[tokio::test]
async fn polls_take_guests_unless_they_need_accounts() {
    let app = spawn_app().await;
    let open = app.create_poll("single", &["a", "b"], None).await;
    assert_eq!(open["allowGuests"], true, "guests are allowed by default");
    let members = app
        .create_poll_with(&json!({
            "question": "Members only?", "options": ["a", "b"], "kind": "single",
            "allowGuests": false
        }))
        .await;
    assert_eq!(members["allowGuests"], false, "{members}");
    let code = members["code"].as_str().unwrap();
    let (status, view) = app.get(&format!("/api/v1/polls/{code}")).await;
    assert_eq!(
        (status, &view["allowGuests"]),
        (StatusCode::OK, &json!(false))
    );
    let (status, mine) = app
        .get_as("/api/v1/polls/mine", Some(&app.token("owner")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<_> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|poll| (poll["code"].clone(), poll["allowGuests"].clone()))
        .collect();
    assert!(listed.contains(&(json!(code), json!(false))), "{mine}");
    assert!(
        listed.contains(&(open["code"].clone(), json!(true))),
        "{mine}"
    );

    let (status, guest) = app.post("/api/v1/auth/guest", None, &json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let guest_token = guest["accessToken"].as_str().unwrap();
    let guest_subject = guest["subject"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/votes/{code}"),
            Some(guest_token),
            &json!({ "optionIds": [option_id(&members, 0)] }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("guests_not_allowed")),
        "{body}"
    );
    let (status, body) = app
        .post(
            "/vote",
            Some(guest_token),
            &json!({ "pollId": members["id"], "optionId": option_id(&members, 0) }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("guests_not_allowed")),
        "the older route keeps the same rule: {body}"
    );
    assert_eq!(
        app.vote_lock(&members, guest_subject).await,
        None,
        "refused before the vote lock"
    );

    let (status, body) = app.vote(code, "member", &[option_id(&members, 1)]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "accounts vote: {body}");
    let (status, body) = app
        .post(
            &format!("/api/v1/votes/{}", open["code"].as_str().unwrap()),
            Some(guest_token),
            &json!({ "optionIds": [option_id(&open, 0)] }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "guests vote where allowed: {body}"
    );
}

#[tokio::test]
async fn allow_guests_must_be_a_boolean() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/v1/polls",
            Some(&app.token("owner")),
            &json!({ "question": "Q?", "options": ["a", "b"], "kind": "single", "allowGuests": "no" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}
