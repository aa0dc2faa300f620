//! Casting votes: validate, lock, produce, answer `202` only once Kafka has the vote.
//!
//! The Redis lock `vote:{pollId}:{voterId}` turns a second attempt into `409` cheaply; it is a
//! filter, not the guarantee (the ballot key in PostgreSQL is). Whatever fails after the lock
//! was taken releases it, so the voter can retry and no half-done vote is left behind.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use pollstream_store::{PollDefinition, PollKind};
use pollstream_wire::{PollStatus, RawVote, SCHEMA_VERSION};
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{ApiJson, AppState};

/// Routes that take votes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/votes/{code}", post(vote_by_code))
        .route("/vote", post(legacy_vote))
}

/// Body of `POST /api/v1/votes/{code}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CastVote {
    option_ids: Vec<Uuid>,
}

/// Body of the older `POST /vote`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacyVote {
    poll_id: Uuid,
    option_id: Uuid,
}

/// Answer to an accepted vote.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoteAccepted {
    vote_id: Uuid,
    poll_id: Uuid,
}

async fn vote_by_code(
    State(state): State<AppState>,
    Path(code): Path<String>,
    caller: Caller,
    ApiJson(body): ApiJson<CastVote>,
) -> Result<(StatusCode, Json<VoteAccepted>), ApiError> {
    let poll = state.polls.by_code(&code).await?;
    cast(state, &poll, caller.subject, body.option_ids).await
}

async fn legacy_vote(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<LegacyVote>,
) -> Result<(StatusCode, Json<VoteAccepted>), ApiError> {
    let poll = state.polls.by_id(body.poll_id).await?;
    cast(state, &poll, caller.subject, vec![body.option_id]).await
}

async fn cast(
    state: AppState,
    poll: &PollDefinition,
    voter_id: String,
    option_ids: Vec<Uuid>,
) -> Result<(StatusCode, Json<VoteAccepted>), ApiError> {
    let result = async {
        let now = Utc::now();
        if poll.status_at(now) == PollStatus::Closed {
            return Err(ApiError::conflict(
                "poll_closed",
                "this poll is closed and takes no more votes",
            ));
        }
        check_choices(poll, &option_ids)?;
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
        tokio::spawn(lock_and_produce(state, vote))
            .await
            .map_err(|err| ApiError::Internal(format!("vote task failed: {err}")))?
    }
    .await;
    match &result {
        Ok(_) => metrics::counter!("votes_accepted_total").increment(1),
        Err(err) => metrics::counter!("votes_rejected_total", "reason" => err.code()).increment(1),
    }
    result
}

async fn lock_and_produce(
    state: AppState,
    vote: RawVote,
) -> Result<(StatusCode, Json<VoteAccepted>), ApiError> {
    let lock_key = format!("vote:{}:{}", vote.poll_id, vote.voter_id);
    let mut redis = state.redis.clone();
    let acquired: Option<String> = redis::cmd("SET")
        .arg(&lock_key)
        .arg(vote.vote_id.to_string())
        .arg("NX")
        .arg("EX")
        .arg(state.config.vote_lock_ttl.as_secs())
        .query_async(&mut redis)
        .await
        .map_err(|err| ApiError::unavailable("redis", err))?;
    if acquired.is_none() {
        return Err(ApiError::conflict(
            "already_voted",
            "this voter has already voted in this poll",
        ));
    }

    let payload = vote.encode();
    let key = vote.poll_id.to_string();
    let record = FutureRecord::to(&state.config.raw_votes_topic)
        .key(&key)
        .payload(&payload);
    let started = Instant::now();
    let delivery = state
        .producer
        .send(record, Duration::from_millis(500))
        .await;
    metrics::histogram!("kafka_produce_duration_seconds", "topic" => "raw-votes")
        .record(started.elapsed().as_secs_f64());
    match delivery {
        Ok(_) => {
            tracing::debug!(poll_id = %vote.poll_id, vote_id = %vote.vote_id, "Vote accepted");
            Ok((
                StatusCode::ACCEPTED,
                Json(VoteAccepted {
                    vote_id: vote.vote_id,
                    poll_id: vote.poll_id,
                }),
            ))
        }
        Err((err, _)) => {
            release_lock(&mut redis, &lock_key, vote.vote_id).await;
            Err(ApiError::unavailable("kafka", err))
        }
    }
}

const RELEASE_LOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Deletes the lock only if it still holds this vote's id, so a lock taken by a later
/// attempt is never removed by an earlier one.
async fn release_lock(redis: &mut redis::aio::ConnectionManager, key: &str, vote_id: Uuid) {
    let released = redis::Script::new(RELEASE_LOCK)
        .key(key)
        .arg(vote_id.to_string())
        .invoke_async::<i64>(redis)
        .await;
    if let Err(err) = released {
        tracing::error!(lock = key, error = %err, "Cannot release vote lock; it expires with its TTL");
    }
}

/// Checks the chosen options against the poll: known, distinct, and as many as it allows.
fn check_choices(poll: &PollDefinition, option_ids: &[Uuid]) -> Result<(), ApiError> {
    if option_ids.is_empty() {
        return Err(ApiError::unprocessable(
            "no_choice",
            "`optionIds` must name at least one option",
        ));
    }
    let mut seen = HashSet::with_capacity(option_ids.len());
    for id in option_ids {
        if !seen.insert(id) {
            return Err(ApiError::unprocessable(
                "duplicate_option",
                format!("option {id} is chosen twice"),
            ));
        }
        if !poll.options.iter().any(|option| option.id == *id) {
            return Err(ApiError::unprocessable(
                "invalid_option",
                format!("option {id} is not an option of this poll"),
            ));
        }
    }
    let max = match poll.kind {
        PollKind::Single => 1,
        PollKind::Multiple => poll.max_choices as usize,
    };
    if option_ids.len() > max {
        return Err(ApiError::unprocessable(
            "too_many_choices",
            format!(
                "this poll allows at most {max} choice(s), got {}",
                option_ids.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollstream_store::PollOption;

    fn poll(kind: PollKind, max_choices: i32, options: usize) -> PollDefinition {
        PollDefinition {
            id: Uuid::from_u128(1),
            code: "ABCDEF".into(),
            owner_id: "owner".into(),
            question: "q".into(),
            kind,
            max_choices,
            status: PollStatus::Open,
            closes_at: None,
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
    fn poll_past_its_closing_time_is_closed() {
        let mut p = poll(PollKind::Single, 1, 2);
        p.closes_at = Some(Utc::now() - chrono::Duration::seconds(1));
        assert_eq!(p.status_at(Utc::now()), PollStatus::Closed);
    }
}
