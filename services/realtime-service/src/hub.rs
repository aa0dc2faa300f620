//! The shared state of the service: Socket.IO handle, ledger of broadcasts, and the clients
//! used to resolve polls and read snapshots.

use std::collections::HashMap;
use std::sync::Mutex;

use pollstream_wire::{ErrorBody, PollSnapshot, RoomRequest};
use redis::aio::ConnectionManager;
use socketioxide::SocketIo;
use sqlx::PgPool;
use uuid::Uuid;

use crate::rooms::{SnapshotLedger, room_name};
use crate::sockets::error;

/// Most join codes remembered; codes never change, so this only bounds memory.
const MAX_CODES: usize = 100_000;

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
    /// Join code → poll id, filled on first use.
    codes: Mutex<HashMap<String, Uuid>>,
}

impl Hub {
    /// A hub over these clients.
    pub fn new(io: SocketIo, db: PgPool, redis: ConnectionManager) -> Self {
        Self {
            io,
            ledger: SnapshotLedger::default(),
            db,
            redis,
            codes: Mutex::new(HashMap::new()),
        }
    }

    /// The poll a `join`/`leave` names; a code is looked up once and remembered.
    pub async fn resolve(&self, request: &RoomRequest) -> Result<Uuid, ErrorBody> {
        match (request.poll_id, request.code.as_deref()) {
            (Some(poll_id), _) => Ok(poll_id),
            (None, Some(code)) => {
                let code = code.trim().to_ascii_uppercase();
                if let Some(id) = self.codes.lock().expect("codes lock poisoned").get(&code) {
                    return Ok(*id);
                }
                if code.is_empty()
                    || code.len() > 16
                    || !code.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(error(
                        "poll_not_found",
                        format!("no poll with code {code:?}"),
                    ));
                }
                let found: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM polls WHERE code = $1")
                    .bind(&code)
                    .fetch_optional(&self.db)
                    .await
                    .map_err(|err| {
                        tracing::warn!(error = %err, "Cannot resolve join code");
                        error(
                            "unavailable",
                            "cannot look up the poll right now, retry shortly",
                        )
                    })?;
                let (id,) = found.ok_or_else(|| {
                    error("poll_not_found", format!("no poll with code {code:?}"))
                })?;
                let mut codes = self.codes.lock().expect("codes lock poisoned");
                if codes.len() >= MAX_CODES {
                    codes.clear();
                }
                codes.insert(code, id);
                Ok(id)
            }
            (None, None) => Err(error("invalid_request", "give either `pollId` or `code`")),
        }
    }

    /// Broadcasts an update from `poll-updates` to its room, unless it is stale.
    pub async fn publish(&self, snapshot: PollSnapshot) {
        let poll_id = snapshot.poll_id;
        let Some(broadcast) = self.ledger.accept(snapshot) else {
            metrics::counter!("stale_snapshots_dropped_total").increment(1);
            tracing::debug!(poll_id = %poll_id, "Stale snapshot dropped");
            return;
        };
        let room = self.io.to(room_name(poll_id));
        let mut sent = 0u64;
        match room.emit("poll-results", &broadcast.snapshot).await {
            Ok(()) => sent += 1,
            Err(err) => {
                tracing::warn!(poll_id = %poll_id, error = %err, "Cannot broadcast poll-results")
            }
        }
        for stats in &broadcast.stats {
            match self
                .io
                .to(room_name(poll_id))
                .emit("poll-stats", stats)
                .await
            {
                Ok(()) => sent += 1,
                Err(err) => {
                    tracing::warn!(poll_id = %poll_id, error = %err, "Cannot broadcast poll-stats")
                }
            }
        }
        if broadcast.closed_now {
            match self
                .io
                .to(room_name(poll_id))
                .emit("poll-closed", &broadcast.snapshot)
                .await
            {
                Ok(()) => sent += 1,
                Err(err) => {
                    tracing::warn!(poll_id = %poll_id, error = %err, "Cannot broadcast poll-closed")
                }
            }
        }
        metrics::counter!("room_broadcasts_total").increment(sent);
    }
}
