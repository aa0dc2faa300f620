//! The shared state of a realtime replica: [`AppState`], built once in `run`, shared by the
//! Kafka loop and every socket handler. Each pollstream service names its shared state
//! `AppState`, in its own `state.rs`.

use std::sync::Arc;

use pollstream_infra::jwt::JwtKeys;
use redis::aio::ConnectionManager;
use socketioxide::SocketIo;
use sqlx::PgPool;

use crate::poll_access::PollAccessCache;
use crate::presence::Presence;
use crate::snapshot_ledger::{RoomOrder, SnapshotLedger};
use crate::waiting_voters::WaitingVoters;

/// State shared by the consumer loop and every socket handler.
pub struct AppState {
    /// Emits to rooms.
    pub io: SocketIo,
    /// Newest snapshot broadcast per poll.
    pub ledger: SnapshotLedger,
    /// Orders each room's broadcasts with the acknowledgements of the clients joining it.
    pub room_order: RoomOrder,
    /// Reads snapshots the cache lacks and which waiting voters are counted.
    pub db: PgPool,
    /// Results cache.
    pub redis: ConnectionManager,
    /// Verifies tokens sent with `join`.
    pub jwt: JwtKeys,
    /// Which poll a client names, and who may see its counts.
    pub polls: PollAccessCache,
    /// `after_vote` polls: waiting sockets and the voter each one is.
    pub waiting: WaitingVoters,
    /// This replica's part in the viewer counts; told of every join.
    pub presence: Arc<Presence>,
}

impl AppState {
    /// A hub over these clients.
    pub fn new(
        io: SocketIo,
        db: PgPool,
        redis: ConnectionManager,
        jwt: JwtKeys,
        presence: Presence,
    ) -> Self {
        Self {
            io,
            ledger: SnapshotLedger::default(),
            room_order: RoomOrder::default(),
            polls: PollAccessCache::new(db.clone()),
            db,
            redis,
            jwt,
            waiting: WaitingVoters::default(),
            presence: Arc::new(presence),
        }
    }
}
