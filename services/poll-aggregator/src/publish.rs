//! Publishing poll snapshots: written into the results cache (unless it already holds a newer
//! one), then produced to `poll-updates` for the screens. Cached first, so that a screen that
//! joins (and reads the cache) after an update was sent never gets an older snapshot.
//!
//! The aggregator publishes the snapshots of every flushed batch, the closer those of every
//! closed poll; both redo the whole publication when any part of it failed, so a snapshot may
//! be produced twice, which screens ignore (they drop a `seq` they have already seen).
//!
//! Aggregator replicas count the same poll when its votes span their partitions (`raw-votes`
//! is keyed by poll and voter). Their flushes of that poll take turns on its row (`FOR UPDATE`,
//! [`pollstream_store::polls::lock_for_counting`]), so each gets the next `seq` and a snapshot
//! read in its transaction shows exactly the counts of that `seq`; but the replicas publish
//! independently, so an older `seq` may reach `poll-updates` after a newer one. Consumers take
//! only newer snapshots: realtime-service's ledger drops an older `seq`, and the results cache
//! keeps the newer one ([`results_cache::write_if_newer`], which refills a lost entry from
//! PostgreSQL rather than trusting the snapshot in hand).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pollstream_infra::kafka::ResilientProducer;
use pollstream_infra::telemetry::trace_context;
use pollstream_store::results_cache;
use pollstream_wire::PollSnapshot;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::FutureRecord;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tracing::Instrument;

use crate::batch::VoteBatch;
use crate::metric_names as names;

/// Longest a snapshot waits for room in the producer's local queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(1);

/// Produces snapshots to `poll-updates` and caches them.
#[derive(Clone)]
pub struct SnapshotPublisher {
    /// Sends the snapshots.
    pub producer: Arc<ResilientProducer>,
    /// Results cache.
    pub redis: ConnectionManager,
    /// Where the results cache is refilled from when Redis lost an entry.
    pub db: PgPool,
    /// Topic of snapshots (`poll-updates`).
    pub topic: String,
}

impl SnapshotPublisher {
    /// Publishes the snapshots of a flushed `batch`: cached, then all produced at once, each
    /// continuing the trace of its poll's first vote in the batch. Records
    /// `kafka_produce_duration_seconds{topic="poll-updates"}` for the whole production.
    pub async fn publish_counted(
        &mut self,
        snapshots: &[PollSnapshot],
        batch: &VoteBatch,
    ) -> Result<(), PublishError> {
        for snapshot in snapshots {
            self.cache(snapshot).await?;
        }
        let deliveries = snapshots.iter().map(|snapshot| {
            let span = tracing::info_span!("publish_snapshot", poll_id = %snapshot.poll_id, seq = snapshot.seq, total = snapshot.total);
            if let Some(traceparent) = batch.traceparent(snapshot.poll_id) {
                trace_context::adopt_traceparent(&span, traceparent);
            }
            let headers = trace_context::inject(&span, OwnedHeaders::new());
            self.produce(snapshot, Some(headers)).instrument(span)
        });
        let started = Instant::now();
        futures::future::try_join_all(deliveries).await?;
        metrics::histogram!(names::KAFKA_PRODUCE_DURATION_SECONDS, "topic" => "poll-updates")
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Publishes the snapshot of a closed poll: cached, then produced.
    pub async fn publish_closing(&mut self, snapshot: &PollSnapshot) -> Result<(), PublishError> {
        self.cache(snapshot).await?;
        self.produce(snapshot, None).await
    }

    /// Produces `snapshot` keyed by its poll, so that one poll's snapshots reach a consumer in
    /// the order they were produced (by this replica: in `seq` order).
    async fn produce(
        &self,
        snapshot: &PollSnapshot,
        headers: Option<OwnedHeaders>,
    ) -> Result<(), PublishError> {
        let key = snapshot.poll_id.to_string();
        let payload = snapshot.encode();
        let mut record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        self.producer
            .send(record, QUEUE_TIMEOUT)
            .await
            .map(drop)
            .map_err(PublishError::Kafka)
    }

    async fn cache(&mut self, snapshot: &PollSnapshot) -> Result<(), PublishError> {
        results_cache::write_if_newer(&mut self.redis, &self.db, snapshot)
            .await
            .map(drop)
            .map_err(PublishError::Cache)
    }
}

/// Why a publication must be redone.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A snapshot was not produced.
    #[error("kafka: {0}")]
    Kafka(#[source] KafkaError),
    /// A snapshot was not cached.
    #[error("results cache: {0}")]
    Cache(#[source] results_cache::CacheWriteError),
}
