//! Snapshots read from PostgreSQL, the source of truth behind the Redis cache.

use chrono::Utc;
use pollstream_wire::{OptionCount, PollSnapshot, PollStatus, SCHEMA_VERSION};
use sqlx::PgExecutor;
use uuid::Uuid;

/// The current snapshot of `poll_id`, or `None` if there is no such poll. Reads poll and
/// options in one statement so that counts and `seq` belong together.
pub async fn load<'e>(
    executor: impl PgExecutor<'e>,
    poll_id: Uuid,
) -> Result<Option<PollSnapshot>, sqlx::Error> {
    let rows: Vec<SnapshotRow> = sqlx::query_as(
        "SELECT p.seq, p.total, p.status, p.closes_at, o.id AS option_id, o.votes
         FROM polls p JOIN options o ON o.poll_id = p.id
         WHERE p.id = $1
         ORDER BY o.position",
    )
    .bind(poll_id)
    .fetch_all(executor)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let now = Utc::now();
    let closed_by_time = first.closes_at.is_some_and(|at| at <= now);
    let status = if closed_by_time {
        PollStatus::Closed
    } else {
        PollStatus::parse(&first.status).unwrap_or(PollStatus::Closed)
    };
    Ok(Some(PollSnapshot {
        v: SCHEMA_VERSION,
        poll_id,
        seq: first.seq,
        total: first.total,
        status,
        options: rows
            .iter()
            .map(|row| OptionCount {
                option_id: row.option_id,
                votes: row.votes,
            })
            .collect(),
        at: now,
    }))
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    seq: i64,
    total: i64,
    status: String,
    closes_at: Option<chrono::DateTime<Utc>>,
    option_id: Uuid,
    votes: i64,
}
