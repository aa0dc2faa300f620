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
//! The fence is the slow part and is the same for every poll, so restores share it: a restore
//! uses the newest fence whose wait begins at or after the moment it noticed the missing
//! marker, or starts one ([`LockFence`]). A new fence begins [`JOIN_WINDOW`] after it is
//! asked for, so that the polls noticed together after Redis lost everything wait for one
//! fence, and it never waits for one already running: a poll noticed during a fence waits
//! one fence, not the rest of that one and then its own. It needs only the configuration, not
//! the shared state, which holds the [`LockFence`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use pollstream_infra::kafka::fence;

use crate::config::Config;

/// How long the aggregator may take to commit past the watermarks before the fence gives up
/// (and a later vote tries again).
pub const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);

/// How long after it is asked for a fence begins, so that restores noticed meanwhile share it.
pub const JOIN_WINDOW: Duration = Duration::from_millis(250);

/// Why the fence was not passed: Kafka did not answer, or the aggregator was still behind at
/// [`CATCH_UP_LIMIT`] (the message of the shared run's error).
#[derive(Debug, thiserror::Error)]
#[error("the fence failed: {0}")]
pub struct FenceError(String);

/// One fence run, awaited by every restore that shares it.
type FenceRun = Shared<BoxFuture<'static, Result<(), String>>>;

/// The newest fence of this replica: when its wait begins, and the run.
#[derive(Default)]
pub struct LockFence {
    newest: Mutex<Option<(Instant, FenceRun)>>,
}

impl LockFence {
    /// Returns once every vote whose lock was taken before `since` is counted (or parked): by
    /// the newest fence if its wait begins at or after `since`, else by a new one.
    pub async fn pass(&self, config: &Config, since: Instant) -> Result<(), FenceError> {
        let run = {
            let mut newest = self.newest.lock().expect("fence lock poisoned");
            match newest.as_ref().filter(|(begins, _)| *begins >= since) {
                Some((_, run)) => run.clone(),
                None => {
                    let begins = Instant::now() + JOIN_WINDOW;
                    let run = run_fence(config.clone(), begins).boxed().shared();
                    *newest = Some((begins, run.clone()));
                    run
                }
            }
        };
        run.await.map_err(FenceError)
    }
}

/// The fence itself, from `begins`: the send deadline waited out, then the aggregator's
/// committed offsets past the watermarks read then.
async fn run_fence(config: Config, begins: Instant) -> Result<(), String> {
    tokio::time::sleep_until(begins.into()).await;
    tokio::time::sleep(fence::settle_time(config.kafka.produce_timeout)).await;
    fence::wait_until_committed(
        &config.kafka,
        &config.aggregator_group_id,
        &config.raw_votes_topic,
        CATCH_UP_LIMIT,
    )
    .await
    .map_err(|err| err.to_string())
}

/// The longest one fence may take: its start, its first wait, then the aggregator's catch-up.
pub fn longest_wait(config: &Config) -> Duration {
    JOIN_WINDOW + fence::settle_time(config.kafka.produce_timeout) + CATCH_UP_LIMIT
}
