//! Closing polls on time, and announcing a close only with the final count.
//!
//! A poll is closed in two steps. First it becomes `closing`: its `closesAt` passed (closed
//! here, one atomic `UPDATE`) or its owner closed it through voting-api. From then on no vote
//! is taken (the Redis closed flag stops every voting-api replica at once), but votes accepted
//! just before may still be on their way: in a voting-api's send, in `raw-votes`, in an
//! aggregator replica's unflushed batch. The `closing` snapshot is announced at once, so
//! screens can say so.
//!
//! Then it becomes `closed`, once every vote accepted before its `closed_at` is counted:
//! 1. its `closed_at` is [`fence::settle_time`] old (the send deadline
//!    `KAFKA_PRODUCE_TIMEOUT_MS` plus a second; the setting must be at least voting-api's):
//!    every vote that passed voting-api's checks before the close is in `raw-votes` by then,
//!    or was refused;
//! 2. the consumer group of every aggregator replica has committed past the high watermark of
//!    every `raw-votes` partition ([`fence::wait_until_committed`]; a replica commits only
//!    after its PostgreSQL flush, and a partition of a replica that died is counted by the one
//!    that takes it over);
//! 3. its row is made `closed` with a new `seq`, and that snapshot, the final count, is
//!    announced: `poll-closed` on the screens.
//!
//! So a close normally takes the settle time plus one flush (`FLUSH_INTERVAL_MS`) and a tick,
//! about 8.5 s with the defaults, longer while an aggregator replica is down. The same fence
//! guards voting-api's vote-lock restore. Every announcement is produced to `poll-updates`
//! (and cached) from here and marked in PostgreSQL only once that succeeded, so it reaches the
//! screens even if a produce fails or a replica dies. Several replicas may run this at once:
//! each step is one atomic `UPDATE`, and announcing twice is harmless (screens drop snapshots
//! they have already seen).

use std::time::Duration;

use pollstream_infra::kafka::{KafkaSettings, fence};
use pollstream_infra::log_throttle::LogThrottle;
use pollstream_store::{closed_flag, polls, snapshots};
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metric_names as names;
use crate::publish::{PublishError, SnapshotPublisher};

/// How often due polls are looked for.
pub const TICK: Duration = Duration::from_millis(250);

/// Most closes announced or finalized per tick; more wait for the next.
const BATCH: i64 = 500;

/// How long one wait for the group to commit past the watermarks may take before it is given
/// up and begun again (with newer watermarks).
const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);

/// Clients the closer needs.
pub struct Closer {
    /// Where polls live.
    pub db: PgPool,
    /// Closed flags.
    pub redis: ConnectionManager,
    /// Publishes closing and final snapshots.
    pub publisher: SnapshotPublisher,
    /// Where the fence reads watermarks and committed offsets.
    pub kafka: KafkaSettings,
    /// The aggregators' consumer group, whose committed offsets the fence waits for.
    pub group_id: String,
    /// The topic votes are consumed from (`raw-votes`).
    pub raw_votes_topic: String,
}

impl Closer {
    /// Runs until `shutdown`: closes due polls and announces closings on one loop, finalizes
    /// settled closings on another (its wait for the group must not hold up the first).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut finalizer = Finalizer {
            db: self.db.clone(),
            publisher: self.publisher.clone(),
            kafka: self.kafka,
            group_id: self.group_id,
            raw_votes_topic: self.raw_votes_topic,
        };
        let mut announcer = Announcer {
            db: self.db,
            redis: self.redis,
            publisher: self.publisher,
        };
        tokio::join!(
            every_tick(&mut announcer, &shutdown),
            every_tick(&mut finalizer, &shutdown),
        );
    }
}

/// One of the closer's two loops.
trait Step {
    /// Logged when a tick fails (it is retried at the next).
    const FAILED: &'static str;

    /// One pass over the polls due.
    async fn tick(&mut self) -> Result<(), CloseError>;
}

/// Runs `step` every [`TICK`] until `shutdown`, logging its failures at most once a second.
async fn every_tick<S: Step>(step: &mut S, shutdown: &CancellationToken) {
    let throttle = LogThrottle::new(1_000);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {
                let result = tokio::select! {
                    () = shutdown.cancelled() => return,
                    result = step.tick() => result,
                };
                if let Err(err) = result
                    && let Some(held_back) = throttle.admit()
                {
                    tracing::warn!(error = %err, held_back, "{}", S::FAILED);
                }
            }
        }
    }
}

/// Step one: polls due by their `closesAt` are closed, and every closing is announced.
struct Announcer {
    db: PgPool,
    redis: ConnectionManager,
    publisher: SnapshotPublisher,
}

impl Step for Announcer {
    const FAILED: &'static str = "Closing polls failed; retrying";

    async fn tick(&mut self) -> Result<(), CloseError> {
        let due = polls::close_due(&self.db).await?;
        for poll_id in &due {
            tracing::info!(poll_id = %poll_id, "Poll closed on time; counting its last votes");
            // Tells every voting-api replica at once, without waiting for its poll cache.
            closed_flag::set(&mut self.redis, *poll_id).await?;
        }
        let closing = polls::unannounced_closings(&self.db, BATCH).await?;
        if !closing.is_empty() {
            self.publish(&closing).await?;
            polls::mark_closing_announced(&self.db, &closing).await?;
        }
        announce_finals(&self.db, &mut self.publisher).await
    }
}

impl Announcer {
    async fn publish(&mut self, poll_ids: &[Uuid]) -> Result<(), CloseError> {
        for snapshot in &snapshots::load_many(&self.db, poll_ids).await? {
            self.publisher.publish_closing(snapshot).await?;
        }
        Ok(())
    }
}

/// Steps two and three: closings old enough are finalized once the group has committed past
/// the watermarks, and their final counts announced.
struct Finalizer {
    db: PgPool,
    publisher: SnapshotPublisher,
    kafka: KafkaSettings,
    group_id: String,
    raw_votes_topic: String,
}

impl Step for Finalizer {
    const FAILED: &'static str = "Finalizing closed polls failed; retrying";

    async fn tick(&mut self) -> Result<(), CloseError> {
        let settled = fence::settle_time(self.kafka.produce_timeout);
        // Read before the watermarks: every vote these polls will ever count is below them.
        let settled = polls::closings_settled(&self.db, settled, BATCH).await?;
        if settled.is_empty() {
            return Ok(());
        }
        fence::wait_until_committed(
            &self.kafka,
            &self.group_id,
            &self.raw_votes_topic,
            CATCH_UP_LIMIT,
        )
        .await?;
        let finalized = polls::finalize(&self.db, &settled).await?;
        for poll_id in &finalized {
            tracing::info!(poll_id = %poll_id, "Poll closed with its final count");
        }
        announce_finals(&self.db, &mut self.publisher).await
    }
}

/// Announces the final snapshot of every closed poll not announced yet.
async fn announce_finals(db: &PgPool, publisher: &mut SnapshotPublisher) -> Result<(), CloseError> {
    let unannounced = polls::unannounced_closes(db, BATCH).await?;
    if unannounced.is_empty() {
        return Ok(());
    }
    let finals = snapshots::load_many(db, &unannounced).await?;
    for snapshot in &finals {
        publisher.publish_closing(snapshot).await?;
    }
    polls::mark_close_announced(db, &unannounced).await?;
    metrics::counter!(names::POLLS_CLOSED_ANNOUNCED_TOTAL).increment(finals.len() as u64);
    Ok(())
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
    #[error("waiting for every vote to be counted: {0}")]
    Fence(#[from] fence::FenceError),
}

impl From<PublishError> for CloseError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Kafka(err) => CloseError::Kafka(err),
            PublishError::Cache(err) => CloseError::Cache(err),
        }
    }
}
