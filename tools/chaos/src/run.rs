//! One chaos run against a [`ReplicaStack`]: creates polls, connects screens to every
//! realtime-service replica, sends votes at a steady rate spread over every voting-api
//! replica, injects the planned faults, then waits for the stack to heal and checks the
//! outcome (see [`crate::report`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pollstream_stress::load::{self, Answer, Outcome, Tally, Voting};
use pollstream_stress::screens::{ScreenLog, ScreenSettings, Screens};
use pollstream_stress::{check, setup};
use pollstream_testkit::replicas::{ReplicaStack, Service};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::monitor::Monitor;
use crate::plan::{self, PlannedFault, Target};
use crate::report::{self, ChaosReport};

/// What a chaos run does.
#[derive(Debug, Clone)]
pub struct ChaosSettings {
    /// Seed of the fault plan.
    pub seed: u64,
    /// How long votes are sent.
    pub duration: Duration,
    /// Votes per second, open loop (sent on schedule whatever the answers).
    pub rate: f64,
    /// Polls voted in, round-robin.
    pub polls: usize,
    /// Options of each poll.
    pub options: usize,
    /// Socket.IO screens on each realtime-service replica, each joined to every poll.
    pub screens_per_replica: usize,
    /// Faults to inject; 6 or more means at least one of each kind.
    pub faults: usize,
    /// Fraction of votes that repeat an earlier voter's ballot (each should get `409`).
    pub duplicates: f64,
    /// A vote without an answer by then has an unknown outcome.
    pub request_timeout: Duration,
    /// After the load: how long the counts and the screens may take to reach the final count.
    pub settle_timeout: Duration,
    /// After the load: how long every process may take to be healthy again.
    pub recovery_timeout: Duration,
    /// The aggregator's flush interval (the final check waits one more for late counts).
    pub flush_interval: Duration,
    /// Print the faults as they happen and a line of progress every few seconds.
    pub progress: bool,
}

impl Default for ChaosSettings {
    fn default() -> Self {
        Self {
            seed: 7,
            duration: Duration::from_secs(30),
            rate: 400.0,
            polls: 6,
            options: 4,
            screens_per_replica: 4,
            faults: 6,
            duplicates: 0.05,
            request_timeout: Duration::from_secs(5),
            settle_timeout: Duration::from_secs(60),
            recovery_timeout: Duration::from_secs(120),
            flush_interval: Duration::from_millis(500),
            progress: true,
        }
    }
}

/// One vote attempt as the run saw it.
#[derive(Debug, Clone, Copy)]
pub struct VoteRecord {
    /// When it was due to be sent.
    pub due: Instant,
    /// When its answer (or failure) came.
    pub answered: Instant,
    /// The answer.
    pub answer: Answer,
    /// The voting-api replica it went to.
    pub api: usize,
}

/// A fault as it was injected.
#[derive(Debug, Clone)]
pub struct InjectedFault {
    /// What the plan said.
    pub planned: PlannedFault,
    /// The process hit (`voting-api-1`, `kafka-2`, `redis`, `postgres`).
    pub process: String,
    /// When it was killed.
    pub killed_at: Instant,
    /// When it was started again.
    pub restarted_at: Instant,
}

/// Everything measured, for [`report::build`].
pub struct Observations {
    /// When the load started.
    pub started: Instant,
    /// When the load stopped and every answer was in.
    pub load_ended: Instant,
    /// Every vote's outcome, in answer order.
    pub votes: Vec<VoteRecord>,
    /// The tally of the stress tool (accepted ballots per poll and option, unknown ones).
    pub tally: Tally,
    /// Scheduled votes not sent because too many were in flight.
    pub skipped: u64,
    /// Faults as injected.
    pub faults: Vec<InjectedFault>,
    /// Health of every process through the run.
    pub health: crate::monitor::HealthLog,
    /// Processes still unhealthy after the recovery timeout.
    pub unhealthy_at_end: Vec<String>,
    /// From the end of the load until every process was healthy.
    pub healthy_after: Duration,
    /// The stress tool's exactly-once check.
    pub final_check: check::FinalCheck,
    /// Per poll, the total every screen must end on.
    pub final_totals: Vec<i64>,
    /// From the end of the final check until every screen showed the final totals (`None`:
    /// not within the settle timeout).
    pub converged_after: Option<Duration>,
    /// Per realtime replica: screens asked for, screens joined, and their logs.
    pub screens: Vec<(usize, usize, Vec<ScreenLog>)>,
}

/// Runs the load and the faults against `stack` and checks the outcome.
pub async fn run(
    stack: &mut ReplicaStack,
    settings: &ChaosSettings,
) -> anyhow::Result<ChaosReport> {
    let apis = stack.urls(Service::VotingApi);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .timeout(settings.request_timeout)
        .build()
        .context("building the HTTP client")?;
    let keys = stack.keys();
    let mut polls = setup::create_polls(
        &http,
        &apis[0],
        &keys,
        settings.polls.max(1),
        settings.options,
    )
    .await?;
    setup::read_baselines(&http, &apis[0], &mut polls).await?;

    let mut screens = Vec::new();
    for url in stack.urls(Service::RealtimeService) {
        let server: std::net::SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("realtime-service address {url}"))?;
        screens.push(
            Screens::connect(
                ScreenSettings {
                    server,
                    source_addrs: Vec::new(),
                    polls: polls.iter().map(|p| p.id).collect(),
                    reconnect: true,
                },
                settings.screens_per_replica,
                16,
            )
            .await?,
        );
    }

    let option_counts: Vec<usize> = polls.iter().map(|p| p.options.len()).collect();
    let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
    let voting = Arc::new(Voting::new(
        http.clone(),
        keys,
        &apis,
        format!("chaos-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        &polls,
        settings.duplicates,
        outcomes_tx,
    ));
    let collector = tokio::spawn(collect(outcomes_rx, Tally::new(&option_counts)));
    let monitor = Monitor::start(stack.probes(), stack.http.clone());
    let partitions = 3;
    let planned = plan::draw(
        settings.seed,
        settings.duration,
        settings.faults,
        stack.urls(Service::VotingApi).len(),
        partitions,
    );

    let started = Instant::now();
    let load = tokio::spawn(load::open_loop(
        voting.clone(),
        settings.rate,
        settings.duration,
        5_000,
    ));
    let mut faults = Vec::with_capacity(planned.len());
    for fault in planned {
        tokio::time::sleep_until(started + fault.at).await;
        let injected = inject(stack, fault).await;
        if settings.progress {
            eprintln!(
                "[{:>6.1}s] {} ({}), back after {:.1} s",
                (injected.killed_at - started).as_secs_f64(),
                report::describe(&injected.planned.target),
                injected.process,
                (injected.restarted_at - injected.killed_at).as_secs_f64(),
            );
        }
        faults.push(injected);
    }
    load.await.context("the load task")?;
    let drain_deadline = Instant::now() + settings.request_timeout + Duration::from_secs(1);
    while voting.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let skipped = voting.skipped.load(std::sync::atomic::Ordering::Relaxed);
    drop(voting);
    let (tally, votes) = collector.await.context("collecting outcomes")?;
    let load_ended = Instant::now();
    if settings.progress {
        eprintln!(
            "load done: {} votes, {} accepted; waiting for every process to be healthy",
            tally.sent,
            tally.accepted()
        );
    }

    let unhealthy_at_end = stack.unhealthy_after(settings.recovery_timeout).await;
    let healthy_after = load_ended.elapsed();
    let check_counts = || {
        check::final_check(
            &http,
            &apis[0],
            &polls,
            &tally,
            settings.settle_timeout,
            settings.flush_interval,
        )
    };
    let mut final_check = check_counts().await?;
    // Votes answered with an unknown outcome may still be counted well after the load (a
    // message queued in a producer while a broker was down is delivered when it is back), so
    // the screens are compared with the counts as they are now, read again each round.
    let converging = Instant::now();
    let live_totals = || async {
        let mut totals = Vec::with_capacity(polls.len());
        for poll in &polls {
            totals.push(setup::results(&http, &apis[0], poll).await.ok()?.total);
        }
        Some(totals)
    };
    let converged = pollstream_testkit::eventually(settings.settle_timeout, || async {
        let totals = live_totals().await?;
        let all = screens.iter().all(|s| {
            let shown = &s.totals;
            (0..shown.screens()).all(|screen| {
                totals
                    .iter()
                    .enumerate()
                    .all(|(poll, total)| shown.get(screen, poll) == Some(*total))
            })
        });
        all.then_some(())
    })
    .await;
    let final_totals: Vec<i64> = match live_totals().await {
        Some(totals) => totals,
        None => polls
            .iter()
            .zip(&final_check.polls)
            .map(|(poll, checked)| poll.baseline_total + checked.counted)
            .collect(),
    };
    let late = polls
        .iter()
        .zip(&final_check.polls)
        .zip(&final_totals)
        .any(|((poll, checked), total)| poll.baseline_total + checked.counted != *total);
    if late {
        // Counted since the check: check again on the counts the screens ended on.
        final_check = check_counts().await?;
    }
    let converged_after = converged.map(|()| converging.elapsed());
    let health = monitor.stop().await;
    let mut screen_logs = Vec::new();
    for screens in screens {
        let connected = screens.connected;
        screen_logs.push((
            settings.screens_per_replica,
            connected,
            screens.close().await,
        ));
    }
    Ok(report::build(
        settings,
        Observations {
            started,
            load_ended,
            votes,
            tally,
            skipped,
            faults,
            health,
            unhealthy_at_end,
            healthy_after,
            final_check,
            final_totals,
            converged_after,
            screens: screen_logs,
        },
    ))
}

/// Kills what `fault` targets, waits its `down_for`, and starts it again. A replica still
/// unready after an earlier fault, or a broker still down, is waited for first (a fault on a
/// target that is already down would measure nothing new), which may delay the fault.
async fn inject(stack: &mut ReplicaStack, fault: PlannedFault) -> InjectedFault {
    let (process, killed_at) = match fault.target {
        Target::Replica { service, index } => {
            let service = service.service();
            // A replica still starting after an earlier fault is let finish first.
            let url = stack.replica(service, index).url.clone();
            stack.wait_ready(&url, Duration::from_secs(60)).await;
            let name = stack.replica(service, index).name();
            stack.kill(service, index).await;
            (name, Instant::now())
        }
        Target::RawVotesLeader { partition } => {
            // Never two brokers down at once: with min.insync.replicas=2 that stops all writes.
            wait_for_brokers(stack).await;
            let leader = tokio::task::block_in_place(|| stack.raw_votes_leader(partition))
                .unwrap_or(stack.kafka.nodes[0].node_id);
            stack.kill_broker(leader).await;
            (format!("kafka-{leader}"), Instant::now())
        }
        Target::Redis => {
            stack.redis.kill().await;
            ("redis".to_owned(), Instant::now())
        }
        Target::Postgres => {
            stack.kill_postgres().await;
            ("postgres".to_owned(), Instant::now())
        }
    };
    tokio::time::sleep(fault.down_for).await;
    match fault.target {
        Target::Replica { service, index } => stack.restart(service.service(), index),
        Target::RawVotesLeader { .. } => {
            let node: i32 = process["kafka-".len()..].parse().expect("a node id");
            stack.restart_broker(node);
        }
        Target::Redis => stack.redis.resume().await,
        Target::Postgres => stack.resume_postgres().await,
    }
    InjectedFault {
        planned: fault,
        process,
        killed_at,
        restarted_at: Instant::now(),
    }
}

/// Waits (up to 120 s) until every broker answers.
async fn wait_for_brokers(stack: &ReplicaStack) {
    let probes: Vec<_> = stack
        .probes()
        .into_iter()
        .filter(|p| p.name.starts_with("kafka-"))
        .collect();
    let http = &stack.http;
    let probes = &probes;
    pollstream_testkit::eventually(Duration::from_secs(120), || async move {
        for probe in probes {
            if !probe.healthy(http).await {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Folds outcomes into the tally and keeps each one.
async fn collect(
    mut outcomes: mpsc::UnboundedReceiver<Outcome>,
    mut tally: Tally,
) -> (Tally, Vec<VoteRecord>) {
    let mut votes = Vec::new();
    while let Some(outcome) = outcomes.recv().await {
        tally.record(&outcome);
        votes.push(VoteRecord {
            due: outcome.due,
            answered: outcome.answered,
            answer: outcome.answer,
            api: outcome.api,
        });
    }
    (tally, votes)
}
