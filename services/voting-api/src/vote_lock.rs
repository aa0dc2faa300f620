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
//!
//! **A `202` is vouched for by the lock only while the poll's locks are known complete.**
//! Redis may lose its keys (a restart without persistence) and a lock may expire while its
//! poll is open; either would let a voter who already voted take the lock again, get `202`,
//! and see that second ballot dropped by the ballot key. So each poll has a lock-ledger
//! marker, `vote-locks:{pollId}` ([`ledger_key`]), written when the poll's locks are known to
//! be all there: at the poll's creation (no ballots yet) and at the end of a restore
//! ([`crate::lock_restore`]), which first waits until every vote accepted so far is counted and
//! then writes a lock for every counted ballot (Redis runs without persistence: a Redis brought
//! back from an older snapshot would keep markers while it lost later locks). The marker's
//! lifetime ends no later than that of any lock it vouches for: a lock taken while the marker
//! is there outlives it, and a restore gives the marker the lock TTL minus the time since it
//! began writing locks, or less if a lock taken unvouched is older. The take script checks the
//! marker in its one round trip: without it the lock is still taken, but the outcome is
//! [`Outcome::TakenUnvouched`], and the vote is answered from its counted ballot
//! ([`crate::vote_confirm`]) while a restore runs.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// The key of `poll_id`'s lock-ledger marker: present only while its locks are known complete.
pub fn ledger_key(poll_id: Uuid) -> String {
    format!("vote-locks:{poll_id}")
}

/// Sets `poll_id`'s lock-ledger marker for `ttl`, which must not outlast any lock it vouches
/// for (see the module notes).
pub async fn mark_complete(
    redis: &mut ConnectionManager,
    poll_id: Uuid,
    ttl: Duration,
) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(ledger_key(poll_id))
        .arg(1)
        .arg("PX")
        .arg(ttl.as_millis().max(1) as u64)
        .query_async(redis)
        .await
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

/// The key recording when the first lock of `poll_id` was taken while its lock-ledger marker
/// was missing (Redis server time, ms): the marker a restore sets must not outlive that lock.
pub fn unvouched_since_key(poll_id: Uuid) -> String {
    format!("vote-locks-unvouched:{poll_id}")
}

/// What [`take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The lock is this vote's now, and the poll's marker vouches that no earlier vote of this
    /// voter is missing from Redis.
    Taken,
    /// The lock is this vote's now, but the poll's lock-ledger marker is missing (Redis lost
    /// its keys, or the marker lapsed): a vote of this voter whose lock was lost may be in
    /// Kafka, so only the counted ballot can tell whether this vote is the voter's one.
    TakenUnvouched,
    /// The lock already held this vote's value: an earlier attempt of this very vote took it
    /// and its answer was lost. Whether the marker vouched for it then is not known, so, as
    /// [`Outcome::TakenUnvouched`], only the counted ballot can tell.
    TakenAgain,
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

// KEYS: the lock, the closed flag, the lock-ledger marker, the unvouched-since key, then the
// limits' counters. ARGV: the lock's value, its TTL in seconds, the limits' window in
// milliseconds, then each limit's maximum. A lock already holding this vote's value is an
// attempt whose answer was lost, tried again: it is 5, before the limits and the closed flag
// are looked at (refusing it would leave a lock with no vote behind it), and whatever the
// marker says now, since the first attempt may have run without it. Returns
// {outcome, retry_ms}: 1 lock taken, 4 lock taken while the marker is missing (the first such
// lock's Redis time is kept, `NX`, in the unvouched-since key), 5 lock already this vote's, 0
// this voter already holds one, -1 the poll is closed, 2 a limit is exceeded with retry_ms
// left in its window.
static TAKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{}{}",
        rate_limit::COUNT_LIMITS,
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return {5, 0} end
local retry = count_limits(5, 4, tonumber(ARGV[3]))
if retry >= 0 then return {2, retry} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, 0} end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return {0, 0} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {1, 0} end
local now = redis.call('TIME')
redis.call('SET', KEYS[4], now[1] * 1000 + math.floor(now[2] / 1000), 'NX', 'EX', ARGV[2])
return {4, 0}
"
    ))
});

/// Counts `limits`, then takes the lock `key` of a vote in `poll_id` with `value` for `ttl`
/// unless the poll is closed, in one round trip, and says whether the poll's lock-ledger
/// marker vouched for it. `window` is the limits' window.
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
        .key(ledger_key(poll_id))
        .key(unvouched_since_key(poll_id))
        .arg(value)
        .arg(ttl.as_secs())
        .arg(window.as_millis() as u64);
    for limit in rate_limit::active(limits) {
        invocation.key(&limit.key).arg(limit.max);
    }
    let (outcome, retry_ms): (i64, i64) = invocation.invoke_async(redis).await?;
    Ok(match outcome {
        1 => Outcome::Taken,
        4 => Outcome::TakenUnvouched,
        5 => Outcome::TakenAgain,
        0 => Outcome::AlreadyVoted,
        2 => Outcome::RateLimited { retry_ms },
        _ => Outcome::PollClosed,
    })
}

/// Whether the lock `key` still holds `value`: false once Redis lost it (or it was replaced).
pub async fn holds(
    redis: &mut ConnectionManager,
    key: &str,
    value: &str,
) -> redis::RedisResult<bool> {
    let held: Option<String> = redis::cmd("GET").arg(key).query_async(redis).await?;
    Ok(held.as_deref() == Some(value))
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

/// How long [`release_lock`] keeps trying when Redis does not answer.
pub const RELEASE_PERSISTENCE: Duration = Duration::from_secs(60);

/// Background releases allowed at once, so a long Redis outage cannot pile up tasks.
const MAX_PENDING_RELEASES: usize = 10_000;

static PENDING_RELEASES: AtomicUsize = AtomicUsize::new(0);

/// Counts one background release while it lives.
struct PendingRelease;

impl Drop for PendingRelease {
    fn drop(&mut self) {
        PENDING_RELEASES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Deletes the lock only if it still holds this vote, so a lock taken by a later attempt is
/// never removed by an earlier one. Called when the vote was not accepted after all (its
/// `take` got no answer, so the script may or may not have run, or Kafka refused it): the
/// voter's retry must find no lock, or it would be answered `409 already_voted` for a vote
/// that was never counted. One attempt is awaited, so an immediate retry usually finds the
/// lock gone; if Redis does not answer, a background task keeps trying with backoff for
/// [`RELEASE_PERSISTENCE`] (a lock outliving that expires with its TTL, logged as an error).
pub async fn release_lock(redis: &mut ConnectionManager, key: &str, value: &str) {
    if RELEASE
        .key(key)
        .arg(value)
        .invoke_async::<i64>(redis)
        .await
        .is_ok()
    {
        return;
    }
    if PENDING_RELEASES.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_RELEASES {
        PENDING_RELEASES.fetch_sub(1, Ordering::Relaxed);
        tracing::error!(
            lock = key,
            "Cannot release vote lock; it expires with its TTL"
        );
        return;
    }
    let (mut redis, key, value) = (redis.clone(), key.to_owned(), value.to_owned());
    tokio::spawn(async move {
        let _pending = PendingRelease;
        let deadline = tokio::time::Instant::now() + RELEASE_PERSISTENCE;
        let mut pause = Duration::from_millis(100);
        loop {
            tokio::time::sleep(pause).await;
            match RELEASE
                .key(&key)
                .arg(&value)
                .invoke_async::<i64>(&mut redis)
                .await
            {
                Ok(_) => return,
                Err(err) if tokio::time::Instant::now() >= deadline => {
                    tracing::error!(lock = %key, error = %err, "Cannot release vote lock; it expires with its TTL");
                    return;
                }
                Err(_) => pause = (pause * 2).min(Duration::from_secs(2)),
            }
        }
    });
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
