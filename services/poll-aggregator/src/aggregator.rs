//! The consume → buffer → flush → publish → commit loop.
//!
//! Order matters for the guarantees: a batch's offsets are committed only after its ballots
//! are committed in PostgreSQL, the votes it cannot count are parked in the dead-letter topic,
//! *and* its snapshots are in `poll-updates` and the results cache. A failure anywhere keeps
//! the batch and redoes the whole flush, which is harmless because counting is idempotent (see
//! [`crate::flush`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pollstream_infra::kafka::{GroupConsumer, ResilientProducer};
use pollstream_infra::telemetry::trace_context;
use pollstream_store::results_cache;
use pollstream_wire::{DecodeError, RawVote};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::batch::VoteBatch;
use crate::config::Config;
use crate::flush::{FlushOutcome, Rejected, flush_batch};

/// Longest pause between two attempts at a failing flush.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The consumer loop and the clients it drives.
pub struct Aggregator {
    /// Settings in force.
    pub config: Arc<Config>,
    /// Where ballots are counted.
    pub db: PgPool,
    /// Results cache.
    pub redis: ConnectionManager,
    /// Produces snapshots and dead letters.
    pub producer: Arc<ResilientProducer>,
    /// Consumes `raw-votes` in the shared group.
    pub consumer: Arc<GroupConsumer>,
}

impl Aggregator {
    /// Consumes until `shutdown` is cancelled, then flushes what is buffered (bounded by the
    /// drain timeout) and commits it.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut batch = VoteBatch::default();
        let mut ticker = tokio::time::interval(self.config.flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut consumer = self.consumer.get();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {
                    if !batch.is_empty() {
                        self.flush_until_done(&mut batch, &shutdown).await;
                    }
                }
                received = consumer.recv() => {
                    match received {
                        Ok(message) => self.take(&message, &mut batch, &shutdown).await,
                        Err(err) => {
                            tracing::warn!(error = %err, "Kafka consumer error");
                            if self.consumer.recover(&consumer) {
                                // Its offsets can no longer be committed: the new consumer
                                // reads these votes again from the last commit.
                                batch = VoteBatch::default();
                                consumer = self.consumer.get();
                                continue;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    if batch.len() >= self.config.flush_max_votes {
                        self.flush_until_done(&mut batch, &shutdown).await;
                        ticker.reset();
                    }
                }
            }
        }
        if !batch.is_empty() {
            tracing::info!(messages = batch.len(), "Draining the last batch");
            let drain = CancellationToken::new();
            let guard = drain.clone();
            let timeout = self.config.drain_timeout;
            let drained =
                tokio::time::timeout(timeout, self.flush_until_done(&mut batch, &drain)).await;
            guard.cancel();
            if drained.is_err() || !batch.is_empty() {
                tracing::warn!(
                    messages = batch.len(),
                    "Could not flush the last batch in time; its offsets stay uncommitted and it will be replayed"
                );
            }
        }
        tracing::info!("Aggregator stopped");
    }

    /// Decodes one message into the batch, or parks it in the dead-letter topic.
    async fn take(
        &self,
        message: &BorrowedMessage<'_>,
        batch: &mut VoteBatch,
        shutdown: &CancellationToken,
    ) {
        let (partition, offset) = (message.partition(), message.offset());
        match RawVote::decode(message.payload().unwrap_or_default()) {
            Ok(vote) => {
                batch.trace(vote.poll_id, trace_context::traceparent(message.headers()));
                batch.push(vote, partition, offset);
            }
            Err(err) => {
                let reason = err.to_string();
                tracing::warn!(partition, offset, error = %reason, "Undecodable vote, parking it in the dead-letter topic");
                let headers =
                    dead_letter_headers(&self.config.raw_votes_topic, partition, offset, &reason);
                let payload = message.payload().unwrap_or_default().to_vec();
                let key = message.key().map(<[u8]>::to_vec);
                let label = match err {
                    DecodeError::Malformed(_) => "malformed",
                    DecodeError::UnsupportedVersion(_) => "unsupported_version",
                };
                // Not parked means shutdown: leave its offset out of the batch, so that it is
                // read again rather than committed unparked.
                if self
                    .dead_letter(key.as_deref(), &payload, headers, label, shutdown)
                    .await
                {
                    batch.skip(partition, offset);
                }
            }
        }
    }

    /// Produces one dead letter, retrying until the broker takes it (`true`) or shutdown
    /// (`false`): a message is skipped only once it is parked. `reason` labels
    /// `votes_parked_total` and must be a stable name.
    async fn dead_letter(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
        reason: &'static str,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut record = FutureRecord::to(&self.config.dead_letter_topic)
                .payload(payload)
                .headers(headers.clone());
            if let Some(key) = key {
                record = record.key(key);
            }
            let producer = self.producer.get();
            match producer.send(record, Duration::from_secs(1)).await {
                Ok(_) => {
                    metrics::counter!("dead_letters_total").increment(1);
                    metrics::counter!("votes_parked_total", "reason" => reason).increment(1);
                    return true;
                }
                Err((err, _)) => {
                    self.producer.recover(&producer, &err);
                    tracing::warn!(error = %err, "Cannot produce dead letter, retrying");
                    if sleep_or_cancel(backoff, shutdown).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
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
                    metrics::histogram!("flush_duration_seconds").record(elapsed.as_secs_f64());
                    metrics::histogram!("flush_batch_votes").record(batch.votes().len() as f64);
                    metrics::counter!("votes_counted_total").increment(outcome.counted as u64);
                    metrics::counter!("votes_duplicate_total").increment(outcome.duplicates as u64);
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
                    metrics::counter!("flush_failures_total", "cause" => err.cause()).increment(1);
                    if matches!(err, FlushError::Database(_)) {
                        metrics::counter!("database_errors_total").increment(1);
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
            if !self.park(rejected, shutdown).await {
                return Err(FlushError::Interrupted);
            }
        }
        self.publish(&outcome, batch).await?;
        self.commit(batch).await?;
        Ok(outcome)
    }

    /// Parks a vote the flush could not count, under its source partition and offset; `false`
    /// if shutdown came first.
    async fn park(&self, rejected: &Rejected, shutdown: &CancellationToken) -> bool {
        let Rejected {
            vote: received,
            reason,
            refusal,
        } = rejected;
        let vote = &received.vote;
        let mut headers = dead_letter_headers(
            &self.config.raw_votes_topic,
            received.partition,
            received.offset,
            reason,
        );
        if let Some(refusal) = refusal {
            tracing::warn!(poll_id = %vote.poll_id, vote_id = %vote.vote_id, partition = received.partition, offset = received.offset, reason, sqlstate = %refusal.sqlstate, error = %refusal.message, "PostgreSQL refused a vote, parking it");
            headers = headers
                .insert(Header {
                    key: "dlq-sqlstate",
                    value: Some(refusal.sqlstate.as_str()),
                })
                .insert(Header {
                    key: "dlq-database-message",
                    value: Some(refusal.message.as_str()),
                });
        } else {
            tracing::warn!(poll_id = %vote.poll_id, vote_id = %vote.vote_id, partition = received.partition, offset = received.offset, reason, "Vote not countable, parking it");
        }
        self.dead_letter(
            Some(vote.poll_id.to_string().as_bytes()),
            &vote.encode(),
            headers,
            reason,
            shutdown,
        )
        .await
    }

    /// Produces every snapshot to `poll-updates` and refreshes the results cache.
    async fn publish(
        &mut self,
        outcome: &FlushOutcome,
        batch: &VoteBatch,
    ) -> Result<(), FlushError> {
        let deliveries = outcome.snapshots.iter().map(|snapshot| {
            let key = snapshot.poll_id.to_string();
            let payload = snapshot.encode();
            // The snapshot continues the trace of the poll's first vote in the batch.
            let span = tracing::info_span!("publish_snapshot", poll_id = %snapshot.poll_id, seq = snapshot.seq, total = snapshot.total);
            if let Some(traceparent) = batch.traceparent(snapshot.poll_id) {
                trace_context::adopt_traceparent(&span, traceparent);
            }
            let headers = trace_context::inject(&span, OwnedHeaders::new());
            let resilient = &self.producer;
            let topic = &self.config.poll_updates_topic;
            async move {
                let producer = resilient.get();
                producer
                    .send(
                        FutureRecord::to(topic).key(&key).payload(&payload).headers(headers),
                        Duration::from_secs(1),
                    )
                    .instrument(span)
                    .await
                    .map(|_| ())
                    .map_err(|(err, _)| {
                        resilient.recover(&producer, &err);
                        FlushError::Kafka(err)
                    })
            }
        });
        let started = Instant::now();
        futures::future::try_join_all(deliveries).await?;
        metrics::histogram!("kafka_produce_duration_seconds", "topic" => "poll-updates")
            .record(started.elapsed().as_secs_f64());
        for snapshot in &outcome.snapshots {
            results_cache::write_if_newer(&mut self.redis, snapshot)
                .await
                .map_err(FlushError::Redis)?;
        }
        Ok(())
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
        let committed =
            tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
                .await
                .map_err(|err| FlushError::Task(err.to_string()))?;
        if let Err(err) = committed {
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
    #[error("redis: {0}")]
    Redis(#[source] redis::RedisError),
    #[error("task: {0}")]
    Task(String),
    #[error("shutdown before every uncountable vote was parked")]
    Interrupted,
}

impl FlushError {
    /// Which dependency failed, as a metrics label.
    fn cause(&self) -> &'static str {
        match self {
            FlushError::Database(_) => "database",
            FlushError::Kafka(_) => "kafka",
            FlushError::Redis(_) => "redis",
            FlushError::Task(_) => "task",
            FlushError::Interrupted => "shutdown",
        }
    }
}

fn dead_letter_headers(topic: &str, partition: i32, offset: i64, reason: &str) -> OwnedHeaders {
    let partition = partition.to_string();
    let offset = offset.to_string();
    OwnedHeaders::new()
        .insert(Header {
            key: "dlq-reason",
            value: Some(reason),
        })
        .insert(Header {
            key: "dlq-source-topic",
            value: Some(topic),
        })
        .insert(Header {
            key: "dlq-source-partition",
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: "dlq-source-offset",
            value: Some(offset.as_str()),
        })
}

/// Sleeps for `duration`; returns `true` if `shutdown` was cancelled first.
async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}
