//! `POST /api/v1/polls`: checking a new poll and creating it.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use pollstream_store::polls::{self as stored_polls, CreateError, PollDraft};
use pollstream_store::{PollKind, ResultsVisibility};
use pollstream_wire::{ErrorBody, input};
use serde::Deserialize;
use utoipa::ToSchema;

use super::PollView;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, Caller};
use crate::state::AppState;
use crate::vote_lock;

/// Most options a poll may have.
pub const MAX_OPTIONS: usize = 50;

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
    /// Whether guests (tokens from `POST /api/v1/auth/guest`) may vote (default `true`);
    /// `false`: only accounts may, a guest's vote is `403 guests_not_allowed`.
    #[serde(default = "guests_allowed_by_default")]
    #[schema(default = true)]
    allow_guests: bool,
}

fn guests_allowed_by_default() -> bool {
    true
}

fn question_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::http::schema::text(
        input::MAX_QUESTION_CHARS,
        "1 to 500 characters once normalised, counted as a reader sees them (grapheme clusters: `🏴󠁧󠁢󠁥󠁮󠁧󠁿` is one), at most 8000 code points; no control characters",
    )
}

fn options_schema() -> utoipa::openapi::schema::ArrayBuilder {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(crate::http::schema::text(
            input::MAX_OPTION_CHARS,
            "1 to 200 characters once normalised, counted as a reader sees them (grapheme clusters: `🏴󠁧󠁢󠁥󠁮󠁧󠁿` is one), at most 3200 code points; no control characters",
        ))
        .min_items(Some(2))
        .max_items(Some(MAX_OPTIONS))
        .unique_items(true)
        .description(Some(
            "2 to 50 answers that differ in more than case, invisible characters or Unicode normalisation",
        ))
}

/// Checks a new poll. Texts are normalised by [`input::normalize_text`] (NFC, grapheme clusters
/// kept whole, lone invisible characters removed, whitespace collapsed) and options compared by
/// [`input::comparison_key`] (compatibility normalisation and case folding, by grapheme
/// cluster), so two options a reader cannot tell apart are refused as duplicates.
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
        allow_guests: new.allow_guests,
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
        (status = 422, body = ErrorBody, description = "invalid poll: texts, duplicate options, choices, `closesAt` in the past"),
        (status = 503, body = ErrorBody, description = "database unavailable; retry after `Retry-After`")))]
pub(super) async fn create_poll(
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
    // A new poll has no ballots, so its (empty) lock ledger is complete. Without the marker
    // (Redis down now) the first vote restores it instead: the poll is created either way.
    let mut redis = state.redis.clone();
    if let Err(err) =
        vote_lock::mark_complete(&mut redis, poll.id, state.config.vote_lock_ttl).await
    {
        tracing::warn!(poll_id = %poll.id, error = %err, "Cannot mark the new poll's vote locks complete; its first vote restores them");
    }
    state.polls.insert(poll).await;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    ))
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
            allow_guests: true,
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
