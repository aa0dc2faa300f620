//! Helpers for tests that run against the real PostgreSQL, Redis and Kafka-compatible broker.
//!
//! Every test isolates itself: [`TestDatabase`] creates a fresh database with the migrations
//! applied, [`unique_topic`] names topics no other test uses, and poll ids are random UUIDs
//! so Redis keys never collide. Locations come from `TEST_DATABASE_URL`, `REDIS_URL` and
//! `KAFKA_BROKERS`, defaulting to the local stack `scripts/test` starts.
//!
//! A test runs the services either in its own process ([`server::start_server`] on port 0) or
//! as the real binaries ([`stack::Stack`], or two replicas of each on a Kafka cluster of their
//! own: [`replicas::ReplicaStack`]), and prepares its data with [`polls`],
//! [`tokens`] and [`topic_writer`].

pub mod otlp;
pub mod owned;
pub mod polls;
pub mod replicas;
pub mod server;
pub mod service_env;
pub mod socket_client;
pub mod stack;
pub mod tokens;
pub mod topic_writer;

use std::time::Duration;

use pollstream_infra::kafka::KafkaSettings;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use socket_client::SocketClient;

/// A secret long enough for the services' checks.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Server URL with rights to create databases.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Redis used by tests.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A connection to the Redis of [`redis_url`], as the services open one.
pub fn redis_connection() -> redis::aio::ConnectionManager {
    pollstream_infra::redis::connect_lazy(&redis_url(), Duration::from_secs(2))
        .expect("connecting to REDIS_URL")
}

/// Brokers used by tests.
pub fn kafka_brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// A TCP port on 127.0.0.1 that nothing listens on right now, for a server started later (and
/// perhaps restarted on it). Picked at random below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`, where every outgoing connection takes its local port): a
/// port from that range can be taken by some client's connection, a Kafka node's to its
/// peers for one, between being picked and being bound, or while its server is down. Never
/// the same port twice in one test process.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    const LOWEST: u16 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let mut given = GIVEN.lock().expect("free ports");
    if ephemeral_start > LOWEST + 1_000 {
        for _ in 0..1_000 {
            // A random number without a dependency: std's hasher keys are random per process
            // and differ on each call.
            let random = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            let port = LOWEST + (random % u64::from(ephemeral_start - LOWEST)) as u16;
            if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.insert(port);
                return port;
            }
        }
    }
    // No room below the ephemeral range: one the kernel picks.
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("binding a free port")
            .local_addr()
            .expect("local address")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// Where cargo put the workspace binary `name`: next to the `deps/` folder the running test
/// executable is in. Panics with a hint when it was not built.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the services first (`cargo build --bins`, which scripts/test does)",
        path.display()
    );
    path
}

/// Logs test output when `TEST_LOG` is set; silent otherwise.
pub fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ))
            .with_test_writer()
            .try_init();
    }
}

/// A database of its own for one test, migrated, dropped by nobody (names are unique and
/// cheap; `scripts/test` drops leftovers from earlier runs).
pub struct TestDatabase {
    /// Its URL, to hand to a service's configuration.
    pub url: String,
    /// A pool on it, for assertions.
    pub pool: PgPool,
}

impl TestDatabase {
    /// `(seq, total, votes per option in position order)` of a poll, straight from its rows.
    pub async fn counts(&self, poll_id: uuid::Uuid) -> (i64, i64, Vec<i64>) {
        let (seq, total): (i64, i64) = sqlx::query_as("SELECT seq, total FROM polls WHERE id = $1")
            .bind(poll_id)
            .fetch_one(&self.pool)
            .await
            .expect("reading the poll's counters");
        let votes: Vec<(i64,)> =
            sqlx::query_as("SELECT votes FROM options WHERE poll_id = $1 ORDER BY position")
                .bind(poll_id)
                .fetch_all(&self.pool)
                .await
                .expect("reading the option counters");
        (seq, total, votes.into_iter().map(|(v,)| v).collect())
    }

    /// How many ballots the poll has, straight from its rows.
    pub async fn ballots(&self, poll_id: uuid::Uuid) -> i64 {
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM ballots WHERE poll_id = $1")
            .bind(poll_id)
            .fetch_one(&self.pool)
            .await
            .expect("counting the poll's ballots");
        count
    }

    /// Creates and migrates a fresh database.
    pub async fn create() -> Self {
        let admin_url = admin_database_url();
        let name = format!("pollstream_test_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .expect("connecting to TEST_DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("creating the test database");
        admin.close().await;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("TEST_DATABASE_URL has no database part: {admin_url}"),
        };
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(&url)
            .await
            .expect("connecting to the test database");
        pollstream_infra::postgres::migrate(&pool)
            .await
            .expect("migrating the test database");
        Self { url, pool }
    }
}

/// The sum of the samples of metric `name` whose labels contain every one of `labels`, in a
/// Prometheus text exposition (`/metrics`); `None` when there is no such sample.
pub fn metric_sample(exposition: &str, name: &str, labels: &[&str]) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.starts_with(name) && matches!(line.as_bytes().get(name.len()), Some(b' ' | b'{'))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .reduce(|a, b| a + b)
}

/// A topic name no other test uses.
pub fn unique_topic(prefix: &str) -> String {
    format!("test-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates `topics` on the test broker.
pub async fn create_topics(topics: &[(&str, i32)]) {
    create_topics_on(&kafka_brokers(), topics).await;
}

/// Creates `topics` on the brokers at `brokers`, with their default replication factor.
pub async fn create_topics_on(brokers: &str, topics: &[(&str, i32)]) {
    KafkaSettings::new(brokers)
        .ensure_topics(topics)
        .await
        .expect("creating test topics");
}

/// A fresh set of the pipeline's topics, as the services name them in their configuration.
#[derive(Debug, Clone)]
pub struct PipelineTopics {
    /// `RAW_VOTES_TOPIC`, 3 partitions.
    pub raw_votes: String,
    /// `POLL_UPDATES_TOPIC`, 3 partitions.
    pub poll_updates: String,
    /// The aggregator's dead letters: `raw_votes` with the dead-letter suffix, 1 partition.
    pub dead_letters: String,
}

impl PipelineTopics {
    /// Names no other test uses, created on the test broker.
    pub async fn create() -> Self {
        Self::create_on(&kafka_brokers()).await
    }

    /// Like [`PipelineTopics::create`], on the brokers at `brokers`.
    pub async fn create_on(brokers: &str) -> Self {
        let raw_votes = unique_topic("raw-votes");
        let topics = Self {
            poll_updates: unique_topic("poll-updates"),
            dead_letters: format!("{raw_votes}{}", pollstream_wire::DEAD_LETTER_SUFFIX),
            raw_votes,
        };
        create_topics_on(
            brokers,
            &[
                (&topics.raw_votes, 3),
                (&topics.poll_updates, 3),
                (&topics.dead_letters, 1),
            ],
        )
        .await;
        topics
    }
}

/// A consumer reading `topic` from the beginning, in a group of its own, with its partition
/// assignment already in place.
pub async fn topic_reader(topic: &str) -> StreamConsumer {
    let consumer = KafkaSettings::new(kafka_brokers())
        .consumer(&format!("test-reader-{}", uuid::Uuid::new_v4()), "earliest")
        .expect("creating a test consumer");
    consumer.subscribe(&[topic]).expect("subscribing");
    consumer
}

/// Reads messages from `consumer` until `count` have arrived or `timeout` passes; returns
/// (key, payload, headers as pairs) for each.
pub async fn read_messages(
    consumer: &StreamConsumer,
    count: usize,
    timeout: Duration,
) -> Vec<ReadMessage> {
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while messages.len() < count {
        let Ok(received) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
            break;
        };
        let Ok(message) = received else { continue };
        let headers = message
            .headers()
            .map(|headers| {
                use rdkafka::message::Headers;
                headers
                    .iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        messages.push(ReadMessage {
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    messages
}

/// The log end offset of every partition of `topic`, in partition order: how many messages
/// each holds (the test topics are never compacted or truncated).
pub async fn partition_ends(topic: &str) -> Vec<i64> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer = KafkaSettings::new(kafka_brokers())
            .consumer(
                &format!("test-offsets-{}", uuid::Uuid::new_v4()),
                "earliest",
            )
            .expect("creating a test consumer");
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("reading the topic's metadata");
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len())
            .unwrap_or_default();
        (0..partitions as i32)
            .map(|partition| {
                consumer
                    .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                    .expect("reading a partition's offsets")
                    .1
            })
            .collect()
    })
    .await
    .expect("reading partition offsets")
}

/// Commits, for consumer group `group`, every partition of `topic` at its end (see
/// [`partition_ends`]), as the aggregator does once it has counted everything: for tests of
/// voting-api alone that need the aggregator to look caught up.
pub async fn commit_group_at_ends(group: &str, topic: &str) {
    let ends = partition_ends(topic).await;
    let (group, topic) = (group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer = KafkaSettings::new(kafka_brokers())
            .consumer(&group, "earliest")
            .expect("creating a consumer in the group");
        let mut offsets = rdkafka::TopicPartitionList::new();
        for (partition, end) in ends.into_iter().enumerate() {
            offsets
                .add_partition_offset(&topic, partition as i32, rdkafka::Offset::Offset(end))
                .expect("an offset to commit");
        }
        consumer
            .commit(&offsets, rdkafka::consumer::CommitMode::Sync)
            .expect("committing the group's offsets");
    })
    .await
    .expect("committing offsets");
}

/// Members of consumer group `group` that hold at least one partition, once the group is
/// stable (0 while it is rebalancing or unknown).
pub async fn members_with_partitions(group: &str) -> usize {
    let group = group.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer = KafkaSettings::new(kafka_brokers())
            .consumer(&format!("test-groups-{}", uuid::Uuid::new_v4()), "earliest")
            .expect("creating a test consumer");
        let Ok(groups) = consumer.fetch_group_list(Some(&group), Duration::from_secs(10)) else {
            return 0;
        };
        groups
            .groups()
            .iter()
            .filter(|g| g.name() == group && g.state() == "Stable")
            .flat_map(|g| g.members())
            .filter(|member| member.assignment().is_some_and(|a| !a.is_empty()))
            .count()
    })
    .await
    .expect("reading the consumer group")
}

/// One message read by [`read_messages`].
#[derive(Debug, Clone)]
pub struct ReadMessage {
    /// The key, as text.
    pub key: Option<String>,
    /// The value.
    pub payload: Vec<u8>,
    /// Headers as (name, value) pairs.
    pub headers: Vec<(String, String)>,
}

impl ReadMessage {
    /// The value of header `key`, if the message has it.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
