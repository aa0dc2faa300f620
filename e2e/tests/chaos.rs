//! Thirty seconds of chaos: steady votes over two voting-api replicas and Socket.IO screens
//! on two realtime-service replicas, on a three-broker Kafka cluster with a PostgreSQL and a
//! Redis of the test's own, while a fixed-seed plan kills one of each: a voting-api, a
//! poll-aggregator and a realtime-service replica (`kill -9`, then a restart), the broker
//! leading a `raw-votes` partition, Redis (restarted empty) and PostgreSQL (crash-stopped).
//! Every `202` must be counted exactly once, every screen must end on the final count without
//! ever going backwards, and every process must be healthy again on its own.
//! One vote in twenty repeats an earlier ballot of its voter: each must be refused, also after
//! Redis came back without its locks (voting-api restores them from the counted ballots first).

use std::time::Duration;

use pollstream_chaos::plan::Target;
use pollstream_chaos::run::{ChaosSettings, run};
use pollstream_testkit::replicas::{ReplicaSettings, ReplicaStack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_seconds_of_faults_lose_and_double_nothing() {
    let mut stack = ReplicaStack::start(ReplicaSettings::new("chaos")).await;
    let settings = ChaosSettings {
        seed: 7,
        duration: Duration::from_secs(30),
        rate: 300.0,
        polls: 6,
        screens_per_replica: 3,
        faults: 6,
        duplicates: 0.05,
        settle_timeout: Duration::from_secs(45),
        recovery_timeout: Duration::from_secs(90),
        flush_interval: Duration::from_millis(500),
        progress: true,
        ..ChaosSettings::default()
    };
    let report = run(&mut stack, &settings).await.expect("the chaos run");
    let text = report.text();
    eprintln!("{text}");
    let logs = stack.log_dir.display().to_string();
    stack.stop().await;

    let kinds =
        |pick: &dyn Fn(&Target) -> bool| report.faults.iter().filter(|f| pick(&f.target)).count();
    assert!(kinds(&|t| matches!(t, Target::RawVotesLeader { .. })) >= 1);
    assert!(kinds(&|t| matches!(t, Target::Redis)) >= 1);
    assert!(kinds(&|t| matches!(t, Target::Postgres)) >= 1);
    assert!(kinds(&|t| matches!(t, Target::Replica { .. })) >= 3);
    assert!(
        report.votes.accepted > 1_000,
        "too few votes accepted for the run to mean anything:\n{text}"
    );
    for check in &report.checks {
        assert!(
            check.passed,
            "{}: {}\n{text}\nlogs in {logs}",
            check.name, check.detail
        );
    }
    assert!(report.passed);
}
