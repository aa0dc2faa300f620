//! Creating polls, reading them by join code, and their results.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use pollstream_store::ballots::{self, Ballot};
use pollstream_store::polls::{self as stored_polls, CreateError, PollDraft};
use pollstream_store::{
    JoinCode, PollDefinition, PollKind, PollOption, ResultsVisibility, Viewer, closed_flag,
    snapshots,
};
use pollstream_wire::{ErrorBody, PollSnapshot, PollStatus, input};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Caller, MaybeCaller};
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::{ApiJson, AppState};

/// Most options a poll may have.
pub const MAX_OPTIONS: usize = 50;

/// Routes under `/api/v1/polls`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_poll))
        .routes(routes!(my_polls))
        .routes(routes!(get_poll, delete_poll))
        .routes(routes!(close_poll))
        .routes(routes!(get_results))
        .routes(routes!(export_ballots))
}

/// Body of `POST /api/v1/polls`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPoll {
    /// 1 to 500 visible characters once normalised (NFC, invisible characters removed,
    /// whitespace collapsed); no control characters.
    #[schema(schema_with = question_schema)]
    question: String,
    /// 2 to 50 answers, 1 to 200 visible characters each, that differ in more than case,
    /// invisible characters or Unicode normalisation.
    #[schema(schema_with = options_schema)]
    options: Vec<String>,
    kind: PollKind,
    /// Multiple choice only: fewest options per ballot (default 1, at most `maxChoices`);
    /// a `single` poll takes only 1.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 50)]
    min_choices: Option<i32>,
    /// Multiple choice only: most options per ballot (default: all, at most the number of
    /// options); a `single` poll takes only 1.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 50)]
    max_choices: Option<i32>,
    /// When the poll closes by itself; must be in the future.
    #[serde(default)]
    closes_at: Option<DateTime<Utc>>,
    /// Who sees counts, and when (default `always`).
    #[serde(default)]
    results_visibility: ResultsVisibility,
}

fn question_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::schema::text(
        input::MAX_QUESTION_CHARS,
        "1 to 500 visible characters once normalised; no control characters",
    )
}

fn options_schema() -> utoipa::openapi::schema::ArrayBuilder {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(crate::schema::text(
            input::MAX_OPTION_CHARS,
            "1 to 200 visible characters once normalised; no control characters",
        ))
        .min_items(Some(2))
        .max_items(Some(MAX_OPTIONS))
        .unique_items(true)
        .description(Some(
            "2 to 50 answers that differ in more than case, invisible characters or Unicode normalisation",
        ))
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
            status: poll.status_at(Utc::now()),
            closes_at: poll.closes_at,
            closed_at: poll.closed_at,
            created_at: poll.created_at,
            options: poll.options.clone(),
        }
    }
}

/// Checks a new poll. Texts are normalised by [`input::normalize_text`] (NFC, invisible
/// characters removed, whitespace collapsed) and options compared by [`input::comparison_key`]
/// (compatibility normalisation and case folding), so two options a reader cannot tell apart
/// are refused as duplicates.
fn validate(new: NewPoll, now: DateTime<Utc>) -> Result<PollDraft, ApiError> {
    let question =
        input::normalize_text(&new.question, input::MAX_QUESTION_CHARS).map_err(|err| {
            ApiError::unprocessable(
                "invalid_question",
                format!(
                    "`question` must be 1 to {} visible characters: it {}",
                    input::MAX_QUESTION_CHARS,
                    text_problem(err)
                ),
            )
        })?;
    if !(2..=MAX_OPTIONS).contains(&new.options.len()) {
        return Err(ApiError::unprocessable(
            "invalid_options",
            format!(
                "`options` must hold 2 to {MAX_OPTIONS} answers, got {}",
                new.options.len()
            ),
        ));
    }
    let mut options = Vec::with_capacity(new.options.len());
    let mut seen = HashMap::new();
    for (index, raw) in new.options.iter().enumerate() {
        let option = input::normalize_text(raw, input::MAX_OPTION_CHARS).map_err(|err| {
            ApiError::unprocessable(
                "invalid_options",
                format!(
                    "`options[{index}]` must be 1 to {} visible characters: it {}",
                    input::MAX_OPTION_CHARS,
                    text_problem(err)
                ),
            )
        })?;
        if let Some(first) = seen.insert(input::comparison_key(&option), index) {
            return Err(ApiError::unprocessable(
                "duplicate_option",
                format!(
                    "`options[{index}]` ({option:?}) reads the same as `options[{first}]` ({:?}); options must differ in more than case, invisible characters or Unicode normalisation",
                    options[first]
                ),
            ));
        }
        options.push(option);
    }
    let option_count = options.len() as i32;
    let (min_choices, max_choices) = match new.kind {
        PollKind::Single => {
            if new.min_choices.is_some_and(|n| n != 1) || new.max_choices.is_some_and(|n| n != 1) {
                return Err(ApiError::unprocessable(
                    "invalid_max_choices",
                    "a `single` poll takes exactly one choice; omit `minChoices`/`maxChoices` or set them to 1",
                ));
            }
            (1, 1)
        }
        PollKind::Multiple => {
            let max = new.max_choices.unwrap_or(option_count);
            if !(1..=option_count).contains(&max) {
                return Err(ApiError::unprocessable(
                    "invalid_max_choices",
                    format!("`maxChoices` must be between 1 and {option_count}, got {max}"),
                ));
            }
            let min = new.min_choices.unwrap_or(1);
            if !(1..=max).contains(&min) {
                return Err(ApiError::unprocessable(
                    "invalid_min_choices",
                    format!("`minChoices` must be between 1 and `maxChoices` ({max}), got {min}"),
                ));
            }
            (min, max)
        }
    };
    if let Some(closes_at) = new.closes_at
        && closes_at <= now
    {
        return Err(ApiError::unprocessable(
            "invalid_closes_at",
            "`closesAt` must be in the future",
        ));
    }
    Ok(PollDraft {
        question,
        options,
        kind: new.kind,
        min_choices,
        max_choices,
        closes_at: new.closes_at,
        visibility: new.results_visibility,
    })
}

/// What is wrong with a text, as the end of a sentence naming the field.
fn text_problem(err: input::TextError) -> String {
    match err {
        input::TextError::Blank => {
            "is blank once whitespace and invisible characters are removed".into()
        }
        input::TextError::TooLong { max } => format!("is longer than {max} characters"),
        input::TextError::Control { code } => {
            format!("contains the control character U+{code:04X}")
        }
    }
}

/// Creates a poll owned by the caller (an account, not a guest).
#[utoipa::path(post, path = "/api/v1/polls", tag = "polls", request_body = NewPoll, security(("bearer" = [])),
    responses((status = 201, body = PollView, headers(("location" = String, description = "where the poll is read"))),
        (status = 400, body = ErrorBody, description = "malformed JSON"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "guests cannot create polls"),
        (status = 413, body = ErrorBody, description = "body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "not `application/json`"),
        (status = 422, body = ErrorBody, description = "invalid poll: texts, duplicate options, choices, `closesAt` in the past"),
        (status = 503, body = ErrorBody, description = "database unavailable; retry after `Retry-After`")))]
async fn create_poll(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewPoll>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_account()?;
    let valid = validate(new, Utc::now())?;
    let poll = stored_polls::insert(&state.db, &caller.subject, valid)
        .await
        .map_err(|err| match err {
            CreateError::NoFreeCode(_) => ApiError::Internal(err.to_string()),
            CreateError::Database(err) => ApiError::from(err),
        })?;
    let view = PollView::from(&poll);
    let location = format!("/api/v1/polls/{}", poll.code);
    tracing::info!(poll_id = %poll.id, code = %poll.code, "Poll created");
    state.polls.insert(poll).await;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    ))
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

/// Closes a poll now. Idempotent. Every screen receives `poll-closed` with the final
/// snapshot (announced by the aggregator within about half a second).
#[utoipa::path(post, path = "/api/v1/polls/{code}/close", tag = "polls", security(("bearer" = [])),
    params(("code" = String, Path, description = "join code")),
    responses((status = 200, body = PollView), (status = 400, body = ErrorBody, description = "the path is not valid UTF-8"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not the owner, or a guest"),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn close_poll(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<PollView>, ApiError> {
    let poll = owned_poll(&state, &caller, &code).await?;
    // The flag first: from here on no replica's lock script lets a vote through, so every
    // vote answered 202 was cast before `closed_at` below and will be counted.
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
async fn delete_poll(
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

/// One of the caller's polls with its current total.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyPoll {
    id: Uuid,
    code: String,
    question: String,
    status: PollStatus,
    total: i64,
    created_at: DateTime<Utc>,
    closes_at: Option<DateTime<Utc>>,
}

/// The caller's polls, newest first.
#[utoipa::path(get, path = "/api/v1/polls/mine", tag = "polls", security(("bearer" = [])), params(Page),
    responses((status = 200, body = Vec<MyPoll>), (status = 400, body = ErrorBody, description = "`limit` or `offset` is not a 64-bit integer"),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn my_polls(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Vec<MyPoll>>, ApiError> {
    let limit = page.limit.unwrap_or(50).clamp(1, 200);
    let offset = page.offset.unwrap_or(0).max(0);
    let polls = stored_polls::owned_by(&state.db, &caller.subject, limit, offset).await?;
    Ok(Json(
        polls
            .into_iter()
            .map(|row| MyPoll {
                status: row.status,
                id: row.id,
                code: row.code,
                question: row.question,
                total: row.total,
                created_at: row.created_at,
                closes_at: row.closes_at,
            })
            .collect(),
    ))
}

/// Every ballot of a poll as CSV, streamed; owner only.
#[utoipa::path(get, path = "/api/v1/polls/{code}/ballots.csv", tag = "polls", security(("bearer" = [])),
    params(("code" = String, Path, description = "join code")),
    responses((status = 200, content_type = "text/csv", body = String, description = "vote_id,voter_id,option_ids,options,cast_at,counted_at"),
        (status = 400, body = ErrorBody, description = "the path is not valid UTF-8"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not the owner, or a guest"), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn export_ballots(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
) -> Result<Response, ApiError> {
    let poll = owned_poll(&state, &caller, &code).await?;
    let texts: HashMap<Uuid, String> = poll
        .options
        .iter()
        .map(|o| (o.id, o.text.clone()))
        .collect();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(32);
    let db = state.db.clone();
    let poll_id = poll.id;
    tokio::spawn(async move {
        let header_row = csv_row(&[
            "vote_id",
            "voter_id",
            "option_ids",
            "options",
            "cast_at",
            "counted_at",
        ]);
        if tx.send(Ok(header_row)).await.is_err() {
            return;
        }
        let mut rows = ballots::all_of(&db, poll_id);
        loop {
            let chunk = match rows.try_next().await {
                Ok(Some(ballot)) => Ok(csv_ballot(&ballot, &texts)),
                Ok(None) => return,
                Err(err) => {
                    tracing::error!(poll_id = %poll_id, error = %err, "Ballot export failed midway");
                    Err(std::io::Error::other(err))
                }
            };
            let failed = chunk.is_err();
            // The client hung up: stop reading.
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let filename = format!("attachment; filename=\"poll-{}-ballots.csv\"", poll.code);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

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
async fn get_results(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<ResultsView>, ApiError> {
    let poll = state.polls.by_code(&code).await?;
    check_visibility(&state, &poll, caller.as_ref()).await?;
    let mut redis = state.redis.clone();
    let snapshot = snapshots::current(&state.db, &mut redis, poll.id)
        .await?
        .ok_or_else(|| ApiError::PollNotFound(code.clone()))?;
    Ok(Json(results_view(&poll, &snapshot)))
}

/// Fails with `403 results_hidden` unless `caller` may see `poll`'s counts now. The check
/// comes before any read, so neither the cache nor the database path can leak them.
async fn check_visibility(
    state: &AppState,
    poll: &PollDefinition,
    caller: Option<&Caller>,
) -> Result<(), ApiError> {
    let viewer = Viewer::decide(
        &poll.owner_id,
        poll.visibility,
        caller.map(|caller| caller.subject.as_str()),
        async |voter| ballots::is_counted(&state.db, poll.id, voter).await,
    )
    .await?;
    if poll.visibility.allows(viewer, poll.status_at(Utc::now())) {
        return Ok(());
    }
    let why = match poll.visibility {
        ResultsVisibility::AfterVote => "results are shown once your vote is counted",
        ResultsVisibility::AfterClose => "results are shown when the poll closes",
        _ => "results of this poll are visible to its owner only",
    };
    Err(ApiError::forbidden("results_hidden", why))
}

/// One ballot as a CSV line, its options by id and by text.
fn csv_ballot(ballot: &Ballot, texts: &HashMap<Uuid, String>) -> Vec<u8> {
    let ids: Vec<String> = ballot.option_ids.iter().map(Uuid::to_string).collect();
    let names: Vec<&str> = ballot
        .option_ids
        .iter()
        .map(|id| texts.get(id).map_or("", String::as_str))
        .collect();
    csv_row(&[
        &ballot.vote_id.to_string(),
        &ballot.voter_id,
        &ids.join(";"),
        &names.join(";"),
        &ballot.cast_at.to_rfc3339(),
        &ballot.counted_at.to_rfc3339(),
    ])
}

/// One CSV line with RFC 4180 quoting (voter ids and option texts may hold commas and quotes).
fn csv_row(fields: &[&str]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(fields)
        .expect("writing to memory cannot fail");
    writer.into_inner().expect("flushing to memory cannot fail")
}

fn results_view(poll: &PollDefinition, snapshot: &PollSnapshot) -> ResultsView {
    let now = Utc::now();
    let status = match (snapshot.status, poll.status_at(now)) {
        (PollStatus::Closed, _) | (_, PollStatus::Closed) => PollStatus::Closed,
        _ => PollStatus::Open,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn new_poll(kind: PollKind, options: &[&str], max_choices: Option<i32>) -> NewPoll {
        NewPoll {
            question: "  Lunch?  ".into(),
            options: options.iter().map(|s| s.to_string()).collect(),
            kind,
            min_choices: None,
            max_choices,
            closes_at: None,
            results_visibility: ResultsVisibility::Always,
        }
    }

    fn code_of(result: Result<PollDraft, ApiError>) -> &'static str {
        result.unwrap_err().code()
    }

    #[test]
    fn valid_single_poll_is_trimmed() {
        let valid = validate(
            new_poll(PollKind::Single, &["Pizza ", "Soup"], None),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(valid.question, "Lunch?");
        assert_eq!(valid.options, vec!["Pizza", "Soup"]);
        assert_eq!(valid.max_choices, 1);
    }

    #[test]
    fn multiple_poll_defaults_to_all_options() {
        let valid = validate(
            new_poll(PollKind::Multiple, &["a", "b", "c"], None),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(valid.max_choices, 3);
    }

    #[test]
    fn bad_polls_are_rejected_with_a_code() {
        let now = Utc::now();
        assert_eq!(
            code_of(validate(new_poll(PollKind::Single, &["only"], None), now)),
            "invalid_options"
        );
        assert_eq!(
            code_of(validate(new_poll(PollKind::Single, &["a", "A"], None), now)),
            "duplicate_option"
        );
        assert_eq!(
            code_of(validate(new_poll(PollKind::Single, &["a", " "], None), now)),
            "invalid_options"
        );
        assert_eq!(
            code_of(validate(
                new_poll(PollKind::Single, &["a", "b"], Some(2)),
                now
            )),
            "invalid_max_choices"
        );
        assert_eq!(
            code_of(validate(
                new_poll(PollKind::Multiple, &["a", "b"], Some(3)),
                now
            )),
            "invalid_max_choices"
        );
        assert_eq!(
            code_of(validate(
                new_poll(PollKind::Multiple, &["a", "b"], Some(0)),
                now
            )),
            "invalid_max_choices"
        );
        let mut past = new_poll(PollKind::Single, &["a", "b"], None);
        past.closes_at = Some(now - chrono::Duration::seconds(1));
        assert_eq!(code_of(validate(past, now)), "invalid_closes_at");
        let mut blank = new_poll(PollKind::Single, &["a", "b"], None);
        blank.question = "   ".into();
        assert_eq!(code_of(validate(blank, now)), "invalid_question");
    }

    #[test]
    fn texts_are_normalised_and_compared_as_people_read_them() {
        let now = Utc::now();
        let valid = validate(
            new_poll(PollKind::Single, &["Cafe\u{301}", "Te\u{200B}a"], None),
            now,
        )
        .unwrap();
        assert_eq!(valid.options, vec!["Caf\u{e9}", "Tea"]);
        for options in [
            ["Yes", "Yes\u{200B}"],
            ["Caf\u{e9}", "Cafe\u{301}"],
            ["Yes", "\u{FF39}es"],
        ] {
            assert_eq!(
                code_of(validate(new_poll(PollKind::Single, &options, None), now)),
                "duplicate_option",
                "{options:?}"
            );
        }
        for blank in ["\u{200B}", "\u{3164}", "\u{2800}"] {
            assert_eq!(
                code_of(validate(
                    new_poll(PollKind::Single, &["a", blank], None),
                    now
                )),
                "invalid_options",
                "{blank:?}"
            );
        }
        assert_eq!(
            code_of(validate(
                new_poll(PollKind::Single, &["a", "b\u{0}"], None),
                now
            )),
            "invalid_options"
        );
        let mut nul = new_poll(PollKind::Single, &["a", "b"], None);
        nul.question = "Lunch\u{0}?".into();
        assert_eq!(code_of(validate(nul, now)), "invalid_question");
    }

    #[test]
    fn min_choices_must_fit_under_max() {
        let now = Utc::now();
        let mut poll = new_poll(PollKind::Multiple, &["a", "b", "c"], Some(2));
        poll.min_choices = Some(2);
        let valid = validate(poll, now).unwrap();
        assert_eq!((valid.min_choices, valid.max_choices), (2, 2));
        let mut poll = new_poll(PollKind::Multiple, &["a", "b", "c"], Some(2));
        poll.min_choices = Some(3);
        assert_eq!(code_of(validate(poll, now)), "invalid_min_choices");
        let mut poll = new_poll(PollKind::Single, &["a", "b"], None);
        poll.min_choices = Some(2);
        assert_eq!(code_of(validate(poll, now)), "invalid_max_choices");
    }
}
