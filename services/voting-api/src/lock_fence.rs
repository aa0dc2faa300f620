//! The fence a vote-lock restore passes before it reads the ballots (see `lock_restore`): once
//! it is passed, every vote whose lock was taken in the old Redis is counted as a ballot (or
//! parked as not countable), so the restore cannot miss one.
//!
//! 1. It waits out the longest a request that took a lock can still be producing (the vote
//!    handler's send deadline, `KAFKA_PRODUCE_TIMEOUT_MS`, plus [`IN_FLIGHT_MARGIN`]): after
//!    that every such vote is in `raw-votes` or was answered with an error;
//! 2. it reads the high watermark of every `raw-votes` partition;
//! 3. it waits until the aggregator's consumer group (`AGGREGATOR_GROUP_ID`) has committed
//!    offsets at or past them: the aggregator commits only after its PostgreSQL flush.
//!
//! The fence is the slow part and is the same for every poll, so a replica runs one at a time
//! ([`LockFence`]) and a restore that finds one completed since it noticed the missing marker
//! uses it. It needs only the configuration, not the shared state, which holds the
//! [`LockFence`].

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;

/// Added to the send deadline before the watermarks are read: the time between a lock taken
/// and its send starting (a Redis round trip, task scheduling).
pub const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(1);

/// How long a restore waits for the aggregator to commit past the watermarks before it gives
/// up (and a later vote tries again).
pub const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);

/// How often the aggregator's committed offsets are read while waiting for it.
const CATCH_UP_POLL: Duration = Duration::from_millis(250);

/// Bound on each Kafka metadata or offset request.
const KAFKA_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the fence was not passed.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// Kafka did not answer a metadata or offset request.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The aggregator was still behind at the limit.
    #[error("the aggregator did not commit past the watermarks within {0:?}")]
    NotCaughtUp(Duration),
    /// The blocking task that reads the offsets failed.
    #[error("task: {0}")]
    Task(String),
    /// The fence this restore shared, run by another, failed.
    #[error("the shared fence failed: {0}")]
    Shared(String),
}

/// The fence, run by one restore at a time on this replica and shared by the others.
#[derive(Default)]
pub struct LockFence {
    last: tokio::sync::Mutex<Option<FenceRun>>,
}

/// A completed fence: when its wait began, and why it failed if it did.
struct FenceRun {
    started: Instant,
    failure: Option<String>,
}

impl LockFence {
    /// Returns once every vote whose lock was taken before `since` is counted (or parked): by
    /// a fence that began at or after `since`, this one's or one another restore ran.
    pub async fn pass(&self, config: &Config, since: Instant) -> Result<(), FenceError> {
        let mut last = self.last.lock().await;
        if let Some(run) = last.as_ref().filter(|run| run.started >= since) {
            return match &run.failure {
                None => Ok(()),
                Some(reason) => Err(FenceError::Shared(reason.clone())),
            };
        }
        let started = Instant::now();
        tokio::time::sleep(config.kafka.produce_timeout + IN_FLIGHT_MARGIN).await;
        let result = wait_for_aggregator(config).await;
        *last = Some(FenceRun {
            started,
            failure: result.as_ref().err().map(ToString::to_string),
        });
        result
    }
}

/// The longest one fence may take: its first wait, then the aggregator's catch-up.
pub fn longest_wait(config: &Config) -> Duration {
    config.kafka.produce_timeout + IN_FLIGHT_MARGIN + CATCH_UP_LIMIT
}

/// Steps 2 and 3: reads the high watermarks of `raw-votes`, then waits until the
/// aggregator's group has committed at or past each, up to [`CATCH_UP_LIMIT`].
async fn wait_for_aggregator(config: &Config) -> Result<(), FenceError> {
    let kafka = config.kafka.clone();
    let group = config.aggregator_group_id.clone();
    let topic = config.raw_votes_topic.clone();
    tokio::task::spawn_blocking(move || {
        // Never subscribed: it only reads the group's committed offsets, without joining it.
        let consumer = kafka.consumer(&group, "earliest")?;
        let metadata = consumer.fetch_metadata(Some(&topic), KAFKA_REQUEST_TIMEOUT)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(FenceError::Kafka(
                rdkafka::error::KafkaError::MetadataFetch(
                    rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
                ),
            ));
        }
        let mut marks = Vec::with_capacity(partitions.len());
        let mut wanted = TopicPartitionList::new();
        for partition in partitions {
            let (low, high) =
                consumer.fetch_watermarks(&topic, partition, KAFKA_REQUEST_TIMEOUT)?;
            marks.push((partition, low, high));
            wanted.add_partition(&topic, partition);
        }
        let deadline = Instant::now() + CATCH_UP_LIMIT;
        loop {
            let committed = consumer.committed_offsets(wanted.clone(), KAFKA_REQUEST_TIMEOUT)?;
            let behind = marks.iter().any(|&(partition, low, high)| {
                match committed
                    .find_partition(&topic, partition)
                    .map(|p| p.offset())
                {
                    Some(Offset::Offset(offset)) => offset < high,
                    // Nothing committed yet: only an empty partition needs nothing counted.
                    _ => low < high,
                }
            });
            if !behind {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(FenceError::NotCaughtUp(CATCH_UP_LIMIT));
            }
            std::thread::sleep(CATCH_UP_POLL);
        }
    })
    .await
    .map_err(|err| FenceError::Task(err.to_string()))?
}
