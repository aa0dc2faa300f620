//! Creating polls, reading them by join code, and their results.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use pollstream_store::{PollDefinition, PollKind, PollOption, results_cache, snapshots};
use pollstream_wire::{PollSnapshot, PollStatus};
use rand::Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{ApiJson, AppState};

/// Most options a poll may have.
pub const MAX_OPTIONS: usize = 50;
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 6;

/// Routes under `/api/v1/polls`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/polls", post(create_poll))
        .route("/api/v1/polls/{code}", get(get_poll))
        .route("/api/v1/polls/{code}/results", get(get_results))
}

/// Body of `POST /api/v1/polls`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPoll {
    question: String,
    options: Vec<String>,
    kind: PollKind,
    #[serde(default)]
    max_choices: Option<i32>,
    #[serde(default)]
    closes_at: Option<DateTime<Utc>>,
}

/// A poll as the API shows it, without counts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollView {
    id: Uuid,
    code: String,
    question: String,
    kind: PollKind,
    max_choices: i32,
    status: PollStatus,
    closes_at: Option<DateTime<Utc>>,
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
            max_choices: poll.max_choices,
            status: poll.status_at(Utc::now()),
            closes_at: poll.closes_at,
            created_at: poll.created_at,
            options: poll.options.clone(),
        }
    }
}

/// Checked poll content, ready to insert.
#[derive(Debug, PartialEq)]
struct ValidPoll {
    question: String,
    options: Vec<String>,
    kind: PollKind,
    max_choices: i32,
    closes_at: Option<DateTime<Utc>>,
}

fn validate(new: NewPoll, now: DateTime<Utc>) -> Result<ValidPoll, ApiError> {
    let question = new.question.trim().to_owned();
    if question.is_empty() || question.chars().count() > 500 {
        return Err(ApiError::unprocessable(
            "invalid_question",
            "`question` must be 1 to 500 characters",
        ));
    }
    if !(2..=MAX_OPTIONS).contains(&new.options.len()) {
        return Err(ApiError::unprocessable(
            "invalid_options",
            format!(
                "`options` must hold 2 to {MAX_OPTIONS} answers, got {}",
                new.options.len()
            ),
        ));
    }
    let options: Vec<String> = new.options.iter().map(|o| o.trim().to_owned()).collect();
    let mut seen = HashSet::new();
    for (index, option) in options.iter().enumerate() {
        if option.is_empty() || option.chars().count() > 200 {
            return Err(ApiError::unprocessable(
                "invalid_options",
                format!("`options[{index}]` must be 1 to 200 characters"),
            ));
        }
        if !seen.insert(option.to_lowercase()) {
            return Err(ApiError::unprocessable(
                "duplicate_option",
                format!("`options[{index}]` repeats {option:?}"),
            ));
        }
    }
    let option_count = options.len() as i32;
    let max_choices = match (new.kind, new.max_choices) {
        (PollKind::Single, None | Some(1)) => 1,
        (PollKind::Single, Some(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_max_choices",
                "a `single` poll takes exactly one choice; omit `maxChoices` or set it to 1",
            ));
        }
        (PollKind::Multiple, None) => option_count,
        (PollKind::Multiple, Some(n)) if (1..=option_count).contains(&n) => n,
        (PollKind::Multiple, Some(n)) => {
            return Err(ApiError::unprocessable(
                "invalid_max_choices",
                format!("`maxChoices` must be between 1 and {option_count}, got {n}"),
            ));
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
    Ok(ValidPoll {
        question,
        options,
        kind: new.kind,
        max_choices,
        closes_at: new.closes_at,
    })
}

fn random_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_LEN)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

async fn create_poll(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewPoll>,
) -> Result<impl IntoResponse, ApiError> {
    let valid = validate(new, Utc::now())?;
    let poll = insert_poll(&state, &caller.subject, valid).await?;
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

async fn insert_poll(
    state: &AppState,
    owner: &str,
    valid: ValidPoll,
) -> Result<PollDefinition, ApiError> {
    let id = Uuid::now_v7();
    let option_ids: Vec<Uuid> = valid.options.iter().map(|_| Uuid::now_v7()).collect();
    let positions: Vec<i32> = (0..valid.options.len() as i32).collect();
    // A code collision is unlikely (32^6 codes) but possible; try a few.
    for _ in 0..5 {
        let code = random_code();
        let mut tx = state.db.begin().await?;
        let inserted: Option<(DateTime<Utc>,)> = sqlx::query_as(
            "INSERT INTO polls (id, code, owner_id, question, kind, max_choices, closes_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (code) DO NOTHING
             RETURNING created_at",
        )
        .bind(id)
        .bind(&code)
        .bind(owner)
        .bind(&valid.question)
        .bind(valid.kind.as_str())
        .bind(valid.max_choices)
        .bind(valid.closes_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((created_at,)) = inserted else {
            continue;
        };
        sqlx::query(
            "INSERT INTO options (id, poll_id, position, text)
             SELECT o.id, $1, o.position, o.text
             FROM UNNEST($2::uuid[], $3::int[], $4::text[]) AS o(id, position, text)",
        )
        .bind(id)
        .bind(&option_ids)
        .bind(&positions)
        .bind(&valid.options)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(PollDefinition {
            id,
            code,
            owner_id: owner.to_owned(),
            question: valid.question,
            kind: valid.kind,
            max_choices: valid.max_choices,
            status: PollStatus::Open,
            closes_at: valid.closes_at,
            created_at,
            options: option_ids
                .into_iter()
                .zip(valid.options)
                .map(|(id, text)| PollOption { id, text })
                .collect(),
        });
    }
    Err(ApiError::Internal(
        "no free poll code after 5 attempts".into(),
    ))
}

async fn get_poll(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<PollView>, ApiError> {
    let poll = state.polls.by_code(&code).await?;
    Ok(Json(PollView::from(poll.as_ref())))
}

/// Body of `GET /api/v1/polls/{code}/results`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultsView {
    poll_id: Uuid,
    code: String,
    seq: i64,
    total: i64,
    status: PollStatus,
    options: Vec<OptionResult>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OptionResult {
    option_id: Uuid,
    text: String,
    votes: i64,
}

async fn get_results(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<ResultsView>, ApiError> {
    let poll = state.polls.by_code(&code).await?;
    let mut redis = state.redis.clone();
    let cached = match results_cache::read(&mut redis, poll.id).await {
        Ok(cached) => cached,
        Err(err) => {
            // The cache is an optimisation; PostgreSQL still answers.
            tracing::warn!(poll_id = %poll.id, error = %err, "Results cache unreadable, using PostgreSQL");
            None
        }
    };
    let snapshot = match cached {
        Some(snapshot) => snapshot,
        None => snapshots::load(&state.db, poll.id)
            .await?
            .ok_or_else(|| ApiError::PollNotFound(code.clone()))?,
    };
    Ok(Json(results_view(&poll, &snapshot)))
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
            max_choices,
            closes_at: None,
        }
    }

    fn code_of(result: Result<ValidPoll, ApiError>) -> &'static str {
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
    fn codes_use_the_unambiguous_alphabet() {
        for _ in 0..100 {
            let code = random_code();
            assert_eq!(code.len(), CODE_LEN);
            assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
        }
    }
}
