//! A short, small run of `pollstream-stress` against a stack of its own: the three service
//! binaries with the test's own database and topics. It checks the tool end to end (votes,
//! duplicates, screens, the final count check), not the stack's speed.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pollstream_testkit::{
    JWT_SECRET, PipelineTopics, TestDatabase, free_port, unique_topic, workspace_binary,
};
use serde_json::Value;
use tokio::process::{Child, Command};

/// The three services, killed when dropped.
struct Stack {
    api: String,
    realtime: String,
    _children: Vec<Child>,
}

impl Stack {
    async fn start(flush_interval_ms: u64) -> Self {
        pollstream_testkit::init_logging();
        let db = TestDatabase::create().await;
        let PipelineTopics {
            raw_votes,
            poll_updates,
            ..
        } = PipelineTopics::create().await;
        let ports = [free_port(), free_port(), free_port()];
        let env: Vec<(&str, String)> = vec![
            ("DATABASE_URL", db.url.clone()),
            ("REDIS_URL", pollstream_testkit::redis_url()),
            ("KAFKA_BROKERS", pollstream_testkit::kafka_brokers()),
            ("JWT_SECRET", JWT_SECRET.to_owned()),
            ("RAW_VOTES_TOPIC", raw_votes),
            ("POLL_UPDATES_TOPIC", poll_updates),
            ("AGGREGATOR_GROUP_ID", unique_topic("aggregator")),
            ("VOTING_API_PORT", ports[0].to_string()),
            ("POLL_AGGREGATOR_PORT", ports[1].to_string()),
            ("REALTIME_SERVICE_PORT", ports[2].to_string()),
            ("FLUSH_INTERVAL_MS", flush_interval_ms.to_string()),
            ("RUST_LOG", "info".to_owned()),
        ];
        let log_dir = workspace_binary("voting-api")
            .parent()
            .unwrap()
            .join("stress-smoke-logs")
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&log_dir).unwrap();
        let children = ["voting-api", "poll-aggregator", "realtime-service"]
            .into_iter()
            .map(|name| spawn(name, &env, &log_dir))
            .collect();
        let stack = Self {
            api: format!("http://127.0.0.1:{}", ports[0]),
            realtime: format!("http://127.0.0.1:{}", ports[2]),
            _children: children,
        };
        let http = reqwest::Client::new();
        for port in ports {
            let url = format!("http://127.0.0.1:{port}/readyz");
            let ready = pollstream_testkit::eventually(Duration::from_secs(60), || async {
                match http.get(&url).send().await {
                    Ok(response) if response.status().is_success() => Some(()),
                    _ => None,
                }
            })
            .await;
            assert!(
                ready.is_some(),
                "{url} not ready within 60 s; logs in {}",
                log_dir.display()
            );
        }
        stack
    }
}

fn spawn(name: &str, env: &[(&str, String)], log_dir: &Path) -> Child {
    let log = std::fs::File::create(log_dir.join(format!("{name}.log"))).unwrap();
    Command::new(workspace_binary(name))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("starting {name}: {err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_counts_every_accepted_vote_exactly_once() {
    let stack = Stack::start(200).await;
    let run = Command::new(env!("CARGO_BIN_EXE_pollstream-stress"))
        .env("JWT_SECRET", JWT_SECRET)
        .args(["--api", &stack.api, "--realtime", &stack.realtime])
        .args(["--rate", "150", "--duration", "2s", "--polls", "2"])
        // Screens join the moment they are connected; a hundred of them at once is what
        // caught `join` events arriving before the server had registered their handler.
        .args(["--duplicates", "0.1", "--clients", "100"])
        .args(["--flush-interval", "200ms", "--settle-timeout", "20s"])
        .args(["--json", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting pollstream-stress");
    let output = tokio::time::timeout(Duration::from_secs(60), run.wait_with_output())
        .await
        .expect("pollstream-stress ran over 60 s")
        .expect("waiting for pollstream-stress");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pollstream-stress failed: {stderr}\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("a JSON summary");

    let check = &summary["check"];
    assert_eq!(check["passed"], true, "{summary:#}");
    assert_eq!(check["lost"], 0, "{summary:#}");
    assert_eq!(check["doubled"], 0, "{summary:#}");
    let sent = summary["sent"].as_u64().unwrap();
    assert!((250..=350).contains(&sent), "sent {sent}: {summary:#}");
    let distinct = summary["acceptedDistinct"].as_u64().unwrap();
    let duplicates = summary["duplicatesSent"].as_u64().unwrap();
    assert!(duplicates > 0, "{summary:#}");
    assert_eq!(distinct + duplicates, sent, "{summary:#}");
    assert_eq!(summary["byStatus"]["409"], duplicates, "{summary:#}");
    let counted: i64 = check["polls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["counted"].as_i64().unwrap())
        .sum();
    assert_eq!(counted as u64, distinct, "{summary:#}");

    let fan_out = &summary["fanOut"];
    assert_eq!(fan_out["connected"], 100, "{summary:#}");
    assert_eq!(fan_out["missed"], 0, "{summary:#}");
    let on_screen = summary["voteToScreen"]["count"].as_u64().unwrap();
    assert_eq!(on_screen, 100 * distinct, "{summary:#}");
    assert_eq!(summary["neverOnScreen"], 0, "{summary:#}");
}
