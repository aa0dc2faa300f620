//! Every error is the JSON `{error, message}` body, whatever produced it, and a `413` reaches a
//! client that is still sending its body instead of a connection reset.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, option_id, spawn_app};

/// Sends `method path` with `body` (JSON) and returns the status, headers and JSON body,
/// failing if the body is not JSON.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = app
        .client
        .request(method.clone(), format!("{}{path}", app.address))
        .bearer_auth(app.token("owner"));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request failed");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| {
        panic!("{method} {path}: {status} with a body that is not JSON: {text:?}")
    });
    (status, headers, body)
}

fn assert_error(
    what: &str,
    (status, headers, body): &(StatusCode, reqwest::header::HeaderMap, Value),
    want: (StatusCode, &str),
) {
    assert_eq!(
        (*status, body["error"].as_str()),
        (want.0, Some(want.1)),
        "{what}: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no message in {body}"
    );
    assert_eq!(
        headers["content-type"], "application/json",
        "{what}: the error is not sent as JSON"
    );
}

#[tokio::test]
async fn path_and_query_errors_are_json() {
    let app = spawn_app().await;
    let answer = call(&app, Method::GET, "/api/v1/polls/%FF", None).await;
    assert_error(
        "GET /api/v1/polls/%FF",
        &answer,
        (StatusCode::BAD_REQUEST, "invalid_path"),
    );
    let vote = json!({ "optionIds": ["00000000-0000-0000-0000-000000000000"] });
    let answer = call(&app, Method::POST, "/api/v1/votes/%FF", Some(&vote)).await;
    assert_error(
        "POST /api/v1/votes/%FF",
        &answer,
        (StatusCode::BAD_REQUEST, "invalid_path"),
    );
    let answer = call(&app, Method::GET, "/api/v1/polls/mine?limit=abc", None).await;
    assert_error(
        "GET /api/v1/polls/mine?limit=abc",
        &answer,
        (StatusCode::BAD_REQUEST, "invalid_query"),
    );
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_media_types_are_json() {
    let app = spawn_app().await;
    let answer = call(&app, Method::GET, "/api/v1/nowhere", None).await;
    assert_error(
        "unknown route",
        &answer,
        (StatusCode::NOT_FOUND, "not_found"),
    );
    let answer = call(&app, Method::PATCH, "/api/v1/polls", None).await;
    assert_error(
        "PATCH /api/v1/polls",
        &answer,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
    );
    assert_eq!(
        answer.1["allow"], "POST",
        "405 names the methods that are allowed"
    );
    let answer = call(&app, Method::PUT, "/api/v1/polls/ABCDEF", None).await;
    assert_error(
        "PUT /api/v1/polls/{code}",
        &answer,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
    );
    let allow = answer.1["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("DELETE"), "{allow}");

    let response = app
        .client
        .post(format!("{}/api/v1/polls", app.address))
        .bearer_auth(app.token("owner"))
        .header("content-type", "text/plain")
        .body("question")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_content_type", "{body}");
}

/// 3 MiB: 48 times the 64 KiB a body may have.
const HUGE: usize = 3 * 1024 * 1024;

#[tokio::test]
async fn a_client_sending_3_mib_reads_a_json_413_not_a_reset() {
    let app = spawn_app().await;
    let poll = app.create_poll("single", &["a", "b"], None).await;
    let code = poll["code"].as_str().unwrap();
    let padding = "x".repeat(HUGE);
    let huge_poll = json!({ "question": padding, "options": ["a", "b"], "kind": "single" });
    let huge_vote = json!({ "optionIds": [option_id(&poll, 0)], "padding": padding });
    for round in 0..5 {
        for (path, body) in [
            ("/api/v1/polls".to_owned(), &huge_poll),
            (format!("/api/v1/votes/{code}"), &huge_vote),
        ] {
            let response = app
                .client
                .post(format!("{}{path}", app.address))
                .bearer_auth(app.token("owner"))
                .json(body)
                .send()
                .await
                .unwrap_or_else(|err| panic!("round {round}, {path}: no answer: {err:?}"));
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "payload_too_large", "{path}: {body}");
        }
    }
    // The service is still there and takes a normal vote.
    let (status, body) = app.vote(code, "voter", &[option_id(&poll, 0)]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// What a raw HTTP/1.1 client that writes its whole request before reading gets back, or why
/// it got nothing (within 20 s). `pause` between body chunks makes a sender slower than the
/// server, as over a real network, so the server answers while the client is still sending.
async fn raw_exchange(
    app: &TestApp,
    head: &str,
    body_chunks: &[Vec<u8>],
    pause: Duration,
) -> String {
    let host = app.address.trim_start_matches("http://");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        for chunk in body_chunks {
            tokio::time::sleep(pause).await;
            if let Err(err) = stream.write_all(chunk).await {
                return format!("the server stopped reading before the body was sent: {err}");
            }
        }
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer).await {
            Ok(_) => String::from_utf8_lossy(&answer).into_owned(),
            Err(err) => format!("no answer: {err}"),
        }
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .unwrap_or_else(|_| "no answer within 20 s".to_owned())
}

fn assert_json_413(what: &str, answer: &str) {
    assert!(
        answer.starts_with("HTTP/1.1 413") && answer.contains(r#""error":"payload_too_large""#),
        "{what}: {answer}"
    );
}

#[tokio::test]
async fn raw_clients_sending_3_mib_read_a_json_413() {
    let app = spawn_app().await;
    let host = app.address.trim_start_matches("http://");
    let token = app.token("owner");
    let head = |framing: &str| {
        format!(
            "POST /api/v1/polls HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\n{framing}\r\n"
        )
    };
    let fast = Duration::ZERO;
    // Sent in pieces with a pause, so the server has answered long before the last one.
    let slow = Duration::from_millis(5);
    let piece = vec![b' '; 64 * 1024];
    let pieces = vec![piece.clone(); HUGE / piece.len()];

    // With `Content-Length`, written whole before reading, as simple clients do.
    let framing = format!("content-length: {HUGE}\r\n");
    for pause in [fast, slow] {
        let answer = raw_exchange(&app, &head(&framing), &pieces, pause).await;
        assert_json_413(
            &format!("content-length, {pause:?} between pieces"),
            &answer,
        );
    }

    // Chunked: no `Content-Length` to decide from; the server reads up to the limit.
    let mut chunks: Vec<Vec<u8>> = (0..HUGE / piece.len())
        .map(|_| {
            [
                format!("{:x}\r\n", piece.len()).into_bytes(),
                piece.clone(),
                b"\r\n".to_vec(),
            ]
            .concat()
        })
        .collect();
    chunks.push(b"0\r\n\r\n".to_vec());
    for pause in [fast, slow] {
        let answer = raw_exchange(
            &app,
            &head("transfer-encoding: chunked\r\n"),
            &chunks,
            pause,
        )
        .await;
        assert_json_413(&format!("chunked, {pause:?} between pieces"), &answer);
    }

    // `Expect: 100-continue`: answered at once, without the body ever being sent.
    let framing = format!("content-length: {HUGE}\r\nexpect: 100-continue\r\n");
    let answer = raw_exchange(&app, &head(&framing), &[], fast).await;
    assert_json_413("expect: 100-continue", &answer);

    // A small chunked body still reaches the handler whole.
    let body =
        json!({ "question": "Chunked?", "options": ["a", "b"], "kind": "single" }).to_string();
    let chunks = vec![format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).into_bytes()];
    let framing = "transfer-encoding: chunked\r\nconnection: close\r\n";
    let answer = raw_exchange(&app, &head(framing), &chunks, fast).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}
