//! A short, small run of `pollstream-stress` against a stack of its own: the three service
//! binaries with the test's own database and topics. It checks the tool end to end (votes,
//! duplicates, screens, the final count check), not the stack's speed.

use std::process::Stdio;
use std::time::Duration;

use pollstream_testkit::JWT_SECRET;
use pollstream_testkit::stack::Stack;
use serde_json::Value;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_counts_every_accepted_vote_exactly_once() {
    let stack = Stack::start_with("stress-smoke", 200, &[("RUST_LOG", "info")]).await;
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
