//! Fixed-window rate limits kept in Redis, so every API replica shares the same counters.
//!
//! The counting is a Lua function ([`COUNT_LIMITS`]) that other scripts embed: the vote path
//! counts its limits and takes its lock in one round trip (see [`crate::vote_lock`]).

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::http::error::ApiError;

/// One limit to check: a counter key and how many requests its window allows.
#[derive(Debug, Clone)]
pub struct Limit {
    /// Counter key; expires with the window.
    pub key: String,
    /// Requests allowed per window; `0` means unlimited and is skipped.
    pub max: u64,
}

/// Lua: `count_limits(first_key, first_arg, window_ms)` counts the request against every key
/// from `KEYS[first_key]` on, whose maxima are `ARGV[first_arg]` onwards, then returns the
/// first exceeded key's remaining window in milliseconds, or -1 if all pass. Counting all
/// keys keeps the windows honest.
pub const COUNT_LIMITS: &str = r"
local function count_limits(first_key, first_arg, window)
  local exceeded = -1
  for i = first_key, #KEYS do
    local key = KEYS[i]
    local count = redis.call('INCR', key)
    if count == 1 then redis.call('PEXPIRE', key, window) end
    if count > tonumber(ARGV[first_arg + i - first_key]) and exceeded < 0 then
      exceeded = redis.call('PTTL', key)
      if exceeded < 0 then exceeded = window end
    end
  end
  return exceeded
end
";

static CHECK_LIMITS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{COUNT_LIMITS}return count_limits(1, 2, tonumber(ARGV[1]))"
    ))
});

/// The limits that apply, in the order a script takes them (unlimited ones left out).
pub fn active(limits: &[Limit]) -> impl Iterator<Item = &Limit> {
    limits.iter().filter(|limit| limit.max > 0)
}

/// The `429` for a request whose window has `retry_ms` left.
pub fn exceeded(retry_ms: i64) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: (retry_ms.max(0) as u64).div_ceil(1000).max(1),
    }
}

/// Counts one request against `limits` and fails with `429` if any is exceeded.
pub async fn check(
    redis: &mut ConnectionManager,
    window: Duration,
    limits: &[Limit],
) -> Result<(), ApiError> {
    let mut invocation = CHECK_LIMITS.prepare_invoke();
    invocation.arg(window.as_millis() as u64);
    let mut any = false;
    for limit in active(limits) {
        invocation.key(&limit.key).arg(limit.max);
        any = true;
    }
    if !any {
        return Ok(());
    }
    let retry_ms: i64 = invocation
        .invoke_async(redis)
        .await
        .map_err(|err| ApiError::unavailable("redis", err))?;
    if retry_ms >= 0 {
        return Err(exceeded(retry_ms));
    }
    Ok(())
}
