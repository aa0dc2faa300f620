//! poll-aggregator configuration, read from the environment once at start.

use std::time::Duration;

use pollstream_infra::env::{ConfigError, Vars};
use pollstream_infra::http::HttpSettings;
use pollstream_infra::kafka::KafkaSettings;
use pollstream_infra::redis::RedisSettings;
use pollstream_wire::{DEAD_LETTER_SUFFIX, POLL_UPDATES_TOPIC, RAW_VOTES_TOPIC};

/// Everything poll-aggregator needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// PostgreSQL, where ballots and counters live.
    pub database_url: String,
    /// Redis and its command timeout.
    pub redis: RedisSettings,
    /// Kafka brokers and produce timeout.
    pub kafka: KafkaSettings,
    /// Port of the health and metrics server (`POLL_AGGREGATOR_PORT`).
    pub port: u16,
    /// Header-read (and idle keep-alive) timeout, total and per-address connection caps of the
    /// health and metrics server (`HTTP_HEADER_READ_TIMEOUT_MS` default 10,000 ms,
    /// `HTTP_MAX_CONNECTIONS` default 16,384, `HTTP_MAX_CONNECTIONS_PER_IP` default 8,192, `0`
    /// off), so that clients that open connections and never finish a request cannot exhaust
    /// the file descriptors; see `pollstream_infra::http`.
    pub http: HttpSettings,
    /// A batch is flushed at least this often (`FLUSH_INTERVAL_MS`).
    pub flush_interval: Duration,
    /// A batch is flushed as soon as it holds this many votes (`FLUSH_MAX_VOTES`).
    pub flush_max_votes: usize,
    /// Topic votes are consumed from.
    pub raw_votes_topic: String,
    /// Topic snapshots are produced to.
    pub poll_updates_topic: String,
    /// Topic undecodable or invalid votes are parked in.
    pub dead_letter_topic: String,
    /// Consumer group; all replicas share it so each vote is consumed by one of them.
    pub group_id: String,
    /// This replica's stable identity in the group (`AGGREGATOR_INSTANCE_ID`, Kafka's
    /// `group.instance.id`): a replica restarted after a crash gets its partitions back at
    /// once instead of after the dead member's session timeout. Unique per replica (the pod
    /// name of a StatefulSet); unset means dynamic membership.
    pub instance_id: Option<String>,
    /// Longest a fetch waits for new votes (`KAFKA_FETCH_WAIT_MS`, librdkafka's
    /// `fetch.wait.max.ms`). Apache Kafka answers a fetch as soon as votes arrive, so this only
    /// bounds how often an idle consumer asks again: with a 200 ms flush at 1,000 votes/s,
    /// vote-to-screen p99 was 208.8-210.3 ms at 20, 209.7-220.9 ms at 100 and 210.1-212.6 ms
    /// at 500 (three runs each); the default stays at the low end of that range.
    pub fetch_wait: Duration,
    /// How long SIGTERM may take to flush the last batch before giving up on it (it is then
    /// replayed by the next owner of the partitions, since its offsets were not committed).
    pub drain_timeout: Duration,
}

impl Config {
    /// Reads the configuration from `vars`, naming the variable on any error.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let raw_votes_topic = vars.or_default("RAW_VOTES_TOPIC", RAW_VOTES_TOPIC);
        Ok(Self {
            database_url: vars.required("DATABASE_URL")?,
            redis: RedisSettings::from_vars(vars)?,
            kafka: KafkaSettings::from_vars(vars)?,
            port: vars.parsed_or("POLL_AGGREGATOR_PORT", 3002)?,
            http: HttpSettings::from_vars(vars)?,
            flush_interval: Duration::from_millis(vars.ranged_or(
                "FLUSH_INTERVAL_MS",
                2_000u64,
                10..=600_000,
            )?),
            flush_max_votes: vars.ranged_or("FLUSH_MAX_VOTES", 20_000usize, 1..=1_000_000)?,
            dead_letter_topic: format!("{raw_votes_topic}{DEAD_LETTER_SUFFIX}"),
            raw_votes_topic,
            poll_updates_topic: vars.or_default("POLL_UPDATES_TOPIC", POLL_UPDATES_TOPIC),
            group_id: vars.or_default("AGGREGATOR_GROUP_ID", "poll-aggregator"),
            instance_id: instance_id(vars)?,
            fetch_wait: Duration::from_millis(vars.ranged_or(
                "KAFKA_FETCH_WAIT_MS",
                20u64,
                1..=5_000,
            )?),
            drain_timeout: Duration::from_millis(vars.ranged_or(
                "DRAIN_TIMEOUT_MS",
                20_000u64,
                0..=600_000,
            )?),
        })
    }
}

/// `AGGREGATOR_INSTANCE_ID`, checked against what Kafka accepts as a `group.instance.id` (the
/// rule for topic names: at most 249 of `[A-Za-z0-9._-]`), so a bad value stops the service at
/// start instead of failing every join.
fn instance_id(vars: &Vars) -> Result<Option<String>, ConfigError> {
    let id = vars.or_default("AGGREGATOR_INSTANCE_ID", "");
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() > 249
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(ConfigError::Invalid {
            name: "AGGREGATOR_INSTANCE_ID",
            value: id,
            reason: "use at most 249 letters, digits, '.', '_' or '-'".to_owned(),
        });
    }
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_topic_follows_the_votes_topic() {
        let vars = Vars::from_pairs([
            ("DATABASE_URL", "postgres://x/y"),
            ("RAW_VOTES_TOPIC", "t1"),
        ]);
        let config = Config::from_vars(&vars).unwrap();
        assert_eq!(config.dead_letter_topic, "t1.dlq");
        assert_eq!(config.flush_interval, Duration::from_secs(2));
        assert_eq!(config.port, 3002);
    }

    #[test]
    fn instance_id_is_optional_and_checked() {
        let base = [("DATABASE_URL", "postgres://x/y")];
        let config = Config::from_vars(&Vars::from_pairs(base)).unwrap();
        assert_eq!(config.instance_id, None);
        let vars = Vars::from_pairs([base[0], ("AGGREGATOR_INSTANCE_ID", "poll-aggregator-0")]);
        let config = Config::from_vars(&vars).unwrap();
        assert_eq!(config.instance_id.as_deref(), Some("poll-aggregator-0"));
        let vars = Vars::from_pairs([base[0], ("AGGREGATOR_INSTANCE_ID", "pod 0")]);
        let err = Config::from_vars(&vars).unwrap_err().to_string();
        assert!(err.contains("AGGREGATOR_INSTANCE_ID"), "{err}");
    }

    #[test]
    fn malformed_flush_size_is_named() {
        let vars = Vars::from_pairs([
            ("DATABASE_URL", "postgres://x/y"),
            ("FLUSH_MAX_VOTES", "lots"),
        ]);
        let err = Config::from_vars(&vars).unwrap_err().to_string();
        assert!(err.contains("FLUSH_MAX_VOTES"), "{err}");
    }
}
