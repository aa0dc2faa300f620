use std::time::Duration;

use futures::StreamExt;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{option_id, spawn_app_with, spawn_twin};

#[tokio::test]
async fn vote_limits_are_shared_by_all_replicas() {
    let limits = [
        ("RATE_LIMIT_VOTES_PER_VOTER", "3"),
        ("RATE_LIMIT_WINDOW_SECS", "60"),
    ];
    let first = spawn_app_with(&limits).await;
    let namespace_pairs: Vec<(&str, &str)> = limits.to_vec();
    let second = spawn_twin(&first, &namespace_pairs).await;
    let mut codes_and_options: Vec<(String, Value)> = Vec::new();
    for _ in 0..4 {
        let poll = first.create_poll("single", &["a", "b"], None).await;
        codes_and_options.push((
            poll["code"].as_str().unwrap().to_owned(),
            option_id(&poll, 0).clone(),
        ));
    }
    // Alternate replicas: the counter lives in Redis, not in either process.
    for (i, (code, option)) in codes_and_options.iter().enumerate().take(3) {
        let app = if i % 2 == 0 { &first } else { &second };
        let (status, body) = app.vote(code, "spammer", &[option]).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (code, option) = &codes_and_options[3];
    let response = second
        .client
        .post(format!("{}/api/v1/votes/{code}", second.address))
        .bearer_auth(second.token("spammer"))
        .json(&json!({ "optionIds": [option] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    let (status, _) = first.vote(code, "someone-else", &[option]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "other voters are not limited");
}

#[tokio::test]
async fn rejected_choices_do_not_use_up_the_vote_limit() {
    let app = spawn_app_with(&[("RATE_LIMIT_VOTES_PER_VOTER", "1")]).await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let code = poll["code"].as_str().unwrap();
    let unknown = json!("00000000-0000-0000-0000-000000000000");
    for _ in 0..3 {
        let (status, body) = app.vote(code, "clumsy", &[&unknown]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let (status, body) = app.vote(code, "clumsy", &[option_id(&poll, 0)]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = app.vote(code, "clumsy", &[option_id(&poll, 1)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "the one attempt the window allows was the accepted vote"
    );
}

#[tokio::test]
async fn votes_beyond_the_in_flight_limit_are_shed_at_once() {
    let app = spawn_app_with(&[("MAX_VOTES_IN_FLIGHT", "1")]).await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let code = poll["code"].as_str().unwrap();
    // A vote whose body is still on its way holds the one slot.
    let body = json!({ "optionIds": [option_id(&poll, 0)] }).to_string();
    let host = app.address.trim_start_matches("http://");
    let mut slow = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /api/v1/votes/{code} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        app.token("slow"),
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body.as_bytes()[..5]).await.unwrap();

    let shed = pollstream_testkit::eventually(Duration::from_secs(5), || async {
        let response = app
            .client
            .post(format!("{}/api/v1/votes/{code}", app.address))
            .bearer_auth(app.token("fast"))
            .json(&json!({ "optionIds": [option_id(&poll, 1)] }))
            .send()
            .await
            .unwrap();
        (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(response)
    })
    .await
    .expect("a second vote was not shed while the slot was taken");
    assert_eq!(shed.headers()["retry-after"], "1");
    let error: Value = shed.json().await.unwrap();
    assert_eq!(error["error"], "overloaded", "{error}");
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "only vote routes are limited"
    );

    // The slow vote completes and frees the slot; the shed voter's retry is accepted.
    slow.write_all(&body.as_bytes()[5..]).await.unwrap();
    let mut answer = vec![0; 1024];
    let read = slow.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let (status, body) = app.vote(code, "fast", &[option_id(&poll, 1)]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn auth_endpoints_are_limited_per_address_across_replicas() {
    let limits = [
        ("RATE_LIMIT_AUTH_PER_IP", "3"),
        ("RATE_LIMIT_GUEST_PER_IP", "2"),
    ];
    let first = spawn_app_with(&limits).await;
    let second = spawn_twin(&first, &limits).await;
    let credentials = json!({"email": "x@example.com", "password": "whatever1"});
    for app in [&first, &second, &first] {
        let (status, body) = app.post("/api/v1/auth/login", None, &credentials).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, body) = second.post("/api/v1/auth/login", None, &credentials).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    let (status, body) = first
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "y@example.com", "password": "whatever1"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "register shares the account limit"
    );
    // Guests have a counter of their own, also shared by the replicas.
    for app in [&first, &second] {
        let (status, body) = app.post("/api/v1/auth/guest", None, &json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = first.post("/api/v1/auth/guest", None, &json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
}

/// A venue's audience shares one address (its NAT): a hall of 5,000 people behind it all get
/// guest tokens within a minute with the default limits, while login stays at its strict
/// default.
#[tokio::test]
async fn a_hall_of_guests_behind_one_address_gets_tokens_with_the_defaults() {
    const GUESTS: usize = 5_000;
    let app = spawn_app_with(&[]).await;
    let started = std::time::Instant::now();
    let statuses: Vec<StatusCode> = futures::stream::iter(0..GUESTS)
        .map(|_| async {
            app.client
                .post(format!("{}/api/v1/auth/guest", app.address))
                .send()
                .await
                .expect("guest request failed")
                .status()
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(
        created,
        GUESTS,
        "statuses other than 201: {:?}",
        statuses
            .iter()
            .filter(|s| **s != StatusCode::CREATED)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(
        elapsed < Duration::from_secs(60),
        "{GUESTS} guests took {elapsed:?}"
    );
    // Refresh shares the account limit and costs no Argon2 hash: it uses up the 300 quickly.
    let unknown = json!({"refreshToken": "unknown"});
    let refused: Vec<StatusCode> = futures::stream::iter(0..300)
        .map(|_| async {
            app.client
                .post(format!("{}/api/v1/auth/refresh", app.address))
                .json(&unknown)
                .send()
                .await
                .expect("refresh request failed")
                .status()
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        refused.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{refused:?}"
    );
    let credentials = json!({"email": "x@example.com", "password": "whatever1"});
    let (status, body) = app.post("/api/v1/auth/login", None, &credentials).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "login keeps its default limit of 300 a minute"
    );
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app_with(&[]).await;
    let huge = json!({ "question": "x".repeat(100_000), "options": ["a", "b"], "kind": "single" });
    let (status, body) = app
        .post("/api/v1/polls", Some(&app.token("owner")), &huge)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = spawn_app_with(&[(
        "CORS_ALLOWED_ORIGINS",
        "https://screen.example, https://admin.example",
    )])
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/polls", app.address),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://admin.example").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://admin.example"
    );
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_each_is_served() {
    let app = spawn_app_with(&[]).await;
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    // Every route the router serves, as (method, path). The router is built only from the
    // documented handlers; this list is what a client relies on.
    let routes = [
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/guest"),
        ("POST", "/api/v1/polls"),
        ("GET", "/api/v1/polls/mine"),
        ("GET", "/api/v1/polls/{code}"),
        ("DELETE", "/api/v1/polls/{code}"),
        ("POST", "/api/v1/polls/{code}/close"),
        ("GET", "/api/v1/polls/{code}/results"),
        ("GET", "/api/v1/polls/{code}/ballots.csv"),
        ("POST", "/api/v1/votes/{code}"),
        ("GET", "/api/v1/votes/{code}/me"),
        ("POST", "/vote"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/openapi.json"),
    ];
    for (method, path) in routes {
        assert!(
            documented.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} is not documented"
        );
    }
    assert_eq!(
        documented.len(),
        routes.len(),
        "undocumented extras or missing routes: {documented:?}"
    );
    // And every documented operation is really served (not 404/405).
    for (method, path) in &documented {
        let url = format!("{}{}", app.address, path.replace("{code}", "ZZZZZZ"));
        let response = app
            .client
            .request(method.parse().unwrap(), &url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && body["error"] != "not_found",
            "{method} {path} is documented but not served: {status} {body}"
        );
    }
}
