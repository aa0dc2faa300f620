//! Presence: how many screens are joined to each poll, across every replica, sent to the
//! poll's rooms as `poll-presence {pollId, viewers}`.
//!
//! A screen is a socket in a poll's results room or its waiting room; sockets are counted,
//! not distinct users. Every [`PresenceSettings::interval`], each replica, in one pipeline:
//! refreshes its heartbeat `presence:replica:{replica}` (expiring after
//! [`PresenceSettings::ttl`]), writes its own count of each poll it has screens for into the
//! hash `presence:{pollId}` (field = replica id; removed when it drops to 0) and reads those
//! hashes back. A poll's total is the sum of the fields whose replica still has a heartbeat,
//! so the screens of a replica that died without a goodbye stop counting within the TTL; its
//! stale fields are removed by whoever notices. A replica that stops cleanly withdraws its
//! counts at once.
//!
//! A replica emits a poll's total to its own screens when it differs from the last one it
//! emitted, or when a screen joined since the previous tick (so a new screen learns the
//! number): at most once per tick per poll. Redis being away skips the tick with a warning
//! and [`PRESENCE_FAILURES_TOTAL`]; it never holds up a broadcast, which runs elsewhere.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use pollstream_wire::PollPresence;
use redis::aio::ConnectionManager;
use socketioxide::SocketIo;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::PresenceSettings;
use crate::metric_names::{PRESENCE_FAILURES_TOTAL, PRESENCE_UPDATES_TOTAL};
use crate::rooms::{poll_of_room, presenter_room_name, room_name, waiting_room_name};

/// This replica's part in the shared viewer counts.
pub struct Presence {
    /// Tick and heartbeat lifetime.
    settings: PresenceSettings,
    /// Random per process: the field this replica writes in every `presence:{pollId}`.
    replica_id: String,
    /// Polls a socket joined since the last tick: their total goes out even if unchanged.
    joined: Mutex<HashSet<Uuid>>,
}

/// What the tick loop remembers between ticks.
#[derive(Default)]
struct TickState {
    /// Polls this replica has a field for in Redis (to remove it when the count drops to 0).
    reported: HashSet<Uuid>,
    /// Last total emitted per poll with screens here.
    emitted: HashMap<Uuid, u64>,
    /// Whether the last tick failed (to warn once per outage).
    failing: bool,
}

impl Presence {
    /// A replica with a fresh random id.
    pub fn new(settings: PresenceSettings) -> Self {
        Self {
            settings,
            replica_id: Uuid::new_v4().simple().to_string(),
            joined: Mutex::new(HashSet::new()),
        }
    }

    /// This replica's id in Redis.
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// Notes that a socket joined `poll_id`, so the next tick sends the poll its total.
    pub fn joined(&self, poll_id: Uuid) {
        self.joined
            .lock()
            .expect("presence lock poisoned")
            .insert(poll_id);
    }

    /// Counts, exchanges and emits every interval until `stop`, then withdraws this replica's
    /// counts.
    pub async fn run(
        self: Arc<Self>,
        io: SocketIo,
        mut redis: ConnectionManager,
        stop: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut state = TickState::default();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticker.tick() => self.tick(&io, &mut redis, &mut state).await,
            }
        }
        if let Err(err) = self.withdraw(&mut redis, &state.reported).await {
            tracing::warn!(error = %err, "Cannot withdraw this replica's viewer counts; they expire by themselves");
        }
    }

    async fn tick(&self, io: &SocketIo, redis: &mut ConnectionManager, state: &mut TickState) {
        let local = local_counts(io).await;
        let joined = std::mem::take(&mut *self.joined.lock().expect("presence lock poisoned"));
        let gone: Vec<Uuid> = state
            .reported
            .iter()
            .filter(|poll_id| !local.contains_key(poll_id))
            .copied()
            .collect();
        let totals = match self.exchange(redis, &local, &gone).await {
            Ok(totals) => totals,
            Err(err) => {
                metrics::counter!(PRESENCE_FAILURES_TOTAL).increment(1);
                if !state.failing {
                    tracing::warn!(error = %err, "Cannot exchange viewer counts with Redis; presence paused");
                }
                state.failing = true;
                state.reported.extend(local.keys());
                // The screens that joined still need a number once Redis is back.
                self.joined
                    .lock()
                    .expect("presence lock poisoned")
                    .extend(joined);
                return;
            }
        };
        if state.failing {
            tracing::info!("Viewer counts exchanged with Redis again; presence resumed");
            state.failing = false;
        }
        state.reported = local.keys().copied().collect();
        state
            .emitted
            .retain(|poll_id, _| local.contains_key(poll_id));
        for (poll_id, viewers) in totals {
            if state.emitted.get(&poll_id) == Some(&viewers) && !joined.contains(&poll_id) {
                continue;
            }
            let payload = PollPresence { poll_id, viewers };
            let rooms = vec![room_name(poll_id), waiting_room_name(poll_id)];
            match io.to(rooms).emit("poll-presence", &payload).await {
                Ok(()) => {
                    metrics::counter!(PRESENCE_UPDATES_TOTAL).increment(1);
                    state.emitted.insert(poll_id, viewers);
                }
                Err(err) => {
                    tracing::warn!(poll_id = %poll_id, error = %err, "Cannot send viewer count")
                }
            }
        }
    }

    /// Writes this replica's heartbeat and `local` counts, removes its fields of the `gone`
    /// polls, and returns the total of each poll in `local` over the live replicas.
    async fn exchange(
        &self,
        redis: &mut ConnectionManager,
        local: &HashMap<Uuid, u64>,
        gone: &[Uuid],
    ) -> redis::RedisResult<HashMap<Uuid, u64>> {
        let ttl_ms = u64::try_from(self.settings.ttl.as_millis()).unwrap_or(u64::MAX);
        let me = self.replica_id.as_str();
        // The heartbeat goes first: whoever reads one of our fields also finds it alive.
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(heartbeat_key(me))
            .arg(1)
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
        for poll_id in gone {
            pipe.cmd("HDEL").arg(poll_key(*poll_id)).arg(me).ignore();
        }
        let polls: Vec<Uuid> = local.keys().copied().collect();
        for poll_id in &polls {
            let key = poll_key(*poll_id);
            pipe.cmd("HSET")
                .arg(&key)
                .arg(me)
                .arg(local[poll_id])
                .ignore();
            // A poll every replica stopped writing to disappears by itself.
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms).ignore();
            pipe.cmd("HGETALL").arg(&key);
        }
        let fields: Vec<HashMap<String, u64>> = pipe.query_async(redis).await?;

        let others: Vec<&str> = fields
            .iter()
            .flat_map(|counts| counts.keys())
            .map(String::as_str)
            .filter(|replica| *replica != me)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let alive: HashSet<&str> = if others.is_empty() {
            HashSet::new()
        } else {
            let heartbeats: Vec<Option<String>> = redis::cmd("MGET")
                .arg(
                    others
                        .iter()
                        .map(|replica| heartbeat_key(replica))
                        .collect::<Vec<_>>(),
                )
                .query_async(redis)
                .await?;
            others
                .iter()
                .zip(heartbeats)
                .filter_map(|(replica, heartbeat)| heartbeat.map(|_| *replica))
                .collect()
        };

        let mut stale = redis::pipe();
        let mut any_stale = false;
        let mut totals = HashMap::with_capacity(polls.len());
        for (poll_id, counts) in polls.iter().zip(&fields) {
            let mut total = 0;
            for (replica, count) in counts {
                if replica == me || alive.contains(replica.as_str()) {
                    total += count;
                } else {
                    stale
                        .cmd("HDEL")
                        .arg(poll_key(*poll_id))
                        .arg(replica)
                        .ignore();
                    any_stale = true;
                }
            }
            totals.insert(*poll_id, total);
        }
        if any_stale {
            stale.query_async::<()>(redis).await?;
        }
        Ok(totals)
    }

    /// Removes this replica's heartbeat and every count it wrote.
    async fn withdraw(
        &self,
        redis: &mut ConnectionManager,
        reported: &HashSet<Uuid>,
    ) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(heartbeat_key(&self.replica_id))
            .ignore();
        for poll_id in reported {
            pipe.cmd("HDEL")
                .arg(poll_key(*poll_id))
                .arg(&self.replica_id)
                .ignore();
        }
        pipe.query_async::<()>(redis).await
    }
}

/// Audience sockets of this replica per poll: in its results and waiting rooms together, less
/// the owner's own screens (its presenter room); polls no socket of this replica joined are
/// left out.
async fn local_counts(io: &SocketIo) -> HashMap<Uuid, u64> {
    let Ok(rooms) = io.rooms().await;
    let polls: HashSet<Uuid> = rooms.iter().filter_map(|room| poll_of_room(room)).collect();
    polls
        .into_iter()
        .filter_map(|poll_id| {
            let rooms = vec![room_name(poll_id), waiting_room_name(poll_id)];
            let joined = io.within(rooms).sockets().len() as u64;
            let presenters = io.within(presenter_room_name(poll_id)).sockets().len() as u64;
            // A presenter alone still learns that nobody is there yet: 0.
            (joined > 0).then_some((poll_id, joined.saturating_sub(presenters)))
        })
        .collect()
}

/// The hash of per-replica counts of `poll_id`.
pub fn poll_key(poll_id: Uuid) -> String {
    format!("presence:{poll_id}")
}

/// The key that exists while `replica` is alive.
pub fn heartbeat_key(replica: &str) -> String {
    format!("presence:replica:{replica}")
}
