//! `pollstream-stress`: hammers a running pollstream stack with votes, watches them reach
//! Socket.IO screens, and checks that exactly the accepted votes were counted.
//!
//! Usually run through `scripts/stress-test`, which builds it in release mode and loads the
//! local settings (`JWT_SECRET`, ports) from `.run/env`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

// glibc malloc was a quarter of voting-api's CPU profile under load; mimalloc is far cheaper for
// the many small short-lived allocations of a request or a broadcast.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, anyhow};
use clap::Parser;
use tokio::sync::mpsc;
use tokio::time::Instant;

use pollstream_stress::check::{self, FinalCheck};
use pollstream_stress::cli::{self, Args};
use pollstream_stress::load::{self, Outcome, Tally, Voting};
use pollstream_stress::prepare::{PollSource, Prepared, fresh_voter_prefix};
use pollstream_stress::report::{self, FanOut, Percentiles, Summary};
use pollstream_stress::screens::Screens;
use pollstream_stress::setup;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cli::run_to_exit(run(args))
}

/// Where the services are and how long the aggregator batches, from the options or the
/// environment the local stack writes (`.run/env`).
struct Endpoints {
    /// voting-api base URL, without a trailing slash.
    api: String,
    /// realtime-service base URL.
    realtime: String,
    /// The aggregator's flush interval, which the final check waits out once more.
    flush_interval: Duration,
}

impl Endpoints {
    fn from_args(args: &Args) -> Self {
        let api = service_url(&args.api, "VOTING_API_PORT", 3001);
        let flush_interval = args.flush_interval.unwrap_or_else(|| {
            let ms = std::env::var("FLUSH_INTERVAL_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2000);
            Duration::from_millis(ms)
        });
        Self {
            api: api.trim_end_matches('/').to_owned(),
            realtime: service_url(&args.realtime, "REALTIME_SERVICE_PORT", 3003),
            flush_interval,
        }
    }
}

fn service_url(explicit: &Option<String>, port_variable: &str, default_port: u16) -> String {
    explicit.clone().unwrap_or_else(|| {
        let port = std::env::var(port_variable)
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(default_port);
        format!("http://127.0.0.1:{port}")
    })
}

/// Runs the whole test; `Ok(false)` when the final check failed.
async fn run(args: Args) -> anyhow::Result<bool> {
    let endpoints = Endpoints::from_args(&args);
    cli::check_load_options(args.rate, args.duplicates)?;
    let prepared = prepare(&args, &endpoints.api).await?;
    let (screens, rss) = connect_screens(&args, &prepared, &endpoints.realtime).await?;
    let load = drive_load(&args, &prepared, &endpoints.api, screens.as_ref()).await?;
    progress(
        &args,
        "load done; waiting for the counts to settle".to_owned(),
    );
    let check = check::final_check(
        &prepared.http,
        &endpoints.api,
        &prepared.polls,
        &load.tally,
        args.settle_timeout,
        endpoints.flush_interval,
    )
    .await?;
    let on_screen = screen_figures(&args, screens, &load.tally, &prepared.baselines(), rss).await;
    let summary = summarize(&args, prepared.codes(), load, on_screen, check);
    print_summary(&args, &summary)?;
    Ok(summary.check.passed)
}

/// Signs with the services' keys, creates the polls (or looks up `--poll`s) and reads the
/// counts they start from.
async fn prepare(args: &Args, api: &str) -> anyhow::Result<Prepared> {
    let source = if args.poll_codes.is_empty() {
        PollSource::Create {
            count: args.polls,
            options: args.options,
        }
    } else {
        PollSource::Existing(args.poll_codes.clone())
    };
    let prepared =
        Prepared::new(api, setup::signing_keys()?, &source, args.request_timeout).await?;
    progress(
        args,
        format!(
            "polls {} at {api}; counts before the run: {:?}",
            prepared.codes().join(","),
            prepared.baselines()
        ),
    );
    Ok(prepared)
}

/// realtime-service's resident memory before and after the screens joined, KiB.
type Rss = (Option<u64>, Option<u64>);

/// Connects `--clients` screens (none when 0), measuring realtime-service's memory around it
/// when its pid is known.
async fn connect_screens(
    args: &Args,
    prepared: &Prepared,
    realtime: &str,
) -> anyhow::Result<(Option<Screens>, Rss)> {
    if args.clients == 0 {
        return Ok((None, (None, None)));
    }
    let realtime_pid = args.realtime_pid.or_else(|| {
        std::fs::read_to_string(&args.realtime_pid_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
    });
    let server = socket_address(realtime).await?;
    let before = realtime_pid.and_then(resident_kib);
    progress(
        args,
        format!("connecting {} Socket.IO clients to {server}", args.clients),
    );
    let started = Instant::now();
    let screens = prepared
        .connect_screens(
            server,
            args.source_addrs.clone(),
            false,
            args.clients,
            args.connect_concurrency,
        )
        .await?;
    progress(
        args,
        format!(
            "{}/{} clients joined in {:.1} s{}",
            screens.connected,
            args.clients,
            started.elapsed().as_secs_f64(),
            screens
                .failures
                .first()
                .map(|f| format!("; first failure: {f}"))
                .unwrap_or_default()
        ),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = realtime_pid.and_then(resident_kib);
    Ok((Some(screens), (before, after)))
}

/// What the load did.
struct LoadDone {
    /// Every answer, folded.
    tally: Tally,
    /// Scheduled votes skipped at `--max-in-flight`.
    skipped: u64,
    /// How long votes were sent, seconds.
    seconds: f64,
}

/// Sends votes open or closed loop for `--duration`, then waits for the answers in flight.
async fn drive_load(
    args: &Args,
    prepared: &Prepared,
    api: &str,
    screens: Option<&Screens>,
) -> anyhow::Result<LoadDone> {
    let voter_prefix = args
        .voter_prefix
        .clone()
        .unwrap_or_else(|| fresh_voter_prefix("stress"));
    let (voting, outcomes, tally) = prepared.voting(
        std::slice::from_ref(&api.to_owned()),
        voter_prefix,
        args.duplicates,
    );
    let deliveries = screens.map(|s| s.deliveries.clone()).unwrap_or_default();
    let collector = tokio::spawn(collect(
        outcomes,
        tally,
        Arc::downgrade(&voting),
        deliveries,
        args.quiet,
    ));
    let started = Instant::now();
    match args.rate {
        Some(rate) => {
            load::open_loop(voting.clone(), rate, args.duration, args.max_in_flight).await;
        }
        None => load::closed_loop(voting.clone(), args.concurrency, args.duration).await,
    }
    let seconds = started.elapsed().as_secs_f64();
    let skipped = load::wait_for_answers(voting, args.request_timeout).await;
    let tally = collector.await.context("collecting outcomes")?;
    Ok(LoadDone {
        tally,
        skipped,
        seconds,
    })
}

/// What the screens showed: vote-to-screen latency, (vote, screen) pairs never shown, and the
/// fan-out figures.
struct OnScreen {
    vote_to_screen: Option<Percentiles>,
    never_on_screen: u64,
    fan_out: Option<FanOut>,
}

/// Closes the screens and reads their logs against the accepted votes.
async fn screen_figures(
    args: &Args,
    screens: Option<Screens>,
    tally: &Tally,
    baselines: &[i64],
    rss: Rss,
) -> OnScreen {
    let Some(screens) = screens else {
        return OnScreen {
            vote_to_screen: None,
            never_on_screen: 0,
            fan_out: None,
        };
    };
    let (connected, failures) = (screens.connected, screens.failures.clone());
    let logs = screens.close().await;
    let (histogram, never) = report::vote_to_screen(&tally.accepted_at, baselines, &logs);
    OnScreen {
        vote_to_screen: Some(Percentiles::of(&histogram)),
        never_on_screen: never,
        fan_out: Some(report::fan_out(
            args.clients,
            connected,
            failures,
            &logs,
            rss,
        )),
    }
}

/// Puts the figures together into the summary.
fn summarize(
    args: &Args,
    polls: Vec<String>,
    load: LoadDone,
    on_screen: OnScreen,
    check: FinalCheck,
) -> Summary {
    let tally = &load.tally;
    let accepted = tally.count(load::Answer::Status(202));
    Summary {
        mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        }
        .to_owned(),
        target_rate: args.rate,
        concurrency: args.rate.is_none().then_some(args.concurrency),
        duration_seconds: (load.seconds * 10.0).round() / 10.0,
        polls,
        sent: tally.sent,
        accepted,
        accepted_distinct: tally.accepted(),
        by_status: Summary::status_counts(tally),
        skipped: load.skipped,
        duplicates_sent: tally.duplicates_sent,
        duplicates_accepted: tally.duplicates_accepted,
        accepted_per_second: (accepted as f64 / load.seconds).round(),
        accept_latency: Percentiles::of(&tally.accept_latency),
        answer_latency: Percentiles::of(&tally.answer_latency),
        vote_to_screen: on_screen.vote_to_screen,
        never_on_screen: on_screen.never_on_screen,
        fan_out: on_screen.fan_out,
        check,
    }
}

/// Prints the summary on stdout, as JSON with `--json`.
fn print_summary(args: &Args, summary: &Summary) -> anyhow::Result<()> {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(summary).context("encoding the summary")?
        );
    } else {
        print!("{}", summary.text());
    }
    Ok(())
}

/// Folds outcomes into the tally and prints a progress line every second.
async fn collect(
    mut outcomes: mpsc::UnboundedReceiver<Outcome>,
    mut tally: Tally,
    voting: Weak<Voting>,
    deliveries: Arc<AtomicU64>,
    quiet: bool,
) -> Tally {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut accepted_before = 0;
    loop {
        tokio::select! {
            outcome = outcomes.recv() => match outcome {
                Some(outcome) => tally.record(&outcome),
                None => break,
            },
            _ = tick.tick(), if !quiet => {
                let accepted = tally.count(load::Answer::Status(202));
                let (in_flight, skipped) = voting
                    .upgrade()
                    .map(|v| (v.in_flight.load(Ordering::Relaxed), v.skipped.load(Ordering::Relaxed)))
                    .unwrap_or_default();
                let errors = tally.sent - accepted;
                eprintln!(
                    "[{:>4.0}s] sent {:>8}  accepted {:>8} ({:>6}/s)  other {:>6}  in flight {:>5}  skipped {:>6}  p99 {:>7.2} ms  screen deliveries {:>8}",
                    started.elapsed().as_secs_f64(),
                    tally.sent,
                    accepted,
                    accepted - accepted_before,
                    errors,
                    in_flight,
                    skipped,
                    tally.accept_latency.value_at_quantile(0.99) as f64 / 1000.0,
                    deliveries.load(Ordering::Relaxed),
                );
                accepted_before = accepted;
            }
        }
    }
    tally
}

fn progress(args: &Args, line: String) {
    if !args.quiet {
        eprintln!("{line}");
    }
}

/// The socket address of an `http://host:port` URL.
async fn socket_address(url: &str) -> anyhow::Result<SocketAddr> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("parsing {url}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| anyhow!("{url} has no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {url}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| anyhow!("{url} has no IPv4 address"))
}

/// Resident memory of process `pid`, KiB.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}
