//! A real `socket.io-client` (Node.js, from npm) that a test drives and observes.
//!
//! The client is `e2e/node/client.mjs`: commands go in on its stdin, every acknowledgement and
//! server event comes back as a JSON line on its stdout.

use std::process::Stdio;
use std::time::Duration;

use pollstream_wire::PollSnapshot;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::topic_writer::TopicWriter;

const CLIENT_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../e2e/node/client.mjs");

/// One connected socket.io-client.
pub struct SocketClient {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Every line received so far, in order.
    pub received: Vec<Value>,
    next_id: u64,
}

impl SocketClient {
    /// Starts a client against `url` (e.g. `http://127.0.0.1:3003`) and waits until it is
    /// connected.
    pub async fn connect(url: &str) -> Self {
        let mut child = Command::new("node")
            .arg(CLIENT_SCRIPT)
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting node (is Node.js installed and `npm ci` run in e2e/node?)");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(value) => {
                        if tx.send(value).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("socket client said: {line}"),
                }
            }
        });
        let mut client = Self {
            child,
            stdin,
            lines,
            received: Vec::new(),
            next_id: 0,
        };
        let connected = client
            .wait_for(Duration::from_secs(15), |line| {
                matches!(line["event"].as_str(), Some("connect" | "connect_error"))
            })
            .await
            .expect("socket.io-client neither connected nor failed within 15 s");
        assert_eq!(
            connected["event"], "connect",
            "socket.io-client failed: {connected}"
        );
        client
    }

    /// Emits `event` with `data` and returns the server's acknowledgement.
    pub async fn request(&mut self, event: &str, data: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "emit": event, "data": data }).to_string() + "\n";
        self.stdin
            .write_all(command.as_bytes())
            .await
            .expect("writing to the socket client");
        let ack = self
            .wait_for(Duration::from_secs(15), |line| {
                matches!(line["event"].as_str(), Some("ack" | "ack_timeout")) && line["id"] == id
            })
            .await
            .unwrap_or_else(|| panic!("no acknowledgement for {event} within 15 s"));
        assert_eq!(ack["event"], "ack", "{event} was not acknowledged: {ack}");
        ack["data"].clone()
    }

    /// Waits up to `timeout` for the `poll-results` event carrying `seq`; `None` if it did not
    /// come.
    pub async fn wait_for_results(&mut self, seq: i64, timeout: Duration) -> Option<Value> {
        self.wait_for(timeout, |line| {
            line["event"] == "poll-results" && line["data"]["seq"] == seq
        })
        .await
    }

    /// Waits up to `timeout` for a line matching `predicate`, keeping every line in
    /// [`SocketClient::received`]. Lines received earlier are searched first.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        predicate: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut searched = 0;
        loop {
            if let Some(found) = self.received[searched..]
                .iter()
                .find(|line| predicate(line))
            {
                return Some(found.clone());
            }
            searched = self.received.len();
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.received.push(line),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Takes in everything the client has printed so far without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.received.push(line);
        }
    }

    /// The payloads of every `event` received so far, in order.
    pub fn events(&mut self, event: &str) -> Vec<Value> {
        self.drain();
        self.received
            .iter()
            .filter(|line| line["event"] == event)
            .map(|line| line["data"].clone())
            .collect()
    }

    /// Closes the client and waits for the process to end.
    pub async fn close(mut self) {
        let _ = self.stdin.shutdown().await;
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Publishes `snapshot` through `updates` until every one of `clients` has received it as
/// `poll-results` (at most 100 tries, 300 ms apart): realtime-service reads `poll-updates`
/// from the latest offset, so a snapshot sent before its partitions are assigned is (rightly)
/// never seen. Panics if it never arrives.
pub async fn publish_until_seen(
    updates: &TopicWriter,
    snapshot: &PollSnapshot,
    clients: &mut [&mut SocketClient],
) {
    for _ in 0..100 {
        updates.send_snapshot(snapshot).await;
        let mut all = true;
        for client in clients.iter_mut() {
            let seen = client
                .wait_for_results(snapshot.seq, Duration::from_millis(300))
                .await;
            all &= seen.is_some();
        }
        if all {
            return;
        }
    }
    panic!("the service never delivered an update");
}
