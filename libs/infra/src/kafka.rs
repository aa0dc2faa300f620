//! Kafka clients configured the way every pollstream service needs them.
//!
//! Producers are idempotent with `acks=all`, so a delivery report means the message is durable
//! and a retry inside librdkafka cannot duplicate it. Consumers commit offsets by hand, only
//! after the side effect of the messages they cover succeeded.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;

use crate::env::{ConfigError, Vars};

/// Where the brokers are and how long a produce may take before it counts as failed.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `bootstrap.servers`, from `KAFKA_BROKERS`.
    pub brokers: String,
    /// Upper bound on a produce, retries included (`message.timeout.ms`); past it the caller
    /// gets an error and can answer `503` instead of hanging.
    pub produce_timeout: Duration,
    /// librdkafka debug contexts (`KAFKA_DEBUG`, e.g. `cgrp,fetch`), logged through tracing
    /// under the `rdkafka` target; for diagnosing broker trouble.
    pub debug: Option<String>,
}

impl KafkaSettings {
    /// Reads `KAFKA_BROKERS` (default `127.0.0.1:9092`).
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            brokers: vars.or_default("KAFKA_BROKERS", "127.0.0.1:9092"),
            produce_timeout: Duration::from_millis(vars.ranged_or(
                "KAFKA_PRODUCE_TIMEOUT_MS",
                5_000u64,
                100..=300_000,
            )?),
            debug: Some(vars.or_default("KAFKA_DEBUG", "")).filter(|d| !d.is_empty()),
        })
    }

    /// Settings for a broker list with the default produce timeout; used by tests and tools.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            produce_timeout: Duration::from_secs(5),
            debug: None,
        }
    }

    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("socket.timeout.ms", "10000")
            .set("log_level", "4");
        if let Some(debug) = &self.debug {
            config.set("debug", debug).set("log_level", "7");
        }
        config
    }

    /// An idempotent `acks=all` producer; a delivery report means the broker has the message.
    pub fn producer(&self) -> Result<FutureProducer, KafkaError> {
        self.base()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Batches are what the broker commits; a few ms of linger makes them large under
            // load at little cost to a single vote's latency.
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("compression.type", "none")
            // The Java client's partitioner, so a key lands on the same partition whether the
            // services, kafka-console-producer or kcat (with the same setting) produced it.
            .set("partitioner", "murmur2_random")
            .set(
                "message.timeout.ms",
                self.produce_timeout.as_millis().to_string(),
            )
            .set(
                "request.timeout.ms",
                self.produce_timeout.as_millis().min(30_000).to_string(),
            )
            .create()
    }

    /// A consumer in `group_id` with manual offset commits and a short fetch wait.
    pub fn consumer(
        &self,
        group_id: &str,
        offset_reset: &str,
    ) -> Result<StreamConsumer, KafkaError> {
        self.consumer_config(group_id, offset_reset, Duration::from_millis(20))
            .create()
    }

    /// Like [`KafkaSettings::consumer`] with a chosen `fetch.wait.max.ms` and, when
    /// `instance_id` is given, static group membership (`group.instance.id`, KIP-345): a member
    /// that restarts with the same id after a crash takes its partitions back at once, with no
    /// rebalance and no wait for the dead member's session to expire. Two live members must
    /// never share an id (the broker fences the older one).
    pub fn consumer_in_group(
        &self,
        group_id: &str,
        offset_reset: &str,
        fetch_wait: Duration,
        instance_id: Option<&str>,
    ) -> Result<StreamConsumer, KafkaError> {
        let mut config = self.consumer_config(group_id, offset_reset, fetch_wait);
        if let Some(instance_id) = instance_id {
            config
                .set("group.instance.id", instance_id)
                // A static member that restarts takes its partitions back whatever this says,
                // so it only bounds how long a replica that is gone for good holds them. It
                // must outlast a group coordinator's failover (Kafka fences a dead broker
                // after broker.session.timeout.ms, 9 s): a member whose session lapses
                // meanwhile rejoins and can be fenced under its own instance id (seen with
                // 10 s when the coordinator's broker was killed).
                .set("session.timeout.ms", STATIC_SESSION_TIMEOUT_MS);
        }
        config.create()
    }

    fn consumer_config(
        &self,
        group_id: &str,
        offset_reset: &str,
        fetch_wait: Duration,
    ) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", offset_reset)
            // A fetch returns as soon as a message arrives; the wait only bounds how often an
            // idle consumer asks again.
            .set("fetch.wait.max.ms", fetch_wait.as_millis().to_string())
            // A member that died without leaving (kill -9) and does not come back is dropped
            // after the session timeout; a rebalance waits at most the poll interval for slow
            // members. Both short, so its partitions move to a live member within seconds.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("max.poll.interval.ms", "30000")
            .set("partition.assignment.strategy", "range,roundrobin");
        config
    }

    /// Creates every topic that does not exist yet, with `partitions` each and the brokers'
    /// `default.replication.factor` (KIP-464: 1 on one local node, 3 on `scripts/up
    /// --cluster`; a production cluster sets its own).
    pub async fn ensure_topics(&self, topics: &[(&str, i32)]) -> Result<(), KafkaError> {
        let admin: AdminClient<DefaultClientContext> = self.base().create()?;
        let new_topics: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(-1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&new_topics, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(KafkaError::AdminOp(code)),
            }
        }
        Ok(())
    }
}

/// `session.timeout.ms` of a static group member; see [`KafkaSettings::consumer_in_group`].
const STATIC_SESSION_TIMEOUT_MS: &str = "30000";

/// A consumer subscribed to its topics in a consumer group, replaced by a fresh one when
/// librdkafka reports it failed fatally.
///
/// A fatal consumer error (a static member fenced by the broker, KIP-345) leaves the
/// client unusable for good: every later poll fails. Offsets are committed only after their
/// side effects, so the fresh consumer resumes from the last commit and what the old one had
/// read is replayed, harmlessly.
pub struct GroupConsumer {
    spec: GroupSpec,
    current: std::sync::RwLock<(Arc<StreamConsumer>, std::time::Instant)>,
}

/// What a [`GroupConsumer`] needs to build its consumer again.
struct GroupSpec {
    settings: KafkaSettings,
    group_id: String,
    offset_reset: String,
    fetch_wait: Duration,
    instance_id: Option<String>,
    topics: Vec<String>,
}

impl GroupSpec {
    fn consumer(&self) -> Result<Arc<StreamConsumer>, KafkaError> {
        use rdkafka::consumer::Consumer;
        let consumer = self.settings.consumer_in_group(
            &self.group_id,
            &self.offset_reset,
            self.fetch_wait,
            self.instance_id.as_deref(),
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
        topics: &[&str],
    ) -> Result<Self, KafkaError> {
        let spec = GroupSpec {
            settings: settings.clone(),
            group_id: group_id.to_owned(),
            offset_reset: offset_reset.to_owned(),
            fetch_wait,
            instance_id: instance_id.map(str::to_owned),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        };
        let first = spec.consumer()?;
        Ok(Self {
            spec,
            current: std::sync::RwLock::new((first, std::time::Instant::now())),
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
    pub fn recover(&self, failed: &Arc<StreamConsumer>) -> bool {
        use rdkafka::consumer::Consumer;
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
                metrics::counter!("kafka_consumer_rebuilds_total").increment(1);
                let old = std::mem::replace(&mut *current, (fresh, std::time::Instant::now()));
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
}

/// Sets `kafka_consumer_lag{topic, partition}` for every partition `consumer` holds: the
/// messages between its position and the partition's end. Blocking (one watermark request per
/// partition): call it from a blocking thread, every few seconds.
pub fn report_lag(consumer: &rdkafka::consumer::StreamConsumer) {
    use rdkafka::consumer::Consumer;
    let Ok(positions) = consumer.position() else {
        return;
    };
    for element in positions.elements() {
        let rdkafka::Offset::Offset(position) = element.offset() else {
            continue;
        };
        if let Ok((_, high)) =
            consumer.fetch_watermarks(element.topic(), element.partition(), Duration::from_secs(1))
        {
            metrics::gauge!(
                "kafka_consumer_lag",
                "topic" => element.topic().to_owned(),
                "partition" => element.partition().to_string()
            )
            .set((high - position).max(0) as f64);
        }
    }
}

/// An idempotent producer that replaces itself when a send fails.
///
/// A producer that lost its brokers does not always come back with them. librdkafka's
/// idempotent producer rides out one broker's restart or a leader change, but after all three
/// brokers of the fault test were stopped and started again, one producer in four timed out
/// every send for the next 60 s (the brokers were answering; a fresh producer got through at
/// once), and a fatal error (a sequence gap it cannot repair) leaves a client unusable for
/// good. So after any failed send other than a full local queue (plain overload), a fresh
/// producer is built, at most every [`ResilientProducer::REBUILD_INTERVAL`]; it registers a
/// new producer id with the brokers. Sends still in flight keep the old producer alive until
/// they finish; a message that reaches Kafka twice that way is dropped by the ballot key.
pub struct ResilientProducer {
    settings: KafkaSettings,
    current: std::sync::RwLock<(FutureProducer, std::time::Instant)>,
}

impl ResilientProducer {
    /// Shortest time between two rebuilds.
    pub const REBUILD_INTERVAL: Duration = Duration::from_secs(1);

    /// Builds the first producer.
    pub fn new(settings: KafkaSettings) -> Result<Self, KafkaError> {
        let producer = settings.producer()?;
        Ok(Self {
            settings,
            current: std::sync::RwLock::new((producer, std::time::Instant::now())),
        })
    }

    /// The producer to send with now (cheap: a reference-counted handle).
    pub fn get(&self) -> FutureProducer {
        self.current
            .read()
            .expect("producer lock poisoned")
            .0
            .clone()
    }

    /// Called after `failed` could not deliver because of `error`: rebuilds the producer
    /// unless the local queue was merely full, another caller already rebuilt it, or the last
    /// rebuild is too recent.
    pub fn recover(&self, failed: &FutureProducer, error: &KafkaError) {
        use rdkafka::producer::Producer;
        let fatal = failed.client().fatal_error();
        let overloaded = error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull);
        if overloaded && fatal.is_none() {
            return;
        }
        let mut current = self.current.write().expect("producer lock poisoned");
        let same = current.0.client().native_ptr() == failed.client().native_ptr();
        if !same || current.1.elapsed() < Self::REBUILD_INTERVAL {
            return;
        }
        match self.settings.producer() {
            Ok(fresh) => {
                tracing::warn!(error = %error, fatal = ?fatal, "Kafka send failed; replaced the producer with a fresh one");
                metrics::counter!("kafka_producer_rebuilds_total").increment(1);
                *current = (fresh, std::time::Instant::now());
            }
            Err(err) => tracing::error!(error = %err, "Cannot rebuild the Kafka producer"),
        }
    }

    /// Waits up to `timeout` for queued messages to be delivered; for shutdown.
    pub fn flush(&self, timeout: Duration) {
        use rdkafka::producer::Producer;
        let _ = self.get().flush(timeout);
    }
}
