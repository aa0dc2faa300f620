//! The production layout in miniature, on one machine: two replicas of each service (as a
//! Deployment or StatefulSet runs them), a three-broker Apache Kafka cluster (replication factor
//! 3, `min.insync.replicas=2`), and a PostgreSQL and a Redis of its own (no persistence), every
//! process the real binary on a port of its own. Any replica, broker, Redis or PostgreSQL can be
//! killed and started again, and [`Probe`]s tell whether each process is healthy.
//!
//! Nothing here touches the shared infrastructure: the chaos run and its test own every
//! process. The binaries come from one folder ([`ReplicaSettings::bin_dir`]): cargo's
//! `target/debug` for a test, the folder of the running program for `pollstream-chaos`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pollstream_infra::jwt::JwtKeys;
use reqwest::StatusCode;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::owned::{OwnedCluster, OwnedPostgres, OwnedRedis};
use crate::service_env::ServiceEnv;
use crate::{PipelineTopics, free_port, tokens};

/// One of the three services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// The HTTP API that takes votes.
    VotingApi,
    /// The consumer that counts votes into PostgreSQL.
    PollAggregator,
    /// The Socket.IO server of the screens.
    RealtimeService,
}

impl Service {
    /// Every service, in pipeline order.
    pub const ALL: [Service; 3] = [
        Service::VotingApi,
        Service::PollAggregator,
        Service::RealtimeService,
    ];

    /// The binary's (and the service's) name.
    pub fn name(self) -> &'static str {
        match self {
            Service::VotingApi => "voting-api",
            Service::PollAggregator => "poll-aggregator",
            Service::RealtimeService => "realtime-service",
        }
    }

    fn port_variable(self) -> &'static str {
        match self {
            Service::VotingApi => "VOTING_API_PORT",
            Service::PollAggregator => "POLL_AGGREGATOR_PORT",
            Service::RealtimeService => "REALTIME_SERVICE_PORT",
        }
    }
}

/// How to start a [`ReplicaStack`].
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    /// Replicas of each service (2 by default).
    pub replicas: usize,
    /// Kafka brokers (3 by default: replication factor 3, `min.insync.replicas=2`).
    pub brokers: usize,
    /// The aggregator's `FLUSH_INTERVAL_MS`.
    pub flush_interval_ms: u64,
    /// The folder holding the `voting-api`, `poll-aggregator` and `realtime-service` binaries.
    pub bin_dir: PathBuf,
    /// Where each process logs (`<service>-<replica>.log`, `.<run>.log` after a restart).
    pub log_dir: PathBuf,
    /// Extra environment variables for every service.
    pub extra: Vec<(String, String)>,
}

impl ReplicaSettings {
    /// Two replicas of each service, three brokers, a 500 ms flush interval, the binaries
    /// next to the running program (see [`binary_dir`]), logs under `<bin_dir>/e2e-logs/<name>`.
    pub fn new(name: &str) -> Self {
        let bin_dir = binary_dir();
        Self {
            replicas: 2,
            brokers: 3,
            flush_interval_ms: 500,
            log_dir: bin_dir.join("e2e-logs").join(name),
            bin_dir,
            extra: Vec::new(),
        }
    }
}

/// The folder of the service binaries for the running program: its own folder when they are
/// there (`target/release/pollstream-chaos`), else its parent (a test in `target/debug/deps`).
pub fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let own = exe.parent().expect("the program's folder").to_path_buf();
    if own.join("voting-api").exists() {
        return own;
    }
    own.parent().map(Path::to_path_buf).unwrap_or(own)
}

/// One replica of a service: its port stays the same across restarts.
#[derive(Debug)]
pub struct Replica {
    /// Which service.
    pub service: Service,
    /// Its number among the service's replicas, from 0.
    pub index: usize,
    /// `http://127.0.0.1:<port>`: the API, the Socket.IO endpoint, or health and metrics.
    pub url: String,
    env: ServiceEnv,
    child: Option<Child>,
    runs: usize,
}

impl Replica {
    /// `<service>-<index>`, as in logs and reports.
    pub fn name(&self) -> String {
        format!("{}-{}", self.service.name(), self.index)
    }

    /// Whether its process is running (started and not killed since).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// How a [`Probe`] tells that a process is healthy.
#[derive(Debug, Clone)]
enum ProbeKind {
    /// `GET <url>/readyz` answers 200 (its dependencies are reachable).
    Ready(String),
    /// A Kafka broker: its client port accepts connections.
    Broker(u16),
    /// Redis answers `PING` with `PONG`.
    Redis(u16),
    /// PostgreSQL answers `SELECT 1`.
    Postgres(String),
}

/// A health check of one process of the stack, usable without borrowing the stack (while a
/// fault is being injected into it).
#[derive(Debug, Clone)]
pub struct Probe {
    /// The process: `voting-api-0`, `kafka-2`, `redis`, `postgres`.
    pub name: String,
    kind: ProbeKind,
}

impl Probe {
    /// Whether the process is healthy now (each check gives up after 2 s).
    pub async fn healthy(&self, http: &reqwest::Client) -> bool {
        let limit = Duration::from_secs(2);
        let check = async {
            match &self.kind {
                ProbeKind::Ready(url) => http
                    .get(format!("{url}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::OK),
                ProbeKind::Broker(port) => tokio::net::TcpStream::connect(("127.0.0.1", *port))
                    .await
                    .is_ok(),
                ProbeKind::Redis(port) => redis_pong(*port).await,
                ProbeKind::Postgres(url) => match sqlx::PgConnection::connect(url).await {
                    Ok(mut connection) => {
                        let ok = sqlx::query("SELECT 1")
                            .execute(&mut connection)
                            .await
                            .is_ok();
                        let _ = connection.close().await;
                        ok
                    }
                    Err(_) => false,
                },
            }
        };
        tokio::time::timeout(limit, check).await.unwrap_or(false)
    }
}

async fn redis_pong(port: u16) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await.is_ok() && &reply == b"+PONG\r\n"
}

/// The whole stack, running; every process is killed when it is dropped.
pub struct ReplicaStack {
    /// Its PostgreSQL.
    pub postgres: OwnedPostgres,
    /// Its Redis, without persistence: a restart loses every key.
    pub redis: OwnedRedis,
    /// Its Kafka brokers.
    pub kafka: OwnedCluster,
    /// The services' database (`pollstream` on [`ReplicaStack::postgres`]), migrated.
    pub database_url: String,
    /// A pool on that database, for assertions (it reconnects after a PostgreSQL restart).
    pub pool: PgPool,
    /// The pipeline's topics on [`ReplicaStack::kafka`].
    pub topics: PipelineTopics,
    /// A client for the services' HTTP endpoints.
    pub http: reqwest::Client,
    /// Where the services log.
    pub log_dir: PathBuf,
    replicas: Vec<Replica>,
    bin_dir: PathBuf,
    keys: JwtKeys,
}

impl ReplicaStack {
    /// Starts PostgreSQL, Redis and the brokers, creates the database and the topics, then
    /// every replica, and waits until each is ready.
    pub async fn start(settings: ReplicaSettings) -> Self {
        crate::init_logging();
        for service in Service::ALL {
            let binary = settings.bin_dir.join(service.name());
            assert!(
                binary.exists(),
                "{} is missing: build the services first",
                binary.display()
            );
        }
        std::fs::create_dir_all(&settings.log_dir).expect("creating the log folder");
        let (postgres, redis, kafka) = tokio::join!(
            OwnedPostgres::start(),
            OwnedRedis::start(),
            OwnedCluster::start(settings.brokers)
        );
        let database_url = create_database(&postgres.url()).await;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&database_url)
            .await
            .expect("connecting to the stack's database");
        pollstream_infra::postgres::migrate(&pool)
            .await
            .expect("migrating the stack's database");
        let topics = PipelineTopics::create_on(&kafka.brokers()).await;
        let base = ServiceEnv::new(&database_url)
            .set("REDIS_URL", redis.url())
            .set("KAFKA_BROKERS", kafka.brokers())
            .set("RAW_VOTES_TOPIC", &topics.raw_votes)
            .set("POLL_UPDATES_TOPIC", &topics.poll_updates)
            .set("AGGREGATOR_GROUP_ID", "poll-aggregator")
            .set("FLUSH_INTERVAL_MS", settings.flush_interval_ms.to_string())
            .set("DATABASE_MAX_CONNECTIONS", "10")
            // Every vote of a load test comes from 127.0.0.1.
            .set("RATE_LIMIT_VOTES_PER_IP", "100000000");
        let mut base = settings
            .extra
            .iter()
            .fold(base, |env, (name, value)| env.set(name, value.as_str()));
        for name in ["KAFKA_DEBUG", "RUST_LOG"] {
            if let Ok(value) = std::env::var(name) {
                base = base.set(name, value);
            }
        }
        let mut replicas = Vec::new();
        for service in Service::ALL {
            for index in 0..settings.replicas {
                let port = free_port();
                let mut env = base.clone().set(service.port_variable(), port.to_string());
                if service == Service::PollAggregator {
                    // A stable identity per replica, as a StatefulSet gives its pods: a
                    // restart after kill -9 takes the dead run's partitions back at once.
                    env = env.set("AGGREGATOR_INSTANCE_ID", format!("poll-aggregator-{index}"));
                }
                replicas.push(Replica {
                    service,
                    index,
                    url: format!("http://127.0.0.1:{port}"),
                    env,
                    child: None,
                    runs: 0,
                });
            }
        }
        let mut stack = Self {
            postgres,
            redis,
            kafka,
            database_url,
            pool,
            topics,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            log_dir: settings.log_dir,
            replicas,
            bin_dir: settings.bin_dir,
            keys: tokens::keys(),
        };
        for i in 0..stack.replicas.len() {
            stack.spawn(i);
        }
        for i in 0..stack.replicas.len() {
            let replica = &stack.replicas[i];
            let (name, url) = (replica.name(), replica.url.clone());
            assert!(
                stack.wait_ready(&url, Duration::from_secs(90)).await,
                "{name} ({url}) not ready within 90 s; logs in {}",
                stack.log_dir.display()
            );
        }
        stack
    }

    /// Every replica, service by service.
    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// The base URLs of `service`'s replicas, in replica order.
    pub fn urls(&self, service: Service) -> Vec<String> {
        self.replicas
            .iter()
            .filter(|r| r.service == service)
            .map(|r| r.url.clone())
            .collect()
    }

    fn position(&self, service: Service, index: usize) -> usize {
        self.replicas
            .iter()
            .position(|r| r.service == service && r.index == index)
            .unwrap_or_else(|| panic!("no replica {index} of {}", service.name()))
    }

    /// Replica `index` of `service`.
    pub fn replica(&self, service: Service, index: usize) -> &Replica {
        &self.replicas[self.position(service, index)]
    }

    fn spawn(&mut self, position: usize) {
        let replica = &mut self.replicas[position];
        let log_name = match replica.runs {
            0 => format!("{}.log", replica.name()),
            run => format!("{}.{run}.log", replica.name()),
        };
        replica.runs += 1;
        let log = std::fs::File::create(self.log_dir.join(log_name)).expect("a log file");
        let binary = self.bin_dir.join(replica.service.name());
        let child = Command::new(&binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(replica.env.pairs())
            .stdout(Stdio::from(log.try_clone().expect("a log file")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", binary.display()));
        replica.child = Some(child);
    }

    /// `kill -9` replica `index` of `service` (no drain, no flush, no offset commit), and
    /// reaps it.
    pub async fn kill(&mut self, service: Service, index: usize) {
        let position = self.position(service, index);
        if let Some(mut child) = self.replicas[position].child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts replica `index` of `service` again (same port, same settings) without waiting
    /// for it to be ready; see [`ReplicaStack::wait_ready`].
    pub fn restart(&mut self, service: Service, index: usize) {
        let position = self.position(service, index);
        assert!(
            !self.replicas[position].is_running(),
            "{} is still running",
            self.replicas[position].name()
        );
        self.spawn(position);
    }

    /// Waits until `url`/readyz answers 200, for at most `limit`; whether it did.
    pub async fn wait_ready(&self, url: &str, limit: Duration) -> bool {
        let probe = Probe {
            name: url.to_owned(),
            kind: ProbeKind::Ready(url.to_owned()),
        };
        let http = &self.http;
        crate::eventually(limit, || async { probe.healthy(http).await.then_some(()) })
            .await
            .is_some()
    }

    /// The node that leads `partition` of the votes' topic now.
    pub fn raw_votes_leader(&self, partition: i32) -> Option<i32> {
        self.kafka.leader_of(&self.topics.raw_votes, partition)
    }

    /// `kill -9` broker `node_id` (no clean shutdown, no handing over of leadership).
    pub async fn kill_broker(&mut self, node_id: i32) {
        self.kafka.node(node_id).kill().await;
    }

    /// Starts broker `node_id` again on its ports and data, without waiting for it.
    pub fn restart_broker(&mut self, node_id: i32) {
        self.kafka.node(node_id).start_again();
    }

    /// Kills Redis and starts it again on the same port, empty (it keeps nothing on disk).
    pub async fn restart_redis(&mut self) {
        self.redis.kill().await;
        self.redis.resume().await;
    }

    /// Stops PostgreSQL as a crash would (`pg_ctl stop -m immediate`).
    pub async fn kill_postgres(&mut self) {
        self.postgres.kill().await;
    }

    /// Starts PostgreSQL again on the same port and data (crash recovery), waiting until it
    /// accepts connections.
    pub async fn resume_postgres(&mut self) {
        self.postgres.resume().await;
    }

    /// A health check for every process: each replica, each broker, Redis and PostgreSQL.
    pub fn probes(&self) -> Vec<Probe> {
        let mut probes: Vec<Probe> = self
            .replicas
            .iter()
            .map(|r| Probe {
                name: r.name(),
                kind: ProbeKind::Ready(r.url.clone()),
            })
            .collect();
        probes.extend(self.kafka.nodes.iter().map(|node| Probe {
            name: format!("kafka-{}", node.node_id),
            kind: ProbeKind::Broker(node.port),
        }));
        probes.push(Probe {
            name: "redis".to_owned(),
            kind: ProbeKind::Redis(self.redis.port),
        });
        probes.push(Probe {
            name: "postgres".to_owned(),
            kind: ProbeKind::Postgres(self.database_url.clone()),
        });
        probes
    }

    /// Waits up to `limit` until every process is healthy; the names of those that are not.
    pub async fn unhealthy_after(&self, limit: Duration) -> Vec<String> {
        let probes = self.probes();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let mut unhealthy = Vec::new();
            for probe in &probes {
                if !probe.healthy(&self.http).await {
                    unhealthy.push(probe.name.clone());
                }
            }
            if unhealthy.is_empty() || tokio::time::Instant::now() >= deadline {
                return unhealthy;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The keys that sign tokens the services accept.
    pub fn keys(&self) -> JwtKeys {
        self.keys.clone()
    }

    /// A token for `subject`, valid for an hour.
    pub fn token(&self, subject: &str) -> String {
        self.keys.issue(subject, Duration::from_secs(3600))
    }

    /// One line per process with its address, for people.
    pub fn addresses(&self) -> String {
        let mut lines: Vec<String> = self
            .replicas
            .iter()
            .map(|r| format!("{:<20} {}", r.name(), r.url))
            .collect();
        for node in &self.kafka.nodes {
            lines.push(format!(
                "{:<20} {}",
                format!("kafka-{}", node.node_id),
                node.brokers()
            ));
        }
        lines.push(format!("{:<20} {}", "redis", self.redis.url()));
        lines.push(format!("{:<20} {}", "postgres", self.database_url));
        lines.join("\n")
    }

    /// SIGTERM to every service replica (they drain as in production), then the
    /// infrastructure is stopped with the stack.
    pub async fn stop(mut self) {
        for replica in &mut self.replicas {
            let Some(mut child) = replica.child.take() else {
                continue;
            };
            crate::stack::terminate(&mut child).await;
        }
    }
}

/// Creates database `pollstream` on the server whose `postgres` database is at `admin_url`;
/// returns its URL.
async fn create_database(admin_url: &str) -> String {
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connecting to the stack's PostgreSQL");
    sqlx::query("CREATE DATABASE pollstream")
        .execute(&mut admin)
        .await
        .expect("creating the stack's database");
    let _ = admin.close().await;
    match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/pollstream"),
        None => unreachable!("an owned server's URL names its database"),
    }
}
