//! One flush: one PostgreSQL transaction that counts each new ballot exactly once.
//!
//! Ballots are inserted with `ON CONFLICT DO NOTHING`; only the rows actually inserted
//! increment the option counters and the poll's total, and a poll whose counts changed gets a
//! new `seq`. A replayed vote finds its ballot already there and changes nothing, which is why
//! the caller may safely redo a whole flush after any failure.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use pollstream_wire::{PollSnapshot, RawVote};
use sqlx::PgPool;
use uuid::Uuid;

use crate::batch::{Increments, VoteBatch};

/// What a flush did.
#[derive(Debug, Default)]
pub struct FlushOutcome {
    /// Snapshot of every poll present in the batch, after the commit.
    pub snapshots: Vec<PollSnapshot>,
    /// Ballots newly counted.
    pub counted: usize,
    /// Votes whose voter already had a ballot (replays and duplicates).
    pub duplicates: usize,
    /// Votes that cannot be counted, with the reason; parked in the dead-letter topic.
    pub rejected: Vec<(RawVote, &'static str)>,
}

/// What the aggregator knows about a poll when it validates a vote.
#[derive(Debug, Clone)]
pub struct PollRules {
    /// Fewest options per ballot.
    pub min_choices: usize,
    /// Multiple choice polls allow more than one option.
    pub max_choices: usize,
    /// Votes cast after this are not counted.
    pub closes_at: Option<DateTime<Utc>>,
    /// Votes cast after the poll was closed by its owner are not counted either.
    pub closed_at: Option<DateTime<Utc>>,
    /// The poll's option ids.
    pub options: Vec<Uuid>,
}

/// Why a vote that decoded fine is still not counted; `None` if it is countable.
pub fn rejection(vote: &RawVote, rules: Option<&PollRules>) -> Option<&'static str> {
    let Some(rules) = rules else {
        return Some("unknown_poll");
    };
    if vote.option_ids.len() < rules.min_choices.max(1) || vote.option_ids.len() > rules.max_choices
    {
        return Some("bad_choice_count");
    }
    for (index, id) in vote.option_ids.iter().enumerate() {
        if !rules.options.contains(id) {
            return Some("unknown_option");
        }
        if vote.option_ids[..index].contains(id) {
            return Some("duplicate_option");
        }
    }
    let closed_at = match (rules.closes_at, rules.closed_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if closed_at.is_some_and(|closed_at| vote.cast_at > closed_at) {
        return Some("cast_after_close");
    }
    None
}

/// Counts `batch` in one transaction and returns the snapshots to publish.
pub async fn flush_batch(db: &PgPool, batch: &VoteBatch) -> Result<FlushOutcome, sqlx::Error> {
    let poll_ids = batch.poll_ids();
    let mut outcome = FlushOutcome::default();
    if poll_ids.is_empty() {
        return Ok(outcome);
    }
    let mut tx = db.begin().await?;

    // Row locks, in id order, serialise flushes of the same poll across replicas (during a
    // rebalance two may briefly hold the same votes) so `seq` and counters stay consistent.
    let polls: Vec<RulesRow> = sqlx::query_as(
        "SELECT id, min_choices, max_choices, closes_at, closed_at FROM polls
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&poll_ids)
    .fetch_all(&mut *tx)
    .await?;
    let options: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT poll_id, id FROM options WHERE poll_id = ANY($1)")
            .bind(&poll_ids)
            .fetch_all(&mut *tx)
            .await?;
    let mut rules: HashMap<Uuid, PollRules> = polls
        .into_iter()
        .map(|row| {
            (
                row.id,
                PollRules {
                    min_choices: row.min_choices.max(1) as usize,
                    max_choices: row.max_choices.max(1) as usize,
                    closes_at: row.closes_at,
                    closed_at: row.closed_at,
                    options: Vec::new(),
                },
            )
        })
        .collect();
    for (poll_id, option_id) in options {
        if let Some(rule) = rules.get_mut(&poll_id) {
            rule.options.push(option_id);
        }
    }

    let mut countable: Vec<&RawVote> = Vec::with_capacity(batch.votes().len());
    for vote in batch.votes() {
        match rejection(vote, rules.get(&vote.poll_id)) {
            None => countable.push(vote),
            Some(reason) => outcome.rejected.push((vote.clone(), reason)),
        }
    }

    let inserted: Vec<(Uuid, Vec<Uuid>)> = if countable.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(
            "INSERT INTO ballots (poll_id, voter_id, vote_id, option_ids, cast_at)
             SELECT b.poll_id, b.voter_id, b.vote_id, b.option_ids::uuid[], b.cast_at
             FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::timestamptz[])
                  AS b(poll_id, voter_id, vote_id, option_ids, cast_at)
             ON CONFLICT (poll_id, voter_id) DO NOTHING
             RETURNING poll_id, option_ids",
        )
        .bind(countable.iter().map(|v| v.poll_id).collect::<Vec<_>>())
        .bind(
            countable
                .iter()
                .map(|v| v.voter_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(countable.iter().map(|v| v.vote_id).collect::<Vec<_>>())
        .bind(
            countable
                .iter()
                .map(|v| uuid_array_literal(&v.option_ids))
                .collect::<Vec<_>>(),
        )
        .bind(countable.iter().map(|v| v.cast_at).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?
    };
    outcome.counted = inserted.len();
    outcome.duplicates = countable.len() - inserted.len();

    let increments = Increments::from_inserted(
        inserted
            .iter()
            .map(|(poll, options)| (*poll, options.as_slice())),
    );
    if !increments.per_option.is_empty() {
        let (ids, counts) = Increments::unzip(&increments.per_option);
        sqlx::query(
            "UPDATE options SET votes = votes + d.n
             FROM UNNEST($1::uuid[], $2::bigint[]) AS d(id, n)
             WHERE options.id = d.id",
        )
        .bind(&ids)
        .bind(&counts)
        .execute(&mut *tx)
        .await?;
        let (ids, counts) = Increments::unzip(&increments.per_poll);
        sqlx::query(
            "UPDATE polls SET seq = seq + 1, total = total + d.n
             FROM UNNEST($1::uuid[], $2::bigint[]) AS d(id, n)
             WHERE polls.id = d.id",
        )
        .bind(&ids)
        .bind(&counts)
        .execute(&mut *tx)
        .await?;
    }

    outcome.snapshots = pollstream_store::snapshots::load_many(&mut *tx, &poll_ids).await?;
    tx.commit().await?;
    Ok(outcome)
}

#[derive(sqlx::FromRow)]
struct RulesRow {
    id: Uuid,
    min_choices: i32,
    max_choices: i32,
    closes_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
}

/// PostgreSQL array literal `{a,b}`: nested arrays cannot be bound through `UNNEST`, so each
/// ballot's options travel as text and are cast back to `uuid[]` in the statement.
fn uuid_array_literal(ids: &[Uuid]) -> String {
    let mut literal = String::with_capacity(2 + ids.len() * 37);
    literal.push('{');
    for (index, id) in ids.iter().enumerate() {
        if index > 0 {
            literal.push(',');
        }
        literal.push_str(&id.to_string());
    }
    literal.push('}');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollstream_wire::SCHEMA_VERSION;

    fn rules() -> PollRules {
        PollRules {
            min_choices: 1,
            max_choices: 2,
            closes_at: None,
            closed_at: None,
            options: vec![
                Uuid::from_u128(10),
                Uuid::from_u128(11),
                Uuid::from_u128(12),
            ],
        }
    }

    fn vote(options: &[u128]) -> RawVote {
        RawVote {
            v: SCHEMA_VERSION,
            vote_id: Uuid::from_u128(99),
            poll_id: Uuid::from_u128(1),
            voter_id: "v".into(),
            option_ids: options.iter().map(|&o| Uuid::from_u128(o)).collect(),
            cast_at: Utc::now(),
        }
    }

    #[test]
    fn valid_vote_is_countable() {
        assert_eq!(rejection(&vote(&[10, 12]), Some(&rules())), None);
    }

    #[test]
    fn invalid_votes_are_named() {
        assert_eq!(rejection(&vote(&[10]), None), Some("unknown_poll"));
        assert_eq!(
            rejection(&vote(&[]), Some(&rules())),
            Some("bad_choice_count")
        );
        assert_eq!(
            rejection(&vote(&[10, 11, 12]), Some(&rules())),
            Some("bad_choice_count")
        );
        assert_eq!(
            rejection(&vote(&[10, 77]), Some(&rules())),
            Some("unknown_option")
        );
        assert_eq!(
            rejection(&vote(&[11, 11]), Some(&rules())),
            Some("duplicate_option")
        );
        let mut closed = rules();
        closed.closes_at = Some(Utc::now() - chrono::Duration::seconds(5));
        assert_eq!(
            rejection(&vote(&[10]), Some(&closed)),
            Some("cast_after_close")
        );
    }

    #[test]
    fn array_literal_is_postgres_syntax() {
        assert_eq!(uuid_array_literal(&[]), "{}");
        assert_eq!(
            uuid_array_literal(&[Uuid::from_u128(1), Uuid::from_u128(2)]),
            "{00000000-0000-0000-0000-000000000001,00000000-0000-0000-0000-000000000002}"
        );
    }
}
