//! Infrastructure processes a test owns, so it can stop and start them without disturbing
//! other tests: a Redis server, a PostgreSQL cluster and a Kafka-compatible broker (tansu),
//! each on a free port with its data in a temporary directory.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

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

async fn wait_for_port(port: u16, what: &str) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not open port {port} within 30 s");
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
        wait_for_port(self.port, "redis-server").await;
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
        wait_for_port(self.port, "postgres").await;
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

/// A tansu broker of the test's own, with its data in a temporary directory so a restart
/// keeps topics and offsets.
pub struct OwnedBroker {
    /// Its port, stable across restarts.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnedBroker {
    /// Starts one on a free port.
    pub async fn start() -> Self {
        let mut broker = Self {
            port: free_port(),
            dir: scratch_dir("tansu"),
            child: None,
        };
        broker.resume().await;
        broker
    }

    /// `host:port` for `KAFKA_BROKERS`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port and data after [`OwnedBroker::kill`].
    pub async fn resume(&mut self) {
        let tansu = which("tansu").expect("tansu is not installed (scripts/test installs it)");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .expect("tansu log file");
        // tansu reads a .env and generic variables from its environment: give it neither.
        let child = Command::new(tansu)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .args([
                "broker",
                "--storage-engine",
                "sqlite://tansu.db",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("starting tansu");
        self.child = Some(child);
        wait_for_port(self.port, "tansu").await;
    }

    /// Kills it outright.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

impl OwnedBroker {
    /// What the broker logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default()
    }
}

impl Drop for OwnedBroker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin"));
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_bin)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.exists())
}
