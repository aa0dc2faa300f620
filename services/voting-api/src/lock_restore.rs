//! Rebuilding a poll's vote locks from PostgreSQL when its lock-ledger marker is missing
//! (Redis lost its keys, or the marker expired with the lock TTL): see [`crate::vote_lock`].
//!
//! One replica at a time restores a poll: it holds a Redis lease (`SET NX PX`,
//! `vote-locks-restoring:{pollId}`, [`LEASE_TTL`], renewed every second while the restore
//! runs, so a replica that dies mid-restore holds the poll back for three seconds at most, not
//! for the whole restore).
//! Votes for the poll are taken meanwhile, but unvouched: each is answered only once its
//! ballot is counted (see `vote_confirm`). A restore
//! must not miss a vote that was accepted but not yet counted, so before it reads the ballots
//! it passes the fence of `lock_fence` (the send deadline waited out, then the aggregator
//! caught up with `raw-votes`), shared by this replica's restores: after Redis lost
//! everything, the polls being voted on wait for one fence, not one each.
//!
//! Then it writes a lock for every counted ballot (the lock TTL, the ballot's [`LockValue`] so
//! "my vote" stays right), sets the closed flag again if the poll is closed, and sets the
//! marker, only if the lease is still its own.
//!
//! - The locks are overwritten, not `SET NX`: a lock still there when the marker lapsed (the
//!   TTL case) expires sooner than the new marker would, and the counted ballot is what the
//!   lock must say anyway. A lock taken unvouched meanwhile by a voter with no counted ballot
//!   is left as it is; the marker's lifetime ends no later than the first such lock's (the
//!   unvouched-since key, [`vote_lock::unvouched_since_key`], read and cleared with the
//!   marker's setting).
//! - The lease check keeps the marker for a Redis that stayed up: had Redis lost its keys
//!   again while the locks were written, the lease would be gone with them.
//! - A restore that fails (PostgreSQL or Kafka down, the aggregator not caught up within
//!   [`CATCH_UP_LIMIT`](crate::lock_fence::CATCH_UP_LIMIT)) leaves the marker unset and
//!   frees the lease, so the next vote starts another.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use pollstream_store::ballots;
use pollstream_store::{PollDefinition, closed_flag};
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::lock_fence::{self, FenceError};
use crate::metric_names::VOTE_LOCK_RESTORES;
use crate::state::AppState;
use crate::vote_lock::{self, LockValue};

/// Time allowed for reading the ballots and writing their locks, on top of the waits.
const LOAD_LIMIT: Duration = Duration::from_secs(60);

/// Locks written per pipelined round trip.
const LOCKS_PER_BATCH: usize = 500;

/// Lifetime of a restore's lease; it is renewed every [`LEASE_RENEWAL`] while the restore runs.
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// How often a running restore renews its lease: three times per TTL, so one slow renewal
/// does not lose it.
const LEASE_RENEWAL: Duration = Duration::from_secs(1);

// KEYS: the lease, the poll's marker, its unvouched-since key. ARGV: the lease holder's token,
// the marker's TTL in ms, the lock TTL in ms. Sets the marker only if that holder still has
// the lease, for no longer than the first lock taken unvouched has left; returns 1 if it did,
// 0 if the lease is lost, 2 if that lock expires within a second (a later restore sets it).
static MARK_IF_LEASED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ttl = tonumber(ARGV[2])
local since = redis.call('GET', KEYS[3])
if since then
  local now = redis.call('TIME')
  local left = tonumber(ARGV[3]) - (now[1] * 1000 + math.floor(now[2] / 1000) - tonumber(since))
  if left < 1000 then return 2 end
  ttl = math.min(ttl, left)
  redis.call('DEL', KEYS[3])
end
redis.call('SET', KEYS[2], 1, 'PX', ttl)
return 1
",
    )
});

// KEYS: the lease. ARGV: its holder's token, the TTL in ms. Extends the lease only if that
// holder still has it.
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// The lease's key for `poll_id`.
pub fn lease_key(poll_id: Uuid) -> String {
    format!("vote-locks-restoring:{poll_id}")
}

/// Why a restore did not complete.
#[derive(Debug, thiserror::Error)]
enum RestoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    #[error("restore took too long: {0}")]
    TooSlow(&'static str),
    #[error(transparent)]
    Fence(#[from] FenceError),
    #[error("the lease was lost (Redis restarted, or it lapsed) before the marker was set")]
    LeaseLost,
}

/// Called for a vote in `poll_id` whose lock was taken unvouched: starts a restore on this
/// replica unless one already runs somewhere. A Redis failure is only logged: the next
/// unvouched vote tries again.
pub async fn begin(state: &AppState, poll_id: Uuid) {
    let noticed = Instant::now();
    let token = Uuid::new_v4().to_string();
    let limit = restore_limit(state);
    let mut redis = state.redis.clone();
    let acquired: redis::RedisResult<Option<String>> = redis::cmd("SET")
        .arg(lease_key(poll_id))
        .arg(&token)
        .arg("NX")
        .arg("PX")
        .arg(LEASE_TTL.as_millis() as u64)
        .query_async(&mut redis)
        .await;
    match acquired {
        Ok(Some(_)) => {
            tracing::warn!(%poll_id, "Vote locks of this poll may be incomplete; restoring them from PostgreSQL");
            let state = state.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let renewal = tokio::spawn(renew_lease(state.clone(), poll_id, token.clone()));
                let restored =
                    tokio::time::timeout(limit, restore(&state, poll_id, &token, noticed)).await;
                renewal.abort();
                let outcome = match &restored {
                    Ok(Ok(_)) => "restored",
                    Ok(Err(_)) => "failed",
                    Err(_) => "timed_out",
                };
                metrics::counter!(VOTE_LOCK_RESTORES, "outcome" => outcome).increment(1);
                match restored {
                    Ok(Ok(locks)) => {
                        tracing::info!(%poll_id, locks, elapsed_ms = started.elapsed().as_millis() as u64, "Vote locks restored");
                    }
                    Ok(Err(err)) => {
                        tracing::error!(%poll_id, error = %err, "Cannot restore vote locks; votes stay refused until a later attempt succeeds");
                    }
                    Err(_) => {
                        tracing::error!(%poll_id, "Restoring vote locks took too long; votes stay refused until a later attempt succeeds");
                    }
                }
                let mut redis = state.redis.clone();
                vote_lock::release_lock(&mut redis, &lease_key(poll_id), &token).await;
            });
        }
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(%poll_id, error = %err, "Cannot take the lease to restore vote locks");
        }
    }
}

/// Renews the lease on `poll_id` held with `token` until it is aborted. A failed
/// renewal is only logged: should the lease lapse, a second replica may restore the same poll
/// at once, which is harmless (both write the same locks).
async fn renew_lease(state: AppState, poll_id: Uuid, token: String) {
    let mut redis = state.redis.clone();
    let key = lease_key(poll_id);
    loop {
        tokio::time::sleep(LEASE_RENEWAL).await;
        let renewed = RENEW
            .key(&key)
            .arg(&token)
            .arg(LEASE_TTL.as_millis() as u64)
            .invoke_async::<i64>(&mut redis)
            .await;
        if let Err(err) = renewed {
            tracing::warn!(%poll_id, error = %err, "Cannot renew the lease on restoring vote locks");
        }
    }
}

/// The longest a restore may take: every wait of it (a fence already running, then its own)
/// and the loading.
fn restore_limit(state: &AppState) -> Duration {
    2 * lock_fence::longest_wait(&state.config) + LOAD_LIMIT
}

/// The fence, then the locks, the closed flag and the marker; returns how many ballots were
/// read. `token` is this restore's lease; `noticed` is when the marker was found missing.
async fn restore(
    state: &AppState,
    poll_id: Uuid,
    token: &str,
    noticed: Instant,
) -> Result<usize, RestoreError> {
    state.lock_fence.pass(&state.config, noticed).await?;

    let mut redis = state.redis.clone();
    // The marker must expire no later than the first lock written here.
    let started = Instant::now();
    let poll = PollDefinition::load_by_id(&state.db, poll_id).await?;
    let mut ballots = ballots::all_of(&state.db, poll_id);
    let mut batch = Vec::with_capacity(LOCKS_PER_BATCH);
    let mut total = 0;
    while let Some(ballot) = ballots.try_next().await? {
        let value = LockValue {
            vote_id: ballot.vote_id,
            option_ids: ballot.option_ids,
        };
        batch.push((vote_lock::key(poll_id, &ballot.voter_id), value.render()));
        if batch.len() == LOCKS_PER_BATCH {
            total += batch.len();
            write_locks(&mut redis, &batch, state.config.vote_lock_ttl).await?;
            batch.clear();
        }
    }
    total += batch.len();
    write_locks(&mut redis, &batch, state.config.vote_lock_ttl).await?;

    let closed = poll
        .as_ref()
        .is_none_or(|poll| !poll.status_at(chrono::Utc::now()).takes_votes());
    if closed {
        closed_flag::set(&mut redis, poll_id).await?;
    }
    let remaining = state
        .config
        .vote_lock_ttl
        .checked_sub(started.elapsed())
        .filter(|left| *left >= Duration::from_secs(1))
        .ok_or(RestoreError::TooSlow(
            "the locks written would expire before the marker",
        ))?;
    let marked: i64 = MARK_IF_LEASED
        .key(lease_key(poll_id))
        .key(vote_lock::ledger_key(poll_id))
        .key(vote_lock::unvouched_since_key(poll_id))
        .arg(token)
        .arg(remaining.as_millis() as u64)
        .arg(state.config.vote_lock_ttl.as_millis() as u64)
        .invoke_async(&mut redis)
        .await?;
    match marked {
        1 => Ok(total),
        2 => Err(RestoreError::TooSlow(
            "a lock taken unvouched would expire before the marker",
        )),
        _ => Err(RestoreError::LeaseLost),
    }
}

/// Writes `locks` (key, value) in one pipelined round trip, replacing any lock already there.
async fn write_locks(
    redis: &mut ConnectionManager,
    locks: &[(String, String)],
    ttl: Duration,
) -> redis::RedisResult<()> {
    if locks.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (key, value) in locks {
        pipe.cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(ttl.as_secs())
            .ignore();
    }
    pipe.query_async(redis).await
}
