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

use pollstream_stress::cli::Args;
use pollstream_stress::load::{self, Outcome, Tally, Voting};
use pollstream_stress::report::{self, Percentiles, Summary};
use pollstream_stress::screens::{ScreenSettings, Screens};
use pollstream_stress::{check, setup};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let passed = runtime.block_on(run(args))?;
    // Leftover connections must not delay the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if !passed {
        std::process::exit(1);
    }
    Ok(())
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
    let api = service_url(&args.api, "VOTING_API_PORT", 3001);
    let api = api.trim_end_matches('/').to_owned();
    let realtime = service_url(&args.realtime, "REALTIME_SERVICE_PORT", 3003);
    let flush_interval = args.flush_interval.unwrap_or_else(|| {
        let ms = std::env::var("FLUSH_INTERVAL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000);
        Duration::from_millis(ms)
    });
    if let Some(rate) = args.rate
        && !(rate > 0.0 && rate.is_finite())
    {
        return Err(anyhow!("--rate must be a positive number"));
    }
    if !(0.0..=1.0).contains(&args.duplicates) {
        return Err(anyhow!("--duplicates must be between 0 and 1"));
    }

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .timeout(args.request_timeout)
        .build()
        .context("building the HTTP client")?;
    let keys = setup::signing_keys()?;

    let mut polls = if args.poll_codes.is_empty() {
        setup::create_polls(&http, &api, &keys, args.polls.max(1), args.options).await?
    } else {
        setup::existing_polls(&http, &api, &args.poll_codes).await?
    };
    setup::read_baselines(&http, &api, &mut polls).await?;
    let codes: Vec<String> = polls.iter().map(|p| p.code.clone()).collect();
    progress(
        &args,
        format!(
            "polls {} at {api}; counts before the run: {:?}",
            codes.join(","),
            polls.iter().map(|p| p.baseline_total).collect::<Vec<_>>()
        ),
    );

    let realtime_pid = args.realtime_pid.or_else(|| {
        std::fs::read_to_string(&args.realtime_pid_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
    });
    let mut rss = (None, None);
    let screens = if args.clients > 0 {
        let server = socket_address(&realtime).await?;
        rss.0 = realtime_pid.and_then(resident_kib);
        progress(
            &args,
            format!("connecting {} Socket.IO clients to {server}", args.clients),
        );
        let started = Instant::now();
        let screens = Screens::connect(
            ScreenSettings {
                server,
                source_addrs: args.source_addrs.clone(),
                polls: polls.iter().map(|p| p.id).collect(),
                reconnect: false,
            },
            args.clients,
            args.connect_concurrency,
        )
        .await?;
        progress(
            &args,
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
        rss.1 = realtime_pid.and_then(resident_kib);
        Some(screens)
    } else {
        None
    };
    let deliveries = screens
        .as_ref()
        .map(|s| s.deliveries.clone())
        .unwrap_or_default();

    let option_counts: Vec<usize> = polls.iter().map(|p| p.options.len()).collect();
    let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
    let voter_prefix = args
        .voter_prefix
        .clone()
        .unwrap_or_else(|| format!("stress-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let voting = Arc::new(Voting::new(
        http.clone(),
        keys,
        std::slice::from_ref(&api),
        voter_prefix,
        &polls,
        args.duplicates,
        outcomes_tx,
    ));
    let collector = tokio::spawn(collect(
        outcomes_rx,
        Tally::new(&option_counts),
        Arc::downgrade(&voting),
        deliveries,
        args.quiet,
    ));

    let load_started = Instant::now();
    match args.rate {
        Some(rate) => {
            load::open_loop(voting.clone(), rate, args.duration, args.max_in_flight).await;
        }
        None => load::closed_loop(voting.clone(), args.concurrency, args.duration).await,
    }
    let load_seconds = load_started.elapsed().as_secs_f64();
    let drain_deadline = Instant::now() + args.request_timeout + Duration::from_secs(1);
    while voting.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let skipped = voting.skipped.load(Ordering::Relaxed);
    drop(voting);
    let tally = collector.await.context("collecting outcomes")?;

    progress(
        &args,
        "load done; waiting for the counts to settle".to_owned(),
    );
    let check = check::final_check(
        &http,
        &api,
        &polls,
        &tally,
        args.settle_timeout,
        flush_interval,
    )
    .await?;

    let baselines: Vec<i64> = polls.iter().map(|p| p.baseline_total).collect();
    let (vote_to_screen, never_on_screen, fan_out) = match screens {
        Some(screens) => {
            let (connected, failures) = (screens.connected, screens.failures.clone());
            let logs = screens.close().await;
            let (histogram, never) = report::vote_to_screen(&tally.accepted_at, &baselines, &logs);
            let fan_out = report::fan_out(args.clients, connected, failures, &logs, rss);
            (Some(Percentiles::of(&histogram)), never, Some(fan_out))
        }
        None => (None, 0, None),
    };

    let accepted = tally.count(load::Answer::Status(202));
    let summary = Summary {
        mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        }
        .to_owned(),
        target_rate: args.rate,
        concurrency: args.rate.is_none().then_some(args.concurrency),
        duration_seconds: (load_seconds * 10.0).round() / 10.0,
        polls: codes,
        sent: tally.sent,
        accepted,
        accepted_distinct: tally.accepted(),
        by_status: Summary::status_counts(&tally),
        skipped,
        duplicates_sent: tally.duplicates_sent,
        duplicates_accepted: tally.duplicates_accepted,
        accepted_per_second: (accepted as f64 / load_seconds).round(),
        accept_latency: Percentiles::of(&tally.accept_latency),
        answer_latency: Percentiles::of(&tally.answer_latency),
        vote_to_screen,
        never_on_screen,
        fan_out,
        check,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).context("encoding the summary")?
        );
    } else {
        print!("{}", summary.text());
    }
    Ok(summary.check.passed)
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
