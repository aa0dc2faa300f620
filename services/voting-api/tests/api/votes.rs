use std::time::{Duration, Instant};

use pollstream_wire::RawVote;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{option_id, spawn_app, spawn_app_with};

#[tokio::test]
async fn accepted_vote_is_in_kafka_keyed_by_poll_and_voter() {
    let app = spawn_app().await;
    let reader = pollstream_testkit::topic_reader(&app.raw_votes_topic).await;
    let poll = app.create_poll("multiple", &["a", "b", "c"], Some(2)).await;
    let code = poll["code"].as_str().unwrap();

    let (status, body) = app
        .vote(code, "alice", &[option_id(&poll, 0), option_id(&poll, 2)])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let vote_id = body["voteId"].as_str().unwrap();

    let messages = pollstream_testkit::read_messages(&reader, 1, Duration::from_secs(20)).await;
    assert_eq!(messages.len(), 1, "the vote never reached the topic");
    let vote = RawVote::decode(&messages[0].payload).unwrap();
    assert_eq!(vote.vote_id.to_string(), vote_id);
    assert_eq!(vote.voter_id, "alice");
    assert_eq!(vote.poll_id.to_string(), poll["id"].as_str().unwrap());
    let key = format!("{}/alice", poll["id"].as_str().unwrap());
    assert_eq!(messages[0].key.as_deref(), Some(key.as_str()));
    let chosen: Vec<String> = vote.option_ids.iter().map(ToString::to_string).collect();
    assert_eq!(
        chosen,
        vec![
            option_id(&poll, 0).as_str().unwrap(),
            option_id(&poll, 2).as_str().unwrap()
        ]
    );
}

#[tokio::test]
async fn second_vote_of_a_voter_is_409_even_with_other_options() {
    let app = spawn_app().await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let code = poll["code"].as_str().unwrap();
    let (status, _) = app.vote(code, "bob", &[option_id(&poll, 0)]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = app.vote(code, "bob", &[option_id(&poll, 1)]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "already_voted");
    let (status, _) = app.vote(code, "carol", &[option_id(&poll, 1)]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "another voter is unaffected");
}

#[tokio::test]
async fn invalid_choices_are_422_and_take_no_lock() {
    let app = spawn_app().await;
    let poll = app.create_poll("multiple", &["a", "b", "c"], Some(2)).await;
    let other = app.create_poll("single", &["x", "y"], None).await;
    let code = poll["code"].as_str().unwrap();
    let foreign = option_id(&other, 0);
    let cases = [
        (vec![], "no_choice"),
        (
            vec![option_id(&poll, 0), option_id(&poll, 0)],
            "duplicate_option",
        ),
        (
            vec![
                option_id(&poll, 0),
                option_id(&poll, 1),
                option_id(&poll, 2),
            ],
            "too_many_choices",
        ),
        (vec![foreign], "invalid_option"),
    ];
    for (options, code_expected) in cases {
        let (status, body) = app.vote(code, "dave", &options).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"], code_expected);
    }
    let (status, body) = app
        .post(
            &format!("/api/v1/votes/{code}"),
            Some(&app.token("dave")),
            &json!({"optionIds": ["nope"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "invalid_body");
    // None of the rejected attempts left a lock behind.
    let (status, _) = app.vote(code, "dave", &[option_id(&poll, 1)]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn voter_comes_from_the_token_not_the_body() {
    let app = spawn_app().await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let code = poll["code"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/votes/{code}"),
            Some(&app.token("erin")),
            &json!({"optionIds": [option_id(&poll, 0)], "voterId": "mallory"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused: {body}"
    );
    let (status, _) = app
        .post(
            &format!("/api/v1/votes/{code}"),
            None,
            &json!({"optionIds": [option_id(&poll, 0)]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_poll_is_404() {
    let app = spawn_app().await;
    let (status, body) = app
        .vote("QQQQQQ", "frank", &[&json!(uuid::Uuid::new_v4())])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "poll_not_found");
    let (status, _) = app
        .post(
            "/vote",
            Some(&app.token("frank")),
            &json!({"pollId": uuid::Uuid::new_v4(), "optionId": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn legacy_vote_shape_follows_the_same_rules() {
    let app = spawn_app().await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let body = json!({"pollId": poll["id"], "optionId": option_id(&poll, 1)});
    let (status, answer) = app.post("/vote", Some(&app.token("gina")), &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert!(answer["voteId"].is_string());
    let (status, _) = app.post("/vote", Some(&app.token("gina")), &body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let wrong = json!({"pollId": poll["id"], "optionId": uuid::Uuid::new_v4()});
    let (status, _) = app.post("/vote", Some(&app.token("hank")), &wrong).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn kafka_down_gives_503_quickly_and_releases_the_lock() {
    // Nothing listens on port 1: every produce fails after the produce timeout.
    let app = spawn_app_with(&[
        ("KAFKA_BROKERS", "127.0.0.1:1"),
        ("KAFKA_PRODUCE_TIMEOUT_MS", "1000"),
    ])
    .await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let code = poll["code"].as_str().unwrap();
    let started = Instant::now();
    let (status, body) = app.vote(code, "ivy", &[option_id(&poll, 0)]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "kafka_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    assert_eq!(
        app.vote_lock(&poll, "ivy").await,
        None,
        "the lock must be released so the voter can retry"
    );
    // The retry meets the same outage, not a false "already voted".
    let (status, _) = app.vote(code, "ivy", &[option_id(&poll, 0)]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn redis_down_gives_503() {
    let app = spawn_app_with(&[
        ("REDIS_URL", "redis://127.0.0.1:1"),
        ("REDIS_TIMEOUT_MS", "300"),
    ])
    .await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let started = Instant::now();
    let (status, body) = app
        .vote(
            poll["code"].as_str().unwrap(),
            "jack",
            &[option_id(&poll, 0)],
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "redis_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_ne!(ready["checks"]["redis"], "ok");
}
