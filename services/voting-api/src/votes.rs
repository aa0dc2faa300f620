//! Casting votes: validate, lock, produce, answer `202` only once Kafka has the vote.
//!
//! The vote lock ([`crate::vote_lock`]) turns a second attempt into `409` cheaply. While a
//! poll's locks may be incomplete (Redis lost them, or they lapsed) a vote is still taken, but
//! answered only from its counted ballot ([`crate::vote_confirm`]) until
//! [`crate::lock_restore`] has rebuilt them, so a `202` is never given to a voter who already
//! has a ballot. Whatever fails after the lock was taken and before Kafka has the vote
//! releases it, so the voter can retry and no half-done vote is left behind.
//!
//! A send Kafka did not acknowledge in time is `503 kafka_unavailable`: not known to be
//! counted, retrying is safe. The message may still reach Kafka and be counted; the retry is
//! taken all the same, the aggregator counts one ballot per voter and poll (the first of the
//! voter's votes in the partition), and `GET /api/v1/votes/{code}/me` names the one counted.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use pollstream_infra::telemetry::trace_context;
use pollstream_store::PollDefinition;
use pollstream_store::ballots::{self, ChoiceFault, CountFault};
use pollstream_wire::{ErrorBody, RawVote, SCHEMA_VERSION};
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath, Caller, ClientIp};
use crate::metric_names::{KAFKA_PRODUCE_DURATION_SECONDS, VOTES_ACCEPTED, VOTES_REJECTED};
use crate::rate_limit::{self, Limit};
use crate::state::AppState;
use crate::vote_confirm::{self, UNVOUCHED_HOLD};
use crate::vote_lock::{self, LockValue, release_lock};

/// How long a vote keeps trying to take its lock while Redis cannot be reached (a restart, a
/// replaced connection) before it is `503 redis_unavailable`: long enough for a restart, short
/// enough to leave a client's 5 s timeout room for the rest of the vote.
const REDIS_RETRY_LIMIT: Duration = Duration::from_secs(2);

/// The pause between two such attempts.
const REDIS_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Routes that take votes. At most `MAX_VOTES_IN_FLIGHT` of their requests are served at once
/// on this instance (one semaphore for all of them, [`VoteSlot`]); past that a request is
/// answered `503 overloaded` at once instead of queueing behind the others. Under a burst
/// beyond what the instance can do, the votes it takes keep their latency and the rest can
/// retry (or go to another replica) within a second, rather than every request waiting into
/// its timeout.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(vote_by_code))
        .routes(routes!(my_vote))
        .routes(routes!(legacy_vote))
}

/// One of the instance's `MAX_VOTES_IN_FLIGHT` places for a vote request, held until the
/// handler returns. The first extractor of each vote handler, so it is taken before the token
/// is checked or the body read, as a layer in front of the routes would take it; a plain
/// `try_acquire` costs no allocation, where a concurrency-limit layer costs a boxed future per
/// request.
pub struct VoteSlot {
    _permit: OwnedSemaphorePermit,
}

impl FromRequestParts<AppState> for VoteSlot {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match state.vote_slots.clone().try_acquire_owned() {
            Ok(permit) => Ok(VoteSlot { _permit: permit }),
            Err(_) => {
                metrics::counter!(VOTES_REJECTED, "reason" => "overloaded").increment(1);
                Err(ApiError::Overloaded)
            }
        }
    }
}

/// Body of `POST /api/v1/votes/{code}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CastVote {
    /// The chosen options of this poll, distinct, as many as it allows (`minChoices` to
    /// `maxChoices`).
    #[schema(schema_with = option_ids_schema)]
    option_ids: Vec<Uuid>,
}

fn option_ids_schema() -> utoipa::openapi::schema::ArrayBuilder {
    crate::http::schema::distinct_uuids(
        1,
        crate::polls::MAX_OPTIONS,
        "the chosen options of this poll, distinct, as many as it allows (`minChoices` to `maxChoices`)",
    )
}

/// Body of the older `POST /vote`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacyVote {
    poll_id: Uuid,
    option_id: Uuid,
}

/// Answer to an accepted vote.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VoteAccepted {
    vote_id: Uuid,
    poll_id: Uuid,
}

/// Casts the caller's vote (the voter is the token's subject). `202` means Kafka has it and
/// the voter will have exactly one ballot: this vote's, unless an earlier attempt answered
/// `503 kafka_unavailable` reached Kafka first (then that one is the ballot; `GET
/// /api/v1/votes/{code}/me` says which). `503 kafka_unavailable` means the vote is not known to
/// be counted and retrying is safe: it may still reach Kafka and be counted, but the voter's
/// lock is released, and one ballot per voter and poll is ever counted.
#[utoipa::path(post, path = "/api/v1/votes/{code}", tag = "votes", request_body = CastVote, security(("bearer" = [])),
    params(("code" = String, Path, description = "join code")),
    responses((status = 202, body = VoteAccepted),
        (status = 400, body = ErrorBody, description = "malformed JSON, or the path is not valid UTF-8"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "a guest voting in a poll that needs accounts (`guests_not_allowed`)"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "already voted, or poll closed"),
        (status = 422, body = ErrorBody, description = "invalid choices"), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "Kafka or Redis unavailable, or the instance has too many votes in flight (`overloaded`); retry after `Retry-After`. `vote_unconfirmed`: the poll's vote locks are being restored after Redis lost them or they expired, so the vote, which Kafka has, is answered from its counted ballot, and that was not known within 3.5 s, or within 4.5 s of the vote's arrival; not known to be counted, retrying is safe (the retry is `409 already_voted` while this attempt's lock holds; `GET /api/v1/votes/{code}/me` tells which ballot was counted). `kafka_unavailable` means not known to be counted, retrying is safe: Kafka did not acknowledge the vote within `KAFKA_PRODUCE_TIMEOUT_MS`, yet it may still reach Kafka and be counted; the voter's lock is released, so a retry is taken (`202`), and only the first of the voter's votes that Kafka wrote is counted, whichever options the retry chose. `GET /api/v1/votes/{code}/me` tells which ballot, if any, was counted")))]
async fn vote_by_code(
    _slot: VoteSlot,
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
    caller: Caller,
    ip: ClientIp,
    ApiJson(body): ApiJson<CastVote>,
) -> Result<(StatusCode, Json<VoteAccepted>), ApiError> {
    let poll = state.polls.by_code(&code).await?;
    cast(state, &poll, caller, ip, body.option_ids).await
}

/// The older single-choice shape; same rules as `POST /api/v1/votes/{code}`.
#[utoipa::path(post, path = "/vote", tag = "votes", request_body = LegacyVote, security(("bearer" = [])),
    responses((status = 202, body = VoteAccepted), (status = 400, body = ErrorBody, description = "malformed JSON"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "a guest voting in a poll that needs accounts (`guests_not_allowed`)"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "already voted, or poll closed"),
        (status = 422, body = ErrorBody, description = "the option is not one of the poll's"), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "as for `POST /api/v1/votes/{code}`, `vote_unconfirmed` included; retry after `Retry-After`")))]
async fn legacy_vote(
    _slot: VoteSlot,
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
    ApiJson(body): ApiJson<LegacyVote>,
) -> Result<(StatusCode, Json<VoteAccepted>), ApiError> {
    let poll = state.polls.by_id(body.poll_id).await?;
    cast(state, &poll, caller, ip, vec![body.option_id]).await
}

/// Where the caller's vote in a poll stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyVote {
    /// `counted` (final: the one ballot of this voter, `voteId` and `optionIds` as counted),
    /// `pending` (the latest attempt answered `202`, not yet counted) or `none` (nothing
    /// counted yet). After a `503 kafka_unavailable` the attempt so answered may still be
    /// counted: `none` or `pending` then may turn into `counted` with that attempt's options.
    status: &'static str,
    vote_id: Option<Uuid>,
    option_ids: Vec<Uuid>,
    cast_at: Option<DateTime<Utc>>,
    counted_at: Option<DateTime<Utc>>,
}

/// Whether the caller's vote is pending or counted, and which options it holds. The counted
/// ballot is read from PostgreSQL first, so after a `503 kafka_unavailable` and a retry it
/// names the attempt that was counted, not necessarily the one answered `202`.
#[utoipa::path(get, path = "/api/v1/votes/{code}/me", tag = "votes", security(("bearer" = [])),
    params(("code" = String, Path, description = "join code")),
    responses((status = 200, body = MyVote), (status = 400, body = ErrorBody, description = "the path is not valid UTF-8"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn my_vote(
    _slot: VoteSlot,
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
    caller: Caller,
) -> Result<Json<MyVote>, ApiError> {
    let poll = state.polls.by_code(&code).await?;
    if let Some(ballot) = ballots::of_voter(&state.db, poll.id, &caller.subject).await? {
        return Ok(Json(MyVote {
            status: "counted",
            vote_id: Some(ballot.vote_id),
            option_ids: ballot.option_ids,
            cast_at: Some(ballot.cast_at),
            counted_at: Some(ballot.counted_at),
        }));
    }
    let mut redis = state.redis.clone();
    let lock = vote_lock::pending(&mut redis, poll.id, &caller.subject)
        .await
        .map_err(|err| ApiError::unavailable("redis", err))?;
    Ok(Json(match lock {
        Some(lock) => MyVote {
            status: "pending",
            vote_id: Some(lock.vote_id),
            option_ids: lock.option_ids,
            cast_at: None,
            counted_at: None,
        },
        None => MyVote {
            status: "none",
            vote_id: None,
            option_ids: Vec::new(),
            cast_at: None,
            counted_at: None,
        },
    }))
}

async fn cast(
    state: AppState,
    poll: &PollDefinition,
    caller: Caller,
    ip: ClientIp,
    option_ids: Vec<Uuid>,
) -> Result<(StatusCode, Json<VoteAccepted>), ApiError> {
    let result = async {
        // What can be decided without Redis is decided first: such rejections cost nothing
        // downstream, so they are not counted against the rate limits either.
        caller.require_account_for(poll)?;
        let voter_id = caller.subject;
        let now = Utc::now();
        if !poll.status_at(now).takes_votes() {
            return Err(ApiError::conflict(
                "poll_closed",
                "this poll is closed and takes no more votes",
            ));
        }
        check_choices(poll, &option_ids)?;
        let limits = vote_lock::limits(&state.config.rate_limits, &voter_id, ip.0);
        let vote = RawVote {
            v: SCHEMA_VERSION,
            vote_id: Uuid::now_v7(),
            poll_id: poll.id,
            voter_id,
            option_ids,
            cast_at: now,
        };
        // Run lock-and-produce to completion even if the client goes away mid-request:
        // dropping it between the lock and the delivery report would strand the lock.
        let span =
            tracing::info_span!("produce_vote", poll_id = %vote.poll_id, vote_id = %vote.vote_id);
        tokio::spawn(lock_and_produce(state, vote, limits).instrument(span))
            .await
            .map_err(|err| ApiError::Internal(format!("vote task failed: {err}")))?
    }
    .await;
    match &result {
        Ok(_) => metrics::counter!(VOTES_ACCEPTED).increment(1),
        Err(err) => metrics::counter!(VOTES_REJECTED, "reason" => err.code()).increment(1),
    }
    result
}

async fn lock_and_produce(
    state: AppState,
    vote: RawVote,
    limits: Vec<Limit>,
) -> Result<(StatusCode, Json<VoteAccepted>), ApiError> {
    let lock_key = vote_lock::key(vote.poll_id, &vote.voter_id);
    let lock_value = LockValue {
        vote_id: vote.vote_id,
        option_ids: vote.option_ids.clone(),
    }
    .render();
    let mut redis = state.redis.clone();
    // The first attempt's send: the script that took the lock ran after it, whichever attempt
    // that was.
    let take_sent = Instant::now();
    let outcome = loop {
        let attempt = vote_lock::take(
            &mut redis,
            vote.poll_id,
            &lock_key,
            &lock_value,
            state.config.vote_lock_ttl,
            state.config.rate_limits.window,
            &limits,
        )
        .await;
        match attempt {
            Ok(outcome) => break outcome,
            // Redis restarting, or its connection being replaced: a restart takes a second or
            // two, which the voter should not see as a refusal. The script is idempotent for
            // its own lock value, so an attempt that ran before its answer was lost is safe.
            Err(err)
                if !err.is_timeout()
                    && (err.is_connection_refusal()
                        || err.is_connection_dropped()
                        || err.is_io_error())
                    && take_sent.elapsed() + REDIS_RETRY_PAUSE < REDIS_RETRY_LIMIT =>
            {
                tokio::time::sleep(REDIS_RETRY_PAUSE).await;
            }
            Err(err) => {
                // No answer does not mean the script did not run: a lock taken with no vote
                // behind it would answer the voter's retry `409 already_voted` for a vote
                // never counted.
                if err.is_timeout() || err.is_connection_dropped() || err.is_io_error() {
                    release_lock(&mut redis, &lock_key, &lock_value).await;
                }
                return Err(ApiError::unavailable("redis", err));
            }
        }
    };
    let vouched = match outcome {
        vote_lock::Outcome::Taken => true,
        vote_lock::Outcome::TakenUnvouched => {
            // Held from the script's answer, which came after any loss of Redis's keys.
            let taken = Instant::now();
            crate::lock_restore::begin(&state, vote.poll_id).await;
            tokio::time::sleep_until((taken + UNVOUCHED_HOLD).into()).await;
            false
        }
        vote_lock::Outcome::TakenAgain => {
            // Held from now, later than the first attempt's script: the rule of an unvouched
            // vote holds whichever attempt took the lock.
            tokio::time::sleep(UNVOUCHED_HOLD).await;
            false
        }
        vote_lock::Outcome::AlreadyVoted => {
            return Err(ApiError::conflict(
                "already_voted",
                "this voter has already voted in this poll",
            ));
        }
        vote_lock::Outcome::RateLimited { retry_ms } => {
            return Err(rate_limit::exceeded(retry_ms));
        }
        vote_lock::Outcome::PollClosed => {
            return Err(ApiError::conflict(
                "poll_closed",
                "this poll is closed and takes no more votes",
            ));
        }
    };

    let payload = vote.encode();
    let key = vote.key();
    let mut record = FutureRecord::to(&state.config.raw_votes_topic)
        .key(&key)
        .payload(&payload);
    record.headers = trace_context::headers(&tracing::Span::current());
    let started = Instant::now();
    // librdkafka's own `message.timeout.ms` is not a hard bound for an idempotent producer, so
    // the answer is bounded here; a message still queued or in flight past the bound may yet
    // reach Kafka, which is safe: the lock is released, so the voter's retry is taken, and the
    // ballot key counts the two copies once. Of two attempts with different options, the
    // first Kafka wrote is the ballot (one voter's votes share a partition, and the aggregator
    // keeps the first it reads); `/me` reads the ballot before the lock, so it names that one.
    let delivery = state
        .producer
        .send_within(
            record,
            Duration::from_millis(500),
            state.config.kafka.produce_timeout,
        )
        .await;
    metrics::histogram!(KAFKA_PRODUCE_DURATION_SECONDS, "topic" => "raw-votes")
        .record(started.elapsed().as_secs_f64());
    match delivery {
        Ok(delivery) => {
            // A late acknowledgement may have come after Redis lost the lock: then only the
            // counted ballot says whether this vote is the voter's (see `vote_confirm`).
            let confirmed = vouched
                && (take_sent.elapsed() < UNVOUCHED_HOLD
                    || vote_lock::holds(&mut redis, &lock_key, &lock_value)
                        .await
                        .unwrap_or(false));
            if !confirmed {
                vote_confirm::confirm(
                    &state,
                    &vote,
                    &delivery,
                    (&lock_key, &lock_value),
                    take_sent + vote_confirm::ANSWER_BY,
                )
                .await?;
            }
            tracing::debug!(poll_id = %vote.poll_id, vote_id = %vote.vote_id, "Vote accepted");
            Ok((
                StatusCode::ACCEPTED,
                Json(VoteAccepted {
                    vote_id: vote.vote_id,
                    poll_id: vote.poll_id,
                }),
            ))
        }
        Err(err) => {
            release_lock(&mut redis, &lock_key, &lock_value).await;
            Err(ApiError::unavailable("kafka", err))
        }
    }
}

/// Checks the chosen options against the poll ([`PollDefinition::check_ballot`]) and names
/// the first fault: no choice at all, then a repeated or unknown option, then the count.
fn check_choices(poll: &PollDefinition, option_ids: &[Uuid]) -> Result<(), ApiError> {
    let check = poll.check_ballot(option_ids);
    let (code, message) = match (check.count, check.choice) {
        (None, None) => return Ok(()),
        (Some(CountFault::Empty), _) => (
            "no_choice",
            "`optionIds` must name at least one option".to_owned(),
        ),
        (_, Some(ChoiceFault::Repeated(id))) => {
            ("duplicate_option", format!("option {id} is chosen twice"))
        }
        (_, Some(ChoiceFault::Unknown(id))) => (
            "invalid_option",
            format!("option {id} is not an option of this poll"),
        ),
        (Some(CountFault::TooMany { max, got }), None) => (
            "too_many_choices",
            format!("this poll allows at most {max} choice(s), got {got}"),
        ),
        (Some(CountFault::TooFew { min, got }), None) => (
            "too_few_choices",
            format!("this poll needs at least {min} choices, got {got}"),
        ),
    };
    Err(ApiError::unprocessable(code, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollstream_store::{PollKind, PollOption};
    use pollstream_wire::PollStatus;

    fn poll(kind: PollKind, max_choices: i32, options: usize) -> PollDefinition {
        PollDefinition {
            id: Uuid::from_u128(1),
            code: "ABCDEF".into(),
            owner_id: "owner".into(),
            question: "q".into(),
            kind,
            min_choices: 1,
            max_choices,
            visibility: pollstream_store::ResultsVisibility::Always,
            allow_guests: true,
            status: PollStatus::Open,
            closes_at: None,
            closed_at: None,
            created_at: Utc::now(),
            options: (0..options)
                .map(|i| PollOption {
                    id: Uuid::from_u128(100 + i as u128),
                    text: format!("o{i}"),
                })
                .collect(),
        }
    }

    fn code(poll: &PollDefinition, ids: &[u128]) -> Option<&'static str> {
        let ids: Vec<Uuid> = ids.iter().map(|&i| Uuid::from_u128(i)).collect();
        check_choices(poll, &ids).err().map(|err| err.code())
    }

    #[test]
    fn single_choice_takes_exactly_one_known_option() {
        let p = poll(PollKind::Single, 1, 3);
        assert_eq!(code(&p, &[101]), None);
        assert_eq!(code(&p, &[]), Some("no_choice"));
        assert_eq!(code(&p, &[100, 101]), Some("too_many_choices"));
        assert_eq!(code(&p, &[999]), Some("invalid_option"));
    }

    #[test]
    fn multiple_choice_respects_max_and_rejects_repeats() {
        let p = poll(PollKind::Multiple, 2, 4);
        assert_eq!(code(&p, &[100, 103]), None);
        assert_eq!(code(&p, &[100, 100]), Some("duplicate_option"));
        assert_eq!(code(&p, &[100, 101, 102]), Some("too_many_choices"));
        assert_eq!(code(&p, &[100, 5]), Some("invalid_option"));
    }

    #[test]
    fn multiple_choice_respects_min() {
        let mut p = poll(PollKind::Multiple, 3, 4);
        p.min_choices = 2;
        assert_eq!(code(&p, &[100]), Some("too_few_choices"));
        assert_eq!(code(&p, &[100, 101]), None);
    }

    #[test]
    fn poll_past_its_closing_time_takes_no_vote() {
        let mut p = poll(PollKind::Single, 1, 2);
        p.closes_at = Some(Utc::now() - chrono::Duration::seconds(1));
        assert_eq!(p.status_at(Utc::now()), PollStatus::Closing);
        assert!(!p.status_at(Utc::now()).takes_votes());
    }
}
