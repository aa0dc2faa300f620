//! A poll's owner closing or deleting it, and listing their polls.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pollstream_store::polls::{self as stored_polls, PollSummary};
use pollstream_store::{PollDefinition, closed_flag};
use pollstream_wire::ErrorBody;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{PollView, owned_poll};
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery, Caller};
use crate::state::AppState;

/// Closes a poll now; idempotent. No vote is taken from here on (`409 poll_closed`), and the
/// poll reads `closing` until every vote accepted before the close is counted: then it reads
/// `closed` and every screen receives `poll-closed` with the final snapshot. That takes the
/// vote's send deadline (`KAFKA_PRODUCE_TIMEOUT_MS`, 5 s) plus a second plus one aggregator
/// flush (2 s), about 8 s with the defaults, longer while an aggregator replica is down.
#[utoipa::path(post, path = "/api/v1/polls/{code}/close", tag = "polls", security(("bearer" = [])),
    params(("code" = String, Path, description = "join code")),
    responses((status = 200, body = PollView), (status = 400, body = ErrorBody, description = "the path is not valid UTF-8"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not the owner, or a guest"),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn close_poll(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<PollView>, ApiError> {
    let poll = owned_poll(&state, &caller, &code).await?;
    // The flag first: from here on no replica's lock script lets a vote through, so every
    // vote answered 202 was cast before `closed_at` below and is counted before the poll
    // reads `closed` (the aggregator's closer waits for it).
    let mut redis = state.redis.clone();
    closed_flag::set(&mut redis, poll.id)
        .await
        .map_err(|err| ApiError::unavailable("redis", err))?;
    stored_polls::close(&state.db, poll.id).await?;
    let closed = PollDefinition::load_by_id(&state.db, poll.id)
        .await?
        .ok_or_else(|| ApiError::PollNotFound(code.clone()))?;
    tracing::info!(poll_id = %poll.id, "Poll closed by its owner");
    let view = PollView::from(&closed);
    state.polls.insert(closed).await;
    Ok(Json(view))
}

/// Deletes a poll with its ballots.
#[utoipa::path(delete, path = "/api/v1/polls/{code}", tag = "polls", security(("bearer" = [])),
    params(("code" = String, Path, description = "join code")),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody, description = "the path is not valid UTF-8"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not the owner, or a guest"),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn delete_poll(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let poll = owned_poll(&state, &caller, &code).await?;
    let mut redis = state.redis.clone();
    closed_flag::set_dropping_results(&mut redis, poll.id)
        .await
        .map_err(|err| ApiError::unavailable("redis", err))?;
    stored_polls::delete(&state.db, poll.id).await?;
    state.polls.forget(&poll).await;
    tracing::info!(poll_id = %poll.id, "Poll deleted by its owner");
    Ok(StatusCode::NO_CONTENT)
}

/// Paging of the caller's polls.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most this many polls (default 50); values outside 1 to 200 are clamped to it.
    limit: Option<i64>,
    /// Skip this many (default 0); a negative value counts as 0.
    offset: Option<i64>,
}

/// The caller's polls, newest first.
#[utoipa::path(get, path = "/api/v1/polls/mine", tag = "polls", security(("bearer" = [])), params(Page),
    responses((status = 200, body = Vec<PollSummary>), (status = 400, body = ErrorBody, description = "`limit` or `offset` is not a 64-bit integer"),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn my_polls(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Vec<PollSummary>>, ApiError> {
    let limit = page.limit.unwrap_or(50).clamp(1, 200);
    let offset = page.offset.unwrap_or(0).max(0);
    let polls = stored_polls::owned_by(&state.db, &caller.subject, limit, offset).await?;
    Ok(Json(polls))
}
