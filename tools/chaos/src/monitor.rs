//! Watches the health of every process of the stack while faults are injected: one sample of
//! every [`Probe`] every 250 ms, kept whole so recovery can be read off afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pollstream_testkit::replicas::Probe;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often every process is probed.
const INTERVAL: Duration = Duration::from_millis(250);

/// Health of every process at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the round of probes finished.
    pub at: Instant,
    /// Per probe, in [`HealthLog::names`] order.
    pub healthy: Vec<bool>,
}

/// Every sample taken.
#[derive(Debug, Clone, Default)]
pub struct HealthLog {
    /// The processes, in probe order.
    pub names: Vec<String>,
    /// The samples, oldest first.
    pub samples: Vec<Sample>,
}

impl HealthLog {
    /// The first moment at or after `from` when every process was healthy.
    pub fn all_healthy_from(&self, from: Instant) -> Option<Instant> {
        self.samples
            .iter()
            .find(|s| s.at >= from && s.healthy.iter().all(|h| *h))
            .map(|s| s.at)
    }

    /// The first moment at or after `from` when process `name` was healthy.
    pub fn healthy_from(&self, name: &str, from: Instant) -> Option<Instant> {
        let index = self.names.iter().position(|n| n == name)?;
        self.samples
            .iter()
            .find(|s| s.at >= from && s.healthy[index])
            .map(|s| s.at)
    }
}

/// A running monitor.
pub struct Monitor {
    running: Arc<AtomicBool>,
    task: JoinHandle<HealthLog>,
}

impl Monitor {
    /// Starts probing `probes` (all at once in each round) with `http`.
    pub fn start(probes: Vec<Probe>, http: reqwest::Client) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let task = tokio::spawn(async move {
            let mut log = HealthLog {
                names: probes.iter().map(|p| p.name.clone()).collect(),
                samples: Vec::new(),
            };
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while flag.load(Ordering::Relaxed) {
                tick.tick().await;
                let healthy =
                    futures::future::join_all(probes.iter().map(|probe| probe.healthy(&http)))
                        .await;
                log.samples.push(Sample {
                    at: Instant::now(),
                    healthy,
                });
            }
            log
        });
        Self { running, task }
    }

    /// Stops probing and returns every sample.
    pub async fn stop(self) -> HealthLog {
        self.running.store(false, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}
