//! The committed-offsets fence: wait until a consumer group has committed at or past the high
//! watermark of every partition of a topic, as read when the wait began.
//!
//! A group that commits only after its side effect is done (the aggregator commits after its
//! PostgreSQL flush) has then done that effect for every message in the topic at the moment
//! the watermarks were read. Two rules stand on it: a vote-lock restore (every vote accepted
//! before Redis lost its locks is a ballot) and a poll's closing (every vote accepted before
//! `closedAt` is counted, so the announced tally is final). Each first waits until no vote it
//! covers can still be on its way to Kafka, then passes this fence.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaSettings;

/// Added to a vote's send deadline (`KAFKA_PRODUCE_TIMEOUT_MS`) before the watermarks are read:
/// the time between a vote passing its checks (the closed flag, the lock) and its send
/// starting (a Redis round trip, task scheduling), and clock differences between hosts.
pub const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(1);

/// How long after a moment every vote that passed its checks before it is in Kafka or was
/// answered with an error: the send deadline plus [`IN_FLIGHT_MARGIN`].
pub fn settle_time(produce_timeout: Duration) -> Duration {
    produce_timeout + IN_FLIGHT_MARGIN
}

/// How often the group's committed offsets are read while waiting for it.
const CATCH_UP_POLL: Duration = Duration::from_millis(100);

/// Bound on each Kafka metadata or offset request.
const KAFKA_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the fence was not passed.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// Kafka did not answer a metadata or offset request, or the topic has no partitions.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The group was still behind at the limit.
    #[error("the group did not commit past the watermarks within {0:?}")]
    NotCaughtUp(Duration),
    /// The blocking task that reads the offsets failed.
    #[error("task: {0}")]
    Task(String),
}

/// Reads the high watermark of every partition of `topic`, then waits until `group` has
/// committed at or past each (a partition with nothing committed passes only if it is empty),
/// for at most `limit`. Never joins the group: it only reads its committed offsets. A request
/// that fails (a broker killed, its partitions' leaders not yet re-elected) is tried again
/// every [`CATCH_UP_POLL`] within `limit`: what was already waited out is not lost to a
/// blip of Kafka's. Dropping the future stops the wait (between two reads, each bounded by
/// 5 s).
///
/// Errors: [`FenceError::NotCaughtUp`] at the limit (a member is down, or its partitions are
/// not reassigned yet), [`FenceError::Kafka`] when requests still fail at the limit.
pub async fn wait_until_committed(
    kafka: &KafkaSettings,
    group: &str,
    topic: &str,
    limit: Duration,
) -> Result<(), FenceError> {
    let deadline = Instant::now() + limit;
    let reader = Arc::new(kafka.consumer(group, "earliest")?);
    let marks = until_answered(deadline, || {
        let (reader, topic) = (reader.clone(), topic.to_owned());
        blocking(move || watermarks(&reader, &topic))
    })
    .await?;
    loop {
        let behind = until_answered(deadline, || {
            let (reader, topic, marks) = (reader.clone(), topic.to_owned(), marks.clone());
            blocking(move || behind(&reader, &topic, &marks))
        })
        .await?;
        if !behind {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(FenceError::NotCaughtUp(limit));
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}

/// Runs `request` until it answers, every [`CATCH_UP_POLL`], until `deadline`; then its last
/// error.
async fn until_answered<T, F>(
    deadline: Instant,
    mut request: impl FnMut() -> F,
) -> Result<T, FenceError>
where
    F: Future<Output = Result<T, FenceError>>,
{
    loop {
        match request().await {
            Ok(answer) => return Ok(answer),
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(err) => {
                tracing::debug!(error = %err, "Kafka did not answer the fence; trying again");
                tokio::time::sleep(CATCH_UP_POLL).await;
            }
        }
    }
}

/// `(partition, low, high)` watermarks of every partition of `topic`.
type Marks = Vec<(i32, i64, i64)>;

fn watermarks(reader: &StreamConsumer, topic: &str) -> Result<Marks, FenceError> {
    let metadata = reader.fetch_metadata(Some(topic), KAFKA_REQUEST_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(FenceError::Kafka(KafkaError::MetadataFetch(
            RDKafkaErrorCode::UnknownTopicOrPartition,
        )));
    }
    partitions
        .into_iter()
        .map(|partition| {
            let (low, high) = reader.fetch_watermarks(topic, partition, KAFKA_REQUEST_TIMEOUT)?;
            Ok((partition, low, high))
        })
        .collect()
}

/// Whether the reader's group has yet to commit up to some partition's high watermark.
fn behind(reader: &StreamConsumer, topic: &str, marks: &Marks) -> Result<bool, FenceError> {
    let mut wanted = TopicPartitionList::new();
    for &(partition, _, _) in marks {
        wanted.add_partition(topic, partition);
    }
    let committed = reader.committed_offsets(wanted, KAFKA_REQUEST_TIMEOUT)?;
    Ok(marks.iter().any(|&(partition, low, high)| {
        match committed
            .find_partition(topic, partition)
            .map(|p| p.offset())
        {
            Some(Offset::Offset(offset)) => offset < high,
            // Nothing committed yet: only an empty partition needs nothing done.
            _ => low < high,
        }
    }))
}

/// Runs a blocking librdkafka request off the async threads.
async fn blocking<T: Send + 'static>(
    request: impl FnOnce() -> Result<T, FenceError> + Send + 'static,
) -> Result<T, FenceError> {
    tokio::task::spawn_blocking(request)
        .await
        .map_err(|err| FenceError::Task(err.to_string()))?
}
