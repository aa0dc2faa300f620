//! The Redis cache of each poll's latest snapshot.
//!
//! The aggregator writes it after every flush, before the snapshot goes to `poll-updates`;
//! readers use it to avoid a PostgreSQL query per results request or socket join, through
//! [`current`], the one "current snapshot" read: the cache first, then PostgreSQL. A write only
//! lands if its `seq` is newer than what is cached, so a slow writer can never move the cache
//! backwards, and the cache is never behind a snapshot a screen has been sent.
//!
//! That holds while Redis keeps the entry. When it is missing (Redis restarted without
//! persistence, or the entry expired), the snapshot in hand may be older than one whose entry
//! was lost, so it is not written: the entry is refilled from PostgreSQL instead, which holds
//! every counted `seq`. A per-poll refill token proves that Redis was not emptied again
//! between the read from PostgreSQL and the write.

use std::sync::LazyLock;

use pollstream_infra::log_throttle::LogThrottle;
use pollstream_wire::{PollSnapshot, results_cache_key};
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use uuid::Uuid;

use crate::snapshots;

/// How long a cached snapshot lives without a refresh; readers then fall back to PostgreSQL.
pub const TTL_SECS: u64 = 24 * 60 * 60;

/// Refills tried before a write gives up (each retry needs Redis to lose its keys again).
const REFILL_ATTEMPTS: usize = 3;

// Stored as "seq|json" so the script can compare without decoding JSON. Returns 1 when
// written, 0 when an entry as new is cached, and the refill token when there is no entry and
// ARGV[4] (the token of a refill from PostgreSQL, or "") does not match the stored one.
static WRITE_IF_NEWER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  if sep and tonumber(string.sub(current, 1, sep - 1)) >= tonumber(ARGV[1]) then
    return 0
  end
else
  local token = redis.call('GET', KEYS[2])
  if ARGV[4] == '' or token ~= ARGV[4] then
    if not token then
      token = ARGV[5]
      redis.call('SET', KEYS[2], token, 'EX', ARGV[3])
    end
    return token
  end
  redis.call('DEL', KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
return 1
",
    )
});

/// Why the cache could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CacheWriteError {
    /// Redis did not answer.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The entry was missing and PostgreSQL could not be read to refill it.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis lost its keys during every refill attempt.
    #[error("the results cache was emptied during each of {REFILL_ATTEMPTS} refills")]
    Unsettled,
}

/// Stores `snapshot` unless a snapshot with the same or a higher `seq` is already cached.
/// When nothing is cached for the poll, stores the poll's current snapshot read from `db`
/// instead (never older than `snapshot`). Returns whether something was stored.
pub async fn write_if_newer(
    conn: &mut ConnectionManager,
    db: &PgPool,
    snapshot: &PollSnapshot,
) -> Result<bool, CacheWriteError> {
    let refill_key = refill_key(snapshot.poll_id);
    let mut outcome = write(conn, &refill_key, snapshot, "").await?;
    for _ in 0..REFILL_ATTEMPTS {
        let token = match outcome {
            Written::Stored(stored) => return Ok(stored),
            Written::RefillFirst(token) => token,
        };
        let Some(current) = snapshots::load(db, snapshot.poll_id).await? else {
            return Ok(false);
        };
        outcome = write(conn, &refill_key, &current, &token).await?;
    }
    match outcome {
        Written::Stored(stored) => Ok(stored),
        Written::RefillFirst(_) => Err(CacheWriteError::Unsettled),
    }
}

enum Written {
    Stored(bool),
    RefillFirst(String),
}

async fn write(
    conn: &mut ConnectionManager,
    refill_key: &str,
    snapshot: &PollSnapshot,
    refill_token: &str,
) -> redis::RedisResult<Written> {
    let json = String::from_utf8(snapshot.encode()).expect("JSON is UTF-8");
    let reply: redis::Value = WRITE_IF_NEWER
        .key(results_cache_key(snapshot.poll_id))
        .key(refill_key)
        .arg(snapshot.seq)
        .arg(json)
        .arg(TTL_SECS)
        .arg(refill_token)
        .arg(Uuid::new_v4().to_string())
        .invoke_async(conn)
        .await?;
    Ok(match reply {
        redis::Value::Int(stored) => Written::Stored(stored == 1),
        other => Written::RefillFirst(redis::from_redis_value(other)?),
    })
}

/// Name of the Redis key holding the token of a poll's pending refill.
fn refill_key(poll_id: Uuid) -> String {
    format!("results-refill:{poll_id}")
}

/// The cached snapshot of `poll_id`, if any; an undecodable entry counts as a miss.
pub async fn read(
    conn: &mut ConnectionManager,
    poll_id: Uuid,
) -> redis::RedisResult<Option<PollSnapshot>> {
    let value: Option<String> = redis::cmd("GET")
        .arg(results_cache_key(poll_id))
        .query_async(conn)
        .await?;
    Ok(value.and_then(|stored| {
        let (_, json) = stored.split_once('|')?;
        PollSnapshot::decode(json.as_bytes()).ok()
    }))
}

/// The current snapshot of `poll_id`, or `None` if there is no such poll: the one in the
/// results cache the aggregator refreshes, else PostgreSQL's. A cache that cannot be read is
/// logged (one line a second, with how many were held back) and skipped, since it is only
/// an optimisation.
pub async fn current(
    db: &PgPool,
    redis: &mut ConnectionManager,
    poll_id: Uuid,
) -> Result<Option<PollSnapshot>, sqlx::Error> {
    let cached = match read(redis, poll_id).await {
        Ok(cached) => cached,
        Err(err) => {
            // While Redis is down every join and results request lands here: a line each
            // would be thousands a second, so one a second carries the count of the rest.
            static UNREADABLE: LogThrottle = LogThrottle::new(1_000);
            if let Some(held_back) = UNREADABLE.admit() {
                tracing::warn!(
                    poll_id = %poll_id,
                    error = %err,
                    held_back,
                    "Results cache unreadable, using PostgreSQL"
                );
            }
            None
        }
    };
    match cached {
        Some(snapshot) => Ok(Some(snapshot)),
        None => snapshots::load(db, poll_id).await,
    }
}
