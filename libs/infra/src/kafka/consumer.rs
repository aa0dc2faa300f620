//! Consumers in a consumer group: replaced when they fail fatally, and their lag reported.
//!
//! Offsets are committed by hand, only after the side effect of the messages they cover
//! succeeded (see [`KafkaSettings::consumer_in_group`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{KafkaSettings, Progress};
use crate::log_throttle::LogThrottle;

/// A consumer subscribed to its topics in a consumer group, replaced by a fresh one when
/// librdkafka reports it failed fatally.
///
/// A fatal consumer error (a static member fenced by the broker, KIP-345) leaves the
/// client unusable for good: every later poll fails. Offsets are committed only after their
/// side effects, so the fresh consumer resumes from the last commit and what the old one had
/// read is replayed, harmlessly.
pub struct GroupConsumer {
    spec: GroupSpec,
    current: RwLock<(Arc<StreamConsumer>, Instant)>,
    /// When it subscribed: [`GroupConsumer::anchor_positions`] starts reading there, not at
    /// the later moment the group gave it partitions.
    subscribed_at: SystemTime,
    /// Set once [`GroupConsumer::anchor_positions`] moved the first partitions back to
    /// `subscribed_at`: until then a replica's readiness must not say it reads every update.
    anchored: AtomicBool,
}

/// What a [`GroupConsumer`] needs to build its consumer again.
struct GroupSpec {
    settings: KafkaSettings,
    group_id: String,
    offset_reset: String,
    fetch_wait: Duration,
    instance_id: Option<String>,
    progress: Progress,
    topics: Vec<String>,
}

impl GroupSpec {
    fn consumer(&self) -> Result<Arc<StreamConsumer>, KafkaError> {
        let consumer = self.settings.consumer_in_group(
            &self.group_id,
            &self.offset_reset,
            self.fetch_wait,
            self.instance_id.as_deref(),
            self.progress,
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
        };
        let first = spec.consumer()?;
        Ok(Self {
            spec,
            current: RwLock::new((first, Instant::now())),
            subscribed_at: SystemTime::now(),
            anchored: AtomicBool::new(progress != Progress::AutoCommitted),
        })
    }

    /// The consumer to poll and commit with now (cheap: a reference-counted handle).
    pub fn get(&self) -> Arc<StreamConsumer> {
        self.current
            .read()
            .expect("consumer lock poisoned")
            .0
            .clone()
    }

    /// Called after `failed` returned an error: when that error left it fatally failed,
    /// replaces it (unless another caller already did, or the last replacement is too recent)
    /// and returns true; the caller must then drop what it read and not yet committed.
    pub(super) fn recover(&self, failed: &Arc<StreamConsumer>) -> bool {
        let Some(fatal) = failed.client().fatal_error() else {
            return false;
        };
        let mut current = self.current.write().expect("consumer lock poisoned");
        if !Arc::ptr_eq(&current.0, failed) {
            return true;
        }
        if current.1.elapsed() < Self::REPLACE_INTERVAL {
            return false;
        }
        match self.spec.consumer() {
            Ok(fresh) => {
                tracing::error!(
                    error = ?fatal,
                    instance_id = ?self.spec.instance_id,
                    "Kafka consumer failed fatally; replaced it, and what it read will be replayed from the last commit"
                );
                metrics::counter!(crate::metrics::names::KAFKA_CONSUMER_REBUILDS_TOTAL)
                    .increment(1);
                let old = std::mem::replace(&mut *current, (fresh, Instant::now()));
                // Closing a consumer blocks: not on an async worker.
                std::thread::spawn(move || drop(old));
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "Cannot replace the failed Kafka consumer");
                false
            }
        }
    }

    /// Messages sent this long before [`GroupConsumer::subscribe`] are read too, so that a
    /// producer whose clock is a little behind ours (a message's timestamp is its producer's)
    /// loses nothing; reading them is harmless for a member that may read a message twice.
    pub const ANCHOR_MARGIN: Duration = Duration::from_secs(5);

    /// For a [`Progress::AutoCommitted`] member of a group of its own that starts at
    /// `auto.offset.reset` = `latest`: once the consumer first holds partitions, moves it back
    /// in each to the first message sent since it subscribed (less [`Self::ANCHOR_MARGIN`]) and
    /// commits that offset, then returns (or when `shutdown` is cancelled).
    ///
    /// `latest` is resolved only when the group gives the consumer its partitions, a moment to
    /// seconds after the member started (and began answering callers): a message sent in
    /// between was skipped. In a chaos run a restarted realtime-service replica's screens
    /// re-joined, were answered with the counts of then, and the poll's last update, sent before
    /// the new group had its partitions, never reached them. The commit matters for partitions
    /// nothing is read from: librdkafka auto-commits only the offsets of messages it handed out,
    /// so after a rebalance such a partition would start again at `latest`, skipping what was
    /// sent while the group rebalanced. Looks every 200 ms.
    ///
    /// Until it is done, what the consumer reads comes from `latest` and must be dropped (see
    /// [`GroupConsumer::anchored`]): a caller that handed it on would show newer updates first,
    /// and then drop the ones it reads again from the anchor as older than those. So it seeks
    /// twice: once, then [`GroupConsumer::anchored`] turns true, then again, since what was
    /// read between the first seek and the flag was dropped. Returns at once for a
    /// [`Progress::CommittedByHand`] member, whose unread messages must not be skipped.
    pub async fn anchor_positions(&self, shutdown: CancellationToken) {
        if self.spec.progress != Progress::AutoCommitted {
            return;
        }
        let since = self
            .subscribed_at
            .checked_sub(Self::ANCHOR_MARGIN)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let since_ms = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64);
        let failures = LogThrottle::new(5_000);
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    let consumer = self.get();
                    let error = match tokio::task::spawn_blocking(move || anchor(&consumer, since_ms)).await {
                        // The second seek replays whatever the caller dropped between the
                        // first one and the flag (see `anchored`); what it read after the flag
                        // comes again, and is stale by then.
                        Ok(Ok(true)) if self.anchored.swap(true, Ordering::AcqRel) => return,
                        Ok(Ok(true)) => continue,
                        Ok(Ok(false)) => continue,
                        Ok(Err(err)) => err.to_string(),
                        Err(err) => err.to_string(),
                    };
                    if let Some(held_back) = failures.admit() {
                        tracing::warn!(error, held_back, "Cannot commit where the consumer starts; retrying");
                    }
                }
            }
        }
    }

    /// Whether the consumer reads from where it must: always for a
    /// [`Progress::CommittedByHand`] member, and for an auto-committed one once
    /// [`GroupConsumer::anchor_positions`] has positioned its first partitions. Before that,
    /// what it reads starts at `latest` and comes again after the anchor: the caller drops it.
    pub fn anchored(&self) -> bool {
        self.anchored.load(Ordering::Acquire)
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

/// Seeks every partition `consumer` holds back to its first message sent at or after
/// `since_ms` (milliseconds since the epoch), unless it is there or earlier already, and
/// commits those offsets; `false` while it holds none yet. Blocking (a few requests per
/// partition). Reading a message again is harmless here, so a repeated call does no harm.
fn anchor(consumer: &StreamConsumer, since_ms: i64) -> Result<bool, KafkaError> {
    if consumer.assignment()?.count() == 0 {
        return Ok(false);
    }
    let positions = consumer.position()?;
    // The ends are read before the look-up by time: a partition with nothing sent since
    // `since_ms` then starts at its end of before the look-up, and misses nothing sent after.
    let mut ends = Vec::new();
    let mut times = TopicPartitionList::new();
    for element in positions.elements() {
        let (_, high) = consumer.fetch_watermarks(
            element.topic(),
            element.partition(),
            Duration::from_secs(5),
        )?;
        ends.push(high);
        times.add_partition_offset(
            element.topic(),
            element.partition(),
            Offset::Offset(since_ms),
        )?;
    }
    let found = consumer.offsets_for_times(times, Duration::from_secs(5))?;
    let mut starts = TopicPartitionList::new();
    for (element, high) in positions.elements().iter().zip(ends) {
        let start = match found
            .find_partition(element.topic(), element.partition())
            .map(|f| (f.offset(), f.error()))
        {
            Some((Offset::Offset(offset), Ok(()))) => offset,
            Some((_, Err(err))) => return Err(err),
            // Nothing sent since then.
            _ => high,
        };
        if let Offset::Offset(position) = element.offset()
            && position <= start
        {
            continue;
        }
        starts.add_partition_offset(element.topic(), element.partition(), Offset::Offset(start))?;
    }
    if starts.count() > 0 {
        for element in consumer
            .seek_partitions(starts.clone(), Duration::from_secs(5))?
            .elements()
        {
            element.error()?;
        }
        consumer.commit(&starts, CommitMode::Sync)?;
    }
    Ok(true)
}

/// Sets `kafka_consumer_lag{topic, partition}` for every partition `consumer` holds. Blocking
/// (one watermark request per partition): call it from a blocking thread, every few seconds.
fn report_lag(consumer: &StreamConsumer) {
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
