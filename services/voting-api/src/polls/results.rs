//! `GET /api/v1/polls/{code}/results`: current counts, for whom the poll's visibility allows.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use pollstream_store::{PollDefinition, ResultsVisibility, Viewer, ballots, results_cache};
use pollstream_wire::{ErrorBody, PollSnapshot, PollStatus};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, Caller, MaybeCaller};
use crate::state::AppState;

/// Body of `GET /api/v1/polls/{code}/results`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultsView {
    poll_id: Uuid,
    code: String,
    seq: i64,
    total: i64,
    status: PollStatus,
    options: Vec<OptionResult>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct OptionResult {
    option_id: Uuid,
    text: String,
    votes: i64,
}

/// Current counts, if the poll's results visibility lets the caller see them (a token is
/// optional; `after_vote` and `owner_only` polls need one).
#[utoipa::path(get, path = "/api/v1/polls/{code}/results", tag = "polls", security((), ("bearer" = [])),
    params(("code" = String, Path, description = "join code")),
    responses((status = 200, body = ResultsView), (status = 400, body = ErrorBody, description = "the path is not valid UTF-8"),
        (status = 401, body = ErrorBody, description = "a token was sent and is not valid"),
        (status = 403, body = ErrorBody, description = "results hidden from this caller for now"),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn get_results(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<ResultsView>, ApiError> {
    let poll = state.polls.by_code(&code).await?;
    let mut redis = state.redis.clone();
    let snapshot = results_cache::current(&state.db, &mut redis, poll.id)
        .await?
        .ok_or_else(|| ApiError::PollNotFound(code.clone()))?;
    let status = status_of(&poll, &snapshot);
    check_visibility(&state, &poll, status, caller.as_ref()).await?;
    Ok(Json(results_view(&poll, &snapshot, status)))
}

/// The status to show with `snapshot`: `closed` only when the snapshot itself is (its counts
/// are then the final ones); `closing` when either the snapshot or the definition (which may
/// be newer, or older, than the snapshot) says the poll no longer takes votes.
fn status_of(poll: &PollDefinition, snapshot: &PollSnapshot) -> PollStatus {
    match (snapshot.status, poll.status_at(Utc::now())) {
        (PollStatus::Closed, _) => PollStatus::Closed,
        (PollStatus::Open, PollStatus::Open) => PollStatus::Open,
        _ => PollStatus::Closing,
    }
}

/// Fails with `403 results_hidden` unless `caller` may see `poll`'s counts now. The check
/// comes before any read, so neither the cache nor the database path can leak them.
async fn check_visibility(
    state: &AppState,
    poll: &PollDefinition,
    status: PollStatus,
    caller: Option<&Caller>,
) -> Result<(), ApiError> {
    let viewer = Viewer::decide(
        &poll.owner_id,
        poll.visibility,
        caller.map(|caller| caller.subject.as_str()),
        async |voter| ballots::is_counted(&state.db, poll.id, voter).await,
    )
    .await?;
    if poll.visibility.allows(viewer, status) {
        return Ok(());
    }
    let why = match poll.visibility {
        ResultsVisibility::AfterVote => "results are shown once your vote is counted",
        ResultsVisibility::AfterClose => "results are shown when the poll closes",
        _ => "results of this poll are visible to its owner only",
    };
    Err(ApiError::forbidden("results_hidden", why))
}

fn results_view(poll: &PollDefinition, snapshot: &PollSnapshot, status: PollStatus) -> ResultsView {
    ResultsView {
        poll_id: poll.id,
        code: poll.code.clone(),
        seq: snapshot.seq,
        total: snapshot.total,
        status,
        options: poll
            .options
            .iter()
            .map(|option| OptionResult {
                option_id: option.id,
                text: option.text.clone(),
                votes: snapshot
                    .options
                    .iter()
                    .find(|count| count.option_id == option.id)
                    .map_or(0, |count| count.votes),
            })
            .collect(),
    }
}
