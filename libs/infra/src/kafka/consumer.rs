//! Consumers in a consumer group: replaced when they fail fatally, and their lag reported.
//!
//! Offsets are committed by hand, only after the side effect of the messages they cover
//! succeeded (see [`KafkaSettings::consumer_in_group`]).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{KafkaSettings, Progress};

/// A consumer subscribed to its topics in a consumer group, replaced by a fresh one when
/// librdkafka reports it failed fatally.
///
/// A fatal consumer error (a static member fenced by the broker, KIP-345) leaves the
/// client unusable for good: every later poll fails. Offsets are committed only after their
/// side effects, so the fresh consumer resumes from the last commit and what the old one had
/// read is replayed, harmlessly.
pub struct GroupConsumer {
    spec: GroupSpec,
    current: RwLock<(Arc<MemberConsumer>, Instant)>,
}

/// The consumer a [`GroupConsumer`] holds: librdkafka's, with [`MemberContext`] deciding
/// where each partition it is given starts.
pub type MemberConsumer = StreamConsumer<MemberContext>;

/// What a [`GroupConsumer`] needs to build its consumer again.
struct GroupSpec {
    settings: KafkaSettings,
    group_id: String,
    offset_reset: String,
    fetch_wait: Duration,
    instance_id: Option<String>,
    progress: Progress,
    topics: Vec<String>,
    context: MemberContext,
}

impl GroupSpec {
    fn consumer(&self) -> Result<Arc<MemberConsumer>, KafkaError> {
        let consumer = self.settings.consumer_in_group(
            &self.group_id,
            &self.offset_reset,
            self.fetch_wait,
            self.instance_id.as_deref(),
            self.progress,
            self.context.clone(),
        )?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(Arc::new(consumer))
    }
}

impl GroupConsumer {
    /// Shortest time between two replacements, so that two replicas misconfigured with one
    /// instance id fence each other at a readable pace instead of in a tight loop.
    pub const REPLACE_INTERVAL: Duration = Duration::from_secs(5);

    /// Creates the consumer (see [`KafkaSettings::consumer_in_group`]) and subscribes it to
    /// `topics`.
    pub fn subscribe(
        settings: &KafkaSettings,
        group_id: &str,
        offset_reset: &str,
        fetch_wait: Duration,
        instance_id: Option<&str>,
        progress: Progress,
        topics: &[&str],
    ) -> Result<Self, KafkaError> {
        let spec = GroupSpec {
            settings: settings.clone(),
            group_id: group_id.to_owned(),
            offset_reset: offset_reset.to_owned(),
            fetch_wait,
            instance_id: instance_id.map(str::to_owned),
            progress,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            context: MemberContext::new(progress, SystemTime::now()),
        };
        let first = spec.consumer()?;
        Ok(Self {
            spec,
            current: RwLock::new((first, Instant::now())),
        })
    }

    /// The consumer to poll and commit with now (cheap: a reference-counted handle).
    pub fn get(&self) -> Arc<MemberConsumer> {
        self.current
            .read()
            .expect("consumer lock poisoned")
            .0
            .clone()
    }

    /// Called after `failed` returned an error: when that error left it fatally failed,
    /// replaces it (unless another caller already did, or the last replacement is too recent)
    /// and returns true; the caller must then drop what it read and not yet committed.
    pub(super) fn recover(&self, failed: &Arc<MemberConsumer>) -> bool {
        let Some(fatal) = failed.client().fatal_error() else {
            return false;
        };
        self.replace(failed, &format!("failed fatally ({fatal:?})"))
    }

    /// Replaces `stalled`, a consumer whose group coordinator stopped answering (an offset
    /// commit unanswered far longer than a commit takes), with a fresh one, unless another
    /// caller already did or the last replacement is too recent. librdkafka can lose its
    /// coordinator for good: seen after a broker frozen past its KRaft session was fenced by
    /// its controller on waking, where the member got no answer until its session lapsed and
    /// did not rejoin after it; a fresh client looks the coordinator up anew. Returns whether
    /// `stalled` is no longer the current consumer; [`crate::kafka::consume`] notices the
    /// replacement and drops what was read and not yet committed.
    pub fn replace_stalled(&self, stalled: &Arc<MemberConsumer>) -> bool {
        self.replace(
            stalled,
            "stopped getting answers from its group coordinator",
        )
    }

    /// Whether `consumer` is still the current one (not replaced since it was taken).
    pub fn is_current(&self, consumer: &Arc<MemberConsumer>) -> bool {
        Arc::ptr_eq(
            &self.current.read().expect("consumer lock poisoned").0,
            consumer,
        )
    }

    fn replace(&self, old: &Arc<MemberConsumer>, why: &str) -> bool {
        let mut current = self.current.write().expect("consumer lock poisoned");
        if !Arc::ptr_eq(&current.0, old) {
            return true;
        }
        if current.1.elapsed() < Self::REPLACE_INTERVAL {
            return false;
        }
        match self.spec.consumer() {
            Ok(fresh) => {
                tracing::error!(
                    why,
                    instance_id = ?self.spec.instance_id,
                    "Replaced the Kafka consumer; what it read since its last commit will be replayed"
                );
                metrics::counter!(crate::metrics::names::KAFKA_CONSUMER_REBUILDS_TOTAL)
                    .increment(1);
                let old = std::mem::replace(&mut *current, (fresh, Instant::now()));
                // Closing a consumer blocks: not on an async worker.
                std::thread::spawn(move || drop(old));
                true
            }
            Err(err) => {
                tracing::error!(error = %err, why, "Cannot replace the Kafka consumer");
                false
            }
        }
    }

    /// Every `period` until `shutdown` is cancelled, sets `kafka_consumer_lag{topic, partition}`
    /// for each partition the consumer holds: the messages between its position and the
    /// partition's end.
    pub async fn report_lag_every(&self, period: Duration, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(period);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    let consumer = self.get();
                    let _ = tokio::task::spawn_blocking(move || report_lag(&consumer)).await;
                }
            }
        }
    }
}

/// Sets `kafka_consumer_lag{topic, partition}` for every partition `consumer` holds. Blocking
/// (one watermark request per partition): call it from a blocking thread, every few seconds.
fn report_lag(consumer: &MemberConsumer) {
    let Ok(positions) = consumer.position() else {
        return;
    };
    for element in positions.elements() {
        let Offset::Offset(position) = element.offset() else {
            continue;
        };
        if let Ok((_, high)) =
            consumer.fetch_watermarks(element.topic(), element.partition(), Duration::from_secs(1))
        {
            metrics::gauge!(
                crate::metrics::names::KAFKA_CONSUMER_LAG,
                "topic" => element.topic().to_owned(),
                "partition" => element.partition().to_string()
            )
            .set((high - position).max(0) as f64);
        }
    }
}

/// Decides where each partition a [`GroupConsumer`] is given starts, as the group gives it
/// (librdkafka's rebalance callback, on the thread that polls the consumer).
///
/// A [`Progress::CommittedByHand`] member starts where its group committed, else at
/// `auto.offset.reset`: librdkafka's own behaviour. A [`Progress::AutoCommitted`] member, a
/// group of its own such as a realtime-service replica's, starts a partition its group never
/// committed at the first message sent since it subscribed (less [`MemberContext::MARGIN`]),
/// not at `latest`: the group gives it partitions a moment to seconds after the replica started
/// answering screens, and a screen that joined meanwhile was answered with the counts of then,
/// so an update sent in between must still reach it. The same holds for a partition added to
/// the topic later (the group gives it out once metadata shows it, see
/// [`KafkaSettings::consumer_in_group`]): its first messages were all sent after the member
/// subscribed. Doing it in the callback, before librdkafka fetches anything, means nothing is
/// read from `latest` first: a newer update shown before the older ones would make the
/// realtime ledger drop those as stale.
#[derive(Clone, Debug)]
pub struct MemberContext {
    /// Milliseconds since the epoch that an [`Progress::AutoCommitted`] member's uncommitted
    /// partitions start from; `None` for a [`Progress::CommittedByHand`] member.
    start_from_ms: Option<i64>,
}

impl MemberContext {
    /// Messages sent this long before the member subscribed are read too, so that a producer
    /// whose clock is a little behind ours (a message's timestamp is its producer's) loses
    /// nothing; reading them is harmless for a member that may read a message twice.
    pub const MARGIN: Duration = Duration::from_secs(5);

    /// How long each look-up in the callback may wait for the brokers. The callback runs on
    /// the thread polling the consumer, so it is short: past it the partition starts where
    /// librdkafka would have started it.
    const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

    /// The context of a member with `progress` that subscribed at `subscribed_at`.
    pub fn new(progress: Progress, subscribed_at: SystemTime) -> Self {
        let start_from_ms = (progress == Progress::AutoCommitted).then(|| {
            subscribed_at
                .checked_sub(Self::MARGIN)
                .unwrap_or(SystemTime::UNIX_EPOCH)
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as i64)
        });
        Self { start_from_ms }
    }
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    /// librdkafka's default rebalance (assign what is given, drop what is revoked, eager or
    /// cooperative), with the starting offsets of an auto-committed member's partitions set
    /// first (see [`MemberContext`]).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Some(since_ms) = self.start_from_ms
                    && let Err(err) = start_uncommitted_at(consumer, partitions, since_ms)
                {
                    tracing::warn!(
                        error = %err,
                        "Cannot look up where newly given partitions start; they start at auto.offset.reset"
                    );
                }
                if cooperative {
                    consumer.incremental_assign(partitions)
                } else {
                    consumer.assign(partitions)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if cooperative => {
                consumer.incremental_unassign(partitions)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => consumer.unassign(),
            other => {
                tracing::error!(error = ?other, "Kafka rebalance failed; dropping the assignment");
                if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                }
            }
        };
        if let Err(err) = result {
            tracing::error!(error = %err, "Cannot apply the consumer group's assignment");
        }
    }
}

/// Sets, in `partitions` (an assignment about to be applied), the start of each partition the
/// group has no committed offset for: its first message sent at or after `since_ms`
/// (milliseconds since the epoch), or its end as of before the look-up when nothing was sent
/// since, so nothing sent after the look-up is skipped. Partitions with a committed offset are
/// left to resume there. Blocking: a request for the commits, one per such partition for its
/// end and one for the times, each within
/// [`MemberContext::LOOKUP_TIMEOUT`].
fn start_uncommitted_at(
    consumer: &BaseConsumer<MemberContext>,
    partitions: &mut TopicPartitionList,
    since_ms: i64,
) -> Result<(), KafkaError> {
    let committed =
        consumer.committed_offsets(partitions.clone(), MemberContext::LOOKUP_TIMEOUT)?;
    let mut ends = Vec::new();
    let mut times = TopicPartitionList::new();
    for element in committed.elements() {
        if element.offset() != Offset::Invalid {
            continue;
        }
        let (_, high) = consumer.fetch_watermarks(
            element.topic(),
            element.partition(),
            MemberContext::LOOKUP_TIMEOUT,
        )?;
        ends.push((element.topic().to_owned(), element.partition(), high));
        times.add_partition_offset(
            element.topic(),
            element.partition(),
            Offset::Offset(since_ms),
        )?;
    }
    if ends.is_empty() {
        return Ok(());
    }
    let found = consumer.offsets_for_times(times, MemberContext::LOOKUP_TIMEOUT)?;
    for (topic, partition, high) in ends {
        let start = match found
            .find_partition(&topic, partition)
            .map(|f| (f.offset(), f.error()))
        {
            Some((Offset::Offset(offset), Ok(()))) => offset,
            Some((_, Err(err))) => return Err(err),
            // Nothing sent since then.
            _ => high,
        };
        partitions.set_partition_offset(&topic, partition, Offset::Offset(start))?;
    }
    Ok(())
}
