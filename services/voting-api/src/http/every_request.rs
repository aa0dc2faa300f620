//! The rules every request goes through, applied by one middleware ([`apply`]) rather than one
//! layer each: the body limit and body deadline (`body_limit`), JSON error bodies
//! (`json_errors`), the HTTP metrics (`track_http`'s) and the security headers
//! (`security_headers`).
//!
//! Each `axum::middleware::from_fn` layer costs a boxed clone of the inner service and a boxed
//! future per request; the four layers this replaces were a few percent of voting-api's CPU per
//! vote. The order is theirs, from the outside in: security headers, metrics, JSON errors,
//! body limit, so what each sees and adds is unchanged.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use pollstream_infra::metrics::HttpTimer;

use crate::http::body_limit;
use crate::http::json_errors;
use crate::http::security_headers::SecurityHeaders;

/// What [`apply`] needs, built once at start.
#[derive(Debug)]
pub struct Rules {
    /// The header-read timeout, which also bounds how long a body may take to arrive.
    pub body_timeout: Duration,
    /// The security headers' values.
    pub headers: SecurityHeaders,
}

/// Middleware: every request's rules, in the order of the module notes.
pub async fn apply(State(rules): State<Arc<Rules>>, request: Request, next: Next) -> Response {
    let timer = HttpTimer::start(&request);
    let response = body_limit::refuse_oversized(rules.body_timeout, request, next).await;
    let mut response = json_errors::ensure_json(response).await;
    timer.finish(response.status());
    rules.headers.add_to(&mut response);
    response
}
