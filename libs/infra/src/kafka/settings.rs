//! Where the brokers are, and the client configuration every producer, consumer and admin
//! client is built from.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;

use super::{MemberConsumer, MemberContext};
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
    /// `fetch.wait.max.ms` of [`KafkaSettings::consumer`]: a fetch returns as soon as a message
    /// arrives, so this only bounds how often an idle consumer asks again.
    pub const DEFAULT_FETCH_WAIT: Duration = Duration::from_millis(20);

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
        self.consumer_config(group_id, offset_reset, Self::DEFAULT_FETCH_WAIT)
            .create()
    }

    /// Like [`KafkaSettings::consumer`] with a chosen `fetch.wait.max.ms` and, when
    /// `instance_id` is given, static group membership (`group.instance.id`, KIP-345): a member
    /// that restarts with the same id after a crash takes its partitions back at once, with no
    /// rebalance and no wait for the dead member's session to expire. Two live members must
    /// never share an id (the broker fences the older one).
    /// `progress` says how its position is kept ([`Progress`]).
    pub fn consumer_in_group(
        &self,
        group_id: &str,
        offset_reset: &str,
        fetch_wait: Duration,
        instance_id: Option<&str>,
        progress: Progress,
        context: MemberContext,
    ) -> Result<MemberConsumer, KafkaError> {
        let mut config = self.consumer_config(group_id, offset_reset, fetch_wait);
        if progress == Progress::AutoCommitted {
            config
                .set("enable.auto.commit", "true")
                .set("enable.auto.offset.store", "true");
        }
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
        config.create_with_context(context)
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
            .set("partition.assignment.strategy", "range,roundrobin")
            // A partition added to a topic is given out once the members' metadata shows it:
            // within seconds instead of librdkafka's five minutes, so that the updates a
            // producer already sends there are not held back that long.
            .set("topic.metadata.refresh.interval.ms", METADATA_REFRESH_MS);
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

/// How a group member's position in its partitions is kept, which decides where it resumes
/// when the group gives it partitions again: after a restart, and after a rebalance (its
/// session lapsed while the group coordinator's broker was down, and the member rejoined).
/// Without a committed offset it starts at `auto.offset.reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Committed by the caller, only after the side effects of the messages it covers
    /// succeeded: what was read and not committed is read again (at least once).
    CommittedByHand,
    /// Committed by librdkafka in the background (`enable.auto.commit`, every 5 s), as
    /// messages are handed out: the member resumes where it was, within those 5 s, instead of
    /// at `auto.offset.reset`, so a rebalance loses no message (a few are read twice). For a
    /// member whose reading has no effect to redo, such as realtime-service's. A partition its
    /// group never committed starts at the first message sent since it subscribed, not at
    /// `auto.offset.reset` (see [`crate::kafka::MemberContext`]).
    AutoCommitted,
}

/// `topic.metadata.refresh.interval.ms` of a consumer: how soon it sees partitions added to
/// its topics (see [`KafkaSettings::consumer_in_group`]).
const METADATA_REFRESH_MS: &str = "5000";

/// `session.timeout.ms` of a static group member; see [`KafkaSettings::consumer_in_group`].
const STATIC_SESSION_TIMEOUT_MS: &str = "30000";
