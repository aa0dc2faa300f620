//! Wire types shared by every pollstream service.
//!
//! Kafka values (`raw-votes`, `poll-updates`) and Socket.IO payloads are defined here once so
//! that producer and consumer can never disagree on a field name. Every Kafka value carries a
//! schema version `v`; a consumer rejects versions it does not know instead of guessing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod input;

/// Schema version written into every Kafka value by this build.
pub const SCHEMA_VERSION: u8 = 1;

/// Default topic carrying accepted votes, keyed by [`raw_vote_key`] (poll id and voter id).
pub const RAW_VOTES_TOPIC: &str = "raw-votes";
/// Default topic carrying poll snapshots after each flush, keyed by poll id.
pub const POLL_UPDATES_TOPIC: &str = "poll-updates";
/// Suffix of the dead-letter topic that receives undecodable `raw-votes` messages.
pub const DEAD_LETTER_SUFFIX: &str = ".dlq";

/// Name of the Redis key holding the latest snapshot of a poll.
pub fn results_cache_key(poll_id: Uuid) -> String {
    format!("results:{poll_id}")
}

/// Whether a poll still takes votes, and whether its tally is final. A poll goes
/// `open` → `closing` → `closed`, never back; the order of the variants is that order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PollStatus {
    /// Votes are accepted.
    Open,
    /// No vote is accepted any more (from `closedAt` on), but votes accepted before it may
    /// still be on their way to the tally: the counts are not final yet. Lasts until every
    /// such vote is counted, normally the vote's send deadline (`KAFKA_PRODUCE_TIMEOUT_MS`)
    /// plus a second plus one flush. A client that knows only `open` and `closed` can treat it
    /// as neither and wait for `closed`.
    Closing,
    /// No vote is accepted any more and every accepted vote is counted: the tally is final.
    Closed,
}

impl PollStatus {
    /// The spelling stored in PostgreSQL and sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PollStatus::Open => "open",
            PollStatus::Closing => "closing",
            PollStatus::Closed => "closed",
        }
    }

    /// Whether votes are accepted: only while `open`.
    pub fn takes_votes(self) -> bool {
        self == PollStatus::Open
    }

    /// Parses the stored spelling; anything unknown is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "open" => Some(PollStatus::Open),
            "closing" => Some(PollStatus::Closing),
            "closed" => Some(PollStatus::Closed),
            _ => None,
        }
    }
}

/// A vote accepted by voting-api, as produced to `raw-votes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawVote {
    /// Schema version, [`SCHEMA_VERSION`] when produced by this build.
    pub v: u8,
    /// Identifier returned to the voter in the `202` answer.
    pub vote_id: Uuid,
    /// Poll the vote belongs to; with `voter_id`, the Kafka key ([`raw_vote_key`]).
    pub poll_id: Uuid,
    /// The token's subject: one ballot per voter and poll.
    pub voter_id: String,
    /// Chosen options, already validated against the poll by voting-api.
    pub option_ids: Vec<Uuid>,
    /// When voting-api accepted the vote.
    pub cast_at: DateTime<Utc>,
}

/// Kafka key of a `raw-votes` message: `{pollId}/{voterId}`, e.g.
/// `0b3c…-…/alice`, as the console tools and kcat print it.
///
/// Keyed by poll alone, a poll receiving all the votes would land on one partition and be
/// counted by one aggregator; with the voter in the key, one poll's votes spread over every
/// partition while each voter's votes stay in order on one (the first countable one is the
/// ballot). Counting stays exactly once whatever the partition: the ballot key (poll, voter) in
/// PostgreSQL decides. The poll id is fixed-length, so the first `/` ends it, whatever the
/// voter id holds; token subjects never contain a tab or a newline, which is what lets
/// console tools read `key<TAB>value` lines.
pub fn raw_vote_key(poll_id: Uuid, voter_id: &str) -> String {
    format!("{poll_id}/{voter_id}")
}

/// One option's count inside a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionCount {
    /// The option.
    pub option_id: Uuid,
    /// Ballots that chose this option.
    pub votes: i64,
}

/// The state of one poll after a flush, as produced to `poll-updates` and emitted as
/// `poll-results` to Socket.IO clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollSnapshot {
    /// Schema version, [`SCHEMA_VERSION`] when produced by this build.
    pub v: u8,
    /// The poll.
    pub poll_id: Uuid,
    /// Per-poll sequence number; a higher `seq` is a newer snapshot.
    pub seq: i64,
    /// Ballots counted, i.e. voters.
    pub total: i64,
    /// Whether the poll still takes votes.
    pub status: PollStatus,
    /// Counts in the poll's option order.
    pub options: Vec<OptionCount>,
    /// When the snapshot was taken.
    pub at: DateTime<Utc>,
}

/// `poll-stats`, the per-option event older clients listen to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollStats {
    /// The poll.
    pub poll_id: Uuid,
    /// The option whose count changed.
    pub option_id: Uuid,
    /// Its count now.
    pub new_count: i64,
}

/// `poll-presence`: how many screens are joined to a poll, over every live realtime-service
/// replica; emitted to the poll's rooms at most once per `PRESENCE_INTERVAL_MS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollPresence {
    /// The poll counted.
    pub poll_id: Uuid,
    /// Sockets joined to the poll (results and waiting rooms) on every live replica.
    pub viewers: u64,
}

/// Payload of the Socket.IO `join` and `leave` events: a poll by id or by join code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRequest {
    /// The poll's id, when the client knows it.
    #[serde(default)]
    pub poll_id: Option<Uuid>,
    /// The poll's short join code, when the client only knows that.
    #[serde(default)]
    pub code: Option<String>,
    /// The client's bearer token, when results are only shown to some viewers.
    #[serde(default)]
    pub token: Option<String>,
}

/// Error payload shared by HTTP answers and Socket.IO acknowledgements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `poll_not_found`.
    pub error: String,
    /// Human-readable explanation naming what is wrong.
    pub message: String,
}

impl ErrorBody {
    /// An error with the stable `code` (e.g. `poll_not_found`) and a message for people.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: code.to_owned(),
            message: message.into(),
        }
    }
}

/// Why a Kafka value could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON or not the expected shape.
    #[error("malformed message: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A schema version this build does not understand.
    #[error("unsupported schema version {0}")]
    UnsupportedVersion(u8),
}

fn check_version(v: u8) -> Result<(), DecodeError> {
    if v == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion(v))
    }
}

impl RawVote {
    /// Decodes a `raw-votes` value, rejecting unknown schema versions.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let vote: RawVote = serde_json::from_slice(bytes).map_err(DecodeError::Malformed)?;
        check_version(vote.v)?;
        Ok(vote)
    }

    /// Encodes the value produced to `raw-votes`.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a RawVote always serialises")
    }

    /// The Kafka key this vote is produced under ([`raw_vote_key`]).
    pub fn key(&self) -> String {
        raw_vote_key(self.poll_id, &self.voter_id)
    }
}

impl PollSnapshot {
    /// Decodes a `poll-updates` value, rejecting unknown schema versions.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let snapshot: PollSnapshot =
            serde_json::from_slice(bytes).map_err(DecodeError::Malformed)?;
        check_version(snapshot.v)?;
        Ok(snapshot)
    }

    /// Encodes the value produced to `poll-updates` and cached in Redis.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a PollSnapshot always serialises")
    }

    /// The `poll-stats` events for every option whose count differs from `previous`.
    pub fn stats_since(&self, previous: Option<&PollSnapshot>) -> Vec<PollStats> {
        self.options
            .iter()
            .filter(|option| {
                let before = previous.and_then(|p| {
                    p.options
                        .iter()
                        .find(|o| o.option_id == option.option_id)
                        .map(|o| o.votes)
                });
                before != Some(option.votes)
            })
            .map(|option| PollStats {
                poll_id: self.poll_id,
                option_id: option.option_id,
                new_count: option.votes,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(seq: i64, counts: &[(Uuid, i64)]) -> PollSnapshot {
        PollSnapshot {
            v: SCHEMA_VERSION,
            poll_id: Uuid::from_u128(7),
            seq,
            total: counts.iter().map(|(_, n)| n).sum(),
            status: PollStatus::Open,
            options: counts
                .iter()
                .map(|&(option_id, votes)| OptionCount { option_id, votes })
                .collect(),
            at: "2026-11-23T10:00:00.123Z".parse().unwrap(),
        }
    }

    #[test]
    fn raw_vote_round_trips_with_camel_case_fields() {
        let vote = RawVote {
            v: SCHEMA_VERSION,
            vote_id: Uuid::from_u128(1),
            poll_id: Uuid::from_u128(2),
            voter_id: "alice".into(),
            option_ids: vec![Uuid::from_u128(3), Uuid::from_u128(4)],
            cast_at: "2026-11-23T10:00:00.5Z".parse().unwrap(),
        };
        let bytes = vote.encode();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for field in ["v", "voteId", "pollId", "voterId", "optionIds", "castAt"] {
            assert!(json.get(field).is_some(), "missing {field} in {json}");
        }
        assert_eq!(RawVote::decode(&bytes).unwrap(), vote);
    }

    #[test]
    fn raw_vote_key_is_poll_then_voter() {
        let poll_id = Uuid::from_u128(2);
        assert_eq!(
            raw_vote_key(poll_id, "auth0|42/x"),
            "00000000-0000-0000-0000-000000000002/auth0|42/x"
        );
        let vote = RawVote {
            v: SCHEMA_VERSION,
            vote_id: Uuid::from_u128(1),
            poll_id,
            voter_id: "alice".into(),
            option_ids: vec![Uuid::from_u128(3)],
            cast_at: "2026-11-23T10:00:00.5Z".parse().unwrap(),
        };
        assert_eq!(vote.key(), format!("{poll_id}/alice"));
    }

    #[test]
    fn statuses_are_ordered_as_a_poll_goes_through_them() {
        assert!(PollStatus::Open < PollStatus::Closing);
        assert!(PollStatus::Closing < PollStatus::Closed);
        for status in [PollStatus::Open, PollStatus::Closing, PollStatus::Closed] {
            assert_eq!(PollStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert!(PollStatus::Open.takes_votes());
        assert!(!PollStatus::Closing.takes_votes());
        assert!(!PollStatus::Closed.takes_votes());
    }

    #[test]
    fn snapshot_round_trips_and_status_is_lowercase() {
        let snap = snapshot(3, &[(Uuid::from_u128(10), 2), (Uuid::from_u128(11), 5)]);
        let bytes = snap.encode();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["status"], "open");
        assert_eq!(
            json["options"][1]["optionId"],
            Uuid::from_u128(11).to_string()
        );
        assert_eq!(PollSnapshot::decode(&bytes).unwrap(), snap);
    }

    #[test]
    fn presence_is_poll_id_and_viewers_in_camel_case() {
        let presence = PollPresence {
            poll_id: Uuid::from_u128(7),
            viewers: 3,
        };
        let json = serde_json::to_value(&presence).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"pollId": Uuid::from_u128(7).to_string(), "viewers": 3})
        );
        assert_eq!(
            serde_json::from_value::<PollPresence>(json).unwrap(),
            presence
        );
    }

    #[test]
    fn unknown_schema_version_is_rejected() {
        let mut json = serde_json::to_value(snapshot(1, &[])).unwrap();
        json["v"] = 2.into();
        let err = PollSnapshot::decode(json.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, DecodeError::UnsupportedVersion(2)));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for input in [&b"not json"[..], b"{}", b"{\"v\":1}", b""] {
            assert!(matches!(
                RawVote::decode(input),
                Err(DecodeError::Malformed(_))
            ));
        }
    }

    #[test]
    fn stats_name_only_changed_options() {
        let (a, b) = (Uuid::from_u128(10), Uuid::from_u128(11));
        let before = snapshot(1, &[(a, 2), (b, 5)]);
        let after = snapshot(2, &[(a, 3), (b, 5)]);
        let stats = after.stats_since(Some(&before));
        assert_eq!(
            stats,
            vec![PollStats {
                poll_id: after.poll_id,
                option_id: a,
                new_count: 3
            }]
        );
        assert_eq!(after.stats_since(None).len(), 2);
    }

    #[test]
    fn room_request_accepts_either_id_or_code() {
        let by_code: RoomRequest = serde_json::from_str(r#"{"code":"ABC123"}"#).unwrap();
        assert_eq!(by_code.code.as_deref(), Some("ABC123"));
        assert!(by_code.poll_id.is_none());
        let id = Uuid::from_u128(5);
        let by_id: RoomRequest = serde_json::from_str(&format!(r#"{{"pollId":"{id}"}}"#)).unwrap();
        assert_eq!(by_id.poll_id, Some(id));
    }
}
