//! The pause between two attempts at a failing step (a flush, a dead letter): callers double it
//! after each failure, up to [`MAX_BACKOFF`], so a dependency that is down is not hammered; it
//! is cut short by shutdown, so a stopping process does not wait for that dependency.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Longest pause between two attempts at a failing flush or dead letter.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Sleeps for `duration`; returns `true` if `shutdown` was cancelled first.
pub(crate) async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}
