//! Ballots: which choices a ballot may hold, and the counted ballots as stored in PostgreSQL.
//!
//! [`check_choices`] is the one ballot check: voting-api applies it before it takes a vote
//! (answering `422`), the aggregator again before it counts one (parking it with a
//! `dlq-reason`). Each names the faults in its own words and order.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// How many options one ballot may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChoiceLimits {
    /// Fewest options, at least 1.
    pub min: usize,
    /// Most options.
    pub max: usize,
}

/// What is wrong with the number of options a ballot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountFault {
    /// It holds none.
    Empty,
    /// It holds `got`, more than the `max` allowed.
    TooMany {
        /// Most options allowed.
        max: usize,
        /// Options held.
        got: usize,
    },
    /// It holds `got`, fewer than the `min` needed.
    TooFew {
        /// Fewest options needed.
        min: usize,
        /// Options held.
        got: usize,
    },
}

/// An option a ballot may not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceFault {
    /// The option is chosen a second time.
    Repeated(Uuid),
    /// The option is not one of the poll's.
    Unknown(Uuid),
}

/// Everything [`check_choices`] found; the ballot is valid when both are `None`. Both are
/// looked for, because voting-api names a faulty choice before a faulty count and the
/// aggregator the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BallotCheck {
    /// How many options it holds, if that is not allowed.
    pub count: Option<CountFault>,
    /// The first option, in ballot order, that is repeated or not the poll's.
    pub choice: Option<ChoiceFault>,
}

impl BallotCheck {
    /// Whether the ballot may be counted.
    pub fn is_valid(&self) -> bool {
        self.count.is_none() && self.choice.is_none()
    }
}

/// Checks the chosen `option_ids` of a ballot: distinct, each an option of the poll
/// (`is_option`), and as many as `limits` allow.
pub fn check_choices(
    option_ids: &[Uuid],
    limits: ChoiceLimits,
    is_option: impl Fn(&Uuid) -> bool,
) -> BallotCheck {
    let got = option_ids.len();
    let count = if got == 0 {
        Some(CountFault::Empty)
    } else if got > limits.max {
        Some(CountFault::TooMany {
            max: limits.max,
            got,
        })
    } else if got < limits.min {
        Some(CountFault::TooFew {
            min: limits.min,
            got,
        })
    } else {
        None
    };
    let mut seen = HashSet::with_capacity(got);
    let choice = option_ids.iter().find_map(|id| {
        if !seen.insert(id) {
            Some(ChoiceFault::Repeated(*id))
        } else if !is_option(id) {
            Some(ChoiceFault::Unknown(*id))
        } else {
            None
        }
    });
    BallotCheck { count, choice }
}

/// A counted ballot.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Ballot {
    /// The vote it was counted from.
    pub vote_id: Uuid,
    /// Who cast it.
    pub voter_id: String,
    /// The chosen options, in the voter's order.
    pub option_ids: Vec<Uuid>,
    /// When voting-api took the vote.
    pub cast_at: DateTime<Utc>,
    /// When the aggregator counted it.
    pub counted_at: DateTime<Utc>,
}

/// Whether `voter` has a counted ballot in `poll_id`.
pub async fn is_counted(
    executor: impl PgExecutor<'_>,
    poll_id: Uuid,
    voter: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM ballots WHERE poll_id = $1 AND voter_id = $2)")
        .bind(poll_id)
        .bind(voter)
        .fetch_one(executor)
        .await
}

/// Those of `voters` who have a counted ballot in `poll_id`.
pub async fn counted_voters(
    executor: impl PgExecutor<'_>,
    poll_id: Uuid,
    voters: &[&str],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT voter_id FROM ballots WHERE poll_id = $1 AND voter_id = ANY($2)")
        .bind(poll_id)
        .bind(voters)
        .fetch_all(executor)
        .await
}

/// `voter`'s counted ballot in `poll_id`, if any.
pub async fn of_voter(
    executor: impl PgExecutor<'_>,
    poll_id: Uuid,
    voter: &str,
) -> Result<Option<Ballot>, sqlx::Error> {
    sqlx::query_as(
        "SELECT vote_id, voter_id, option_ids, cast_at, counted_at FROM ballots
         WHERE poll_id = $1 AND voter_id = $2",
    )
    .bind(poll_id)
    .bind(voter)
    .fetch_optional(executor)
    .await
}

/// Every counted ballot of `poll_id` in the order counted (then by voter), read as a stream
/// so that a large poll is never held in memory.
pub fn all_of(pool: &PgPool, poll_id: Uuid) -> BoxStream<'_, Result<Ballot, sqlx::Error>> {
    sqlx::query_as(
        "SELECT vote_id, voter_id, option_ids, cast_at, counted_at FROM ballots
         WHERE poll_id = $1 ORDER BY counted_at, voter_id",
    )
    .bind(poll_id)
    .fetch(pool)
}

/// A ballot to record: one voter's counted choice in one poll.
#[derive(Debug, Clone, Copy)]
pub struct NewBallot<'a> {
    /// The poll.
    pub poll_id: Uuid,
    /// The voter (a token subject); one ballot per voter and poll.
    pub voter_id: &'a str,
    /// The vote's id, as voting-api answered it in its `202`.
    pub vote_id: Uuid,
    /// The chosen options.
    pub option_ids: &'a [Uuid],
    /// When voting-api accepted the vote.
    pub cast_at: DateTime<Utc>,
}

/// Inserts `ballots` in one statement, skipping any voter who already has a ballot in the
/// poll (`ON CONFLICT (poll_id, voter_id) DO NOTHING`), and returns `(poll, options)` of each
/// ballot actually inserted: exactly the ones to add to the tallies.
pub async fn insert_new(
    executor: impl PgExecutor<'_>,
    ballots: &[NewBallot<'_>],
) -> Result<Vec<(Uuid, Vec<Uuid>)>, sqlx::Error> {
    if ballots.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "INSERT INTO ballots (poll_id, voter_id, vote_id, option_ids, cast_at)
         SELECT b.poll_id, b.voter_id, b.vote_id, b.option_ids::uuid[], b.cast_at
         FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::timestamptz[])
              AS b(poll_id, voter_id, vote_id, option_ids, cast_at)
         ON CONFLICT (poll_id, voter_id) DO NOTHING
         RETURNING poll_id, option_ids",
    )
    .bind(ballots.iter().map(|b| b.poll_id).collect::<Vec<_>>())
    .bind(ballots.iter().map(|b| b.voter_id).collect::<Vec<_>>())
    .bind(ballots.iter().map(|b| b.vote_id).collect::<Vec<_>>())
    .bind(
        ballots
            .iter()
            .map(|b| uuid_array_literal(b.option_ids))
            .collect::<Vec<_>>(),
    )
    .bind(ballots.iter().map(|b| b.cast_at).collect::<Vec<_>>())
    .fetch_all(executor)
    .await
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

    const OPTIONS: [Uuid; 4] = [
        Uuid::from_u128(100),
        Uuid::from_u128(101),
        Uuid::from_u128(102),
        Uuid::from_u128(103),
    ];

    fn check(limits: ChoiceLimits, ids: &[u128]) -> BallotCheck {
        let ids: Vec<Uuid> = ids.iter().map(|&i| Uuid::from_u128(i)).collect();
        check_choices(&ids, limits, |id| OPTIONS.contains(id))
    }

    #[test]
    fn valid_ballots_have_no_fault() {
        let single = ChoiceLimits { min: 1, max: 1 };
        assert!(check(single, &[101]).is_valid());
        assert!(check(ChoiceLimits { min: 2, max: 3 }, &[100, 103]).is_valid());
    }

    #[test]
    fn counts_and_choices_are_both_judged() {
        let limits = ChoiceLimits { min: 2, max: 3 };
        assert_eq!(check(limits, &[]).count, Some(CountFault::Empty));
        assert_eq!(
            check(limits, &[100]).count,
            Some(CountFault::TooFew { min: 2, got: 1 })
        );
        let faults = check(limits, &[100, 100, 5, 101]);
        assert_eq!(faults.count, Some(CountFault::TooMany { max: 3, got: 4 }));
        assert_eq!(
            faults.choice,
            Some(ChoiceFault::Repeated(Uuid::from_u128(100)))
        );
        assert_eq!(
            check(limits, &[100, 5, 5]).choice,
            Some(ChoiceFault::Unknown(Uuid::from_u128(5)))
        );
        assert_eq!(check(limits, &[100, 5]).count, None);
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
