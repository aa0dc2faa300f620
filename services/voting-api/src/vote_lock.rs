//! The vote lock: one Redis key per poll and voter, `vote:{pollId}:{voterId}`, that turns a
//! second attempt into `409` cheaply.
//!
//! It is a filter, not the guarantee (the ballot key in PostgreSQL is). One Lua script takes
//! it in one round trip together with everything else a vote must pass in Redis: the vote's
//! rate limits are counted first, then the poll's closed flag ([`closed_flag`], shared with
//! the aggregator, which sets it at `closesAt`) refuses a closed poll, then the lock is set.
//! Checking the flag in the same step as the lock means no vote slips in after a close.
//!
//! Until the ballot is counted, the lock's value answers "my vote" ([`LockValue`]).

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use pollstream_store::closed_flag;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::config::RateLimits;
use crate::rate_limit::{self, Limit};

/// The lock's key for `voter_id` in `poll_id`.
pub fn key(poll_id: Uuid, voter_id: &str) -> String {
    format!("vote:{poll_id}:{voter_id}")
}

/// What the lock holds: enough to answer "my vote" before the ballot is counted.
#[derive(Debug, PartialEq)]
pub struct LockValue {
    /// The vote that took the lock.
    pub vote_id: Uuid,
    /// Its chosen options.
    pub option_ids: Vec<Uuid>,
}

impl LockValue {
    /// The stored form: `{voteId}|{optionId},{optionId}…`.
    pub fn render(&self) -> String {
        let ids: Vec<String> = self.option_ids.iter().map(Uuid::to_string).collect();
        format!("{}|{}", self.vote_id, ids.join(","))
    }

    /// Reads the stored form; `None` if it is not one.
    pub fn parse(value: &str) -> Option<Self> {
        let (vote_id, options) = value.split_once('|')?;
        Some(LockValue {
            vote_id: vote_id.parse().ok()?,
            option_ids: options
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?,
        })
    }
}

/// The rate limits a vote of `voter_id` from `ip` counts against: per voter and per address.
pub fn limits(config: &RateLimits, voter_id: &str, ip: IpAddr) -> Vec<Limit> {
    vec![
        Limit {
            key: format!("{}:vote:voter:{voter_id}", config.namespace),
            max: config.votes_per_voter,
        },
        Limit {
            key: format!("{}:vote:ip:{ip}", config.namespace),
            max: config.votes_per_ip,
        },
    ]
}

/// What [`take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The lock is this vote's now.
    Taken,
    /// The voter already holds a lock in this poll.
    AlreadyVoted,
    /// The poll's closed flag is set.
    PollClosed,
    /// A limit is exceeded; its window has `retry_ms` milliseconds left.
    RateLimited {
        /// Milliseconds until the exceeded window resets.
        retry_ms: i64,
    },
}

// KEYS: the lock, the closed flag, then the limits' counters. ARGV: the lock's value, its TTL
// in seconds, the limits' window in milliseconds, then each limit's maximum. Returns
// {outcome, retry_ms}: 1 lock taken, 0 this voter already holds one, -1 the poll is closed,
// 2 a limit is exceeded with retry_ms left in its window.
static TAKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{}{}",
        rate_limit::COUNT_LIMITS,
        r"
local retry = count_limits(3, 4, tonumber(ARGV[3]))
if retry >= 0 then return {2, retry} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, 0} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return {1, 0} end
return {0, 0}
"
    ))
});

/// Counts `limits`, then takes the lock `key` of a vote in `poll_id` with `value` for `ttl`
/// unless the poll is closed, in one round trip. `window` is the limits' window.
pub async fn take(
    redis: &mut ConnectionManager,
    poll_id: Uuid,
    key: &str,
    value: &str,
    ttl: Duration,
    window: Duration,
    limits: &[Limit],
) -> redis::RedisResult<Outcome> {
    let mut invocation = TAKE.prepare_invoke();
    invocation
        .key(key)
        .key(closed_flag::key(poll_id))
        .arg(value)
        .arg(ttl.as_secs())
        .arg(window.as_millis() as u64);
    for limit in rate_limit::active(limits) {
        invocation.key(&limit.key).arg(limit.max);
    }
    let (outcome, retry_ms): (i64, i64) = invocation.invoke_async(redis).await?;
    Ok(match outcome {
        1 => Outcome::Taken,
        0 => Outcome::AlreadyVoted,
        2 => Outcome::RateLimited { retry_ms },
        _ => Outcome::PollClosed,
    })
}

/// The vote of `voter_id` in `poll_id` that holds the lock, if one does.
pub async fn pending(
    redis: &mut ConnectionManager,
    poll_id: Uuid,
    voter_id: &str,
) -> redis::RedisResult<Option<LockValue>> {
    let value: Option<String> = redis::cmd("GET")
        .arg(key(poll_id, voter_id))
        .query_async(redis)
        .await?;
    Ok(value.as_deref().and_then(LockValue::parse))
}

static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Deletes the lock only if it still holds this vote, so a lock taken by a later attempt is
/// never removed by an earlier one. A failure is logged: the lock then expires with its TTL.
pub async fn release_lock(redis: &mut ConnectionManager, key: &str, value: &str) {
    let released = RELEASE.key(key).arg(value).invoke_async::<i64>(redis).await;
    if let Err(err) = released {
        tracing::error!(lock = key, error = %err, "Cannot release vote lock; it expires with its TTL");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_value_round_trips() {
        let value = LockValue {
            vote_id: Uuid::from_u128(1),
            option_ids: vec![Uuid::from_u128(2), Uuid::from_u128(3)],
        };
        assert_eq!(LockValue::parse(&value.render()), Some(value));
        assert_eq!(LockValue::parse("garbage"), None);
    }
}
