//! Socket.IO screens: thousands of clients joined to the run's polls, each keeping a log of the
//! snapshots it received.
//!
//! The client speaks Engine.IO v4 / Socket.IO v5 over a WebSocket only, which is all a screen
//! needs: `0{..}` open, `40` connect, `42["event",data]` events, `42<id>[..]` / `43<id>[..]`
//! acknowledged emits, `2` ping answered by `3`. Being this small lets one process hold ten
//! thousand of them, and lets each bind its own source address when ports run short.
//!
//! With [`ScreenSettings::reconnect`] a screen whose connection breaks (its realtime-service
//! replica killed or restarted) connects again and re-joins every poll, as socket.io-client
//! does by default; the snapshot acknowledging each re-join is logged like a delivery, so a
//! count that went backwards across the reconnection shows in the log.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpSocket;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

/// One `poll-results` as a screen saw it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Index of the poll in the run's list.
    pub poll: u32,
    /// The snapshot's sequence number.
    pub seq: i64,
    /// Ballots counted in the snapshot.
    pub total: i64,
    /// When it arrived.
    pub received: Instant,
    /// Microseconds from the snapshot's `at` to its arrival, by the wall clock (0 for a
    /// re-join's acknowledgement).
    pub delay_micros: i64,
    /// Whether this is the snapshot acknowledging a re-join after a reconnection rather than
    /// a `poll-results` event.
    pub rejoin: bool,
}

/// What one screen saw.
#[derive(Debug, Clone, Default)]
pub struct ScreenLog {
    /// The screen's number (`0..count` of [`Screens::connect`]).
    pub screen: usize,
    /// Times its connection broke and it connected and re-joined again.
    pub reconnects: u32,
    /// Per poll: the `seq` of the snapshot acknowledging the join.
    pub joined_seq: Vec<i64>,
    /// Every `poll-results`, in arrival order.
    pub deliveries: Vec<Delivery>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotHead {
    poll_id: Uuid,
    seq: i64,
    total: i64,
    at: DateTime<Utc>,
}

/// Where and how the screens connect.
pub struct ScreenSettings {
    /// realtime-service address.
    pub server: SocketAddr,
    /// Local addresses to connect from, round-robin; empty for the system's choice.
    pub source_addrs: Vec<IpAddr>,
    /// Polls every screen joins, by id, in run order.
    pub polls: Vec<Uuid>,
    /// Connect and re-join again when the connection breaks, instead of ending the screen.
    pub reconnect: bool,
}

/// The total each screen shows for each poll right now, readable while the screens run.
#[derive(Debug)]
pub struct ScreenTotals {
    polls: usize,
    totals: Vec<AtomicI64>,
}

impl ScreenTotals {
    fn new(screens: usize, polls: usize) -> Self {
        Self {
            polls,
            totals: (0..screens * polls).map(|_| AtomicI64::new(-1)).collect(),
        }
    }

    /// What screen `screen` shows for poll `poll` (by index); `None` before its first snapshot.
    pub fn get(&self, screen: usize, poll: usize) -> Option<i64> {
        let total = self.totals[screen * self.polls + poll].load(Ordering::Relaxed);
        (total >= 0).then_some(total)
    }

    /// How many screens there are.
    pub fn screens(&self) -> usize {
        self.totals.len() / self.polls.max(1)
    }

    fn set(&self, screen: usize, poll: usize, total: i64) {
        self.totals[screen * self.polls + poll].store(total, Ordering::Relaxed);
    }
}

/// Waits for `count` screens to report whether they joined: how many did, and the first few
/// distinct reasons why others did not.
async fn wait_for_joins(
    ready: &mut tokio::sync::mpsc::Receiver<Result<(), String>>,
    count: usize,
) -> (usize, Vec<String>) {
    let mut connected = 0;
    let mut failures: Vec<String> = Vec::new();
    for _ in 0..count {
        let Some(result) = ready.recv().await else {
            break;
        };
        match result {
            Ok(()) => connected += 1,
            Err(reason) => {
                if failures.len() < 5 && !failures.contains(&reason) {
                    failures.push(reason);
                }
            }
        }
    }
    (connected, failures)
}

/// Running screens.
pub struct Screens {
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<ScreenLog>>>,
    stop: watch::Sender<bool>,
    /// `poll-results` received so far, all screens together.
    pub deliveries: Arc<AtomicU64>,
    /// Screens that connected and joined.
    pub connected: usize,
    /// Why screens failed to connect or join, first few distinct reasons.
    pub failures: Vec<String>,
    /// What each screen shows now.
    pub totals: Arc<ScreenTotals>,
}

impl Screens {
    /// Connects `count` screens, `concurrency` at a time, and returns once each has joined
    /// every poll (or failed to).
    pub async fn connect(
        settings: ScreenSettings,
        count: usize,
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let deliveries = Arc::new(AtomicU64::new(0));
        let totals = Arc::new(ScreenTotals::new(count, settings.polls.len()));
        let (stop, stopped) = watch::channel(false);
        let gate = Arc::new(Semaphore::new(concurrency.max(1)));
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(1024);
        let poll_index: Arc<HashMap<Uuid, u32>> = Arc::new(
            settings
                .polls
                .iter()
                .enumerate()
                .map(|(i, id)| (*id, i as u32))
                .collect(),
        );
        let mut tasks = Vec::with_capacity(count);
        for n in 0..count {
            let settings = settings.clone();
            let gate = gate.clone();
            let ready = ready_tx.clone();
            let stopped = stopped.clone();
            let deliveries = deliveries.clone();
            let poll_index = poll_index.clone();
            let totals = totals.clone();
            tasks.push(tokio::spawn(async move {
                let permit = gate.acquire_owned().await.expect("gate never closes");
                let joined = tokio::time::timeout(
                    Duration::from_secs(30),
                    Screen::join(&settings, n, &poll_index, totals),
                )
                .await
                .unwrap_or_else(|_| Err(anyhow!("connecting and joining took over 30 s")));
                drop(permit);
                match joined {
                    Ok(screen) => {
                        let _ = ready.send(Ok(())).await;
                        drop(ready);
                        screen
                            .watch(&settings, stopped, &deliveries, &poll_index)
                            .await
                    }
                    Err(err) => {
                        let _ = ready.send(Err(format!("{err:#}"))).await;
                        Err(err)
                    }
                }
            }));
        }
        drop(ready_tx);
        let (connected, failures) = wait_for_joins(&mut ready_rx, count).await;
        Ok(Self {
            tasks,
            stop,
            deliveries,
            connected,
            failures,
            totals,
        })
    }

    /// Disconnects every screen and returns what each saw.
    pub async fn close(self) -> Vec<ScreenLog> {
        let _ = self.stop.send(true);
        let mut logs = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            if let Ok(Ok(log)) = task.await {
                logs.push(log);
            }
        }
        logs
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

struct Screen {
    socket: Socket,
    log: ScreenLog,
    totals: Arc<ScreenTotals>,
}

impl Screen {
    /// Connects screen number `n` and joins every poll.
    async fn join(
        settings: &ScreenSettings,
        n: usize,
        poll_index: &HashMap<Uuid, u32>,
        totals: Arc<ScreenTotals>,
    ) -> anyhow::Result<Self> {
        let mut screen = Self {
            socket: Self::connect(settings, n).await?,
            log: ScreenLog {
                screen: n,
                reconnects: 0,
                joined_seq: vec![0; settings.polls.len()],
                deliveries: Vec::new(),
            },
            totals,
        };
        screen.join_polls(settings, poll_index, false).await?;
        Ok(screen)
    }

    /// Opens the WebSocket of screen `n` and connects to the default namespace.
    async fn connect(settings: &ScreenSettings, n: usize) -> anyhow::Result<Socket> {
        let tcp = TcpSocket::new_v4().context("creating a socket")?;
        if !settings.source_addrs.is_empty() {
            let source = settings.source_addrs[n % settings.source_addrs.len()];
            tcp.bind(SocketAddr::new(source, 0))
                .with_context(|| format!("binding to {source}"))?;
        }
        let stream = tcp
            .connect(settings.server)
            .await
            .with_context(|| format!("connecting to {}", settings.server))?;
        stream.set_nodelay(true)?;
        let url = format!(
            "ws://{}/socket.io/?EIO=4&transport=websocket",
            settings.server
        );
        // The default 128 KiB read buffer per connection would make ten thousand screens
        // cost over a gigabyte here; snapshots are a few hundred bytes.
        let config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(0);
        let (socket, _) =
            tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config))
                .await
                .context("WebSocket handshake")?;
        let mut socket = socket;
        let open = next_text(&mut socket).await?;
        if !open.starts_with('0') {
            bail!("expected the Engine.IO open packet, got {open}");
        }
        send(&mut socket, "40").await?;
        loop {
            let packet = next_text(&mut socket).await?;
            if packet.starts_with("40") {
                return Ok(socket);
            }
            if packet.starts_with("44") {
                bail!("namespace connection refused: {packet}");
            }
        }
    }

    /// Joins every poll; on a re-join, each acknowledging snapshot is logged as a delivery.
    async fn join_polls(
        &mut self,
        settings: &ScreenSettings,
        poll_index: &HashMap<Uuid, u32>,
        rejoin: bool,
    ) -> anyhow::Result<()> {
        for (ack_id, poll_id) in settings.polls.iter().enumerate() {
            let emit = format!(r#"42{ack_id}["join",{{"pollId":"{poll_id}"}}]"#);
            self.send(&emit).await?;
            let prefix = format!("43{ack_id}");
            let ack = loop {
                let packet = self.next_text().await?;
                if let Some(rest) = packet.strip_prefix(&prefix) {
                    break rest.to_owned();
                }
                // Snapshots may already flow for a poll joined earlier.
                self.take(&packet, None, poll_index);
            };
            let (snapshot,): (serde_json::Value,) = serde_json::from_str(&ack)
                .with_context(|| format!("join acknowledgement {ack}"))?;
            let (Some(seq), Some(total)) = (snapshot["seq"].as_i64(), snapshot["total"].as_i64())
            else {
                bail!("joining poll {poll_id} was refused or odd: {snapshot}");
            };
            self.totals.set(self.log.screen, ack_id, total);
            if rejoin {
                self.log.deliveries.push(Delivery {
                    poll: ack_id as u32,
                    seq,
                    total,
                    received: Instant::now(),
                    delay_micros: 0,
                    rejoin: true,
                });
            } else {
                self.log.joined_seq[ack_id] = seq;
            }
        }
        Ok(())
    }

    /// After the connection broke: connects and re-joins until that works or `stop` fires;
    /// `false` when stopped.
    async fn reconnect(
        &mut self,
        settings: &ScreenSettings,
        stop: &mut watch::Receiver<bool>,
        poll_index: &HashMap<Uuid, u32>,
    ) -> bool {
        loop {
            let attempt = async {
                self.socket = Self::connect(settings, self.log.screen).await?;
                self.join_polls(settings, poll_index, true).await
            };
            let attempt = tokio::time::timeout(Duration::from_secs(10), attempt);
            let joined = tokio::select! {
                _ = stop.changed() => return false,
                joined = attempt => matches!(joined, Ok(Ok(()))),
            };
            if joined {
                self.log.reconnects += 1;
                return true;
            }
            tokio::select! {
                _ = stop.changed() => return false,
                _ = tokio::time::sleep(RECONNECT_DELAY) => {}
            }
        }
    }

    /// Logs snapshots until told to stop, reconnecting when the settings say so.
    async fn watch(
        mut self,
        settings: &ScreenSettings,
        mut stop: watch::Receiver<bool>,
        deliveries: &AtomicU64,
        poll_index: &HashMap<Uuid, u32>,
    ) -> anyhow::Result<ScreenLog> {
        loop {
            let broken = tokio::select! {
                _ = stop.changed() => break,
                frame = self.socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if text.as_str() == "2" {
                            self.send("3").await.err()
                        } else {
                            self.take(text.as_str(), Some(deliveries), poll_index);
                            None
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => {
                        Some(anyhow!("realtime-service closed the connection"))
                    }
                    Some(Ok(_)) => None,
                    Some(Err(err)) => {
                        Some(anyhow::Error::from(err).context("reading from realtime-service"))
                    }
                },
            };
            if let Some(err) = broken {
                if !settings.reconnect {
                    return Err(err);
                }
                if !self.reconnect(settings, &mut stop, poll_index).await {
                    return Ok(self.log);
                }
            }
        }
        let _ = self.socket.close(None).await;
        Ok(self.log)
    }

    /// Logs `packet` when it is a `poll-results` event.
    fn take(&mut self, packet: &str, counter: Option<&AtomicU64>, polls: &HashMap<Uuid, u32>) {
        const EVENT: &str = r#"42["poll-results","#;
        let Some(body) = packet.strip_prefix(EVENT) else {
            return;
        };
        let received = Instant::now();
        let now = Utc::now();
        let json = &packet[2..];
        let Ok((_, head)) = serde_json::from_str::<(serde::de::IgnoredAny, SnapshotHead)>(json)
        else {
            eprintln!("unreadable poll-results: {body}");
            return;
        };
        let Some(poll) = polls.get(&head.poll_id) else {
            return;
        };
        self.log.deliveries.push(Delivery {
            poll: *poll,
            seq: head.seq,
            total: head.total,
            received,
            delay_micros: (now - head.at).num_microseconds().unwrap_or(i64::MAX),
            rejoin: false,
        });
        self.totals.set(self.log.screen, *poll as usize, head.total);
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn send(&mut self, text: &str) -> anyhow::Result<()> {
        send(&mut self.socket, text).await
    }

    async fn next_text(&mut self) -> anyhow::Result<String> {
        next_text(&mut self.socket).await
    }
}

/// How long a screen waits between attempts to reconnect.
const RECONNECT_DELAY: Duration = Duration::from_millis(250);

async fn send(socket: &mut Socket, text: &str) -> anyhow::Result<()> {
    socket
        .send(Message::text(text))
        .await
        .context("writing to realtime-service")
}

/// The next text packet, answering pings on the way.
async fn next_text(socket: &mut Socket) -> anyhow::Result<String> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                if text.as_str() == "2" {
                    send(socket, "3").await?;
                    continue;
                }
                return Ok(text.as_str().to_owned());
            }
            Some(Ok(Message::Close(frame))) => bail!("closed by the server: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err).context("reading from realtime-service"),
            None => bail!("connection closed by the server"),
        }
    }
}
