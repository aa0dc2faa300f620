//! What a chaos run measured ([`Observations`]): every vote's outcome, the faults as injected,
//! the health of every process, the final check and the screens' logs. The run fills it in;
//! the report reads it, so neither needs the other's code.

use std::time::Duration;

use pollstream_stress::check::FinalCheck;
use pollstream_stress::load::{Answer, Tally};
use pollstream_stress::screens::ScreenLog;
use tokio::time::Instant;

use crate::monitor::HealthLog;
use crate::plan::PlannedFault;

/// One vote attempt as the run saw it.
#[derive(Debug, Clone, Copy)]
pub struct VoteRecord {
    /// When it was due to be sent.
    pub due: Instant,
    /// When its answer (or failure) came.
    pub answered: Instant,
    /// The answer.
    pub answer: Answer,
    /// An error answer's code (`kafka_unavailable`, ...), when its body named one.
    pub code: Option<&'static str>,
    /// The voting-api replica it went to.
    pub api: usize,
}

/// A fault as it was injected.
#[derive(Debug, Clone)]
pub struct InjectedFault {
    /// What the plan said.
    pub planned: PlannedFault,
    /// The process hit (`voting-api-1`, `kafka-2`, `redis`, `postgres`).
    pub process: String,
    /// When it was killed.
    pub killed_at: Instant,
    /// When it was started again.
    pub restarted_at: Instant,
}

/// Everything measured, for [`crate::report::build`].
pub struct Observations {
    /// When the load started.
    pub started: Instant,
    /// When the load stopped and every answer was in.
    pub load_ended: Instant,
    /// Every vote's outcome, in answer order.
    pub votes: Vec<VoteRecord>,
    /// The tally of the stress tool (accepted ballots per poll and option, unknown ones).
    pub tally: Tally,
    /// Scheduled votes not sent because too many were in flight.
    pub skipped: u64,
    /// Faults as injected.
    pub faults: Vec<InjectedFault>,
    /// Health of every process through the run.
    pub health: HealthLog,
    /// Processes still unhealthy after the recovery timeout.
    pub unhealthy_at_end: Vec<String>,
    /// From the end of the load until every process was healthy.
    pub healthy_after: Duration,
    /// The stress tool's exactly-once check.
    pub final_check: FinalCheck,
    /// Per poll, the total every screen must end on.
    pub final_totals: Vec<i64>,
    /// From the end of the final check until every screen showed the final totals (`None`:
    /// not within the settle timeout).
    pub converged_after: Option<Duration>,
    /// Per realtime replica: screens asked for, screens joined, and their logs.
    pub screens: Vec<(usize, usize, Vec<ScreenLog>)>,
}
