//! Closing polls on time and announcing every close.
//!
//! A poll with `closesAt` is closed here when the time comes; a poll its owner closed through
//! voting-api is only marked in PostgreSQL. Either way the closing snapshot is produced to
//! `poll-updates` (and cached) from here, and the poll marked announced only once that
//! succeeded, so every close reaches the screens even if a produce fails or a replica dies.
//! Several replicas may run this at once: closing is one atomic `UPDATE`, and announcing twice
//! is harmless (screens drop snapshots they have already seen).

use std::time::Duration;

use pollstream_store::{closed_flag, polls, snapshots};
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metric_names as names;
use crate::publish::{PublishError, SnapshotPublisher};

/// How often due polls are looked for.
pub const TICK: Duration = Duration::from_millis(250);

/// Most closes announced per tick; more wait for the next.
const ANNOUNCE_BATCH: i64 = 500;

/// Clients the closer needs.
pub struct Closer {
    /// Where polls live.
    pub db: PgPool,
    /// Closed flags.
    pub redis: ConnectionManager,
    /// Publishes closing snapshots.
    pub publisher: SnapshotPublisher,
}

impl Closer {
    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    if let Err(err) = self.tick().await {
                        tracing::warn!(error = %err, "Closing polls failed; retrying");
                    }
                }
            }
        }
    }

    async fn tick(&mut self) -> Result<(), CloseError> {
        let due = polls::close_due(&self.db).await?;
        for poll_id in &due {
            tracing::info!(poll_id = %poll_id, "Poll closed on time");
            // Tells every voting-api replica at once, without waiting for its poll cache.
            closed_flag::set(&mut self.redis, *poll_id).await?;
        }
        let unannounced = polls::unannounced_closes(&self.db, ANNOUNCE_BATCH).await?;
        if unannounced.is_empty() {
            return Ok(());
        }
        let closing = snapshots::load_many(&self.db, &unannounced).await?;
        for snapshot in &closing {
            self.publisher.publish_closing(snapshot).await?;
        }
        polls::mark_close_announced(&self.db, &unannounced).await?;
        metrics::counter!(names::POLLS_CLOSED_ANNOUNCED_TOTAL).increment(closing.len() as u64);
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
enum CloseError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("kafka: {0}")]
    Kafka(rdkafka::error::KafkaError),
    #[error("results cache: {0}")]
    Cache(pollstream_store::results_cache::CacheWriteError),
}

impl From<PublishError> for CloseError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Kafka(err) => CloseError::Kafka(err),
            PublishError::Cache(err) => CloseError::Cache(err),
        }
    }
}
