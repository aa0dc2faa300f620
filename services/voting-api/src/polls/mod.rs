//! Polls over HTTP: create one, read it by join code, close or delete it, list the caller's,
//! read its results and export its ballots. Each job has its own file; this one holds the
//! routes and the view of a poll they share.

mod create;
mod export;
mod lifecycle;
mod results;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use pollstream_store::{JoinCode, PollDefinition, PollKind, PollOption, ResultsVisibility};
use pollstream_wire::{ErrorBody, PollStatus};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, Caller};
use crate::state::AppState;

pub use create::MAX_OPTIONS;

/// Routes under `/api/v1/polls`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create::create_poll))
        .routes(routes!(lifecycle::my_polls))
        .routes(routes!(get_poll, lifecycle::delete_poll))
        .routes(routes!(lifecycle::close_poll))
        .routes(routes!(results::get_results))
        .routes(routes!(export::export_ballots))
}

/// A poll as the API shows it, without counts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollView {
    id: Uuid,
    /// Short join code shown to the audience.
    code: String,
    question: String,
    kind: PollKind,
    min_choices: i32,
    max_choices: i32,
    results_visibility: ResultsVisibility,
    /// Whether guest tokens may vote; `false`: a guest's vote is `403 guests_not_allowed`.
    allow_guests: bool,
    status: PollStatus,
    closes_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    options: Vec<PollOption>,
}

impl From<&PollDefinition> for PollView {
    fn from(poll: &PollDefinition) -> Self {
        PollView {
            id: poll.id,
            code: poll.code.clone(),
            question: poll.question.clone(),
            kind: poll.kind,
            min_choices: poll.min_choices,
            max_choices: poll.max_choices,
            results_visibility: poll.visibility,
            allow_guests: poll.allow_guests,
            status: poll.status_at(Utc::now()),
            closes_at: poll.closes_at,
            closed_at: poll.closed_at,
            created_at: poll.created_at,
            options: poll.options.clone(),
        }
    }
}

/// A poll by join code, without counts; public.
#[utoipa::path(get, path = "/api/v1/polls/{code}", tag = "polls", params(("code" = String, Path, description = "join code")),
    responses((status = 200, body = PollView), (status = 400, body = ErrorBody, description = "the path is not valid UTF-8"),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn get_poll(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<PollView>, ApiError> {
    let poll = state.polls.by_code(&code).await?;
    Ok(Json(PollView::from(poll.as_ref())))
}

/// Reads a poll fresh from PostgreSQL and checks that `caller` owns it.
async fn owned_poll(
    state: &AppState,
    caller: &Caller,
    code: &str,
) -> Result<PollDefinition, ApiError> {
    caller.require_account()?;
    let not_found = || ApiError::PollNotFound(code.to_owned());
    let code = JoinCode::parse(code).map_err(|_| not_found())?;
    let poll = PollDefinition::load_by_code(&state.db, &code)
        .await?
        .ok_or_else(not_found)?;
    if poll.owner_id != caller.subject {
        return Err(ApiError::forbidden(
            "not_owner",
            "only the poll's owner may do this",
        ));
    }
    Ok(poll)
}
