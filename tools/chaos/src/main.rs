//! `pollstream-chaos`: starts two replicas of every service on a three-broker Kafka cluster
//! with a PostgreSQL and a Redis of its own, runs steady votes and screens against them while
//! killing and restarting processes on a seeded plan, and checks that every accepted vote was
//! counted exactly once and every screen converged. Needs no running stack (`scripts/up`); see
//! `scripts/chaos`, which builds it and the services in release mode.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pollstream_chaos::run::{ChaosSettings, run};
use pollstream_stress::cli::{check_load_options, parse_duration, run_to_exit};
use pollstream_testkit::replicas::{ReplicaSettings, ReplicaStack};

/// Chaos run: faults injected into a multi-replica stack under steady load.
///
/// Starts its own stack from the service binaries next to this program (two replicas of each
/// service, three Kafka brokers, PostgreSQL, Redis), so nothing else may be needed but the
/// Kafka jars, redis-server and the PostgreSQL server binaries that scripts/test installs.
#[derive(Debug, Parser)]
#[command(name = "pollstream-chaos", version)]
struct Args {
    /// Seed of the fault plan: the same seed injects the same faults at the same times
    #[arg(long, default_value_t = 7)]
    seed: u64,

    /// How long votes are sent, e.g. 30s, 5m
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,

    /// Votes per second (open loop), spread over both voting-api replicas
    #[arg(long, default_value_t = 500.0)]
    rate: f64,

    /// Faults to inject (6 or more: at least one of each kind)
    #[arg(long, default_value_t = 6)]
    faults: usize,

    /// Polls voted in, round-robin
    #[arg(long, default_value_t = 6)]
    polls: usize,

    /// Socket.IO screens on each realtime-service replica
    #[arg(long, default_value_t = 4)]
    screens: usize,

    /// Fraction of votes repeating an earlier ballot (each should get 409, also after Redis
    /// lost its locks); 0 leaves out the check
    #[arg(long, default_value_t = 0.05)]
    duplicates: f64,

    /// The aggregators' flush interval
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    flush_interval: Duration,

    /// Print the report as JSON on stdout (progress still goes to stderr)
    #[arg(long)]
    json: bool,

    /// No progress lines
    #[arg(long)]
    quiet: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    check_load_options(Some(args.rate), args.duplicates)?;
    run_to_exit(chaos(args))
}

async fn chaos(args: Args) -> anyhow::Result<bool> {
    let name = format!("chaos-seed{}-{}", args.seed, unix_seconds());
    let mut settings = ReplicaSettings::new(&name);
    settings.flush_interval_ms = args.flush_interval.as_millis() as u64;
    settings.log_dir = settings.bin_dir.join("chaos-logs").join(&name);
    eprintln!(
        "starting the replica stack (logs in {})",
        settings.log_dir.display()
    );
    let mut stack = ReplicaStack::start(settings).await;
    eprintln!("{}", stack.addresses());
    let chaos = ChaosSettings {
        seed: args.seed,
        duration: args.duration,
        rate: args.rate,
        polls: args.polls,
        screens_per_replica: args.screens,
        faults: args.faults,
        duplicates: args.duplicates,
        flush_interval: args.flush_interval,
        progress: !args.quiet,
        ..ChaosSettings::default()
    };
    let report = run(&mut stack, &chaos).await;
    stack.stop().await;
    let report = report?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encoding the report")?
        );
    } else {
        print!("{}", report.text());
    }
    Ok(report.passed)
}

/// Seconds since the epoch, to tell runs' log folders apart.
fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
