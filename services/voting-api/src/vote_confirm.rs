//! Answering a vote its lock cannot vouch for, from the ballot that was counted.
//!
//! A `202` promises that the vote is the voter's one ballot. The lock promises it only while
//! Redis kept every lock of the poll (its lock-ledger marker, see [`crate::vote_lock`]). When
//! Redis lost them, a vote whose lock went with them may still be on its way to Kafka, and a
//! new vote of the same voter takes its lock in the empty Redis; both cannot be answered
//! `202`. Instead of refusing every vote until the locks are restored, such a vote is
//! produced and answered once the aggregator has counted it: its consumer group committed past
//! the vote's offset (it commits only after its PostgreSQL flush), and the voter's ballot is
//! then read. This vote's ballot is `202`; another vote's is `409 already_voted`; none is
//! `409 poll_closed` when the poll closed first. Not known in time (the aggregator behind or
//! down, PostgreSQL down) is `503 vote_unconfirmed`: retrying is safe.
//!
//! Which votes go this way, with no extra Redis round trip for the others:
//! - **taken unvouched** (the marker was missing): produced only [`UNVOUCHED_HOLD`] after
//!   its lock was taken, then confirmed;
//! - **acknowledged late**: a vote taken with the marker whose acknowledgement came
//!   [`UNVOUCHED_HOLD`] or more after its lock script was sent checks that its lock still holds
//!   it, and is confirmed if not.
//!
//! Why that suffices: a vote A whose lock Redis lost was sent to Redis before the loss; a vote
//! B of the same voter taken unvouched ran its script after the loss and starts its send
//! [`UNVOUCHED_HOLD`] after that. If A was acknowledged within [`UNVOUCHED_HOLD`] of sending
//! its script, Kafka had A before B's send began, and one voter's votes share a partition
//! (the key is poll and voter): the aggregator reads A first and counts it, and B, confirmed,
//! is `409`. If A's acknowledgement came later, A finds its lock gone (or B's) and is
//! confirmed too. Either way exactly one of them gets `202`, the one counted.

use std::time::{Duration, Instant};

use chrono::Utc;
use pollstream_store::{PollDefinition, ballots};
use pollstream_wire::RawVote;
use rdkafka::producer::future_producer::Delivery;

use crate::http::error::ApiError;
use crate::metric_names::VOTES_CONFIRMED;
use crate::state::AppState;
use crate::vote_lock::release_lock;

/// How long after its lock was taken an unvouched vote is sent, and how late an
/// acknowledgement must come for a vouched vote to check its lock: the two must be the same
/// (see the module notes). Long enough for nearly every acknowledgement, short against the
/// aggregator's two-second flush.
pub const UNVOUCHED_HOLD: Duration = Duration::from_millis(500);

/// How long a vote waits for the aggregator to count it: its flush interval (2 s), the flush,
/// the commit and a read of the offsets, within a client's 5 s timeout.
pub const CONFIRM_LIMIT: Duration = Duration::from_millis(3_500);

/// By when, from its first lock script, a confirmed vote is answered at the latest: one that
/// also waited for Redis to come back or for a slow acknowledgement is `503 vote_unconfirmed`
/// (retry-safe) rather than still unanswered when a client's 5 s timeout gives up on it, which
/// would leave its voter not knowing.
pub const ANSWER_BY: Duration = Duration::from_millis(4_500);

/// Answers the vote Kafka acknowledged with `delivery` from the ballot counted for its voter
/// (see the module notes); `lock` is its lock's key and value, released when the vote was
/// not counted and the poll still takes votes, so that a retry is taken.
///
/// Errors: `409 already_voted` (another vote of the voter is the ballot), `409 poll_closed`
/// (not counted: the poll closed first), `503 vote_unconfirmed` (not known within
/// [`CONFIRM_LIMIT`], or by `answer_by`).
pub async fn confirm(
    state: &AppState,
    vote: &RawVote,
    delivery: &Delivery,
    lock: (&str, &str),
    answer_by: Instant,
) -> Result<(), ApiError> {
    let found = tokio::time::timeout_at(answer_by.into(), counted_ballot(state, vote, delivery))
        .await
        .unwrap_or(Found::Unknown);
    metrics::counter!(VOTES_CONFIRMED, "outcome" => found.label()).increment(1);
    match found {
        Found::Counted => Ok(()),
        Found::Other => Err(ApiError::conflict(
            "already_voted",
            "this voter has already voted in this poll",
        )),
        Found::Closed => Err(ApiError::conflict(
            "poll_closed",
            "this poll is closed and takes no more votes",
        )),
        Found::NotCounted => {
            // Read but not counted (parked as not countable): the voter may try again.
            let mut redis = state.redis.clone();
            release_lock(&mut redis, lock.0, lock.1).await;
            Err(ApiError::Unconfirmed)
        }
        Found::Unknown => Err(ApiError::Unconfirmed),
    }
}

/// What the counted ballots say of a vote.
enum Found {
    /// It is the voter's ballot.
    Counted,
    /// Another vote of the voter is.
    Other,
    /// None is, and the poll takes no more votes.
    Closed,
    /// None is, and the poll is open.
    NotCounted,
    /// The aggregator did not commit past it in time, or PostgreSQL did not answer.
    Unknown,
}

impl Found {
    /// The `outcome` label of [`VOTES_CONFIRMED`].
    fn label(&self) -> &'static str {
        match self {
            Found::Counted => "counted",
            Found::Other => "already_voted",
            Found::Closed => "poll_closed",
            Found::NotCounted => "not_counted",
            Found::Unknown => "unconfirmed",
        }
    }
}

async fn counted_ballot(state: &AppState, vote: &RawVote, delivery: &Delivery) -> Found {
    if let Err(err) = state
        .commits
        .wait_past(delivery.partition, delivery.offset, CONFIRM_LIMIT)
        .await
    {
        tracing::warn!(poll_id = %vote.poll_id, vote_id = %vote.vote_id, error = %err, "Cannot confirm a vote its lock does not vouch for");
        return Found::Unknown;
    }
    let ballot = match ballots::of_voter(&state.db, vote.poll_id, &vote.voter_id).await {
        Ok(ballot) => ballot,
        Err(err) => {
            tracing::warn!(poll_id = %vote.poll_id, error = %err, "Cannot read the ballot that confirms a vote");
            return Found::Unknown;
        }
    };
    match ballot {
        Some(ballot) if ballot.vote_id == vote.vote_id => Found::Counted,
        Some(_) => Found::Other,
        None => match PollDefinition::load_by_id(&state.db, vote.poll_id).await {
            Ok(poll)
                if poll
                    .as_ref()
                    .is_none_or(|poll| !poll.status_at(Utc::now()).takes_votes()) =>
            {
                Found::Closed
            }
            Ok(_) => Found::NotCounted,
            Err(_) => Found::Unknown,
        },
    }
}
