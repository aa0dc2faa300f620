//! One chaos run against a [`ReplicaStack`]: creates polls, connects screens to every
//! realtime-service replica, sends votes at a steady rate spread over every voting-api
//! replica, injects the planned faults, then waits for the stack to heal and checks the
//! outcome (see [`crate::report`]).

use std::time::Duration;

use anyhow::Context;
use pollstream_stress::check::{self, FinalCheck};
use pollstream_stress::load::{self, Outcome, Tally};
use pollstream_stress::prepare::{PollSource, Prepared, fresh_voter_prefix};
use pollstream_stress::screens::{ScreenLog, Screens};
use pollstream_testkit::replicas::{ReplicaStack, Service};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::monitor::Monitor;
use crate::observations::{InjectedFault, Observations, VoteRecord};
use crate::plan::{self, PlannedFault, Target};
use crate::report::{self, ChaosReport};
// Callers (the CLI, the chaos test) name the settings beside the run they configure.
pub use crate::settings::ChaosSettings;

/// Partitions of `raw-votes` in the replica stack, whose leaders the plan may kill.
const RAW_VOTES_PARTITIONS: i32 = 3;

/// Screens joining at once on each realtime-service replica.
const CONNECT_CONCURRENCY: usize = 16;

/// Runs the load and the faults against `stack` and checks the outcome.
pub async fn run(
    stack: &mut ReplicaStack,
    settings: &ChaosSettings,
) -> anyhow::Result<ChaosReport> {
    let apis = stack.urls(Service::VotingApi);
    let source = PollSource::Create {
        count: settings.polls,
        options: settings.options,
    };
    let prepared = Prepared::new(&apis[0], stack.keys(), &source, settings.request_timeout).await?;
    let screens = connect_screens(stack, &prepared, settings).await?;
    let monitor = Monitor::start(stack.probes(), stack.http.clone());
    let load = load_under_faults(stack, &prepared, &apis, settings).await?;
    let unhealthy_at_end = stack.unhealthy_after(settings.recovery_timeout).await;
    let healthy_after = load.ended.elapsed();
    let settled = settle(&prepared, &apis[0], &load.tally, &screens, settings).await?;
    let health = monitor.stop().await;
    let screen_logs = close_screens(screens, settings.screens_per_replica).await;
    Ok(report::build(
        settings,
        Observations {
            started: load.started,
            load_ended: load.ended,
            votes: load.votes,
            tally: load.tally,
            skipped: load.skipped,
            faults: load.faults,
            health,
            unhealthy_at_end,
            healthy_after,
            final_check: settled.final_check,
            final_totals: settled.final_totals,
            converged_after: settled.converged_after,
            screens: screen_logs,
        },
    ))
}

/// Connects the screens of every realtime-service replica, each joined to every poll and
/// reconnecting after a kill.
async fn connect_screens(
    stack: &ReplicaStack,
    prepared: &Prepared,
    settings: &ChaosSettings,
) -> anyhow::Result<Vec<Screens>> {
    let mut screens = Vec::new();
    for url in stack.urls(Service::RealtimeService) {
        let server: std::net::SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("realtime-service address {url}"))?;
        screens.push(
            prepared
                .connect_screens(
                    server,
                    Vec::new(),
                    true,
                    settings.screens_per_replica,
                    CONNECT_CONCURRENCY,
                )
                .await?,
        );
    }
    Ok(screens)
}

/// What the load under faults did.
struct LoadDone {
    /// When the load started.
    started: Instant,
    /// When the load stopped and every answer was in.
    ended: Instant,
    /// Every answer, folded.
    tally: Tally,
    /// Every vote's outcome, in answer order.
    votes: Vec<VoteRecord>,
    /// Scheduled votes not sent because too many were in flight.
    skipped: u64,
    /// Faults as injected.
    faults: Vec<InjectedFault>,
}

/// Sends votes at the steady rate over every voting-api replica while the planned faults are
/// injected, then waits for the answers in flight.
async fn load_under_faults(
    stack: &mut ReplicaStack,
    prepared: &Prepared,
    apis: &[String],
    settings: &ChaosSettings,
) -> anyhow::Result<LoadDone> {
    let (voting, outcomes, tally) =
        prepared.voting(apis, fresh_voter_prefix("chaos"), settings.duplicates);
    let collector = tokio::spawn(collect(outcomes, tally));
    let planned = plan::draw(
        settings.seed,
        settings.duration,
        settings.faults,
        apis.len(),
        RAW_VOTES_PARTITIONS,
    );
    let started = Instant::now();
    let load = tokio::spawn(load::open_loop(
        voting.clone(),
        settings.rate,
        settings.duration,
        5_000,
    ));
    let faults = inject_planned(stack, planned, started, settings.progress).await;
    load.await.context("the load task")?;
    let skipped = load::wait_for_answers(voting, settings.request_timeout).await;
    let (tally, votes) = collector.await.context("collecting outcomes")?;
    let ended = Instant::now();
    if settings.progress {
        eprintln!(
            "load done: {} votes, {} accepted; waiting for every process to be healthy",
            tally.sent,
            tally.accepted()
        );
    }
    Ok(LoadDone {
        started,
        ended,
        tally,
        votes,
        skipped,
        faults,
    })
}

/// Injects each planned fault at its time from `started`, one after the other.
async fn inject_planned(
    stack: &mut ReplicaStack,
    planned: Vec<PlannedFault>,
    started: Instant,
    progress: bool,
) -> Vec<InjectedFault> {
    let mut faults = Vec::with_capacity(planned.len());
    for fault in planned {
        tokio::time::sleep_until(started + fault.at).await;
        let injected = inject(stack, fault).await;
        if progress {
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
    faults
}

/// How the counts and the screens settled after the load.
struct Settled {
    /// The exactly-once check, on the counts the screens ended on.
    final_check: FinalCheck,
    /// Per poll, the total every screen must end on.
    final_totals: Vec<i64>,
    /// From the end of the first check until every screen showed the live totals.
    converged_after: Option<Duration>,
}

/// Checks the counts, waits for every screen to show them, and checks again when votes were
/// counted in the meantime.
async fn settle(
    prepared: &Prepared,
    api: &str,
    tally: &Tally,
    screens: &[Screens],
    settings: &ChaosSettings,
) -> anyhow::Result<Settled> {
    let polls = &prepared.polls;
    let check_counts = || {
        check::final_check(
            &prepared.http,
            api,
            polls,
            tally,
            settings.settle_timeout,
            settings.flush_interval,
        )
    };
    let mut final_check = check_counts().await?;
    // Votes answered with an unknown outcome may still be counted well after the load (a
    // message queued in a producer while a broker was down is delivered when it is back), so
    // the screens are compared with the counts as they are now, read again each round.
    let converging = Instant::now();
    let converged = pollstream_testkit::eventually(settings.settle_timeout, || async {
        let totals = live_totals(prepared, api).await?;
        screens_show(screens, &totals).then_some(())
    })
    .await;
    let final_totals: Vec<i64> = match live_totals(prepared, api).await {
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
    Ok(Settled {
        final_check,
        final_totals,
        converged_after: converged.map(|()| converging.elapsed()),
    })
}

/// Every poll's total as voting-api serves it now (`None` when one could not be read).
async fn live_totals(prepared: &Prepared, api: &str) -> Option<Vec<i64>> {
    let mut totals = Vec::with_capacity(prepared.polls.len());
    for poll in &prepared.polls {
        let results = pollstream_stress::setup::results(&prepared.http, api, poll).await;
        totals.push(results.ok()?.total);
    }
    Some(totals)
}

/// Whether every screen of every replica shows `totals`.
fn screens_show(screens: &[Screens], totals: &[i64]) -> bool {
    screens.iter().all(|s| {
        let shown = &s.totals;
        (0..shown.screens()).all(|screen| {
            totals
                .iter()
                .enumerate()
                .all(|(poll, total)| shown.get(screen, poll) == Some(*total))
        })
    })
}

/// Disconnects every replica's screens: per replica, screens asked for, joined, and their logs.
async fn close_screens(screens: Vec<Screens>, asked: usize) -> Vec<(usize, usize, Vec<ScreenLog>)> {
    let mut logs = Vec::new();
    for screens in screens {
        let connected = screens.connected;
        logs.push((asked, connected, screens.close().await));
    }
    logs
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
            code: outcome.code,
            api: outcome.api,
        });
    }
    (tally, votes)
}
