//! The shared state of the service: Socket.IO handle, ledger of broadcasts, who is waiting
//! for hidden results, and the clients used to resolve polls and read snapshots.
//!
//! Each poll has two rooms: `poll:{id}` receives counts; `poll:{id}:waiting` holds clients
//! whose results are hidden for now (see [`ResultsVisibility`]). Counts are only ever emitted
//! to the first. A waiting client moves over the moment the rule allows it: at close for
//! `after_close`, once its own ballot is counted for `after_vote`.

use std::collections::HashMap;
use std::sync::Mutex;

use pollstream_infra::jwt::JwtKeys;
use pollstream_store::{JoinCode, ResultsVisibility, ballots, polls};
use pollstream_wire::{ErrorBody, PollSnapshot, PollStatus, RoomRequest};
use redis::aio::ConnectionManager;
use serde_json::json;
use socketioxide::SocketIo;
use socketioxide::socket::Sid;
use sqlx::PgPool;
use uuid::Uuid;

use crate::rooms::{SnapshotLedger, room_name, waiting_room_name};
use crate::sockets::error;

/// Most polls or codes remembered; both are immutable, so this only bounds memory.
const MAX_CACHED: usize = 100_000;

/// What the service needs to know about a poll to decide who sees its counts.
#[derive(Debug, Clone)]
pub struct PollAccess {
    /// The owner always sees counts.
    pub owner_id: String,
    /// The poll's rule.
    pub visibility: ResultsVisibility,
}

/// State shared by the consumer loop and every socket handler.
pub struct Hub {
    /// Emits to rooms.
    pub io: SocketIo,
    /// Newest snapshot broadcast per poll.
    pub ledger: SnapshotLedger,
    /// Resolves codes and reads snapshots the cache lacks.
    pub db: PgPool,
    /// Results cache.
    pub redis: ConnectionManager,
    /// Verifies tokens sent with `join`.
    pub jwt: JwtKeys,
    /// Join code → poll id, filled on first use.
    codes: Mutex<HashMap<String, Uuid>>,
    /// Poll id → owner and visibility, filled on first use.
    access: Mutex<HashMap<Uuid, PollAccess>>,
    /// `after_vote` polls: waiting sockets and the voter each one is.
    waiting_voters: Mutex<HashMap<Uuid, HashMap<Sid, String>>>,
}

impl Hub {
    /// A hub over these clients.
    pub fn new(io: SocketIo, db: PgPool, redis: ConnectionManager, jwt: JwtKeys) -> Self {
        Self {
            io,
            ledger: SnapshotLedger::default(),
            db,
            redis,
            jwt,
            codes: Mutex::new(HashMap::new()),
            access: Mutex::new(HashMap::new()),
            waiting_voters: Mutex::new(HashMap::new()),
        }
    }

    /// The poll a `join`/`leave` names; a code is looked up once and remembered.
    pub async fn resolve(&self, request: &RoomRequest) -> Result<Uuid, ErrorBody> {
        match (request.poll_id, request.code.as_deref()) {
            (Some(poll_id), _) => Ok(poll_id),
            (None, Some(code)) => {
                let code = JoinCode::parse(code)
                    .map_err(|unknown| error("poll_not_found", unknown.to_string()))?;
                if let Some(id) = self
                    .codes
                    .lock()
                    .expect("codes lock poisoned")
                    .get(code.as_str())
                {
                    return Ok(*id);
                }
                let id = polls::id_by_code(&self.db, &code)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| {
                        error(
                            "poll_not_found",
                            format!("no poll with code {:?}", code.as_str()),
                        )
                    })?;
                let mut codes = self.codes.lock().expect("codes lock poisoned");
                if codes.len() >= MAX_CACHED {
                    codes.clear();
                }
                codes.insert(code.into(), id);
                Ok(id)
            }
            (None, None) => Err(error("invalid_request", "give either `pollId` or `code`")),
        }
    }

    /// Owner and visibility of `poll_id`.
    pub async fn access(&self, poll_id: Uuid) -> Result<PollAccess, ErrorBody> {
        if let Some(access) = self
            .access
            .lock()
            .expect("access lock poisoned")
            .get(&poll_id)
        {
            return Ok(access.clone());
        }
        let found = polls::results_access(&self.db, poll_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| error("poll_not_found", format!("no poll with id {poll_id}")))?;
        let access = PollAccess {
            owner_id: found.owner_id,
            visibility: found.visibility,
        };
        let mut cache = self.access.lock().expect("access lock poisoned");
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(poll_id, access.clone());
        Ok(access)
    }

    /// Whether `voter` has a counted ballot in `poll_id`.
    pub async fn has_counted_ballot(&self, poll_id: Uuid, voter: &str) -> Result<bool, ErrorBody> {
        ballots::is_counted(&self.db, poll_id, voter)
            .await
            .map_err(unavailable)
    }

    /// Remembers that socket `sid` (voter `voter`) waits for its ballot in `poll_id`.
    pub fn wait_for_ballot(&self, poll_id: Uuid, sid: Sid, voter: String) {
        self.waiting_voters
            .lock()
            .expect("waiting lock poisoned")
            .entry(poll_id)
            .or_default()
            .insert(sid, voter);
    }

    /// Forgets socket `sid` in `poll_id`, or in every poll when `None` (disconnect).
    pub fn stop_waiting(&self, poll_id: Option<Uuid>, sid: Sid) {
        let mut waiting = self.waiting_voters.lock().expect("waiting lock poisoned");
        match poll_id {
            Some(poll_id) => {
                if let Some(sockets) = waiting.get_mut(&poll_id) {
                    sockets.remove(&sid);
                }
            }
            None => waiting.values_mut().for_each(|sockets| {
                sockets.remove(&sid);
            }),
        }
        waiting.retain(|_, sockets| !sockets.is_empty());
    }

    /// Broadcasts an update from `poll-updates` to its room, unless it is stale, and lets in
    /// waiting clients the update makes eligible.
    pub async fn publish(&self, snapshot: PollSnapshot) {
        let poll_id = snapshot.poll_id;
        let Some(broadcast) = self.ledger.accept(snapshot) else {
            metrics::counter!("stale_snapshots_dropped_total").increment(1);
            tracing::debug!(poll_id = %poll_id, "Stale snapshot dropped");
            return;
        };
        let mut sent = 0u64;
        let room = room_name(poll_id);
        sent += self.emit(&room, "poll-results", &broadcast.snapshot).await;
        for stats in &broadcast.stats {
            sent += self.emit(&room, "poll-stats", stats).await;
        }
        if broadcast.closed_now {
            sent += self.emit(&room, "poll-closed", &broadcast.snapshot).await;
            sent += self.release_at_close(&broadcast.snapshot).await;
        }
        sent += self.release_counted_voters(&broadcast.snapshot).await;
        metrics::counter!("room_broadcasts_total").increment(sent);
    }

    async fn emit<T: serde::Serialize + ?Sized>(
        &self,
        room: &str,
        event: &'static str,
        data: &T,
    ) -> u64 {
        match self.io.to(room.to_owned()).emit(event, data).await {
            Ok(()) => 1,
            Err(err) => {
                tracing::warn!(room, event, error = %err, "Cannot broadcast");
                0
            }
        }
    }

    /// At close, tells waiting clients; for `after_close` polls they now see the counts and
    /// move to the results room.
    async fn release_at_close(&self, snapshot: &PollSnapshot) -> u64 {
        let poll_id = snapshot.poll_id;
        let waiting = waiting_room_name(poll_id);
        let Ok(access) = self.access(poll_id).await else {
            return 0;
        };
        if access.visibility == ResultsVisibility::AfterClose {
            let sent = self.emit(&waiting, "poll-closed", snapshot).await;
            if let Err(err) = self.io.to(waiting.clone()).join(room_name(poll_id)).await {
                tracing::warn!(poll_id = %poll_id, error = %err, "Cannot move waiting sockets");
            }
            if let Err(err) = self.io.to(waiting.clone()).leave(waiting).await {
                tracing::warn!(poll_id = %poll_id, error = %err, "Cannot empty the waiting room");
            }
            sent
        } else {
            let hidden = json!({ "pollId": poll_id, "status": PollStatus::Closed, "hidden": true });
            self.emit(&waiting, "poll-closed", &hidden).await
        }
    }

    /// For `after_vote` polls, moves waiting voters whose ballot is now counted.
    async fn release_counted_voters(&self, snapshot: &PollSnapshot) -> u64 {
        let poll_id = snapshot.poll_id;
        let candidates: Vec<(Sid, String)> = match self
            .waiting_voters
            .lock()
            .expect("waiting lock poisoned")
            .get(&poll_id)
        {
            Some(sockets) => sockets
                .iter()
                .map(|(sid, voter)| (*sid, voter.clone()))
                .collect(),
            None => return 0,
        };
        let voters: Vec<&str> = candidates.iter().map(|(_, voter)| voter.as_str()).collect();
        let counted = match ballots::counted_voters(&self.db, poll_id, &voters).await {
            Ok(counted) => counted,
            Err(err) => {
                // Retried with the next snapshot of this poll.
                tracing::warn!(poll_id = %poll_id, error = %err, "Cannot check waiting voters");
                return 0;
            }
        };
        let mut sent = 0;
        for (sid, voter) in candidates {
            if !counted.contains(&voter) {
                continue;
            }
            self.stop_waiting(Some(poll_id), sid);
            if let Some(socket) = self.io.get_socket(sid) {
                socket.leave(waiting_room_name(poll_id));
                socket.join(room_name(poll_id));
                match socket.emit("poll-results", snapshot) {
                    Ok(()) => sent += 1,
                    Err(err) => tracing::debug!(error = %err, "Socket gone before its results"),
                }
            }
        }
        sent
    }
}

fn unavailable(err: sqlx::Error) -> ErrorBody {
    tracing::warn!(error = %err, "Database unavailable for a socket request");
    error(
        "unavailable",
        "cannot look up the poll right now, retry shortly",
    )
}
