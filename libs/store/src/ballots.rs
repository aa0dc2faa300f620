//! Questions about ballots that more than one service asks.

use sqlx::PgExecutor;
use uuid::Uuid;

/// Whether `voter` has a counted ballot in `poll_id`.
pub async fn is_counted<'e>(
    executor: impl PgExecutor<'e>,
    poll_id: Uuid,
    voter: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM ballots WHERE poll_id = $1 AND voter_id = $2)")
        .bind(poll_id)
        .bind(voter)
        .fetch_one(executor)
        .await
}
