//! The deadline a request body must arrive within: the header-read timeout, so a client that
//! sends its head and then trickles or stops sending its body is closed as one that stops
//! inside its head is.
//!
//! `body_limit` wraps every body in [`within_deadline`]; a handler that reads past the deadline
//! gets a [`BodyTimedOut`] inside its JSON rejection, which [`timed_out`] finds so that the
//! error becomes `408 request_timeout`.

use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use futures::StreamExt;

/// A body that did not arrive whole in time.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .0.as_millis())]
pub struct BodyTimedOut(Duration);

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The deadline passed first.
    #[error(transparent)]
    TimedOut(BodyTimedOut),
    /// The connection failed under it.
    #[error(transparent)]
    Unreadable(axum::Error),
}

/// The [`BodyTimedOut`] behind a JSON body rejection, if that is why the body was not read.
pub fn timed_out(rejection: &(dyn std::error::Error + 'static)) -> Option<BodyTimedOut> {
    let mut error = Some(rejection);
    while let Some(current) = error {
        if let Some(timed_out) = current.downcast_ref::<BodyTimedOut>() {
            return Some(*timed_out);
        }
        if let Some(BodyError::TimedOut(timed_out)) = current.downcast_ref::<BodyError>() {
            return Some(*timed_out);
        }
        error = current.source();
    }
    None
}

/// `stream`'s chunks until `deadline`; then one [`BodyError::TimedOut`] and the end.
pub fn within_deadline(
    stream: BodyDataStream,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> DeadlineStream {
    DeadlineStream {
        inner: Some(stream),
        deadline,
        timeout,
    }
}

/// See [`within_deadline`].
pub struct DeadlineStream {
    inner: Option<BodyDataStream>,
    deadline: tokio::time::Instant,
    timeout: Duration,
}

impl DeadlineStream {
    /// What is left of the body, to drain.
    pub fn into_inner(self) -> BodyDataStream {
        self.inner
            .unwrap_or_else(|| Body::empty().into_data_stream())
    }

    pub async fn next(&mut self) -> Option<Result<Bytes, BodyError>> {
        let inner = self.inner.as_mut()?;
        match tokio::time::timeout_at(self.deadline, inner.next()).await {
            Ok(Some(chunk)) => Some(chunk.map_err(BodyError::Unreadable)),
            Ok(None) => None,
            Err(_) => {
                self.inner = None;
                Some(Err(BodyError::TimedOut(BodyTimedOut(self.timeout))))
            }
        }
    }
}
