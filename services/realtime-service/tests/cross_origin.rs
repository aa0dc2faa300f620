//! Cross-origin Socket.IO: a page served by another origin (voting-api's) may connect, over
//! long-polling (with CORS headers) or WebSocket, only when that origin is listed in
//! `REALTIME_ALLOWED_ORIGINS`; any other origin but the server's own gets `403
//! origin_not_allowed` on both transports, and a client sending no `Origin` is served.

mod common;

use common::{replica_env, start_replica, test_ground};

use futures::{SinkExt, StreamExt};
use pollstream_testkit::TestDatabase;
use pollstream_testkit::server::RunningServer;
use pollstream_wire::ErrorBody;
use realtime_service::RunError;
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, ORIGIN,
};
use reqwest::{Method, Response, StatusCode};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

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

    // Another origin is refused, without CORS permission (its page cannot even read why).
    let stranger = handshake(&server.url, STRANGER).await;
    assert_eq!(stranger.status(), StatusCode::FORBIDDEN);
    assert_eq!(allowed_origin(&stranger), None);
    server.stop().await;
}

#[tokio::test]
async fn by_default_no_other_origin_may_connect() {
    let (server, _db) = replica(None).await;
    let refused = handshake(&server.url, PAGE).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(allowed_origin(&refused), None);
    assert!(
        refused
            .headers()
            .get(ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none(),
        "{:?}",
        refused.headers()
    );
    let body: ErrorBody = refused.json().await.unwrap();
    assert_eq!(body.error, "origin_not_allowed");
    server.stop().await;
}

#[tokio::test]
async fn another_origin_is_refused_on_both_transports() {
    let (server, _db) = replica(Some(PAGE)).await;

    let polling = handshake(&server.url, STRANGER).await;
    assert_eq!(polling.status(), StatusCode::FORBIDDEN);
    let body: ErrorBody = polling.json().await.unwrap();
    assert_eq!(body.error, "origin_not_allowed");
    assert!(body.message.contains(STRANGER), "{}", body.message);

    // The POST of a session: refused too, whatever the sid.
    let post = reqwest::Client::new()
        .post(format!(
            "{}/socket.io/?EIO=4&transport=polling&sid=whatever",
            server.url
        ))
        .header(ORIGIN, STRANGER)
        .body("40")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::FORBIDDEN);

    match websocket(&server.url, Some(STRANGER)).await {
        Err(tungstenite::Error::Http(answer)) => {
            assert_eq!(answer.status(), StatusCode::FORBIDDEN);
            let body: ErrorBody =
                serde_json::from_slice(answer.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body.error, "origin_not_allowed");
            assert!(body.message.contains(STRANGER), "{}", body.message);
        }
        Err(other) => panic!("the upgrade failed otherwise: {other}"),
        Ok(_) => panic!("a WebSocket from {STRANGER} was accepted"),
    }

    // Health, readiness and metrics are not browser routes: no origin check there.
    let health = reqwest::Client::new()
        .get(format!("{}/healthz", server.url))
        .header(ORIGIN, STRANGER)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_listed_origin_and_clients_without_origin_connect_over_websocket() {
    let (server, _db) = replica(Some(PAGE)).await;
    for origin in [Some(PAGE), Some("HTTP://LOCALHOST:3001"), None] {
        let (mut ws, answer) = websocket(&server.url, origin)
            .await
            .unwrap_or_else(|err| panic!("origin {origin:?}: {err}"));
        assert_eq!(answer.status(), StatusCode::SWITCHING_PROTOCOLS);
        connect_namespace(&mut ws).await;
    }
    // Long-polling without an Origin header, as a server-side client does it.
    let opened = reqwest::Client::new()
        .get(format!("{}/socket.io/?EIO=4&transport=polling", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), StatusCode::OK);
    assert!(opened.text().await.unwrap().starts_with('0'));
    server.stop().await;
}

#[tokio::test]
async fn with_an_empty_list_the_servers_own_origin_connects() {
    let (server, _db) = replica(None).await;
    // The page was served by this very host and port (behind a proxy that keeps `Host`).
    let own = server.url.clone();
    let (mut ws, answer) = websocket(&server.url, Some(&own)).await.unwrap();
    assert_eq!(answer.status(), StatusCode::SWITCHING_PROTOCOLS);
    connect_namespace(&mut ws).await;
    let opened = handshake(&server.url, &own).await;
    assert_eq!(opened.status(), StatusCode::OK);

    // Another port of the same host is another origin.
    let refused = handshake(&server.url, PAGE).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    server.stop().await;
}

type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a Socket.IO WebSocket as a page of `origin` would (a native client when `None`).
async fn websocket(
    url: &str,
    origin: Option<&str>,
) -> Result<(WebSocket, tungstenite::handshake::client::Response), tungstenite::Error> {
    let mut request = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        url.replace("http://", "ws://")
    )
    .into_client_request()
    .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert(ORIGIN, origin.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await
}

/// The Engine.IO open packet, then a connection to the default namespace.
async fn connect_namespace(ws: &mut WebSocket) {
    let open = next_text(ws).await;
    assert!(open.starts_with('0'), "{open}");
    ws.send(Message::text("40")).await.unwrap();
    let connected = next_text(ws).await;
    assert!(connected.starts_with("40"), "{connected}");
}

/// The next text message, answering pings.
async fn next_text(ws: &mut WebSocket) -> String {
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("no answer within 10 s")
            .expect("the socket closed")
            .unwrap();
        match message {
            // Engine.IO pings may come first; a client answers them.
            Message::Text(text) if text.as_str() == "2" => {
                ws.send(Message::text("3")).await.unwrap();
            }
            Message::Text(text) => return text.to_string(),
            _ => {}
        }
    }
}
