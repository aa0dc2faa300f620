//! Command-line options of `pollstream-stress`, and what both tools' `main` share: the
//! checks of the load's options and the run on a runtime whose verdict is the exit status.

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

/// Drives votes into voting-api and watches them arrive on Socket.IO screens.
///
/// Open loop (`--rate`): votes are scheduled at fixed times and latency is measured from the
/// scheduled time, so a slow server cannot hide queueing behind a slowed-down generator.
/// Closed loop (`--concurrency`): that many voters send back to back, as fast as possible.
/// At the end, the counted totals are compared with the accepted votes (0 lost, 0 doubled).
#[derive(Debug, Clone, Parser)]
#[command(name = "pollstream-stress", version)]
pub struct Args {
    /// voting-api base URL [default: http://127.0.0.1:$VOTING_API_PORT, port 3001 if unset]
    #[arg(long)]
    pub api: Option<String>,

    /// realtime-service base URL [default: http://127.0.0.1:$REALTIME_SERVICE_PORT, 3003]
    #[arg(long)]
    pub realtime: Option<String>,

    /// Open loop: votes per second, sent on schedule whatever the response times
    #[arg(long, conflicts_with = "concurrency")]
    pub rate: Option<f64>,

    /// Closed loop: voters sending back to back (used when --rate is not given)
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,

    /// How long to send votes, e.g. 60s, 500ms, 2m
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Polls to create; votes go round-robin over them
    #[arg(long, default_value_t = 1)]
    pub polls: usize,

    /// Options of each created poll
    #[arg(long, default_value_t = 4)]
    pub options: usize,

    /// Vote in an existing poll (by join code) instead of creating polls; repeatable
    #[arg(long = "poll", value_name = "CODE")]
    pub poll_codes: Vec<String>,

    /// Fraction of attempts (0 to 1) that repeat an earlier voter's ballot; each should get 409
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,

    /// Socket.IO clients joined to every poll, for vote-to-screen and fan-out figures
    #[arg(long, default_value_t = 1)]
    pub clients: usize,

    /// Local addresses the Socket.IO clients connect from, round-robin (e.g.
    /// 127.0.0.2,127.0.0.3), when one address runs out of ephemeral ports
    #[arg(long, value_delimiter = ',')]
    pub source_addrs: Vec<IpAddr>,

    /// Socket.IO clients connecting at the same time while setting up
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,

    /// Open loop: requests allowed in flight; a scheduled vote beyond that is skipped and
    /// reported, so the generator cannot exhaust itself
    #[arg(long, default_value_t = 20_000)]
    pub max_in_flight: usize,

    /// Per-request timeout; a vote without an answer by then has an unknown outcome
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// How long to wait after the load for the counted totals to reach the accepted votes
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub settle_timeout: Duration,

    /// The aggregator's flush interval [default: $FLUSH_INTERVAL_MS, else 2000 ms]; the
    /// final check waits one more interval to catch late double counts
    #[arg(long, value_parser = parse_duration)]
    pub flush_interval: Option<Duration>,

    /// realtime-service process id, to report its memory per connection [default: read
    /// .run/pids/realtime-service.pid when it exists]
    #[arg(long)]
    pub realtime_pid: Option<u32>,

    /// File holding the realtime-service pid (see --realtime-pid)
    #[arg(long, default_value = ".run/pids/realtime-service.pid", hide = true)]
    pub realtime_pid_file: PathBuf,

    /// Prefix of the voter ids (token subjects) [default: stress-<random>]
    #[arg(long)]
    pub voter_prefix: Option<String>,

    /// Print the summary as JSON on stdout (progress still goes to stderr)
    #[arg(long)]
    pub json: bool,

    /// No live progress lines
    #[arg(long)]
    pub quiet: bool,
}

/// Parses `250ms`, `10s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 10s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use ms, s or m)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{text}` is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Refuses a rate that is not a positive number and a fraction of repeated ballots outside
/// 0 to 1, with the option's name.
pub fn check_load_options(rate: Option<f64>, duplicates: f64) -> anyhow::Result<()> {
    if let Some(rate) = rate
        && !(rate > 0.0 && rate.is_finite())
    {
        bail!("--rate must be a positive number");
    }
    if !(0.0..=1.0).contains(&duplicates) {
        bail!("--duplicates must be between 0 and 1");
    }
    Ok(())
}

/// Runs `run` on a multi-threaded runtime and exits with status 1 when it returns `Ok(false)`
/// (a failed check), after giving leftover connections a second at most to close.
pub fn run_to_exit(run: impl Future<Output = anyhow::Result<bool>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let passed = runtime.block_on(run)?;
    // Leftover connections must not delay the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn rate_and_concurrency_exclude_each_other() {
        let parsed = Args::try_parse_from(["x", "--rate", "10", "--concurrency", "4"]);
        assert!(parsed.is_err());
    }
}
