//! Waiting until a consumer group has committed past one message, for many waiters at once.
//!
//! A group that commits only after its side effect (the aggregator commits after its
//! PostgreSQL flush) has done that effect for a message once its committed offset on the
//! message's partition is past the message's offset: Kafka's committed offset is the next one
//! the group will read. [`CommitWatch`] reads the group's committed offsets every
//! [`POLL_INTERVAL`] while anyone waits (one request for every waiter, not one each) and
//! stops reading when nobody does. It never joins the group.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::KafkaSettings;

/// How often the group's committed offsets are read while someone waits.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Bound on each Kafka metadata or offset request: short, so that one lost request is tried
/// again within a waiter's limit rather than spending all of it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Committed offset per partition, as last read.
type Committed = HashMap<i32, i64>;

/// Watches one group's committed offsets on one topic; cheap to share (`Arc`).
pub struct CommitWatch {
    settings: KafkaSettings,
    group: String,
    topic: String,
    committed: watch::Sender<Committed>,
    reading: AtomicBool,
    /// The reader, made at the first wait and kept: a new one would first have to find the
    /// group's coordinator again.
    reader: std::sync::Mutex<Option<Arc<StreamConsumer>>>,
}

/// The group did not commit past the offset within the limit (it is behind or down, or Kafka
/// did not answer).
#[derive(Debug, thiserror::Error)]
#[error("the consumer group did not commit past the offset within {0:?}")]
pub struct NotCommitted(pub Duration);

impl CommitWatch {
    /// A watch of `group`'s committed offsets on `topic`; reads nothing until someone waits.
    pub fn new(settings: KafkaSettings, group: &str, topic: &str) -> Arc<Self> {
        Arc::new(Self {
            settings,
            group: group.to_owned(),
            topic: topic.to_owned(),
            committed: watch::Sender::new(Committed::new()),
            reading: AtomicBool::new(false),
            reader: std::sync::Mutex::new(None),
        })
    }

    /// Returns once the group's committed offset on `partition` is past `offset` (the message
    /// at `offset` is done), or [`NotCommitted`] after `limit`.
    pub async fn wait_past(
        self: &Arc<Self>,
        partition: i32,
        offset: i64,
        limit: Duration,
    ) -> Result<(), NotCommitted> {
        let mut committed = self.committed.subscribe();
        self.start_reading();
        let past = committed.wait_for(|c| c.get(&partition).is_some_and(|&next| next > offset));
        match tokio::time::timeout(limit, past).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(NotCommitted(limit)),
        }
    }

    /// Starts the reader unless it runs.
    fn start_reading(self: &Arc<Self>) {
        if !self.reading.swap(true, Ordering::AcqRel) {
            tokio::spawn(Arc::clone(self).read_while_waited_on());
        }
    }

    /// Reads the committed offsets every [`POLL_INTERVAL`] until nobody waits. A failed read
    /// is logged and tried again at the next tick: a waiter's own limit bounds the wait.
    async fn read_while_waited_on(self: Arc<Self>) {
        loop {
            if self.committed.receiver_count() == 0 {
                self.reading.store(false, Ordering::Release);
                // A waiter that subscribed after the count was read found `reading` still
                // set and started nothing: read on for it.
                if self.committed.receiver_count() == 0 || self.reading.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
            let Some(consumer) = self.reader() else {
                tokio::time::sleep(POLL_INTERVAL).await;
                continue;
            };
            let topic = self.topic.clone();
            let read = tokio::task::spawn_blocking(move || committed_offsets(&consumer, &topic))
                .await
                .map_err(|err| err.to_string());
            match read {
                Ok(Ok(offsets)) => {
                    self.committed
                        .send_modify(|committed| committed.extend(offsets));
                }
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "Cannot read committed offsets; trying again");
                }
                Err(err) => tracing::warn!(error = %err, "Reading committed offsets failed"),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl CommitWatch {
    /// The kept reader, made now if there is none yet (`None`, logged, if it cannot be).
    fn reader(&self) -> Option<Arc<StreamConsumer>> {
        let mut reader = self.reader.lock().expect("reader lock poisoned");
        if reader.is_none() {
            match self.settings.consumer(&self.group, "earliest") {
                Ok(consumer) => *reader = Some(Arc::new(consumer)),
                Err(err) => {
                    tracing::warn!(error = %err, "Cannot create a reader of committed offsets");
                }
            }
        }
        reader.clone()
    }
}

/// The group's committed offset on every partition of `topic` that has one.
fn committed_offsets(reader: &StreamConsumer, topic: &str) -> Result<Committed, KafkaError> {
    let metadata = reader.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
    let mut wanted = TopicPartitionList::new();
    for partition in metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions())
    {
        wanted.add_partition(topic, partition.id());
    }
    let committed = reader.committed_offsets(wanted, REQUEST_TIMEOUT)?;
    Ok(committed
        .elements_for_topic(topic)
        .iter()
        .filter_map(|element| match element.offset() {
            Offset::Offset(next) => Some((element.partition(), next)),
            _ => None,
        })
        .collect())
}
