//! Refuses request bodies over [`MAX_BODY_BYTES`](crate::http::body_limit::MAX_BODY_BYTES) with a `413` the
//! client can read.
//!
//! A server that answers before reading a body and then closes leaves the unread bytes in its
//! receive buffer; the kernel answers them with a reset, and a client still sending sees
//! "connection reset" instead of the `413`. So the size is decided before any handler reads:
//! from `Content-Length` when there is one, otherwise (chunked) by reading up to the limit. An
//! oversized body is then read to its end and thrown away, within [`DRAIN_MAX_BYTES`] and
//! [`DRAIN_MAX_TIME`], and the `413` says `Connection: close`. A client that sent
//! `Expect: 100-continue` is answered at once: it has not sent the body and will not.

use std::time::Duration;

use axum::body::{Body, BodyDataStream, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use crate::http::body_deadline::{BodyError, within_deadline};
use crate::http::error::ApiError;

/// Largest request body accepted; a vote or a poll is far smaller.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Most bytes of an oversized body read (and dropped) so its sender can read the `413`; a
/// larger body's sender may see its connection reset, which bounds what one request costs.
const DRAIN_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Longest time spent draining one oversized body.
const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

/// `413 payload_too_large` for a body over the limit, before the handler runs;
/// and a body that does not arrive whole within `timeout` (the header-read timeout: a client
/// that sends its head and then trickles or stops sending its body is closed as one that
/// stops inside its head is) ends in `408 request_timeout`, when the handler reads it.
pub async fn refuse_oversized(timeout: Duration, request: Request, next: Next) -> Response {
    let limit = MAX_BODY_BYTES as u64;
    let deadline = tokio::time::Instant::now() + timeout;
    // hyper knows the exact size when the request declared `Content-Length` (0 without a body).
    if let Some(size) = request.body().size_hint().exact() {
        if size == 0 {
            return next.run(request).await;
        }
        if size <= limit {
            // Read by the handler, as it arrives, within the deadline.
            let (parts, body) = request.into_parts();
            let chunks = within_deadline(body.into_data_stream(), deadline, timeout);
            let body = Body::from_stream(futures::stream::unfold(chunks, async |mut chunks| {
                let chunk = chunks.next().await?;
                Some((chunk, chunks))
            }));
            return next.run(Request::from_parts(parts, body)).await;
        }
        // Too large to drain: answering at once costs the least.
        let drain = size <= DRAIN_MAX_BYTES;
        return too_large(request, drain).await;
    }
    // Chunked: read up to the limit, then hand the handler a body of known size.
    let (parts, body) = request.into_parts();
    let mut stream = within_deadline(body.into_data_stream(), deadline, timeout);
    let mut buffered = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(BodyError::TimedOut(timed_out)) => {
                return close(ApiError::BodyTimeout(timed_out).into_response());
            }
            Err(BodyError::Unreadable(err)) => {
                return ApiError::BadRequest {
                    code: "unreadable_body",
                    message: format!("the request body could not be read: {err}"),
                }
                .into_response();
            }
        };
        if (buffered.len() + chunk.len()) as u64 > limit {
            drain(stream.into_inner()).await;
            return close(ApiError::PayloadTooLarge.into_response());
        }
        buffered.extend_from_slice(&chunk);
    }
    next.run(Request::from_parts(parts, Body::from(buffered)))
        .await
}

async fn too_large(request: Request, drain_body: bool) -> Response {
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if drain_body && !expects_continue {
        drain(request.into_body().into_data_stream()).await;
    }
    close(ApiError::PayloadTooLarge.into_response())
}

/// Reads and drops what is left of a body, within [`DRAIN_MAX_BYTES`] and [`DRAIN_MAX_TIME`].
async fn drain(mut stream: BodyDataStream) {
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, async {
        let mut read = 0u64;
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len() as u64;
            if read >= DRAIN_MAX_BYTES {
                break;
            }
        }
    })
    .await;
}

/// The connection ends after this answer: what the client may still send is not read.
fn close(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
