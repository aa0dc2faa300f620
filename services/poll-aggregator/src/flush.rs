//! One flush: counts each new ballot exactly once, in PostgreSQL transactions that can each be
//! redone whole.
//!
//! Ballots are inserted with `ON CONFLICT DO NOTHING`; only the rows actually inserted
//! increment the option counters and the poll's total, and a poll whose counts changed gets a
//! new `seq`. A replayed vote finds its ballot already there and changes nothing, which is why
//! the caller may safely redo a whole flush after any failure.
//!
//! A batch is one transaction while PostgreSQL takes it. Votes are validated first
//! ([`crate::rules`]); should the database still refuse the data (SQLSTATE class 22 data
//! exception, 23 integrity constraint violation, 54 program limit exceeded), the batch is split
//! in halves, each its own transaction, down to the single votes it refuses. Those are returned
//! as rejected (`database_refused`) and everything else is counted in the same flush: one vote
//! can never stop counting for everyone. Any other failure (connection lost, server shutting
//! down, pool timeout) fails the flush, and the caller keeps the batch and retries it whole.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use pollstream_store::ballots::{self, NewBallot};
use pollstream_store::polls;
use pollstream_wire::{PollSnapshot, RawVote};
use sqlx::PgPool;
use uuid::Uuid;

use crate::batch::{Increments, ReceivedVote, VoteBatch, poll_ids};
use crate::rules::{AFTER_FINAL_COUNT, rejection};

/// `dlq-reason` of a vote PostgreSQL refused although it passed validation.
pub const DATABASE_REFUSED: &str = "database_refused";

/// What a flush did.
#[derive(Debug, Default)]
pub struct FlushOutcome {
    /// Latest snapshot of every poll present in the batch, after the last commit.
    pub snapshots: Vec<PollSnapshot>,
    /// Ballots newly counted.
    pub counted: usize,
    /// Votes whose voter already had a ballot (replays, duplicates, a voter's later vote in the
    /// same batch).
    pub duplicates: usize,
    /// Votes that cannot be counted, each with the reason; to park in the dead-letter topic.
    pub rejected: Vec<Rejected>,
    /// Transactions committed: one, unless the database refused part of the batch.
    pub transactions: usize,
}

/// A vote that will not be counted, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// The vote and where it was read.
    pub vote: ReceivedVote,
    /// Stable name of the failed check ([`crate::rules::rejection`]) or [`DATABASE_REFUSED`].
    pub reason: &'static str,
    /// What PostgreSQL said, when it refused the vote.
    pub refusal: Option<DatabaseRefusal>,
}

/// PostgreSQL's refusal of one vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseRefusal {
    /// The SQLSTATE, e.g. `22021` or `23514`.
    pub sqlstate: String,
    /// The server's primary message (not its detail, which may quote the whole row).
    pub message: String,
}

/// Whether `sqlstate` says the data was refused (classes 22, 23 and 54), so that the same
/// statement would fail again on retry, rather than the database being unavailable.
pub fn is_data_refusal(sqlstate: &str) -> bool {
    matches!(sqlstate.get(..2), Some("22" | "23" | "54"))
}

/// Counts `batch`, isolating what PostgreSQL refuses; returns the snapshots to publish and the
/// votes to park. An error means nothing may be taken as done: redo the whole batch.
pub async fn flush_batch(db: &PgPool, batch: &VoteBatch) -> Result<FlushOutcome, sqlx::Error> {
    let votes = batch.votes();
    let mut outcome = FlushOutcome::default();
    if votes.is_empty() {
        return Ok(outcome);
    }
    let now = Utc::now();
    let mut snapshots: BTreeMap<Uuid, PollSnapshot> = BTreeMap::new();
    // A stack taken first half first, so parts are counted in the order read: of two votes by
    // one voter, the first countable one is the ballot.
    let mut pending: Vec<&[ReceivedVote]> = vec![votes];
    while let Some(part) = pending.pop() {
        match count_part(db, part, now).await {
            Ok(counted) => {
                outcome.counted += counted.counted;
                outcome.duplicates += counted.duplicates;
                outcome.rejected.extend(counted.rejected);
                outcome.transactions += 1;
                for snapshot in counted.snapshots {
                    // Parts commit one after the other and `seq` only grows: keep the newest.
                    match snapshots.get(&snapshot.poll_id) {
                        Some(kept) if kept.seq > snapshot.seq => {}
                        _ => {
                            snapshots.insert(snapshot.poll_id, snapshot);
                        }
                    }
                }
            }
            Err(err) => match refusal(&err) {
                None => return Err(err),
                Some(refusal) if part.len() == 1 => {
                    tracing::warn!(
                        vote_id = %part[0].vote.vote_id,
                        partition = part[0].partition,
                        offset = part[0].offset,
                        sqlstate = %refusal.sqlstate,
                        error = %refusal.message,
                        "PostgreSQL refused a vote"
                    );
                    outcome.rejected.push(Rejected {
                        vote: part[0].clone(),
                        reason: DATABASE_REFUSED,
                        refusal: Some(refusal),
                    });
                }
                Some(refusal) => {
                    tracing::debug!(votes = part.len(), sqlstate = %refusal.sqlstate, "PostgreSQL refused part of a batch, splitting it");
                    let (first, second) = part.split_at(part.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
            },
        }
    }
    // A poll whose every vote was refused still gets its snapshot, as every poll of a batch
    // does (a replay heals a crash between an earlier commit and its publication).
    let missing: Vec<Uuid> = poll_ids(votes)
        .into_iter()
        .filter(|id| !snapshots.contains_key(id))
        .collect();
    if !missing.is_empty() {
        for snapshot in pollstream_store::snapshots::load_many(db, &missing).await? {
            snapshots.entry(snapshot.poll_id).or_insert(snapshot);
        }
    }
    outcome.snapshots = snapshots.into_values().collect();
    outcome
        .rejected
        .sort_by_key(|rejected| (rejected.vote.partition, rejected.vote.offset));
    Ok(outcome)
}

/// The refusal in `err`, if PostgreSQL refused the data rather than failed.
fn refusal(err: &sqlx::Error) -> Option<DatabaseRefusal> {
    let database = err.as_database_error()?;
    let sqlstate = database.code()?;
    is_data_refusal(&sqlstate).then(|| DatabaseRefusal {
        sqlstate: sqlstate.into_owned(),
        message: database.message().to_owned(),
    })
}

/// Counts `part` in one transaction: validates every vote against its poll, inserts the
/// ballots of the countable ones and bumps the counters of what was new.
async fn count_part(
    db: &PgPool,
    part: &[ReceivedVote],
    now: DateTime<Utc>,
) -> Result<FlushOutcome, sqlx::Error> {
    let poll_ids = poll_ids(part);
    let mut outcome = FlushOutcome::default();
    let mut tx = db.begin().await?;

    let rules = polls::lock_for_counting(&mut tx, &poll_ids).await?;

    // Repeats of a voter are dropped only among countable votes, so an invalid first vote
    // does not hide a valid later one.
    let mut voters: HashSet<(Uuid, &str)> = HashSet::new();
    let mut countable: Vec<&RawVote> = Vec::with_capacity(part.len());
    let mut after_final: HashMap<Uuid, Vec<&ReceivedVote>> = HashMap::new();
    for received in part {
        let vote = &received.vote;
        match rejection(vote, rules.get(&vote.poll_id), now) {
            Some(AFTER_FINAL_COUNT) => after_final.entry(vote.poll_id).or_default().push(received),
            Some(reason) => outcome.rejected.push(Rejected {
                vote: received.clone(),
                reason,
                refusal: None,
            }),
            None if voters.insert((vote.poll_id, vote.voter_id.as_str())) => countable.push(vote),
            None => outcome.duplicates += 1,
        }
    }
    // A replay of a closed poll's votes is harmless as ever: a voter already counted is a
    // repeat; only a vote that would change the final count is parked.
    for (poll_id, late) in after_final {
        let voters: Vec<&str> = late.iter().map(|r| r.vote.voter_id.as_str()).collect();
        let counted: HashSet<String> = ballots::counted_voters(&mut *tx, poll_id, &voters)
            .await?
            .into_iter()
            .collect();
        for received in late {
            if counted.contains(&received.vote.voter_id) {
                outcome.duplicates += 1;
            } else {
                outcome.rejected.push(Rejected {
                    vote: received.clone(),
                    reason: AFTER_FINAL_COUNT,
                    refusal: None,
                });
            }
        }
    }

    let ballots: Vec<NewBallot<'_>> = countable
        .iter()
        .map(|vote| NewBallot {
            poll_id: vote.poll_id,
            voter_id: &vote.voter_id,
            vote_id: vote.vote_id,
            option_ids: &vote.option_ids,
            cast_at: vote.cast_at,
        })
        .collect();
    let inserted = ballots::insert_new(&mut *tx, &ballots).await?;
    outcome.counted = inserted.len();
    outcome.duplicates += countable.len() - inserted.len();

    let increments = Increments::from_inserted(
        inserted
            .iter()
            .map(|(poll, options)| (*poll, options.as_slice())),
    );
    if !increments.per_option.is_empty() {
        polls::add_to_tallies(
            &mut tx,
            &Increments::sorted(&increments.per_option),
            &Increments::sorted(&increments.per_poll),
        )
        .await?;
    }

    outcome.snapshots = pollstream_store::snapshots::load_many(&mut *tx, &poll_ids).await?;
    tx.commit().await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_refusals_are_told_from_outages() {
        for refused in ["22021", "22P05", "23514", "23502", "54000"] {
            assert!(is_data_refusal(refused), "{refused}");
        }
        // Connection, resources, operator intervention, serialization, unknown.
        for outage in [
            "08006", "53300", "57P01", "57014", "40001", "XX000", "2", "",
        ] {
            assert!(!is_data_refusal(outage), "{outage}");
        }
    }
}
