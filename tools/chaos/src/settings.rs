//! What a chaos run is asked to do ([`ChaosSettings`]): the load, the screens, the faults and
//! how long the stack may take to settle and heal. Read by the run and by the report (the seed,
//! the rate and whether repeated ballots were sent are part of the verdict).

use std::time::Duration;

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
