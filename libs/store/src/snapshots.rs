//! Snapshots read from PostgreSQL, the source of truth behind the Redis cache, and the one
//! "current snapshot" read: the cache first, then PostgreSQL.

use chrono::{DateTime, Utc};
use pollstream_wire::{OptionCount, PollSnapshot, SCHEMA_VERSION};
use redis::aio::ConnectionManager;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::{polls, results_cache};

/// The current snapshot of `poll_id`, or `None` if there is no such poll: the one in the
/// results cache the aggregator refreshes, else PostgreSQL's. A cache that cannot be read is
/// logged and skipped, since it is only an optimisation.
pub async fn current(
    db: &PgPool,
    redis: &mut ConnectionManager,
    poll_id: Uuid,
) -> Result<Option<PollSnapshot>, sqlx::Error> {
    let cached = match results_cache::read(redis, poll_id).await {
        Ok(cached) => cached,
        Err(err) => {
            tracing::warn!(poll_id = %poll_id, error = %err, "Results cache unreadable, using PostgreSQL");
            None
        }
    };
    match cached {
        Some(snapshot) => Ok(Some(snapshot)),
        None => load(db, poll_id).await,
    }
}

/// The current snapshot of `poll_id`, or `None` if there is no such poll.
pub async fn load<'e>(
    executor: impl PgExecutor<'e>,
    poll_id: Uuid,
) -> Result<Option<PollSnapshot>, sqlx::Error> {
    Ok(load_many(executor, &[poll_id]).await?.pop())
}

/// Snapshots of every existing poll in `poll_ids`, ordered by poll id. Polls and options are
/// read in one statement so that counts and `seq` belong together; inside a transaction
/// they are the transaction's view.
pub async fn load_many<'e>(
    executor: impl PgExecutor<'e>,
    poll_ids: &[Uuid],
) -> Result<Vec<PollSnapshot>, sqlx::Error> {
    let rows: Vec<SnapshotRow> = sqlx::query_as(
        "SELECT p.id AS poll_id, p.seq, p.total, p.status, p.closes_at, p.closed_at,
                o.id AS option_id, o.votes
         FROM polls p JOIN options o ON o.poll_id = p.id
         WHERE p.id = ANY($1)
         ORDER BY p.id, o.position",
    )
    .bind(poll_ids)
    .fetch_all(executor)
    .await?;
    let now = Utc::now();
    let mut snapshots: Vec<PollSnapshot> = Vec::with_capacity(poll_ids.len());
    for row in rows {
        if snapshots.last().is_none_or(|s| s.poll_id != row.poll_id) {
            snapshots.push(PollSnapshot {
                v: SCHEMA_VERSION,
                poll_id: row.poll_id,
                seq: row.seq,
                total: row.total,
                status: polls::status_at(
                    polls::stored_status(&row.status),
                    row.closes_at,
                    row.closed_at,
                    now,
                ),
                options: Vec::new(),
                at: now,
            });
        }
        if let Some(snapshot) = snapshots.last_mut() {
            snapshot.options.push(OptionCount {
                option_id: row.option_id,
                votes: row.votes,
            });
        }
    }
    Ok(snapshots)
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    poll_id: Uuid,
    seq: i64,
    total: i64,
    status: String,
    closes_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    option_id: Uuid,
    votes: i64,
}
