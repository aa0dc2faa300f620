//! The pipeline on a three-node Apache Kafka cluster (replication factor 3,
//! `min.insync.replicas=2`), with the broker that leads one of the votes' partitions killed
//! under load and, later, every broker stopped and started again. A `202` must survive both,
//! and voting-api may refuse votes (`503`) only while a partition has no leader.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pollstream_testkit::SocketClient;
use pollstream_testkit::owned::OwnedCluster;
use pollstream_testkit::polls::option_ids;
use pollstream_testkit::stack::Stack;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// What one vote of the load got: its voter, when it was sent and answered, and the status
/// (`None`: no HTTP answer at all).
#[derive(Debug, Clone)]
struct Outcome {
    voter: String,
    sent: Instant,
    answered: Instant,
    status: Option<StatusCode>,
}

/// Votes at a steady rate from fresh voters until stopped, each in a task of its own so a
/// slow answer never holds back the next vote.
struct Load {
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    running: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(
        stack: &Stack,
        code: &str,
        options: Vec<String>,
        prefix: &str,
        per_second: u64,
    ) -> Self {
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(AtomicBool::new(true));
        let (api, http, code, keys) = (
            stack.api.clone(),
            stack.http.clone(),
            code.to_owned(),
            stack.token_issuer(),
        );
        let (outcomes_, running_, prefix) = (outcomes.clone(), running.clone(), prefix.to_owned());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
            let mut votes = Vec::new();
            let mut i = 0usize;
            while running_.load(Ordering::Relaxed) {
                tick.tick().await;
                let voter = format!("{prefix}-{i}");
                let option = options[i % options.len()].clone();
                let request = http
                    .post(format!("{api}/api/v1/votes/{code}"))
                    .bearer_auth(keys(&voter))
                    .json(&json!({ "optionIds": [option] }));
                let outcomes = outcomes_.clone();
                votes.push(tokio::spawn(async move {
                    let sent = Instant::now();
                    let status = request.send().await.ok().map(|r| r.status());
                    outcomes.lock().unwrap().push(Outcome {
                        voter,
                        sent,
                        answered: Instant::now(),
                        status,
                    });
                }));
                i += 1;
            }
            for vote in votes {
                let _ = vote.await;
            }
        });
        Self {
            outcomes,
            running,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.status == Some(StatusCode::ACCEPTED))
            .count()
    }

    /// Stops sending and waits for every answer.
    async fn finish(self) -> Vec<Outcome> {
        self.running.store(false, Ordering::Relaxed);
        self.task.await.unwrap();
        Arc::try_unwrap(self.outcomes)
            .expect("every vote answered")
            .into_inner()
            .unwrap()
    }
}

/// Waits until PostgreSQL holds a ballot for every voter in `accepted`, then checks that each
/// was counted once: one ballot per voter, and the poll's total and option counters agree
/// with the ballots.
async fn assert_counted_once(stack: &Stack, poll_id: Uuid, accepted: &HashSet<String>) -> i64 {
    let ballots = || async {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT voter_id FROM ballots WHERE poll_id = $1")
                .bind(poll_id)
                .fetch_all(&stack.db.pool)
                .await
                .unwrap();
        rows.into_iter().map(|(v,)| v).collect::<HashSet<String>>()
    };
    let complete = pollstream_testkit::eventually(Duration::from_secs(90), || async {
        let counted = ballots().await;
        accepted.is_subset(&counted).then_some(())
    })
    .await;
    let counted = ballots().await;
    let missing: Vec<_> = accepted.difference(&counted).take(5).collect();
    assert!(
        complete.is_some(),
        "{} accepted votes never counted, e.g. {missing:?}",
        accepted.difference(&counted).count()
    );
    // A flush in progress may still add its counters: wait for them to match the ballots.
    let settled = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let (total, votes) = stack.counts(poll_id).await;
        let ballots = stack.ballots(poll_id).await;
        (total == ballots && votes.iter().sum::<i64>() == total).then_some(total)
    })
    .await;
    let (total, votes) = stack.counts(poll_id).await;
    assert!(
        settled.is_some(),
        "counters disagree with the ballots: total {total}, options {votes:?}, ballots {}",
        stack.ballots(poll_id).await
    );
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_partition_leader_loses_nothing_and_refuses_only_briefly() {
    let mut cluster = OwnedCluster::start(3).await;
    let brokers = cluster.brokers();
    let mut stack = Stack::start_on("leader-kill", &brokers, 300, &[]).await;
    let poll = stack.create_poll(&["Yes", "No"]).await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let options = option_ids(&poll);
    let mut screen = SocketClient::connect(&stack.realtime).await;
    screen.request("join", json!({ "code": code })).await;

    let load = Load::start(&stack, &code, options.clone(), "steady", 100);
    let warmed = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        (load.accepted() >= 100).then_some(())
    })
    .await;
    assert!(warmed.is_some(), "no steady load before the kill");

    let raw_votes = stack.env_value("RAW_VOTES_TOPIC").to_owned();
    let partitions = cluster.partitions_in_use(&raw_votes);
    // Keyed by poll and voter, one poll's votes spread over every partition; the broker
    // leading the first of them is killed (with it, every partition it leads).
    assert_eq!(
        partitions.len(),
        3,
        "one poll's votes use every partition: {partitions:?}"
    );
    let leader = cluster
        .leader_of(&raw_votes, partitions[0])
        .expect("the votes' partition has a leader");
    cluster.node(leader).kill().await;
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let new_leader = cluster.leader_of(&raw_votes, partitions[0]);
    cluster.node(leader).resume().await;
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let outcomes = load.finish().await;

    let refused: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.status == Some(StatusCode::SERVICE_UNAVAILABLE))
        .collect();
    let unexpected: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| {
            !matches!(
                o.status,
                Some(StatusCode::ACCEPTED | StatusCode::SERVICE_UNAVAILABLE)
            )
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "answers other than 202 and 503: {unexpected:?}"
    );
    let window = match (
        refused.iter().map(|o| o.sent).min(),
        refused.iter().map(|o| o.answered).max(),
    ) {
        (Some(first), Some(last)) => {
            assert!(
                first >= killed - Duration::from_secs(1),
                "a 503 before the kill"
            );
            last - first
        }
        _ => Duration::ZERO,
    };
    let accepted: HashSet<String> = outcomes
        .iter()
        .filter(|o| o.status == Some(StatusCode::ACCEPTED))
        .map(|o| o.voter.clone())
        .collect();
    println!(
        "leader kill: node {leader} killed, partition {} then led by {new_leader:?}; {} votes, {} \
         accepted, {} refused with 503 over {window:?}; the last vote after the kill was \
         accepted {:?} after it",
        partitions[0],
        outcomes.len(),
        accepted.len(),
        refused.len(),
        outcomes
            .iter()
            .filter(|o| o.sent > killed && o.status == Some(StatusCode::ACCEPTED))
            .map(|o| o.answered - killed)
            .min(),
    );
    // Kafka moves the partition once the controller fences the dead broker, after
    // broker.session.timeout.ms (9 s by default); measured 9.4 to 13.1 s over nine runs.
    assert!(
        window < Duration::from_secs(20),
        "voting-api refused votes for {window:?}"
    );
    let after_restart = outcomes
        .iter()
        .filter(|o| o.sent > restarted + Duration::from_secs(2));
    assert!(
        after_restart
            .clone()
            .all(|o| o.status == Some(StatusCode::ACCEPTED)),
        "votes refused after the node came back"
    );
    assert!(
        after_restart.count() > 100,
        "too few votes after the node came back"
    );

    let total = assert_counted_once(&stack, poll_id, &accepted).await;
    screen
        .wait_for(Duration::from_secs(30), |event| {
            event["event"] == "poll-results" && event["data"]["total"] == total
        })
        .await
        .unwrap_or_else(|| panic!("the screen never showed the final total {total}"));
    stack.wait_ready(&stack.aggregator_health.clone()).await;
    stack.wait_ready(&stack.realtime.clone()).await;
    screen.close().await;

    // Every broker stopped and started again: what Kafka acknowledged is still there. The
    // aggregator is stopped first, so these votes exist only in Kafka while the brokers are down.
    assert!(
        stack.signal_aggregator("TERM").await,
        "the aggregator did not drain"
    );
    let mut held = HashSet::new();
    for i in 0..200 {
        let voter = format!("held-{i}");
        let status = stack.vote(&code, &voter, &options[i % 2]).await;
        assert_eq!(status, StatusCode::ACCEPTED, "vote {i} before the restart");
        held.insert(voter);
    }
    cluster.restart_all().await;
    stack.start_aggregator();
    let restarted = Instant::now();
    let last = Mutex::new(None);
    let after = pollstream_testkit::eventually(Duration::from_secs(60), || async {
        let status = stack.vote(&code, "after-restart", &options[0]).await;
        *last.lock().unwrap() = Some(status);
        (status == StatusCode::ACCEPTED).then(|| restarted.elapsed())
    })
    .await;
    assert!(
        after.is_some(),
        "no vote accepted within 60 s of the cluster restart (last answer {:?}); logs in {}\n{}",
        last.lock().unwrap(),
        stack.log_path("voting-api").display(),
        cluster.logs()
    );
    println!("cluster restart: first vote accepted {after:?} after it");
    held.insert("after-restart".to_owned());
    let expected: HashSet<String> = accepted.union(&held).cloned().collect();
    let total = assert_counted_once(&stack, poll_id, &expected).await;
    println!(
        "cluster restart: {} held votes all counted; total {total}",
        held.len()
    );
    // The results cache follows PostgreSQL once the flush's snapshot is published.
    let published = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let results: Value = stack.results(&code).await;
        (results["total"] == total).then_some(())
    })
    .await;
    assert!(
        published.is_some(),
        "the results still show {} of {total}",
        stack.results(&code).await["total"]
    );
    stack.stop().await;
}
