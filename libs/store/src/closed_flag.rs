//! The Redis flag that says a poll is closed.
//!
//! Whoever closes a poll (its owner through voting-api, or the aggregator at `closesAt`) sets
//! it; every voting-api replica checks it atomically with the vote lock, so no vote is
//! accepted after a close even while poll definitions are cached.

use redis::aio::ConnectionManager;
use uuid::Uuid;

/// How long the flag outlives the close; after that the poll's stored status answers.
pub const TTL_SECS: u64 = 7 * 24 * 3600;

/// The flag's key.
pub fn key(poll_id: Uuid) -> String {
    format!("poll-closed:{poll_id}")
}

/// Sets the flag for `poll_id`.
pub async fn set(conn: &mut ConnectionManager, poll_id: Uuid) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(key(poll_id))
        .arg(1)
        .arg("EX")
        .arg(TTL_SECS)
        .query_async(conn)
        .await
}

/// Sets the flag of a poll about to be deleted and drops its cached results, in one round
/// trip: no vote is taken and no count is served for it from here on.
pub async fn set_dropping_results(
    conn: &mut ConnectionManager,
    poll_id: Uuid,
) -> redis::RedisResult<()> {
    redis::pipe()
        .cmd("SET")
        .arg(key(poll_id))
        .arg(1)
        .arg("EX")
        .arg(TTL_SECS)
        .ignore()
        .cmd("DEL")
        .arg(pollstream_wire::results_cache_key(poll_id))
        .ignore()
        .query_async(conn)
        .await
}
