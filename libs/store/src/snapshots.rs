//! Snapshots read from PostgreSQL, the source of truth behind the Redis cache: the cache
//! ([`crate::results_cache`]) falls back on them when it misses and refills itself from them.

use chrono::{DateTime, Utc};
use pollstream_wire::{OptionCount, PollSnapshot, SCHEMA_VERSION};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::polls;

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
