//! The three services as real processes (the binaries users run), each with its own port,
//! the test's own database and topics, and logs under `target/<profile>/e2e-logs/<name>/`.
//! The end-to-end tests and the load tool's smoke test run against one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pollstream_infra::jwt::JwtKeys;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::polls::VoteAnswer;
use crate::service_env::ServiceEnv;
use crate::{
    PipelineTopics, TestDatabase, free_port, polls, tokens, unique_topic, workspace_binary,
};

/// One running stack; its processes are killed if it is dropped before [`Stack::stop`].
pub struct Stack {
    /// The database the services share.
    pub db: TestDatabase,
    /// voting-api's base URL.
    pub api: String,
    /// realtime-service's base URL (Socket.IO, health, metrics).
    pub realtime: String,
    /// poll-aggregator's base URL (health and metrics only).
    pub aggregator_health: String,
    /// A client for the services' HTTP endpoints.
    pub http: reqwest::Client,
    env: ServiceEnv,
    log_dir: PathBuf,
    keys: JwtKeys,
    voting_api: Child,
    realtime_service: Child,
    aggregator: Option<Child>,
    aggregator_runs: usize,
    replicas: Vec<Child>,
}

impl Stack {
    /// Starts voting-api, poll-aggregator and realtime-service for test `name`.
    pub async fn start(name: &str, flush_interval_ms: u64) -> Self {
        Self::start_with(name, flush_interval_ms, &[]).await
    }

    /// Like [`Stack::start`], with extra environment variables for every service.
    pub async fn start_with(name: &str, flush_interval_ms: u64, extra: &[(&str, &str)]) -> Self {
        Self::start_on(name, &crate::kafka_brokers(), flush_interval_ms, extra).await
    }

    /// Like [`Stack::start_with`], on the Kafka cluster at `brokers` (its topics created there,
    /// with the cluster's default replication).
    pub async fn start_on(
        name: &str,
        brokers: &str,
        flush_interval_ms: u64,
        extra: &[(&str, &str)],
    ) -> Self {
        Self::launch(name, brokers, flush_interval_ms, extra, None).await
    }

    /// Like [`Stack::start`], with voting-api serving the built web app in `web_dir` (`WEB_DIR`)
    /// and its pages pointed at this stack's realtime-service (`REALTIME_PUBLIC_URL`), which
    /// accepts voting-api's origin (`REALTIME_ALLOWED_ORIGINS`): what `scripts/up` runs.
    pub async fn start_serving_web(name: &str, flush_interval_ms: u64, web_dir: &Path) -> Self {
        let brokers = crate::kafka_brokers();
        Self::launch(name, &brokers, flush_interval_ms, &[], Some(web_dir)).await
    }

    async fn launch(
        name: &str,
        brokers: &str,
        flush_interval_ms: u64,
        extra: &[(&str, &str)],
        web_dir: Option<&Path>,
    ) -> Self {
        crate::init_logging();
        let db = TestDatabase::create().await;
        let PipelineTopics {
            raw_votes,
            poll_updates,
            ..
        } = PipelineTopics::create_on(brokers).await;
        let (api_port, aggregator_port, realtime_port) = (free_port(), free_port(), free_port());
        let mut env = ServiceEnv::new(&db.url)
            .set("KAFKA_BROKERS", brokers)
            .set("RAW_VOTES_TOPIC", raw_votes)
            .set("POLL_UPDATES_TOPIC", poll_updates)
            .set("AGGREGATOR_GROUP_ID", unique_topic("aggregator"))
            // One identity for every run of this stack's aggregator, as a StatefulSet gives a
            // pod: a restart after kill -9 takes the dead run's partitions back at once.
            .set("AGGREGATOR_INSTANCE_ID", unique_topic("aggregator-0"))
            .set("VOTING_API_PORT", api_port.to_string())
            .set("POLL_AGGREGATOR_PORT", aggregator_port.to_string())
            .set("REALTIME_SERVICE_PORT", realtime_port.to_string())
            .set("FLUSH_INTERVAL_MS", flush_interval_ms.to_string())
            .set("DATABASE_MAX_CONNECTIONS", "20");
        if let Some(dir) = web_dir {
            env = env
                .set("WEB_DIR", dir.display().to_string())
                .set(
                    "REALTIME_PUBLIC_URL",
                    format!("http://127.0.0.1:{realtime_port}"),
                )
                .set(
                    "REALTIME_ALLOWED_ORIGINS",
                    format!("http://127.0.0.1:{api_port}"),
                );
        }
        let mut env = env.set_all(extra);
        // Diagnosing broker trouble: KAFKA_DEBUG=cgrp,fetch RUST_LOG=info,rdkafka=debug.
        for name in ["KAFKA_DEBUG", "RUST_LOG"] {
            if let Ok(value) = std::env::var(name) {
                env = env.set(name, value);
            }
        }
        let log_dir = workspace_binary("voting-api")
            .parent()
            .unwrap()
            .join("e2e-logs")
            .join(name);
        std::fs::create_dir_all(&log_dir).unwrap();
        let mut stack = Self {
            api: format!("http://127.0.0.1:{api_port}"),
            realtime: format!("http://127.0.0.1:{realtime_port}"),
            aggregator_health: format!("http://127.0.0.1:{aggregator_port}"),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            voting_api: spawn("voting-api", &env, &log_dir, 0),
            realtime_service: spawn("realtime-service", &env, &log_dir, 0),
            aggregator: None,
            aggregator_runs: 0,
            replicas: Vec::new(),
            keys: tokens::keys(),
            db,
            env,
            log_dir,
        };
        stack.start_aggregator();
        stack.wait_ready(&stack.api.clone()).await;
        stack.wait_ready(&stack.realtime.clone()).await;
        stack.wait_ready(&stack.aggregator_health.clone()).await;
        stack
    }

    /// Starts (or restarts) the aggregator process.
    pub fn start_aggregator(&mut self) {
        self.aggregator_runs += 1;
        self.aggregator = Some(spawn(
            "poll-aggregator",
            &self.env,
            &self.log_dir,
            self.aggregator_runs,
        ));
    }

    /// Starts one more poll-aggregator replica in the same consumer group, with its own health
    /// port and static member id, and waits until it is ready; returns its base URL (health and
    /// metrics). It runs until [`Stack::stop`].
    pub async fn add_aggregator_replica(&mut self) -> String {
        let replica = self.replicas.len() + 1;
        let port = free_port();
        let env = self
            .env
            .clone()
            .set("POLL_AGGREGATOR_PORT", port.to_string())
            .set(
                "AGGREGATOR_INSTANCE_ID",
                unique_topic(&format!("aggregator-{replica}")),
            );
        self.replicas.push(spawn_as(
            &format!("poll-aggregator-{replica}"),
            "poll-aggregator",
            &env,
            &self.log_dir,
            0,
        ));
        let base = format!("http://127.0.0.1:{port}");
        self.wait_ready(&base).await;
        base
    }

    /// `kill -9` the aggregator: no drain, no final flush, no offset commit.
    pub async fn kill_aggregator(&mut self) {
        let mut child = self.aggregator.take().expect("aggregator not running");
        child.kill().await.expect("SIGKILL the aggregator");
    }

    /// Sends `signal` (e.g. `TERM`, `INT`) to the aggregator and waits up to 60 s for it to
    /// exit; returns whether it exited successfully.
    pub async fn signal_aggregator(&mut self, signal: &str) -> bool {
        let mut child = self.aggregator.take().expect("aggregator not running");
        signal_and_wait(&mut child, signal).await
    }

    /// Like [`Stack::signal_aggregator`], for realtime-service.
    pub async fn signal_realtime(&mut self, signal: &str) -> bool {
        signal_and_wait(&mut self.realtime_service, signal).await
    }

    /// Like [`Stack::signal_aggregator`], for voting-api.
    pub async fn signal_voting_api(&mut self, signal: &str) -> bool {
        signal_and_wait(&mut self.voting_api, signal).await
    }

    /// The log file of `service` (its first run).
    pub fn log_path(&self, service: &str) -> PathBuf {
        self.log_dir.join(format!("{service}.log"))
    }

    /// Waits until `base`/readyz answers 200.
    pub async fn wait_ready(&self, base: &str) {
        let url = format!("{base}/readyz");
        let ready = crate::eventually(Duration::from_secs(60), || async {
            match self.http.get(&url).send().await {
                Ok(response) if response.status() == StatusCode::OK => Some(()),
                _ => None,
            }
        })
        .await;
        assert!(
            ready.is_some(),
            "{url} not ready within 60 s; logs in {}",
            self.log_dir.display()
        );
    }

    /// A token for `subject`, valid for an hour.
    pub fn token(&self, subject: &str) -> String {
        self.keys.issue(subject, Duration::from_secs(3600))
    }

    /// Issues tokens like [`Stack::token`], for a task that outlives a borrow of the stack.
    pub fn token_issuer(&self) -> impl Fn(&str) -> String + Send + Sync + 'static {
        let keys = self.keys.clone();
        move |subject| keys.issue(subject, Duration::from_secs(3600))
    }

    /// Creates a single-choice poll with `options` answers, owned by `presenter`.
    pub async fn create_poll(&self, options: &[&str]) -> Value {
        polls::create_poll(
            &self.http,
            &self.api,
            &self.token("presenter"),
            &json!({ "question": "Best option?", "options": options, "kind": "single" }),
        )
        .await
    }

    /// Casts one vote; returns the status code.
    pub async fn vote(&self, code: &str, voter: &str, option_id: &str) -> StatusCode {
        self.cast_vote(code, voter, option_id).await.status
    }

    /// Casts one vote; returns the whole answer.
    pub async fn cast_vote(&self, code: &str, voter: &str, option_id: &str) -> VoteAnswer {
        crate::polls::cast_vote(&self.http, &self.api, &self.token(voter), code, option_id).await
    }

    /// The poll's results as `GET /api/v1/polls/{code}/results` shows them.
    pub async fn results(&self, code: &str) -> Value {
        self.http
            .get(format!("{}/api/v1/polls/{code}/results", self.api))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The Prometheus text exposition a service of this stack serves at `{base}/metrics`
    /// (`base` one of [`Stack::api`], [`Stack::aggregator_health`], [`Stack::realtime`] or a
    /// replica's), checked to be a `200` in `text/plain`. Read it with
    /// [`crate::metric_sample`].
    pub async fn metrics(&self, base: &str) -> String {
        let response = self
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        response.text().await.unwrap()
    }

    /// (total, votes per option in position order) straight from PostgreSQL.
    pub async fn counts(&self, poll_id: uuid::Uuid) -> (i64, Vec<i64>) {
        let (_, total, votes) = self.db.counts(poll_id).await;
        (total, votes)
    }

    /// How many ballots PostgreSQL holds for the poll.
    pub async fn ballots(&self, poll_id: uuid::Uuid) -> i64 {
        self.db.ballots(poll_id).await
    }

    /// SIGTERM to every process, so they drain as in production.
    pub async fn stop(mut self) {
        let mut children = vec![&mut self.voting_api, &mut self.realtime_service];
        if let Some(aggregator) = self.aggregator.as_mut() {
            children.push(aggregator);
        }
        children.extend(self.replicas.iter_mut());
        for child in children {
            terminate(child).await;
        }
    }

    /// The value of `name` in the services' environment (e.g. `RAW_VOTES_TOPIC`,
    /// `AGGREGATOR_GROUP_ID`), so a test can point outside tools at the same topics and group.
    pub fn env_value(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not set for this stack"))
    }
}

/// SIGTERM to a service process, so it drains as in production; SIGKILL if it is still there
/// 30 s later.
pub(crate) async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
    if tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

fn spawn(name: &str, env: &ServiceEnv, log_dir: &std::path::Path, run: usize) -> Child {
    spawn_as(name, name, env, log_dir, run)
}

/// Starts `binary`, logging to `<name>.log` (`<name>.<run>.log` for a restart).
fn spawn_as(
    name: &str,
    binary: &str,
    env: &ServiceEnv,
    log_dir: &std::path::Path,
    run: usize,
) -> Child {
    let log_name = if run > 0 {
        format!("{name}.{run}.log")
    } else {
        format!("{name}.log")
    };
    let log = std::fs::File::create(log_dir.join(log_name)).unwrap();
    Command::new(workspace_binary(binary))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.pairs())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("starting {binary}: {err}"))
}

async fn signal_and_wait(child: &mut Child, signal: &str) -> bool {
    let pid = child.id().expect("process already reaped");
    let sent = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("running kill");
    assert!(sent.success(), "kill -{signal} {pid} failed");
    match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
        Ok(Ok(status)) => status.success(),
        _ => false,
    }
}
