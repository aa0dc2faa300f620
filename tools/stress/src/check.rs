//! The final check: once the load stops, every poll's counted ballots must equal the distinct
//! ballots that got a `202`, option by option: nothing lost, nothing counted twice.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::load::Tally;
use crate::setup::{self, Results, TargetPoll};

/// The check's verdict for one poll.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollCheck {
    /// The poll's join code.
    pub code: String,
    /// Distinct ballots accepted with a `202`.
    pub accepted: i64,
    /// Ballots counted during the run (total minus the total before it).
    pub counted: i64,
    /// Attempts without a definite answer, which may legitimately be counted.
    pub unknown: i64,
    /// Accepted but not counted.
    pub lost: i64,
    /// Counted beyond the accepted and unknown ballots.
    pub doubled: i64,
    /// Options whose count differs from the accepted ballots for them.
    pub option_mismatches: usize,
}

/// The verdict for all polls.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalCheck {
    /// Whether every poll has 0 lost, 0 doubled and matching options.
    pub passed: bool,
    /// Lost ballots, all polls.
    pub lost: i64,
    /// Doubled ballots, all polls.
    pub doubled: i64,
    /// Milliseconds from the end of the load until the counts matched (or the timeout).
    pub settle_millis: u64,
    /// Per poll.
    pub polls: Vec<PollCheck>,
}

/// Waits up to `timeout` for the counts to reach the accepted ballots, then one more
/// `flush_interval` for late double counts, and compares.
pub async fn final_check(
    http: &reqwest::Client,
    api: &str,
    polls: &[TargetPoll],
    tally: &Tally,
    timeout: Duration,
    flush_interval: Duration,
) -> anyhow::Result<FinalCheck> {
    let started = Instant::now();
    let expected: Vec<i64> = tally.accepted_at.iter().map(|a| a.len() as i64).collect();
    wait_until_counted(http, api, polls, &expected, started + timeout).await?;
    let settle_millis = started.elapsed().as_millis() as u64;
    tokio::time::sleep(flush_interval + Duration::from_millis(500)).await;

    let mut checks = Vec::with_capacity(polls.len());
    for (index, poll) in polls.iter().enumerate() {
        let results = setup::results(http, api, poll).await?;
        checks.push(check_poll(poll, &results, tally, expected[index], index));
    }
    let lost = checks.iter().map(|c| c.lost).sum();
    let doubled = checks.iter().map(|c| c.doubled).sum();
    Ok(FinalCheck {
        passed: lost == 0 && doubled == 0 && checks.iter().all(|c| c.option_mismatches == 0),
        lost,
        doubled,
        settle_millis,
        polls: checks,
    })
}

/// Reads the counts every 100 ms until every poll has counted at least its `expected` votes
/// since the run began, or `deadline` has passed.
async fn wait_until_counted(
    http: &reqwest::Client,
    api: &str,
    polls: &[TargetPoll],
    expected: &[i64],
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        let mut reached = true;
        for (index, poll) in polls.iter().enumerate() {
            let results = setup::results(http, api, poll).await?;
            if results.total - poll.baseline_total < expected[index] {
                reached = false;
                break;
            }
        }
        if reached || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Compares poll `index`'s counts since the run began with its `accepted` votes, in total and
/// per option; a vote of unknown outcome may or may not count.
fn check_poll(
    poll: &TargetPoll,
    results: &Results,
    tally: &Tally,
    accepted: i64,
    index: usize,
) -> PollCheck {
    let counted = results.total - poll.baseline_total;
    let unknown = tally.unknown[index];
    let votes = setup::option_votes(poll, results);
    let option_mismatches = votes
        .iter()
        .zip(&poll.baseline_votes)
        .zip(&tally.accepted_votes[index])
        .filter(|((now, before), accepted)| {
            let counted = **now - **before;
            counted < **accepted || counted > **accepted + unknown
        })
        .count();
    PollCheck {
        code: poll.code.clone(),
        accepted,
        counted,
        unknown,
        lost: (accepted - counted).max(0),
        doubled: (counted - accepted - unknown).max(0),
        option_mismatches,
    }
}
