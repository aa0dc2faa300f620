//! Fixed-window rate limits kept in Redis, so every API replica shares the same counters.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::error::ApiError;

/// One limit to check: a counter key and how many requests its window allows.
#[derive(Debug, Clone)]
pub struct Limit {
    /// Counter key; expires with the window.
    pub key: String,
    /// Requests allowed per window; `0` means unlimited and is skipped.
    pub max: u64,
}

// Counts the request against every limit, then reports the first exceeded one's remaining
// window in milliseconds, or -1 if all pass. Counting all keys keeps the windows honest.
const CHECK_LIMITS: &str = r"
local window = tonumber(ARGV[1])
local exceeded = -1
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, window) end
  if count > tonumber(ARGV[i + 1]) and exceeded < 0 then
    exceeded = redis.call('PTTL', key)
    if exceeded < 0 then exceeded = window end
  end
end
return exceeded
";

/// Counts one request against `limits` and fails with `429` if any is exceeded.
pub async fn check(
    redis: &mut ConnectionManager,
    window: Duration,
    limits: &[Limit],
) -> Result<(), ApiError> {
    let active: Vec<&Limit> = limits.iter().filter(|l| l.max > 0).collect();
    if active.is_empty() {
        return Ok(());
    }
    let script = redis::Script::new(CHECK_LIMITS);
    let mut invocation = script.prepare_invoke();
    invocation.arg(window.as_millis() as u64);
    for limit in &active {
        invocation.key(&limit.key).arg(limit.max);
    }
    let retry_ms: i64 = invocation
        .invoke_async(redis)
        .await
        .map_err(|err| ApiError::unavailable("redis", err))?;
    if retry_ms >= 0 {
        return Err(ApiError::RateLimited {
            retry_after_secs: (retry_ms as u64).div_ceil(1000).max(1),
        });
    }
    Ok(())
}
