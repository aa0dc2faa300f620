//! Infrastructure processes a test owns, so it can stop and start them without disturbing
//! other tests: a Redis server, a PostgreSQL cluster, and Apache Kafka (one node or a cluster of
//! three), each on free ports with its data in a temporary directory.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::process::{Child, Command};

use crate::free_port;

fn scratch_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pollstream-{kind}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until something accepts connections on `port`, for at most `limit`; fails at once
/// if `child` (the process that should open it) exits first.
async fn wait_for_port(port: u16, what: &str, limit: Duration, mut child: Option<&mut Child>) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            panic!("{what} on port {port} exited at start ({status})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not open port {port} within {limit:?}");
}

/// A Redis server of the test's own.
pub struct OwnedRedis {
    /// Its port, stable across restarts.
    pub port: u16,
    child: Option<Child>,
}

impl OwnedRedis {
    /// Starts one on a free port.
    pub async fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
        };
        redis.resume().await;
        redis
    }

    /// `redis://` URL of this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port after [`OwnedRedis::kill`].
    pub async fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        wait_for_port(
            self.port,
            "redis-server",
            Duration::from_secs(30),
            self.child.as_mut(),
        )
        .await;
    }

    /// Kills it outright.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// A PostgreSQL cluster of the test's own (initdb + pg_ctl, as the `postgres` user since the
/// server refuses to run as root).
pub struct OwnedPostgres {
    /// Its port, stable across restarts.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl OwnedPostgres {
    /// Initialises and starts a cluster on a free port.
    pub async fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .find(|path| path.join("initdb").exists())
            .expect("initdb");
        let dir = scratch_dir("postgres");
        let postgres = Self {
            port: free_port(),
            dir,
            bin,
        };
        postgres
            .as_postgres(&["chown", "-R", "postgres:postgres"])
            .await;
        let data = postgres.dir.join("data");
        let status = postgres
            .command(
                &postgres.bin.join("initdb"),
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                ],
            )
            .status()
            .await
            .unwrap();
        assert!(status.success(), "initdb failed");
        postgres.resume().await;
        postgres
    }

    async fn as_postgres(&self, chown: &[&str]) {
        let mut args: Vec<&str> = chown.to_vec();
        args.push(self.dir.to_str().unwrap());
        let status = Command::new(args[0])
            .args(&args[1..])
            .status()
            .await
            .unwrap();
        assert!(status.success(), "{args:?}");
    }

    fn command(&self, program: &std::path::Path, args: &[&str]) -> Command {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (or restarts) the server.
    pub async fn resume(&self) {
        let data = self.dir.join("data");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let status = self
            .command(
                &self.bin.join("pg_ctl"),
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-o",
                    &options,
                    "-w",
                    "-l",
                    self.dir.join("log").to_str().unwrap(),
                    "start",
                ],
            )
            .status()
            .await
            .unwrap();
        assert!(
            status.success(),
            "pg_ctl start failed; see {}",
            self.dir.join("log").display()
        );
        wait_for_port(self.port, "postgres", Duration::from_secs(30), None).await;
    }

    /// Stops it immediately (`pg_ctl stop -m immediate`: like a crash).
    pub async fn kill(&self) {
        let data = self.dir.join("data");
        let _ = self
            .command(
                &self.bin.join("pg_ctl"),
                &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
            )
            .status()
            .await;
    }
}

impl Drop for OwnedPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One Apache Kafka node of the test's own (KRaft: broker and controller in one process),
/// started by `scripts/kafka-node` from the jars `scripts/test` installs, with its data in a
/// temporary directory so a restart keeps topics, offsets and producer state.
pub struct OwnedBroker {
    /// Its client port, stable across restarts.
    pub port: u16,
    /// Its `node.id` in the cluster (1 for a lone node).
    pub node_id: i32,
    args: Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnedBroker {
    /// Starts a lone node (replication factor 1) on a free port and waits until it answers.
    pub async fn start() -> Self {
        let port = free_port();
        let controller_port = free_port();
        let mut broker = Self::new(
            1,
            port,
            controller_port,
            &format!("1@127.0.0.1:{controller_port}"),
            1,
        );
        broker.resume().await;
        assert!(
            wait_until_answering(&broker.brokers(), 1).await,
            "Kafka did not answer within 90 s\n{}",
            tail(&broker.log(), 60)
        );
        broker
    }

    fn new(node_id: i32, port: u16, controller_port: u16, voters: &str, replication: u8) -> Self {
        let dir = scratch_dir(&format!("kafka-{node_id}"));
        let args = [
            "--dir",
            dir.to_str().expect("UTF-8 temporary directory"),
            "--node-id",
            &node_id.to_string(),
            "--port",
            &port.to_string(),
            "--controller-port",
            &controller_port.to_string(),
            "--voters",
            voters,
            "--cluster-id",
            TEST_CLUSTER_ID,
            "--replication",
            &replication.to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        Self {
            port,
            node_id,
            args,
            dir,
            child: None,
        }
    }

    /// `host:port` for `KAFKA_BROKERS`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the process (again, after [`OwnedBroker::kill`] or [`OwnedBroker::stop`]) on
    /// the same ports and data, and waits until its client port is open.
    pub async fn resume(&mut self) {
        self.spawn();
        wait_for_port(
            self.port,
            "Kafka",
            Duration::from_secs(90),
            self.child.as_mut(),
        )
        .await;
    }

    /// Starts the process again (after [`OwnedBroker::kill`] or [`OwnedBroker::stop`]) on
    /// the same ports and data without waiting for it, as a supervisor restarts a crashed node.
    pub fn start_again(&mut self) {
        assert!(!self.is_running(), "Kafka node {} is running", self.node_id);
        self.spawn();
    }

    fn spawn(&mut self) {
        let script = workspace_root().join("scripts/kafka-node");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("kafka.log"))
            .expect("Kafka log file");
        let child = Command::new(script)
            .args(&self.args)
            .env(
                "KAFKA_HEAP_OPTS",
                std::env::var("TEST_KAFKA_HEAP_OPTS")
                    .unwrap_or_else(|_| "-Xms128m -Xmx384m".into()),
            )
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("starting scripts/kafka-node");
        self.child = Some(child);
    }

    /// Kills it outright (`kill -9`: no clean shutdown, no handing over of leadership).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Sends SIGTERM (as `kafka-server-stop.sh` does) without waiting.
    fn signal_stop(&self) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }

    /// Freezes the process (SIGSTOP), as a long GC pause or a stalled VM would: its sockets
    /// stay open and the kernel keeps accepting what clients send, but nothing is answered
    /// until [`OwnedBroker::unpause`]. A request it received meanwhile is processed then, so a
    /// produce its client gave up on may still be written. Not [`OwnedBroker::resume`], which
    /// starts a killed process again.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a process frozen by [`OwnedBroker::pause`] go on (SIGCONT), where it stopped.
    pub fn unpause(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .unwrap_or_else(|| panic!("Kafka node {} is not running", self.node_id));
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Stops it cleanly (SIGTERM, as `kafka-server-stop.sh` does) and waits for it to exit.
    pub async fn stop(&mut self) {
        self.signal_stop();
        if let Some(mut child) = self.child.take()
            && tokio::time::timeout(Duration::from_secs(60), child.wait())
                .await
                .is_err()
        {
            let _ = child.kill().await;
        }
    }

    /// Whether its process is running (started and not killed or stopped since).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// What the node logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kafka.log")).unwrap_or_default()
    }
}

impl Drop for OwnedBroker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cluster id of every test-owned Kafka cluster (22 characters of URL-safe base64, as
/// KRaft wants); clusters never meet, each has its own ports and data.
const TEST_CLUSTER_ID: &str = "pollstream-test-kafka0";

/// Three (or `n`) Apache Kafka nodes on 127.0.0.1 forming one KRaft quorum, each broker and
/// controller, with new topics replicated to every node and `min.insync.replicas` one less:
/// the production layout in miniature, for tests that kill a partition leader.
pub struct OwnedCluster {
    /// The nodes, in `node.id` order (node `i + 1` is `nodes[i]`).
    pub nodes: Vec<OwnedBroker>,
}

impl OwnedCluster {
    /// Starts `n` nodes (3 for the production layout) and waits until all of them answer.
    pub async fn start(n: usize) -> Self {
        assert!((1..=9).contains(&n), "1 to 9 nodes");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, (_, controller))| format!("{}@127.0.0.1:{controller}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<OwnedBroker> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, controller))| {
                OwnedBroker::new(i as i32 + 1, *port, *controller, &voters, n as u8)
            })
            .collect();
        // A quorum needs a majority of its controllers, and a broker opens its client port
        // only once it has joined: start them all before waiting on any.
        nodes.iter_mut().for_each(OwnedBroker::spawn);
        let mut cluster = Self { nodes };
        cluster.wait_until_answering().await;
        cluster
    }

    /// Stops every node cleanly (SIGTERM), then starts them all again on the same data and
    /// waits until all of them answer: a whole-cluster restart.
    pub async fn restart_all(&mut self) {
        // SIGTERM to all at once: stopped one by one, the last nodes would wait for a
        // controller quorum that is already gone.
        for node in &self.nodes {
            node.signal_stop();
        }
        for node in &mut self.nodes {
            node.stop().await;
        }
        self.nodes.iter_mut().for_each(OwnedBroker::spawn);
        self.wait_until_answering().await;
    }

    /// Waits (up to 90 s) until the nodes report all of them live in their metadata (a port
    /// opens before its node has joined the quorum); panics with each node's state and log.
    async fn wait_until_answering(&mut self) {
        let nodes = self.nodes.len();
        if wait_until_answering(&self.brokers(), nodes).await {
            return;
        }
        let states: Vec<String> = self
            .nodes
            .iter_mut()
            .map(|node| {
                let state = match node.child.as_mut().map(Child::try_wait) {
                    Some(Ok(None)) => "running".to_owned(),
                    Some(Ok(Some(status))) => format!("exited ({status})"),
                    Some(Err(err)) => format!("unknown ({err})"),
                    None => "not started".to_owned(),
                };
                format!("node {} {state}", node.node_id)
            })
            .collect();
        panic!(
            "Kafka did not answer with {nodes} brokers within 90 s ({})\n{}",
            states.join(", "),
            self.logs()
        );
    }

    /// Every node's `host:port`, comma-separated, for `KAFKA_BROKERS`.
    pub fn brokers(&self) -> String {
        self.nodes
            .iter()
            .map(OwnedBroker::brokers)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node that leads `partition` of `topic` now, from the cluster's metadata (asked of
    /// the nodes still running).
    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<i32> {
        let running: Vec<String> = self
            .nodes
            .iter()
            .filter(|node| node.is_running())
            .map(OwnedBroker::brokers)
            .collect();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", running.join(","))
            .create()
            .ok()?;
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()?;
        let leader = metadata
            .topics()
            .first()?
            .partitions()
            .iter()
            .find(|p| p.id() == partition)?
            .leader();
        (leader >= 0).then_some(leader)
    }

    /// The partitions of `topic` that hold at least one message.
    pub fn partitions_in_use(&self, topic: &str) -> Vec<i32> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .create()
            .expect("a metadata client");
        let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
            return Vec::new();
        };
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        partitions
            .into_iter()
            .filter(|&p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(5))
                    .is_ok_and(|(_, high)| high > 0)
            })
            .collect()
    }

    /// The node with `node_id`.
    pub fn node(&mut self, node_id: i32) -> &mut OwnedBroker {
        self.nodes
            .iter_mut()
            .find(|node| node.node_id == node_id)
            .expect("no such node")
    }

    /// Every node's log, each under a heading, for a failed assertion's message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("--- node {} ---\n{}", node.node_id, tail(&node.log(), 60)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether the brokers at `brokers` report `nodes` live brokers in their metadata within 90 s.
async fn wait_until_answering(brokers: &str, nodes: usize) -> bool {
    let brokers = brokers.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("a metadata client");
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while std::time::Instant::now() < deadline {
            if consumer
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok_and(|m| m.brokers().len() >= nodes)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    })
    .await
    .expect("metadata wait")
}

/// The workspace's root folder (where `scripts/` is), from this crate's location.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}
