//! Cross-origin long-polling: a page served by another origin (voting-api's) may use the
//! polling transport only when that origin is listed in `REALTIME_ALLOWED_ORIGINS`.

mod common;

use common::{replica_env, start_replica, test_ground};

use pollstream_testkit::TestDatabase;
use pollstream_testkit::server::RunningServer;
use realtime_service::RunError;
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, ORIGIN,
};
use reqwest::{Method, Response, StatusCode};

const PAGE: &str = "http://localhost:3001";
const STRANGER: &str = "http://evil.example";

/// A replica with `REALTIME_ALLOWED_ORIGINS` set to `allowed` (unset when `None`), and the
/// database it needs to run.
async fn replica(allowed: Option<&str>) -> (RunningServer<RunError>, TestDatabase) {
    let (topic, db) = test_ground(1).await;
    let mut env = replica_env(&topic, &db);
    if let Some(allowed) = allowed {
        env = env.set("REALTIME_ALLOWED_ORIGINS", allowed);
    }
    (start_replica(&env).await, db)
}

/// Opens a long-polling session as a page of `origin` would; returns the answer.
async fn handshake(url: &str, origin: &str) -> Response {
    reqwest::Client::new()
        .get(format!("{url}/socket.io/?EIO=4&transport=polling"))
        .header(ORIGIN, origin)
        .send()
        .await
        .unwrap()
}

fn allowed_origin(response: &Response) -> Option<&str> {
    response
        .headers()
        .get(ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn a_listed_origin_may_long_poll() {
    let (server, _db) = replica(Some(&format!("https://other.example, {PAGE}"))).await;
    let http = reqwest::Client::new();

    // The preflight of the POST that carries the client's packets.
    let preflight = http
        .request(
            Method::OPTIONS,
            format!("{}/socket.io/?EIO=4&transport=polling", server.url),
        )
        .header(ORIGIN, PAGE)
        .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(allowed_origin(&preflight), Some(PAGE));
    let methods = preflight.headers()[ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");

    // The handshake, then the client's CONNECT packet, both readable by the page.
    let opened = handshake(&server.url, PAGE).await;
    assert_eq!(opened.status(), StatusCode::OK);
    assert_eq!(allowed_origin(&opened), Some(PAGE));
    assert_eq!(opened.headers()[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    let open_packet = opened.text().await.unwrap();
    let open: serde_json::Value = serde_json::from_str(
        open_packet
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("not an open packet: {open_packet}")),
    )
    .unwrap();
    let sid = open["sid"].as_str().unwrap();
    let connect = http
        .post(format!(
            "{}/socket.io/?EIO=4&transport=polling&sid={sid}",
            server.url
        ))
        .header(ORIGIN, PAGE)
        .header(CONTENT_TYPE, "text/plain;charset=UTF-8")
        .body("40")
        .send()
        .await
        .unwrap();
    assert_eq!(connect.status(), StatusCode::OK);
    assert_eq!(allowed_origin(&connect), Some(PAGE));

    // Another origin gets no permission (the browser then refuses the page the answer).
    let stranger = handshake(&server.url, STRANGER).await;
    assert_eq!(allowed_origin(&stranger), None);
    server.stop().await;
}

#[tokio::test]
async fn by_default_no_other_origin_may_long_poll() {
    let (server, _db) = replica(None).await;
    let opened = handshake(&server.url, PAGE).await;
    assert_eq!(opened.status(), StatusCode::OK);
    assert_eq!(allowed_origin(&opened), None);
    assert!(
        opened
            .headers()
            .get(ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none(),
        "{:?}",
        opened.headers()
    );
    server.stop().await;
}
