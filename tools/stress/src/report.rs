//! Turns the tally and the screens' logs into the figures of the summary.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

use crate::check::FinalCheck;
use crate::load::{Answer, Tally, latency_histogram};
use crate::screens::ScreenLog;

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value.
    pub max: f64,
}

impl Percentiles {
    /// Reads a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| (micros as f64 / 10.0).round() / 100.0;
        Self {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.5)),
            p90: ms(histogram.value_at_quantile(0.9)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  (n={})",
            self.p50, self.p90, self.p99, self.p999, self.max, self.count
        )
    }
}

/// Vote-to-screen latency over every (accepted vote, screen) pair.
///
/// A vote accepted at `t` as the `r`-th accepted vote of its poll is on a screen at the first
/// snapshot that screen received after `t` with a total of at least `r` (plus the total before
/// the run). Votes of one poll travel through several partitions and batches, so the `r`-th
/// accepted is not necessarily among the first `r` counted; across a whole flush the
/// difference averages out, and the figure is exact whenever a snapshot counts every vote
/// accepted before it, which is what a screen shows.
pub fn vote_to_screen(
    accepted_at: &[Vec<Instant>],
    baselines: &[i64],
    logs: &[ScreenLog],
) -> (Histogram<u64>, u64) {
    let mut histogram = latency_histogram();
    let mut never = 0;
    each_vote_on_screen(
        accepted_at,
        baselines,
        logs,
        |_, _, _, on_screen| match on_screen {
            Some(delay) => {
                let _ = histogram.record(delay.as_micros().max(1) as u64);
            }
            None => never += 1,
        },
    );
    (histogram, never)
}

/// Calls `each(screen, poll, accepted, delay)` for every (accepted vote, screen) pair, with
/// `delay` from the vote's `202` to the first later snapshot on that screen that covers it
/// (`None`: never), by the rule of [`vote_to_screen`]; `screen` indexes `logs`.
pub fn each_vote_on_screen(
    accepted_at: &[Vec<Instant>],
    baselines: &[i64],
    logs: &[ScreenLog],
    mut each: impl FnMut(usize, usize, Instant, Option<Duration>),
) {
    let mut sorted: Vec<Vec<Instant>> = accepted_at.to_vec();
    for times in &mut sorted {
        times.sort_unstable();
    }
    for (screen, log) in logs.iter().enumerate() {
        for (poll, times) in sorted.iter().enumerate() {
            let seen: Vec<(Instant, i64)> = log
                .deliveries
                .iter()
                .filter(|d| d.poll as usize == poll)
                .map(|d| (d.received, d.total - baselines[poll]))
                .collect();
            // Both the accept times and the ranks grow, so the matching snapshot only moves
            // forward: one pass over each list.
            let mut next = 0;
            for (rank, accepted) in times.iter().enumerate() {
                let rank = rank as i64 + 1;
                while next < seen.len() && (seen[next].0 <= *accepted || seen[next].1 < rank) {
                    next += 1;
                }
                let delay = seen.get(next).map(|(received, _)| *received - *accepted);
                each(screen, poll, *accepted, delay);
            }
        }
    }
}

/// Fan-out figures: how fast and how completely snapshots reached every screen.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FanOut {
    /// Screens asked for.
    pub clients: usize,
    /// Screens connected and joined.
    pub connected: usize,
    /// Why some failed (first few reasons).
    pub connect_failures: Vec<String>,
    /// `poll-results` received, all screens.
    pub deliveries: u64,
    /// Deliveries per second between the first and the last one.
    pub deliveries_per_second: f64,
    /// Distinct snapshots (poll, seq) broadcast during the run.
    pub snapshots: usize,
    /// From the snapshot's `at` (taken by the aggregator) to its arrival on a screen.
    pub delivery_latency: Percentiles,
    /// Per snapshot: from its first to its last arrival across screens.
    pub spread: Percentiles,
    /// (screen, snapshot) pairs that never arrived though newer than the screen's join.
    pub missed: u64,
    /// Screens that missed at least one snapshot.
    pub screens_missing_updates: usize,
    /// realtime-service resident memory before the screens connected, KiB.
    pub server_rss_before_kib: Option<u64>,
    /// ... and with every screen joined, KiB.
    pub server_rss_after_kib: Option<u64>,
    /// The difference per connected screen, KiB.
    pub server_kib_per_connection: Option<f64>,
}

/// Computes the fan-out figures from the screens' logs.
pub fn fan_out(
    clients: usize,
    connected: usize,
    connect_failures: Vec<String>,
    logs: &[ScreenLog],
    rss: (Option<u64>, Option<u64>),
) -> FanOut {
    let arrivals = Arrivals::of(logs);
    let mut spread = latency_histogram();
    for (earliest, latest) in arrivals.first_and_last.values() {
        let _ = spread.record((*latest - *earliest).as_micros().max(1) as u64);
    }
    let broadcast: BTreeSet<(u32, i64)> = arrivals.first_and_last.keys().copied().collect();
    let (missed, screens_missing_updates) = missed_snapshots(logs, &broadcast);
    let seconds = match (arrivals.first, arrivals.last) {
        (Some(first), Some(last)) if last > first => (last - first).as_secs_f64(),
        _ => 0.0,
    };
    let per_connection = match rss {
        (Some(before), Some(after)) if connected > 0 => {
            Some(((after as f64 - before as f64) / connected as f64 * 100.0).round() / 100.0)
        }
        _ => None,
    };
    FanOut {
        clients,
        connected,
        connect_failures,
        deliveries: arrivals.deliveries,
        deliveries_per_second: if seconds > 0.0 {
            (arrivals.deliveries as f64 / seconds).round()
        } else {
            0.0
        },
        snapshots: broadcast.len(),
        delivery_latency: Percentiles::of(&arrivals.delay),
        spread: Percentiles::of(&spread),
        missed,
        screens_missing_updates,
        server_rss_before_kib: rss.0,
        server_rss_after_kib: rss.1,
        server_kib_per_connection: per_connection,
    }
}

/// Every delivery of every screen, folded.
struct Arrivals {
    /// Deliveries, all screens.
    deliveries: u64,
    /// From each snapshot's `at` to its arrival, microseconds.
    delay: Histogram<u64>,
    /// Per snapshot (poll, seq): its first and its last arrival across screens.
    first_and_last: HashMap<(u32, i64), (Instant, Instant)>,
    /// The first delivery of all.
    first: Option<Instant>,
    /// The last delivery of all.
    last: Option<Instant>,
}

impl Arrivals {
    fn of(logs: &[ScreenLog]) -> Self {
        let mut arrivals = Self {
            deliveries: 0,
            delay: latency_histogram(),
            first_and_last: HashMap::new(),
            first: None,
            last: None,
        };
        for d in logs.iter().flat_map(|log| &log.deliveries) {
            arrivals.deliveries += 1;
            let _ = arrivals.delay.record(d.delay_micros.max(1) as u64);
            let entry = arrivals
                .first_and_last
                .entry((d.poll, d.seq))
                .or_insert((d.received, d.received));
            entry.0 = entry.0.min(d.received);
            entry.1 = entry.1.max(d.received);
            arrivals.first = Some(arrivals.first.map_or(d.received, |f| f.min(d.received)));
            arrivals.last = Some(arrivals.last.map_or(d.received, |l| l.max(d.received)));
        }
        arrivals
    }
}

/// (screen, snapshot) pairs of `broadcast` a screen never received though newer than its
/// join, and how many screens missed at least one.
fn missed_snapshots(logs: &[ScreenLog], broadcast: &BTreeSet<(u32, i64)>) -> (u64, usize) {
    let mut missed = 0u64;
    let mut screens_missing_updates = 0;
    for log in logs {
        let got: BTreeSet<(u32, i64)> = log.deliveries.iter().map(|d| (d.poll, d.seq)).collect();
        let missing = broadcast
            .iter()
            .filter(|(poll, seq)| {
                *seq > log.joined_seq[*poll as usize] && !got.contains(&(*poll, *seq))
            })
            .count() as u64;
        missed += missing;
        if missing > 0 {
            screens_missing_updates += 1;
        }
    }
    (missed, screens_missing_updates)
}

/// The whole summary, printed as text or JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `open` (fixed rate) or `closed` (fixed concurrency).
    pub mode: String,
    /// Open loop: the target rate.
    pub target_rate: Option<f64>,
    /// Closed loop: the concurrency.
    pub concurrency: Option<usize>,
    /// Seconds of load.
    pub duration_seconds: f64,
    /// Join codes of the polls.
    pub polls: Vec<String>,
    /// Attempts sent.
    pub sent: u64,
    /// `202` answers.
    pub accepted: u64,
    /// Distinct ballots accepted (a duplicate accepted twice counts once).
    pub accepted_distinct: u64,
    /// Answers by status code, plus `timeout` and `transport`.
    pub by_status: HashMap<String, u64>,
    /// Open loop: scheduled votes skipped because too many were in flight.
    pub skipped: u64,
    /// Duplicate attempts sent, and how many were accepted anyway.
    pub duplicates_sent: u64,
    /// See `duplicates_sent`.
    pub duplicates_accepted: u64,
    /// Accepted votes per second over the load's duration.
    pub accepted_per_second: f64,
    /// From due time (open loop) or send time (closed loop) to the `202`.
    pub accept_latency: Percentiles,
    /// Same, for every HTTP answer.
    pub answer_latency: Percentiles,
    /// From the `202` to a screen showing a total that includes the vote.
    pub vote_to_screen: Option<Percentiles>,
    /// (vote, screen) pairs never shown before the screens closed.
    pub never_on_screen: u64,
    /// Screens and their deliveries.
    pub fan_out: Option<FanOut>,
    /// Counted versus accepted.
    pub check: FinalCheck,
}

impl Summary {
    /// Counts by answer, keyed for JSON.
    pub fn status_counts(tally: &Tally) -> HashMap<String, u64> {
        tally
            .answers
            .iter()
            .map(|(answer, count)| {
                let key = match answer {
                    Answer::Status(code) => code.to_string(),
                    Answer::Timeout => "timeout".to_owned(),
                    Answer::Transport => "transport".to_owned(),
                };
                (key, *count)
            })
            .collect()
    }

    /// The human-readable form.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.write_votes(&mut out);
        self.write_latencies(&mut out);
        if let Some(fan_out) = &self.fan_out {
            fan_out.write_screens(&mut out);
        }
        self.check.write_verdict(&mut out);
        out
    }

    /// The heading, then what the votes got.
    fn write_votes(&self, out: &mut String) {
        let load = match (self.target_rate, self.concurrency) {
            (Some(rate), _) => format!("open loop at {rate} votes/s"),
            (_, Some(c)) => format!("closed loop, concurrency {c}"),
            _ => self.mode.clone(),
        };
        let _ = writeln!(
            out,
            "\n== pollstream-stress: {load}, {:.1} s, polls {}",
            self.duration_seconds,
            self.polls.join(",")
        );
        let mut statuses: Vec<_> = self.by_status.iter().collect();
        statuses.sort();
        let statuses: Vec<String> = statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(
            out,
            "votes sent        {}  ({})",
            self.sent,
            statuses.join(", ")
        );
        let _ = writeln!(
            out,
            "accepted          {} ({} distinct ballots), {:.0} votes/s",
            self.accepted, self.accepted_distinct, self.accepted_per_second
        );
        if self.skipped > 0 {
            let _ = writeln!(
                out,
                "skipped           {} (generator at --max-in-flight)",
                self.skipped
            );
        }
        if self.duplicates_sent > 0 {
            let _ = writeln!(
                out,
                "duplicates        {} sent, {} accepted",
                self.duplicates_sent, self.duplicates_accepted
            );
        }
    }

    /// Accept, answer and vote-to-screen latency.
    fn write_latencies(&self, out: &mut String) {
        let _ = writeln!(out, "accept latency    {}", self.accept_latency.line());
        let _ = writeln!(out, "answer latency    {}", self.answer_latency.line());
        if let Some(screen) = &self.vote_to_screen {
            let _ = writeln!(out, "vote-to-screen    {}", screen.line());
            if self.never_on_screen > 0 {
                let _ = writeln!(
                    out,
                    "never on screen   {} (vote, screen) pairs",
                    self.never_on_screen
                );
            }
        }
    }
}

impl FanOut {
    /// The screens, their deliveries and realtime-service's memory.
    fn write_screens(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "screens           {}/{} connected, {} snapshots, {} deliveries, {:.0}/s, {} missed ({} screens)",
            self.connected,
            self.clients,
            self.snapshots,
            self.deliveries,
            self.deliveries_per_second,
            self.missed,
            self.screens_missing_updates
        );
        for failure in &self.connect_failures {
            let _ = writeln!(out, "  connect failure: {failure}");
        }
        let _ = writeln!(out, "delivery latency  {}", self.delivery_latency.line());
        let _ = writeln!(out, "fan-out spread    {}", self.spread.line());
        if let (Some(before), Some(after)) = (self.server_rss_before_kib, self.server_rss_after_kib)
        {
            let _ = writeln!(
                out,
                "realtime memory   {before} KiB -> {after} KiB, {} KiB per connection",
                self.server_kib_per_connection
                    .map_or("?".to_owned(), |k| format!("{k:.1}"))
            );
        }
    }
}

impl FinalCheck {
    /// The verdict, then each poll's counts.
    fn write_verdict(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "final check       {}: {} lost, {} doubled (settled {} ms after the load)",
            if self.passed { "PASSED" } else { "FAILED" },
            self.lost,
            self.doubled,
            self.settle_millis
        );
        for poll in &self.polls {
            let _ = writeln!(
                out,
                "  poll {}: accepted {}, counted {}, unknown {}, option mismatches {}",
                poll.code, poll.accepted, poll.counted, poll.unknown, poll.option_mismatches
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::screens::Delivery;

    #[test]
    fn a_vote_is_on_screen_at_the_first_later_snapshot_that_covers_it() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let accepted = vec![vec![at(0), at(10), at(20)]];
        let delivery = |ms, total| Delivery {
            poll: 0,
            seq: total,
            total,
            received: at(ms),
            delay_micros: 1,
            rejoin: false,
        };
        let log = ScreenLog {
            joined_seq: vec![0],
            // 2 counted at 100 ms, 3 at 300 ms.
            deliveries: vec![delivery(100, 2), delivery(300, 3)],
            ..ScreenLog::default()
        };
        let (histogram, never) = vote_to_screen(&accepted, &[0], &[log]);
        assert_eq!(never, 0);
        assert_eq!(histogram.len(), 3);
        assert!(histogram.equivalent(histogram.min(), 90_000));
        assert!(histogram.equivalent(histogram.max(), 280_000));
    }

    #[test]
    fn missed_snapshots_are_those_newer_than_the_join() {
        let t0 = Instant::now();
        let delivery = |seq| Delivery {
            poll: 0,
            seq,
            total: seq,
            received: t0,
            delay_micros: 1,
            rejoin: false,
        };
        let complete = ScreenLog {
            joined_seq: vec![0],
            deliveries: vec![delivery(1), delivery(2), delivery(3)],
            ..ScreenLog::default()
        };
        let late_joiner = ScreenLog {
            joined_seq: vec![2],
            deliveries: vec![delivery(3)],
            ..ScreenLog::default()
        };
        let gap = ScreenLog {
            joined_seq: vec![0],
            deliveries: vec![delivery(1), delivery(3)],
            ..ScreenLog::default()
        };
        let f = fan_out(3, 3, vec![], &[complete, late_joiner, gap], (None, None));
        assert_eq!(f.snapshots, 3);
        assert_eq!(f.missed, 1);
        assert_eq!(f.screens_missing_updates, 1);
    }
}
