//! The Redis cache of each poll's latest snapshot.
//!
//! The aggregator writes it after every flush; readers use it to avoid a PostgreSQL query per
//! results request or socket join. A write only lands if its `seq` is newer than what is
//! cached, so a slow writer can never move the cache backwards.

use pollstream_wire::{PollSnapshot, results_cache_key};
use redis::aio::ConnectionManager;
use uuid::Uuid;

/// How long a cached snapshot lives without a refresh; readers then fall back to PostgreSQL.
pub const TTL_SECS: u64 = 24 * 60 * 60;

// Stored as "seq|json" so the script can compare without decoding JSON.
const WRITE_IF_NEWER: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  if sep and tonumber(string.sub(current, 1, sep - 1)) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
return 1
";

/// Stores `snapshot` unless a snapshot with the same or a higher `seq` is already cached.
/// Returns whether it was stored.
pub async fn write_if_newer(
    conn: &mut ConnectionManager,
    snapshot: &PollSnapshot,
) -> redis::RedisResult<bool> {
    let json = String::from_utf8(snapshot.encode()).expect("JSON is UTF-8");
    redis::Script::new(WRITE_IF_NEWER)
        .key(results_cache_key(snapshot.poll_id))
        .arg(snapshot.seq)
        .arg(json)
        .arg(TTL_SECS)
        .invoke_async::<i64>(conn)
        .await
        .map(|stored| stored == 1)
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
