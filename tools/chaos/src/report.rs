//! What a chaos run found: the checks (exactly-once counting, screens that converge and never
//! go backwards, every process healthy again), the impact of each fault (how long votes were
//! refused, how far screens lagged, how long recovery took), as text and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use pollstream_stress::check::FinalCheck;
use pollstream_stress::load::{Answer, latency_histogram};
use pollstream_stress::report::{Percentiles, each_vote_on_screen};
use pollstream_stress::screens::ScreenLog;
use serde::Serialize;
use tokio::time::Instant;

use crate::observations::{Observations, VoteRecord};
use crate::plan::{ServiceName, Target};
use crate::settings::ChaosSettings;

/// The whole result of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChaosReport {
    /// Whether every check passed.
    pub passed: bool,
    /// Each check and its verdict.
    pub checks: Vec<Check>,
    /// The fault plan's seed.
    pub seed: u64,
    /// How long votes were sent, seconds.
    pub duration_seconds: f64,
    /// Votes per second asked for.
    pub rate: f64,
    /// What the votes got.
    pub votes: VoteCounts,
    /// Each fault and what it did.
    pub faults: Vec<FaultImpact>,
    /// The exactly-once check, per poll.
    pub final_check: FinalCheck,
    /// What the screens saw.
    pub screens: ScreenVerdict,
    /// From the end of the load until every process was healthy, milliseconds.
    pub healthy_after_load_ms: u64,
    /// Processes still unhealthy at the end.
    pub unhealthy_at_end: Vec<String>,
    /// Second by second (by when votes were due): what they got.
    pub per_second: Vec<SecondCounts>,
    /// The availability targets, measured over the votes sent to a live voting-api replica.
    pub targets: Targets,
}

/// How available voting stayed, over the votes sent to a voting-api replica that was up (a
/// vote sent to a replica between its kill and its next healthy probe is the load balancer's
/// to route elsewhere, not the stack's to answer). Reported beside the checks, not part of the
/// verdict: the checks are what must never break, these are what the faults cost.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Targets {
    /// Votes due while their replica was up.
    pub live_votes: u64,
    /// Share of those answered `202` or `409`, percent.
    pub answered_percent: f64,
    /// Share of those with no answer (timeout, broken connection), percent.
    pub unknown_percent: f64,
    /// The longest failure window of any fault over those votes, milliseconds, and its fault.
    pub longest_failure_ms: u64,
    /// The fault with that window (`kill -9 ... (process)`), if any failed at all.
    pub longest_failure_fault: Option<String>,
    /// Each target and whether the run met it.
    pub met: Vec<Check>,
}

/// At least this share of the live replicas' votes answered `202` or `409`, percent.
const TARGET_ANSWERED_PERCENT: f64 = 99.0;
/// At most this share of them without an answer, percent.
const TARGET_UNKNOWN_PERCENT: f64 = 0.5;
/// No fault's failure window over them longer than this.
const TARGET_FAILURE_WINDOW: Duration = Duration::from_secs(3);

/// The votes due in one second of the load, by outcome.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecondCounts {
    /// Seconds from the start of the load.
    pub second: u64,
    /// Answered `202`.
    pub accepted: u64,
    /// Answered `503` or `429`.
    pub refused: u64,
    /// Answered with another error status.
    pub errors: u64,
    /// No answer.
    pub unknown: u64,
    /// Slowest `202`, milliseconds from when the vote was due.
    pub slowest_accept_ms: u64,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The figures behind the verdict.
    pub detail: String,
}

/// Vote attempts by outcome.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoteCounts {
    /// Attempts sent.
    pub sent: u64,
    /// `202`, all attempts.
    pub accepted: u64,
    /// `202` for distinct ballots.
    pub accepted_distinct: u64,
    /// `409` (a ballot already there).
    pub duplicate: u64,
    /// `503` or `429`: refused, to be retried.
    pub refused: u64,
    /// Any other status.
    pub errors: u64,
    /// No answer (timeout, broken connection): may or may not count.
    pub unknown: u64,
    /// Repeated ballots sent on purpose.
    pub duplicates_sent: u64,
    /// Repeated ballots answered `202` although an earlier attempt already got one.
    pub duplicates_accepted: u64,
    /// Scheduled votes not sent because too many were in flight.
    pub skipped: u64,
    /// Attempts per status and error code or failure, e.g. `"202"`,
    /// `"503 kafka_unavailable"`, `"timeout"`.
    pub by_answer: BTreeMap<String, u64>,
}

/// One fault and its impact, measured over its window: from its kill until the next fault's
/// (or the end of the load).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultImpact {
    /// When the process was killed, milliseconds from the start of the load: the planned time,
    /// or later when the injector waited for the target to be healthy first.
    pub at_ms: u64,
    /// When the plan said to kill it.
    pub planned_at_ms: u64,
    /// What the plan targeted.
    pub target: Target,
    /// The process hit.
    pub process: String,
    /// From the kill to the restart, milliseconds.
    pub down_ms: u64,
    /// From the kill until that process was healthy again (`None`: not seen healthy).
    pub process_healthy_after_ms: Option<u64>,
    /// From the kill until every process was healthy again.
    pub all_healthy_after_ms: Option<u64>,
    /// Votes due in the window.
    pub votes: u64,
    /// Of those, refused with `503`/`429`.
    pub refused: u64,
    /// Of those, other errors.
    pub errors: u64,
    /// Of those, without an answer.
    pub unknown: u64,
    /// From the first failed vote of the window being due to the last one's answer, ms.
    pub refused_for_ms: u64,
    /// Of the window's votes, those sent to a voting-api replica that was down.
    pub to_down_replica: u64,
    /// Like `refused_for_ms`, over the votes sent to a live replica only.
    pub live_failing_for_ms: u64,
    /// The window's failed votes by answer: `"503 kafka_unavailable"`, `"timeout"`, ...
    pub failures: BTreeMap<String, u64>,
    /// Vote-to-screen latency of the votes accepted in the window, every screen.
    pub screen_lag: Option<Percentiles>,
}

/// What the screens saw.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScreenVerdict {
    /// Screens asked for, all replicas.
    pub screens: usize,
    /// Screens that connected and joined at the start.
    pub connected: usize,
    /// Reconnections after a broken connection, all screens.
    pub reconnects: u64,
    /// From the final check until every screen showed the final totals, ms (`None`: never).
    pub converged_after_ms: Option<u64>,
    /// Screens whose last total differs from the final one: `replica/screen/poll: shown != final`.
    pub not_converged: Vec<String>,
    /// Snapshots whose `seq` or total was below one the same screen saw earlier.
    pub went_backwards: u64,
    /// The first few of those.
    pub backwards_examples: Vec<String>,
    /// Vote-to-screen latency over the whole run, every screen.
    pub vote_to_screen: Percentiles,
}

/// How a report names a target.
pub fn describe(target: &Target) -> String {
    match target {
        Target::Replica { service, index } => {
            format!("kill -9 {}-{index}", service.service().name())
        }
        Target::RawVotesLeader { partition } => {
            format!("kill -9 the broker leading raw-votes/{partition}")
        }
        Target::Redis => "restart Redis, losing its keys".to_owned(),
        Target::Postgres => "crash-stop PostgreSQL".to_owned(),
    }
}

fn ms(duration: Duration) -> u64 {
    duration.as_millis() as u64
}

/// A vote's answer as the report names it: the status, with the error code its body gave
/// (`503 kafka_unavailable`), or `timeout` / `connection`.
fn answer_label(vote: &VoteRecord) -> String {
    match (vote.answer, vote.code) {
        (Answer::Status(status), Some(code)) => format!("{status} {code}"),
        (Answer::Status(status), None) => status.to_string(),
        (Answer::Timeout, _) => "timeout".to_owned(),
        (Answer::Transport, _) => "connection".to_owned(),
    }
}

/// Whether a vote got a final answer: `202`, or `409` for a ballot already there.
fn answered(vote: &VoteRecord) -> bool {
    matches!(vote.answer, Answer::Status(202 | 409))
}

/// When each voting-api replica was down: from its kill until its first healthy probe after
/// the restart (or the end of the load), per replica index.
fn api_downtimes(seen: &Observations) -> Vec<(usize, Instant, Instant)> {
    seen.faults
        .iter()
        .filter_map(|fault| match fault.planned.target {
            Target::Replica {
                service: ServiceName::VotingApi,
                index,
            } => {
                let back = seen
                    .health
                    .healthy_from(&fault.process, fault.restarted_at)
                    .unwrap_or(seen.load_ended);
                Some((index, fault.killed_at, back))
            }
            _ => None,
        })
        .collect()
}

/// Whether `vote` went to a replica that was up when it was due.
fn to_live_replica(vote: &VoteRecord, downtimes: &[(usize, Instant, Instant)]) -> bool {
    !downtimes
        .iter()
        .any(|(index, from, until)| *index == vote.api && vote.due >= *from && vote.due < *until)
}

/// Turns what the run observed into the report and its verdict.
pub fn build(settings: &ChaosSettings, seen: Observations) -> ChaosReport {
    let votes = vote_counts(&seen);
    let faults = fault_impacts(&seen);
    let targets = targets(&seen, &faults);
    let screens = screen_verdict(&seen);
    let mut checks = vec![
        exactly_once(&seen.final_check),
        repeats_refused(&votes),
        screens_converged(&screens),
        screens_never_backwards(&screens),
        healthy_again(&seen),
    ];
    if settings.duplicates == 0.0 {
        checks.remove(1);
    }
    ChaosReport {
        passed: checks.iter().all(|c| c.passed),
        checks,
        seed: settings.seed,
        duration_seconds: (seen.load_ended - seen.started).as_secs_f64().round(),
        rate: settings.rate,
        votes,
        faults,
        final_check: seen.final_check.clone(),
        screens,
        healthy_after_load_ms: ms(seen.healthy_after),
        unhealthy_at_end: seen.unhealthy_at_end.clone(),
        per_second: per_second(&seen),
        targets,
    }
}

fn targets(seen: &Observations, faults: &[FaultImpact]) -> Targets {
    let downtimes = api_downtimes(seen);
    let live: Vec<&VoteRecord> = seen
        .votes
        .iter()
        .filter(|v| to_live_replica(v, &downtimes))
        .collect();
    let share = |n: usize| {
        if live.is_empty() {
            0.0
        } else {
            100.0 * n as f64 / live.len() as f64
        }
    };
    let answered_percent = share(live.iter().filter(|v| answered(v)).count());
    let unknown_percent = share(
        live.iter()
            .filter(|v| matches!(v.answer, Answer::Timeout | Answer::Transport))
            .count(),
    );
    let longest = faults
        .iter()
        .max_by_key(|f| f.live_failing_for_ms)
        .filter(|f| f.live_failing_for_ms > 0);
    let longest_failure_ms = longest.map_or(0, |f| f.live_failing_for_ms);
    let longest_failure_fault = longest.map(|f| format!("{} ({})", describe(&f.target), f.process));
    let met = vec![
        Check {
            name: format!(
                "at least {TARGET_ANSWERED_PERCENT}% of the votes sent to a live replica answered 202 or 409"
            ),
            passed: answered_percent >= TARGET_ANSWERED_PERCENT,
            detail: format!("{answered_percent:.2}% of {}", live.len()),
        },
        Check {
            name: format!("at most {TARGET_UNKNOWN_PERCENT}% of them unknown"),
            passed: unknown_percent <= TARGET_UNKNOWN_PERCENT,
            detail: format!("{unknown_percent:.2}%"),
        },
        Check {
            name: format!(
                "no fault's failure window over {} s",
                TARGET_FAILURE_WINDOW.as_secs()
            ),
            passed: longest_failure_ms <= ms(TARGET_FAILURE_WINDOW),
            detail: longest_failure_fault.as_ref().map_or_else(
                || "no failures".to_owned(),
                |fault| {
                    format!(
                        "longest {:.1} s: {fault}",
                        longest_failure_ms as f64 / 1000.0
                    )
                },
            ),
        },
    ];
    Targets {
        live_votes: live.len() as u64,
        answered_percent,
        unknown_percent,
        longest_failure_ms,
        longest_failure_fault,
        met,
    }
}

fn exactly_once(check: &FinalCheck) -> Check {
    Check {
        name: "every 202 counted exactly once, per option; unknown outcomes at most once"
            .to_owned(),
        passed: check.passed,
        detail: format!(
            "accepted {}, counted {}, unknown {}, lost {}, doubled {}, options off {}",
            check.polls.iter().map(|p| p.accepted).sum::<i64>(),
            check.polls.iter().map(|p| p.counted).sum::<i64>(),
            check.polls.iter().map(|p| p.unknown).sum::<i64>(),
            check.lost,
            check.doubled,
            check
                .polls
                .iter()
                .map(|p| p.option_mismatches)
                .sum::<usize>(),
        ),
    }
}

fn repeats_refused(votes: &VoteCounts) -> Check {
    Check {
        name: "a repeated ballot never gets a 202 it will not be counted for".to_owned(),
        passed: votes.duplicates_accepted == 0,
        detail: format!(
            "{} repeats sent, {} answered 202",
            votes.duplicates_sent, votes.duplicates_accepted
        ),
    }
}

fn screens_converged(screens: &ScreenVerdict) -> Check {
    Check {
        name: "every screen on every realtime replica converges to the final count".to_owned(),
        passed: screens.connected == screens.screens && screens.not_converged.is_empty(),
        detail: format!(
            "{}/{} screens joined, {} reconnections, converged after {}",
            screens.connected,
            screens.screens,
            screens.reconnects,
            screens
                .converged_after_ms
                .map_or("never".to_owned(), |ms| format!("{ms} ms")),
        ),
    }
}

fn screens_never_backwards(screens: &ScreenVerdict) -> Check {
    Check {
        name: "no screen saw seq or a count go backwards".to_owned(),
        passed: screens.went_backwards == 0,
        detail: format!("{} backward steps", screens.went_backwards),
    }
}

fn healthy_again(seen: &Observations) -> Check {
    Check {
        name: "every process healthy again with no human action".to_owned(),
        passed: seen.unhealthy_at_end.is_empty(),
        detail: if seen.unhealthy_at_end.is_empty() {
            format!("all healthy {} ms after the load", ms(seen.healthy_after))
        } else {
            format!("still unhealthy: {}", seen.unhealthy_at_end.join(", "))
        },
    }
}

fn per_second(seen: &Observations) -> Vec<SecondCounts> {
    let mut seconds: Vec<SecondCounts> = Vec::new();
    for vote in &seen.votes {
        let second = vote.due.saturating_duration_since(seen.started).as_secs() as usize;
        while seconds.len() <= second {
            seconds.push(SecondCounts {
                second: seconds.len() as u64,
                ..SecondCounts::default()
            });
        }
        let counts = &mut seconds[second];
        match vote.answer {
            Answer::Status(202) => {
                counts.accepted += 1;
                counts.slowest_accept_ms = counts
                    .slowest_accept_ms
                    .max(ms(vote.answered.saturating_duration_since(vote.due)));
            }
            Answer::Status(409) => {}
            Answer::Status(429 | 503) => counts.refused += 1,
            Answer::Status(_) => counts.errors += 1,
            Answer::Timeout | Answer::Transport => counts.unknown += 1,
        }
    }
    seconds
}

fn vote_counts(seen: &Observations) -> VoteCounts {
    let mut counts = VoteCounts {
        sent: seen.tally.sent,
        accepted_distinct: seen.tally.accepted(),
        duplicates_sent: seen.tally.duplicates_sent,
        duplicates_accepted: seen.tally.duplicates_accepted,
        skipped: seen.skipped,
        ..VoteCounts::default()
    };
    for vote in &seen.votes {
        *counts.by_answer.entry(answer_label(vote)).or_default() += 1;
    }
    for (answer, n) in &seen.tally.answers {
        match answer {
            Answer::Status(202) => counts.accepted += n,
            Answer::Status(409) => counts.duplicate += n,
            Answer::Status(429 | 503) => counts.refused += n,
            Answer::Status(_) => counts.errors += n,
            Answer::Timeout | Answer::Transport => counts.unknown += n,
        }
    }
    counts
}

fn fault_impacts(seen: &Observations) -> Vec<FaultImpact> {
    let logs = all_screen_logs(seen);
    let downtimes = api_downtimes(seen);
    (0..seen.faults.len())
        .map(|i| fault_impact(seen, i, &logs, &downtimes))
        .collect()
}

/// Every screen's log, all replicas.
fn all_screen_logs(seen: &Observations) -> Vec<ScreenLog> {
    seen.screens
        .iter()
        .flat_map(|(_, _, logs)| logs)
        .cloned()
        .collect()
}

/// The impact of fault `i`, over its window: from its kill to the next fault's (or the end of
/// the load).
fn fault_impact(
    seen: &Observations,
    i: usize,
    logs: &[ScreenLog],
    downtimes: &[(usize, Instant, Instant)],
) -> FaultImpact {
    let fault = &seen.faults[i];
    let from = fault.killed_at;
    let until = seen
        .faults
        .get(i + 1)
        .map_or(seen.load_ended, |next| next.killed_at);
    let window: Vec<&VoteRecord> = seen
        .votes
        .iter()
        .filter(|v| v.due >= from && v.due < until)
        .collect();
    let live: Vec<&VoteRecord> = window
        .iter()
        .copied()
        .filter(|v| to_live_replica(v, downtimes))
        .collect();
    let mut failures = BTreeMap::new();
    for vote in window.iter().filter(|v| !answered(v)) {
        *failures.entry(answer_label(vote)).or_default() += 1;
    }
    FaultImpact {
        at_ms: ms(from - seen.started),
        planned_at_ms: ms(fault.planned.at),
        target: fault.planned.target,
        process: fault.process.clone(),
        down_ms: ms(fault.restarted_at - fault.killed_at),
        process_healthy_after_ms: seen
            .health
            .healthy_from(&fault.process, fault.restarted_at)
            .map(|at| ms(at - from)),
        all_healthy_after_ms: seen
            .health
            .all_healthy_from(fault.restarted_at)
            .map(|at| ms(at - from)),
        votes: window.len() as u64,
        refused: count(&window, |a| matches!(a, Answer::Status(429 | 503))),
        errors: count(
            &window,
            |a| matches!(a, Answer::Status(s) if !matches!(s, 202 | 409 | 429 | 503)),
        ),
        unknown: count(&window, |a| {
            matches!(a, Answer::Timeout | Answer::Transport)
        }),
        refused_for_ms: ms(failing_for(&window)),
        to_down_replica: (window.len() - live.len()) as u64,
        live_failing_for_ms: ms(failing_for(&live)),
        failures,
        screen_lag: screen_lag(seen, logs, from, until),
    }
}

/// From the first failed vote of `window` being due to the last one's answer.
fn failing_for(window: &[&VoteRecord]) -> Duration {
    let failed: Vec<&&VoteRecord> = window.iter().filter(|v| !answered(v)).collect();
    match (
        failed.iter().map(|v| v.due).min(),
        failed.iter().map(|v| v.answered).max(),
    ) {
        (Some(first), Some(last)) => last.saturating_duration_since(first),
        _ => Duration::ZERO,
    }
}

/// Vote-to-screen latency of the votes accepted from `from` until `until`, every screen
/// (`None`: none was shown).
fn screen_lag(
    seen: &Observations,
    logs: &[ScreenLog],
    from: Instant,
    until: Instant,
) -> Option<Percentiles> {
    let mut lag = latency_histogram();
    // Ranks count from the run's start: the baselines are the totals before the run.
    let baselines = vec![0; seen.tally.accepted_at.len()];
    each_vote_on_screen(
        &seen.tally.accepted_at,
        &baselines,
        logs,
        |_, _, accepted, delay| {
            if accepted >= from
                && accepted < until
                && let Some(delay) = delay
            {
                let _ = lag.record(delay.as_micros().max(1) as u64);
            }
        },
    );
    (!lag.is_empty()).then(|| Percentiles::of(&lag))
}

fn count(votes: &[&VoteRecord], pick: impl Fn(Answer) -> bool) -> u64 {
    votes.iter().filter(|v| pick(v.answer)).count() as u64
}

fn screen_verdict(seen: &Observations) -> ScreenVerdict {
    let mut verdict = ScreenVerdict {
        screens: seen.screens.iter().map(|(asked, _, _)| asked).sum(),
        connected: seen.screens.iter().map(|(_, joined, _)| joined).sum(),
        reconnects: 0,
        converged_after_ms: seen.converged_after.map(ms),
        not_converged: Vec::new(),
        went_backwards: 0,
        backwards_examples: Vec::new(),
        vote_to_screen: Percentiles::of(&latency_histogram()),
    };
    for (replica, (_, _, logs)) in seen.screens.iter().enumerate() {
        for log in logs {
            verdict.reconnects += u64::from(log.reconnects);
            for (poll, final_total) in seen.final_totals.iter().enumerate() {
                verdict.read_poll(replica, log, poll, *final_total);
            }
        }
    }
    verdict.vote_to_screen = vote_to_screen(seen, &all_screen_logs(seen));
    verdict
}

impl ScreenVerdict {
    /// Reads what screen `log` of realtime replica `replica` showed of poll `poll`: each step
    /// backwards, and whether it ended on `final_total`.
    fn read_poll(&mut self, replica: usize, log: &ScreenLog, poll: usize, final_total: i64) {
        let mut last: Option<(i64, i64)> = None;
        for delivery in log.deliveries.iter().filter(|d| d.poll as usize == poll) {
            if let Some((seq, total)) = last
                && (delivery.seq < seq || delivery.total < total)
            {
                self.went_backwards += 1;
                if self.backwards_examples.len() < 5 {
                    self.backwards_examples.push(format!(
                        "realtime-service-{replica} screen {} poll {poll}: seq {seq} total {total} then seq {} total {}{}",
                        log.screen,
                        delivery.seq,
                        delivery.total,
                        if delivery.rejoin { " (re-join)" } else { "" }
                    ));
                }
            }
            let (seq, total) = last.unwrap_or((delivery.seq, delivery.total));
            last = Some((seq.max(delivery.seq), total.max(delivery.total)));
        }
        let shown = last.map(|(_, total)| total);
        // A screen that saw no snapshot at all during the run shows its join.
        if shown.is_some_and(|t| t != final_total) || (shown.is_none() && final_total != 0) {
            self.not_converged.push(format!(
                "realtime-service-{replica}/{}/{poll}: {} != {}",
                log.screen,
                shown.map_or("nothing".to_owned(), |t| t.to_string()),
                final_total
            ));
        }
    }
}

/// Vote-to-screen latency over the whole run, every screen.
fn vote_to_screen(seen: &Observations, logs: &[ScreenLog]) -> Percentiles {
    let baselines = vec![0; seen.tally.accepted_at.len()];
    let mut histogram = latency_histogram();
    each_vote_on_screen(
        &seen.tally.accepted_at,
        &baselines,
        logs,
        |_, _, _, delay| {
            if let Some(delay) = delay {
                let _ = histogram.record(delay.as_micros().max(1) as u64);
            }
        },
    );
    Percentiles::of(&histogram)
}

impl ChaosReport {
    /// The report for people: the timeline of faults and their impact, then the checks.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.write_votes(&mut out);
        self.write_per_second(&mut out);
        self.write_timeline(&mut out);
        self.write_screens(&mut out);
        self.write_checks(&mut out);
        self.write_targets(&mut out);
        out
    }

    /// The heading, then what the votes got.
    fn write_votes(&self, out: &mut String) {
        let v = &self.votes;
        let _ = writeln!(
            out,
            "chaos run: seed {}, {:.0} s at {:.0} votes/s over every voting-api replica",
            self.seed, self.duration_seconds, self.rate
        );
        let _ = writeln!(
            out,
            "votes: {} sent, {} accepted (202), {} refused (503/429), {} other errors, {} unknown, {} duplicate (409), {} skipped",
            v.sent, v.accepted, v.refused, v.errors, v.unknown, v.duplicate, v.skipped
        );
        let _ = writeln!(
            out,
            "by answer: {}",
            v.by_answer
                .iter()
                .map(|(answer, n)| format!("{answer} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    /// Accepted and failed votes, ten seconds a line.
    fn write_per_second(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nper second, accepted/failed (refused, errors, unknown):"
        );
        for row in self.per_second.chunks(10) {
            let cells: Vec<String> = row
                .iter()
                .map(|c| format!("{:>4}/{:<4}", c.accepted, c.refused + c.errors + c.unknown))
                .collect();
            let _ = writeln!(out, "  {:>4} s {}", row[0].second, cells.join(" "));
        }
    }

    /// Each fault, its recovery and what the votes and screens went through in its window.
    fn write_timeline(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\ntimeline (each fault's window runs to the next fault):"
        );
        let opt = |value: Option<u64>| {
            value.map_or("never".to_owned(), |ms| {
                format!("{:.1} s", ms as f64 / 1000.0)
            })
        };
        for fault in &self.faults {
            let _ = writeln!(
                out,
                "  {:>6.1} s  {} ({}): down {:.1} s, healthy after {}, all healthy after {}",
                fault.at_ms as f64 / 1000.0,
                describe(&fault.target),
                fault.process,
                fault.down_ms as f64 / 1000.0,
                opt(fault.process_healthy_after_ms),
                opt(fault.all_healthy_after_ms),
            );
            let _ = writeln!(
                out,
                "            votes {}: refused {}, errors {}, unknown {}; failures on live replicas over {:.1} s; screen lag {}",
                fault.votes,
                fault.refused,
                fault.errors,
                fault.unknown,
                fault.live_failing_for_ms as f64 / 1000.0,
                fault
                    .screen_lag
                    .as_ref()
                    .map_or("-".to_owned(), |p| format!(
                        "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                        p.p50, p.p99, p.max
                    )),
            );
            if !fault.failures.is_empty() {
                let _ = writeln!(
                    out,
                    "            failed: {}{}",
                    fault
                        .failures
                        .iter()
                        .map(|(answer, n)| format!("{answer} {n}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if fault.to_down_replica > 0 {
                        format!(
                            "; {} sent to a replica that was down",
                            fault.to_down_replica
                        )
                    } else {
                        String::new()
                    }
                );
            }
        }
    }

    /// The screens: joined, reconnected, latency, and the first steps back or misses.
    fn write_screens(&self, out: &mut String) {
        let s = &self.screens;
        let _ = writeln!(
            out,
            "\nscreens: {}/{} joined, {} reconnections, vote-to-screen p50 {:.0} ms p99 {:.0} ms max {:.0} ms",
            s.connected,
            s.screens,
            s.reconnects,
            s.vote_to_screen.p50,
            s.vote_to_screen.p99,
            s.vote_to_screen.max
        );
        for example in &s.backwards_examples {
            let _ = writeln!(out, "  backwards: {example}");
        }
        for screen in s.not_converged.iter().take(5) {
            let _ = writeln!(out, "  not converged: {screen}");
        }
    }

    /// Each check's verdict, then the run's.
    fn write_checks(&self, out: &mut String) {
        let _ = writeln!(out, "\nchecks:");
        for check in &self.checks {
            let _ = writeln!(
                out,
                "  [{}] {}: {}",
                if check.passed { "ok" } else { "FAILED" },
                check.name,
                check.detail
            );
        }
        let _ = writeln!(out, "{}", if self.passed { "PASSED" } else { "FAILED" });
    }

    /// The availability targets (not part of the verdict).
    fn write_targets(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\ntargets, over the {} votes sent to a live voting-api replica (not part of the verdict):",
            self.targets.live_votes
        );
        for target in &self.targets.met {
            let _ = writeln!(
                out,
                "  [{}] {}: {}",
                if target.passed { "met" } else { "missed" },
                target.name,
                target.detail
            );
        }
    }
}
