//! The shared state handed to every handler: [`AppState`], built once in `run`. Each
//! pollstream service names its shared state `AppState`, in its own `state.rs`.

use std::sync::Arc;

use pollstream_infra::jwt::JwtKeys;
use pollstream_infra::kafka::ResilientProducer;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::lock_fence::LockFence;
use crate::poll_cache::PollCache;
use pollstream_infra::kafka::CommitWatch;

/// Connections and caches shared by all requests. Handlers clone it several times per
/// request (extractors, the vote task), so it is one shared pointer.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// State over these connections.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    /// Configuration in force.
    pub config: Arc<Config>,
    /// PostgreSQL pool.
    pub db: PgPool,
    /// Redis: vote locks and the results cache.
    pub redis: ConnectionManager,
    /// Idempotent `acks=all` producer for `raw-votes`.
    pub producer: Arc<ResilientProducer>,
    /// Bearer token verification.
    pub jwt: JwtKeys,
    /// Poll definitions kept in memory so a vote costs no database query.
    pub polls: PollCache,
    /// The wait before vote locks are restored, shared by this replica's restores.
    pub lock_fence: LockFence,
    /// `MAX_VOTES_IN_FLIGHT` places for vote requests (see `votes::VoteSlot`).
    pub vote_slots: Arc<Semaphore>,
    /// The aggregator group's committed offsets on `raw-votes`, read while a vote taken during
    /// a lock restore waits for its ballot to be counted.
    pub commits: Arc<CommitWatch>,
}
