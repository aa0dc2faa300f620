//! One Socket.IO message size limit on both transports (issue 11, finding 5): a packet over
//! 16 KiB is refused over long-polling (`413`) and closes its WebSocket, while another screen
//! on the same server keeps receiving updates. Real clients: raw WebSocket and HTTP for the
//! oversized packets (no Socket.IO client would send them), the official socket.io-client for
//! the screen that must not notice.

use std::time::Duration;

use chrono::Utc;
use futures::{SinkExt, StreamExt};
use pollstream_infra::env::Vars;
use pollstream_infra::kafka::KafkaSettings;
use pollstream_testkit::{SocketClient, TestDatabase, unique_topic};
use pollstream_wire::{OptionCount, PollSnapshot, PollStatus, SCHEMA_VERSION};
use rdkafka::producer::{FutureProducer, FutureRecord};
use realtime_service::Config;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

/// The service's limit (`MAX_PACKET_BYTES` in src/lib.rs).
const LIMIT: usize = 16 * 1024;

#[tokio::test]
async fn oversized_websocket_packets_close_only_their_socket() {
    let server = Server::start().await;
    let poll = server.poll().await;
    let mut screen = SocketClient::connect(&server.url).await;
    screen.request("join", json!({ "pollId": poll.0 })).await;
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
        .wait_for(Duration::from_secs(10), |line| {
            line["event"] == "poll-results" && line["data"]["seq"] == 2
        })
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
    topic: String,
    producer: FutureProducer,
    _stop: oneshot::Sender<()>,
}

/// A poll's id and its two option ids.
struct Poll(Uuid, [Uuid; 2]);

impl Server {
    async fn start() -> Self {
        pollstream_testkit::init_logging();
        let topic = unique_topic("poll-updates");
        pollstream_testkit::create_topics(&[(&topic, 1)]).await;
        let db = TestDatabase::create().await;
        let brokers = pollstream_testkit::kafka_brokers();
        let redis = pollstream_testkit::redis_url();
        let config = Config::from_vars(&Vars::from_pairs([
            ("DATABASE_URL", db.url.as_str()),
            ("REDIS_URL", &redis),
            ("KAFKA_BROKERS", &brokers),
            ("POLL_UPDATES_TOPIC", &topic),
            ("JWT_SECRET", pollstream_testkit::JWT_SECRET),
        ]))
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(realtime_service::run(config, listener, async move {
            let _ = stopped.await;
        }));
        Self {
            url,
            db,
            topic,
            producer: KafkaSettings::new(brokers).producer().unwrap(),
            _stop: stop,
        }
    }

    async fn poll(&self) -> Poll {
        let poll = Poll(Uuid::now_v7(), [Uuid::now_v7(), Uuid::now_v7()]);
        let code = Uuid::new_v4().simple().to_string()[..8].to_uppercase();
        sqlx::query("INSERT INTO polls (id, code, owner_id, question, kind, max_choices) VALUES ($1, $2, 'owner', 'Q', 'single', 1)")
            .bind(poll.0)
            .bind(&code)
            .execute(&self.db.pool)
            .await
            .unwrap();
        for (position, option) in poll.1.iter().enumerate() {
            sqlx::query(
                "INSERT INTO options (id, poll_id, position, text) VALUES ($1, $2, $3, 'o')",
            )
            .bind(option)
            .bind(poll.0)
            .bind(position as i32)
            .execute(&self.db.pool)
            .await
            .unwrap();
        }
        poll
    }

    async fn publish(&self, poll: &Poll, seq: i64) {
        let snapshot = PollSnapshot {
            v: SCHEMA_VERSION,
            poll_id: poll.0,
            seq,
            total: seq,
            status: PollStatus::Open,
            options: poll
                .1
                .iter()
                .map(|&option_id| OptionCount {
                    option_id,
                    votes: 0,
                })
                .collect(),
            at: Utc::now(),
        };
        self.producer
            .send(
                FutureRecord::to(&self.topic)
                    .key(&poll.0.to_string())
                    .payload(&snapshot.encode()),
                Duration::from_secs(5),
            )
            .await
            .map_err(|(err, _)| err)
            .unwrap();
    }

    /// Publishes `seq` 1 until `screen` sees it: the service consumes from the latest offset.
    async fn warm_up(&self, poll: &Poll, screen: &mut SocketClient) {
        for _ in 0..100 {
            self.publish(poll, 1).await;
            let seen = screen
                .wait_for(Duration::from_millis(300), |line| {
                    line["event"] == "poll-results" && line["data"]["seq"] == 1
                })
                .await;
            if seen.is_some() {
                return;
            }
        }
        panic!("the service never delivered an update");
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
