//! One Socket.IO message size limit on both transports (a WebSocket once took 8 MiB where
//! long-polling refused 16 KiB): a packet over 16 KiB is refused over long-polling (`413`) and
//! closes its WebSocket, while another screen on the same server keeps receiving updates. Real clients: raw WebSocket and HTTP for the
//! oversized packets (no Socket.IO client would send them), the official socket.io-client for
//! the screen that must not notice.

mod common;

use common::{replica_env, start_replica, test_ground};

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pollstream_testkit::polls::{NewPoll, StoredPoll};
use pollstream_testkit::server::RunningServer;
use pollstream_testkit::socket_client::publish_until_seen;
use pollstream_testkit::topic_writer::TopicWriter;
use pollstream_testkit::{SocketClient, TestDatabase};
use pollstream_wire::PollStatus;
use realtime_service::RunError;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The service's limit (`MAX_PACKET_BYTES` in src/lib.rs).
const LIMIT: usize = 16 * 1024;

#[tokio::test]
async fn oversized_websocket_packets_close_only_their_socket() {
    let server = Server::start().await;
    let poll = server.poll().await;
    let mut screen = SocketClient::connect(&server.url).await;
    screen.request("join", json!({ "pollId": poll.id })).await;
    server.warm_up(&poll, &mut screen).await;

    // Just under the limit: parsed and answered (the code is unknown, so with an error).
    let mut socket = RawSocket::connect(&server.url).await;
    let ack = socket
        .emit_join(&"A".repeat(LIMIT - 100))
        .await
        .expect("a join under the limit was not answered");
    assert!(ack.starts_with("431["), "{ack}");

    for size in [64 * 1024, 1024 * 1024, 8 * 1024 * 1024] {
        let mut socket = RawSocket::connect(&server.url).await;
        let answer = socket.emit_join(&"A".repeat(size)).await;
        assert_eq!(
            answer, None,
            "a {size}-byte join over WebSocket was answered instead of refused"
        );
    }

    // The screen noticed nothing: still connected, still receiving.
    server.publish(&poll, 2).await;
    screen
        .wait_for_results(2, Duration::from_secs(10))
        .await
        .expect("the other screen stopped receiving updates");
    assert!(
        screen
            .wait_for(Duration::ZERO, |line| line["event"] == "disconnect")
            .await
            .is_none(),
        "the other screen was disconnected"
    );
    screen.close().await;
}

#[tokio::test]
async fn long_polling_has_the_same_limit() {
    let server = Server::start().await;
    let http = reqwest::Client::new();
    let base = format!("{}/socket.io/?EIO=4&transport=polling", server.url);
    let open = http.get(&base).send().await.unwrap().text().await.unwrap();
    let handshake: serde_json::Value = serde_json::from_str(open.trim_start_matches('0')).unwrap();
    let session = format!("{base}&sid={}", handshake["sid"].as_str().unwrap());
    let post = |body: String| http.post(&session).body(body).send();

    assert_eq!(post("40".into()).await.unwrap().status(), 200);
    let under = format!(r#"421["join",{{"code":"{}"}}]"#, "A".repeat(LIMIT - 100));
    assert_eq!(post(under).await.unwrap().status(), 200);
    let over = format!(r#"42["join",{{"code":"{}"}}]"#, "A".repeat(64 * 1024));
    assert_eq!(post(over).await.unwrap().status(), 413);
}

struct Server {
    url: String,
    db: TestDatabase,
    updates: TopicWriter,
    /// Stops the service when the test drops it.
    _server: RunningServer<RunError>,
}

impl Server {
    async fn start() -> Self {
        let (topic, db) = test_ground(1).await;
        let server = start_replica(&replica_env(&topic, &db)).await;
        Self {
            url: server.url.clone(),
            db,
            updates: TopicWriter::new(&topic),
            _server: server,
        }
    }

    /// A poll with two options.
    async fn poll(&self) -> StoredPoll {
        NewPoll::new(2).insert(&self.db.pool).await
    }

    async fn publish(&self, poll: &StoredPoll, seq: i64) {
        self.updates
            .send_snapshot(&poll.snapshot(seq, &[0, 0], PollStatus::Open))
            .await;
    }

    /// Publishes `seq` 1 until `screen` sees it: the service consumes from the latest offset.
    async fn warm_up(&self, poll: &StoredPoll, screen: &mut SocketClient) {
        let snapshot = poll.snapshot(1, &[0, 0], PollStatus::Open);
        publish_until_seen(&self.updates, &snapshot, &mut [screen]).await;
    }
}

/// Engine.IO v4 / Socket.IO v5 spoken by hand over a WebSocket, to send what no client would.
struct RawSocket(WebSocketStream<MaybeTlsStream<TcpStream>>);

impl RawSocket {
    /// Opens a WebSocket session and connects to the default namespace.
    async fn connect(url: &str) -> Self {
        let url = format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            url.replace("http://", "ws://")
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut socket = Self(ws);
        let open = socket.next_text().await.expect("Engine.IO open packet");
        assert!(open.starts_with('0'), "{open}");
        socket.0.send(Message::text("40")).await.unwrap();
        let connected = socket.next_text().await.expect("namespace connection");
        assert!(connected.starts_with("40"), "{connected}");
        socket
    }

    /// Emits `join {code}` asking for an acknowledgement; the acknowledgement packet, or
    /// `None` if the server closed the socket instead.
    async fn emit_join(&mut self, code: &str) -> Option<String> {
        let packet = format!(r#"421["join",{{"code":"{code}"}}]"#);
        // Sending may already fail: the server can close as soon as it read the frame header.
        if self.0.send(Message::text(packet)).await.is_err() {
            return None;
        }
        loop {
            let text = self.next_text().await?;
            if text.starts_with("431") {
                return Some(text);
            }
        }
    }

    /// The next text message, answering pings; `None` once the socket is closed.
    async fn next_text(&mut self) -> Option<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let message = tokio::time::timeout_at(deadline, self.0.next())
                .await
                .expect("the server neither answered nor closed within 10 s");
            match message {
                Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                    let _ = self.0.send(Message::text("3")).await;
                }
                Some(Ok(Message::Text(text))) => return Some(text.to_string()),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => {}
            }
        }
    }
}
