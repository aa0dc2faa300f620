//! The fence a vote-lock restore passes before it reads the ballots (see `lock_restore`): once
//! it is passed, every vote whose lock was taken in the old Redis is counted as a ballot (or
//! parked as not countable), so the restore cannot miss one.
//!
//! 1. It waits out the longest a request that took a lock can still be producing (the vote
//!    handler's send deadline, `KAFKA_PRODUCE_TIMEOUT_MS`, plus
//!    [`IN_FLIGHT_MARGIN`](fence::IN_FLIGHT_MARGIN)): after
//!    that every such vote is in `raw-votes` or was answered with an error;
//! 2. it reads the high watermark of every `raw-votes` partition and waits until the
//!    aggregator's consumer group (`AGGREGATOR_GROUP_ID`) has committed offsets at or past
//!    them: the aggregator commits only after its PostgreSQL flush
//!    ([`pollstream_infra::kafka::fence`], the same fence a poll's closing passes).
//!
//! The fence is the slow part and is the same for every poll, so a replica runs one at a time
//! ([`LockFence`]) and a restore that finds one completed since it noticed the missing marker
//! uses it. It needs only the configuration, not the shared state, which holds the
//! [`LockFence`].

use std::time::{Duration, Instant};

use pollstream_infra::kafka::fence;

use crate::config::Config;

/// How long a restore waits for the aggregator to commit past the watermarks before it gives
/// up (and a later vote tries again).
pub const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);

/// Why the fence was not passed.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// Kafka did not answer, or the aggregator was still behind at the limit.
    #[error(transparent)]
    Kafka(#[from] fence::FenceError),
    /// The fence this restore shared, run by another, failed.
    #[error("the shared fence failed: {0}")]
    Shared(String),
}

/// The fence, run by one restore at a time on this replica and shared by the others.
#[derive(Default)]
pub struct LockFence {
    last: tokio::sync::Mutex<Option<FenceRun>>,
}

/// A completed fence: when its wait began, and why it failed if it did.
struct FenceRun {
    started: Instant,
    failure: Option<String>,
}

impl LockFence {
    /// Returns once every vote whose lock was taken before `since` is counted (or parked): by
    /// a fence that began at or after `since`, this one's or one another restore ran.
    pub async fn pass(&self, config: &Config, since: Instant) -> Result<(), FenceError> {
        let mut last = self.last.lock().await;
        if let Some(run) = last.as_ref().filter(|run| run.started >= since) {
            return match &run.failure {
                None => Ok(()),
                Some(reason) => Err(FenceError::Shared(reason.clone())),
            };
        }
        let started = Instant::now();
        tokio::time::sleep(fence::settle_time(config.kafka.produce_timeout)).await;
        let result = fence::wait_until_committed(
            &config.kafka,
            &config.aggregator_group_id,
            &config.raw_votes_topic,
            CATCH_UP_LIMIT,
        )
        .await
        .map_err(FenceError::from);
        *last = Some(FenceRun {
            started,
            failure: result.as_ref().err().map(ToString::to_string),
        });
        result
    }
}

/// The longest one fence may take: its first wait, then the aggregator's catch-up.
pub fn longest_wait(config: &Config) -> Duration {
    fence::settle_time(config.kafka.produce_timeout) + CATCH_UP_LIMIT
}
