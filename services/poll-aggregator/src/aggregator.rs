//! The consume → buffer → flush → publish → commit loop.
//!
//! Order matters for the guarantees: a batch's offsets are committed only after its ballots
//! are committed in PostgreSQL, the votes it cannot count are parked in the dead-letter topic
//! ([`crate::dead_letter`]), *and* its snapshots are in `poll-updates` and the results cache.
//! A failure anywhere keeps the batch and redoes the whole flush, which is harmless because
//! counting is idempotent (see [`crate::flush`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pollstream_infra::kafka::{ConsumeHandler, GroupConsumer, ResilientProducer, consume};
use pollstream_infra::telemetry::trace_context;
use pollstream_store::results_cache::CacheWriteError;
use pollstream_wire::{DecodeError, RawVote};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::batch::VoteBatch;
use crate::config::Config;
use crate::dead_letter::DeadLetters;
use crate::flush::{FlushOutcome, flush_batch};
use crate::metric_names as names;
use crate::publish::{PublishError, SnapshotPublisher};
use crate::retry::{MAX_BACKOFF, sleep_or_cancel};

/// How long a batch's offset commit may go unanswered before the consumer is taken to have
/// lost its group coordinator and is replaced: a commit takes milliseconds, and a coordinator
/// moving to another broker a few seconds; well inside `max.poll.interval.ms` (30 s), after
/// which the member would leave its group.
const COMMIT_LIMIT: Duration = Duration::from_secs(5);

/// The clients the counting loop drives.
pub struct Aggregator {
    /// Settings in force.
    pub config: Arc<Config>,
    /// Where ballots are counted.
    pub db: PgPool,
    /// Produces dead letters.
    pub producer: Arc<ResilientProducer>,
    /// Publishes the snapshots of every flushed batch.
    pub publisher: SnapshotPublisher,
    /// Consumes `raw-votes` in the shared group.
    pub consumer: Arc<GroupConsumer>,
}

/// The votes read since the last flush, and when to flush them: as soon as the batch holds
/// `flush_max_votes` messages, else every `flush_interval`.
struct Batching {
    aggregator: Aggregator,
    batch: VoteBatch,
    flush_ticker: Interval,
    shutdown: CancellationToken,
}

impl ConsumeHandler for Batching {
    type Value = RawVote;
    type DecodeError = DecodeError;

    fn decode(payload: &[u8]) -> Result<RawVote, DecodeError> {
        RawVote::decode(payload)
    }

    async fn handle(&mut self, message: &BorrowedMessage<'_>, vote: Result<RawVote, DecodeError>) {
        self.aggregator
            .take(message, vote, &mut self.batch, &self.shutdown)
            .await;
        if self.batch.len() >= self.aggregator.config.flush_max_votes {
            self.aggregator
                .flush_until_done(&mut self.batch, &self.shutdown)
                .await;
            self.flush_ticker.reset();
        }
    }

    async fn next_tick(&mut self) {
        self.flush_ticker.tick().await;
    }

    async fn tick(&mut self) {
        if !self.batch.is_empty() {
            self.aggregator
                .flush_until_done(&mut self.batch, &self.shutdown)
                .await;
        }
    }

    fn consumer_replaced(&mut self) {
        self.batch = VoteBatch::default();
    }
}

impl Aggregator {
    /// Consumes until `shutdown` is cancelled, then flushes what is buffered (bounded by the
    /// drain timeout) and commits it.
    pub async fn run(self, shutdown: CancellationToken) {
        let consumer = self.consumer.clone();
        let mut flush_ticker = tokio::time::interval(self.config.flush_interval);
        flush_ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut batching = Batching {
            aggregator: self,
            batch: VoteBatch::default(),
            flush_ticker,
            shutdown: shutdown.clone(),
        };
        consume(&consumer, &mut batching, &shutdown).await;
        batching.aggregator.drain(&mut batching.batch).await;
        tracing::info!("Aggregator stopped");
    }

    /// Flushes what is left at shutdown, for at most the drain timeout.
    async fn drain(&mut self, batch: &mut VoteBatch) {
        if batch.is_empty() {
            return;
        }
        tracing::info!(messages = batch.len(), "Draining the last batch");
        let drain = CancellationToken::new();
        let guard = drain.clone();
        let timeout = self.config.drain_timeout;
        let drained = tokio::time::timeout(timeout, self.flush_until_done(batch, &drain)).await;
        guard.cancel();
        if drained.is_err() || !batch.is_empty() {
            tracing::warn!(
                messages = batch.len(),
                "Could not flush the last batch in time; its offsets stay uncommitted and it will be replayed"
            );
        }
    }

    /// Adds one decoded vote to the batch, or parks an undecodable message in the dead-letter
    /// topic.
    async fn take(
        &self,
        message: &BorrowedMessage<'_>,
        vote: Result<RawVote, DecodeError>,
        batch: &mut VoteBatch,
        shutdown: &CancellationToken,
    ) {
        let (partition, offset) = (message.partition(), message.offset());
        match vote {
            Ok(vote) => {
                batch.trace(vote.poll_id, trace_context::traceparent(message.headers()));
                batch.push(vote, partition, offset);
            }
            Err(err) => {
                // Not parked means shutdown: leave its offset out of the batch, so that it is
                // read again rather than committed unparked.
                if self
                    .dead_letters()
                    .park_undecodable(message, err, shutdown)
                    .await
                {
                    batch.skip(partition, offset);
                }
            }
        }
    }

    /// Flushes `batch`, retrying with backoff until it succeeds or `shutdown` is cancelled.
    /// On success the batch is cleared; otherwise it is left as it was.
    async fn flush_until_done(&mut self, batch: &mut VoteBatch, shutdown: &CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            match self.flush_once(batch, shutdown).await {
                Ok(outcome) => {
                    let elapsed = started.elapsed();
                    metrics::histogram!(names::FLUSH_DURATION_SECONDS)
                        .record(elapsed.as_secs_f64());
                    metrics::histogram!(names::FLUSH_BATCH_VOTES)
                        .record(batch.votes().len() as f64);
                    metrics::counter!(names::VOTES_COUNTED_TOTAL).increment(outcome.counted as u64);
                    metrics::counter!(names::VOTES_DUPLICATE_TOTAL)
                        .increment(outcome.duplicates as u64);
                    tracing::info!(
                        messages = batch.len(),
                        counted = outcome.counted,
                        duplicates = outcome.duplicates,
                        rejected = outcome.rejected.len(),
                        transactions = outcome.transactions,
                        polls = outcome.snapshots.len(),
                        elapsed_ms = elapsed.as_millis() as u64,
                        "Batch flushed"
                    );
                    batch.clear();
                    return;
                }
                Err(err) => {
                    metrics::counter!(names::FLUSH_FAILURES_TOTAL, "cause" => err.cause())
                        .increment(1);
                    if matches!(err, FlushError::Database(_)) {
                        metrics::counter!(names::DATABASE_ERRORS_TOTAL).increment(1);
                    }
                    tracing::warn!(error = %err, messages = batch.len(), retry_in_ms = backoff.as_millis() as u64, "Flush failed, keeping the batch");
                    if sleep_or_cancel(backoff, shutdown).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn flush_once(
        &mut self,
        batch: &VoteBatch,
        shutdown: &CancellationToken,
    ) -> Result<FlushOutcome, FlushError> {
        let outcome = flush_batch(&self.db, batch)
            .await
            .map_err(FlushError::Database)?;
        for rejected in &outcome.rejected {
            if !self.dead_letters().park(rejected, shutdown).await {
                return Err(FlushError::Interrupted);
            }
        }
        self.publisher
            .publish_counted(&outcome.snapshots, batch)
            .await?;
        self.commit(batch).await?;
        Ok(outcome)
    }

    /// Where the votes this loop cannot count are parked.
    fn dead_letters(&self) -> DeadLetters<'_> {
        DeadLetters {
            producer: &self.producer,
            config: &self.config,
        }
    }

    /// Commits the batch's offsets synchronously.
    async fn commit(&self, batch: &VoteBatch) -> Result<(), FlushError> {
        let mut offsets = TopicPartitionList::new();
        for (&partition, &next) in batch.next_offsets() {
            offsets
                .add_partition_offset(
                    &self.config.raw_votes_topic,
                    partition,
                    Offset::Offset(next),
                )
                .map_err(FlushError::Kafka)?;
        }
        let consumer = self.consumer.get();
        let committing = consumer.clone();
        // A thread of its own rather than the runtime's blocking pool, which a shutdown waits
        // for: a commit stuck on a lost coordinator must not hold the process's exit.
        let (sent, commit) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = sent.send(committing.commit(&offsets, CommitMode::Sync));
        });
        let Ok(committed) = tokio::time::timeout(COMMIT_LIMIT, commit).await else {
            // A sync commit waits for the group coordinator with no deadline of its own, and
            // the loop polls nothing meanwhile. The commit goes on in its thread; the batch is
            // in PostgreSQL and a replay of it counts nothing twice.
            tracing::warn!(
                limit_ms = COMMIT_LIMIT.as_millis() as u64,
                "Offset commit unanswered; replacing the consumer, the batch may be replayed"
            );
            self.consumer.replace_stalled(&consumer);
            return Ok(());
        };
        if let Err(err) = committed.map_err(|err| FlushError::Task(err.to_string()))? {
            // After a rebalance the partitions may belong to another replica, which will
            // replay these votes harmlessly; nothing to retry here.
            tracing::warn!(error = %err, "Offset commit failed; the batch may be replayed");
        }
        Ok(())
    }
}

/// Why a flush must be redone.
#[derive(Debug, thiserror::Error)]
enum FlushError {
    #[error("database: {0}")]
    Database(#[source] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[source] rdkafka::error::KafkaError),
    #[error("results cache: {0}")]
    Cache(#[source] CacheWriteError),
    #[error("task: {0}")]
    Task(String),
    #[error("shutdown before every uncountable vote was parked")]
    Interrupted,
}

impl From<PublishError> for FlushError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Kafka(err) => FlushError::Kafka(err),
            PublishError::Cache(CacheWriteError::Database(err)) => FlushError::Database(err),
            PublishError::Cache(err) => FlushError::Cache(err),
        }
    }
}

impl FlushError {
    /// Which dependency failed, as a metrics label.
    fn cause(&self) -> &'static str {
        match self {
            FlushError::Database(_) => "database",
            FlushError::Kafka(_) => "kafka",
            FlushError::Cache(_) => "redis",
            FlushError::Task(_) => "task",
            FlushError::Interrupted => "shutdown",
        }
    }
}
