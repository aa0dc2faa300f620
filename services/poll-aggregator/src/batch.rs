//! The votes buffered between two flushes, and the Kafka offsets they cover.

use std::collections::{BTreeMap, HashMap};

use pollstream_wire::RawVote;
use uuid::Uuid;

/// A decoded vote and where it was read, so that a vote parked at flush time names its real
/// source in the dead-letter headers.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedVote {
    /// The vote as produced to `raw-votes`.
    pub vote: RawVote,
    /// Partition of `raw-votes` it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
}

/// Votes received since the last flush, with the highest offset seen per partition so the
/// flush can commit exactly what it covered.
#[derive(Debug, Default)]
pub struct VoteBatch {
    /// Every decoded vote, in the order read. Repeats of a voter stay here: which of them
    /// counts depends on which are valid, so the flush decides (see [`crate::flush`]).
    votes: Vec<ReceivedVote>,
    /// Next offset to commit per partition: last offset seen plus one.
    next_offsets: BTreeMap<i32, i64>,
    /// Messages covered by this batch, votes and skipped ones alike.
    messages: usize,
    /// Per poll, the trace context (`traceparent`) of its first vote in the batch: the
    /// snapshot published for the poll continues that vote's trace.
    traceparents: HashMap<Uuid, String>,
}

impl VoteBatch {
    /// Adds a decoded vote read at `partition`/`offset`.
    pub fn push(&mut self, vote: RawVote, partition: i32, offset: i64) {
        self.track(partition, offset);
        self.votes.push(ReceivedVote {
            vote,
            partition,
            offset,
        });
    }

    /// Remembers the trace context a vote of `poll_id` arrived with, unless the poll already
    /// has one in this batch.
    pub fn trace(&mut self, poll_id: Uuid, traceparent: Option<String>) {
        if let Some(traceparent) = traceparent {
            self.traceparents.entry(poll_id).or_insert(traceparent);
        }
    }

    /// The trace context the snapshot of `poll_id` continues, if any.
    pub fn traceparent(&self, poll_id: Uuid) -> Option<&str> {
        self.traceparents.get(&poll_id).map(String::as_str)
    }

    /// Records a message that holds no vote to count (parked in the dead-letter topic), so
    /// that its offset is committed with the batch.
    pub fn skip(&mut self, partition: i32, offset: i64) {
        self.track(partition, offset);
    }

    fn track(&mut self, partition: i32, offset: i64) {
        self.messages += 1;
        let next = self.next_offsets.entry(partition).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
    }

    /// Decoded votes in the order read, repeats of a voter included.
    pub fn votes(&self) -> &[ReceivedVote] {
        &self.votes
    }

    /// Number of messages covered, which is what the size trigger counts.
    pub fn len(&self) -> usize {
        self.messages
    }

    /// Whether nothing was received since the last flush.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Offsets to commit once the batch is flushed: per partition, the next one to read.
    pub fn next_offsets(&self) -> &BTreeMap<i32, i64> {
        &self.next_offsets
    }

    /// Distinct polls the batch touches, sorted so that row locks are always taken in the
    /// same order.
    pub fn poll_ids(&self) -> Vec<Uuid> {
        poll_ids(&self.votes)
    }

    /// Empties the batch after a successful flush.
    pub fn clear(&mut self) {
        self.votes.clear();
        self.next_offsets.clear();
        self.messages = 0;
        self.traceparents.clear();
    }
}

/// Distinct polls of `votes`, sorted so that row locks are always taken in the same order.
pub fn poll_ids(votes: &[ReceivedVote]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = votes.iter().map(|v| v.vote.poll_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Counter increments for the ballots a flush actually inserted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Increments {
    /// Ballots newly counted per poll.
    pub per_poll: HashMap<Uuid, i64>,
    /// Ballots newly counted per option.
    pub per_option: HashMap<Uuid, i64>,
}

impl Increments {
    /// Sums the inserted ballots `(poll, options)`.
    pub fn from_inserted<'a>(inserted: impl IntoIterator<Item = (Uuid, &'a [Uuid])>) -> Self {
        let mut increments = Increments::default();
        for (poll_id, option_ids) in inserted {
            *increments.per_poll.entry(poll_id).or_default() += 1;
            for option_id in option_ids {
                *increments.per_option.entry(*option_id).or_default() += 1;
            }
        }
        increments
    }

    /// The `(id, n)` pairs of `map` in id order, as `polls::add_to_tallies` takes them.
    pub fn sorted(map: &HashMap<Uuid, i64>) -> Vec<(Uuid, i64)> {
        let mut pairs: Vec<(Uuid, i64)> = map.iter().map(|(k, v)| (*k, *v)).collect();
        pairs.sort_unstable();
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use pollstream_wire::SCHEMA_VERSION;

    fn vote(poll: u128, voter: &str, options: &[u128]) -> RawVote {
        RawVote {
            v: SCHEMA_VERSION,
            vote_id: Uuid::now_v7(),
            poll_id: Uuid::from_u128(poll),
            voter_id: voter.into(),
            option_ids: options.iter().map(|&o| Uuid::from_u128(o)).collect(),
            cast_at: Utc::now(),
        }
    }

    #[test]
    fn every_vote_keeps_its_source_and_offsets_cover_all() {
        let mut batch = VoteBatch::default();
        batch.push(vote(1, "alice", &[10]), 0, 5);
        batch.push(vote(1, "alice", &[11]), 0, 6);
        batch.push(vote(2, "alice", &[20]), 1, 3);
        assert_eq!(batch.votes().len(), 3);
        assert_eq!(batch.votes()[0].vote.option_ids, vec![Uuid::from_u128(10)]);
        assert_eq!(
            batch
                .votes()
                .iter()
                .map(|v| (v.partition, v.offset))
                .collect::<Vec<_>>(),
            vec![(0, 5), (0, 6), (1, 3)]
        );
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.next_offsets().get(&0), Some(&7));
        assert_eq!(batch.next_offsets().get(&1), Some(&4));
    }

    #[test]
    fn skipped_message_advances_the_offset() {
        let mut batch = VoteBatch::default();
        batch.push(vote(1, "a", &[10]), 2, 40);
        batch.skip(2, 41);
        assert_eq!(batch.next_offsets().get(&2), Some(&42));
        assert!(!batch.is_empty());
        batch.clear();
        assert!(batch.is_empty());
        assert!(batch.next_offsets().is_empty());
    }

    #[test]
    fn poll_ids_are_sorted_and_distinct() {
        let mut batch = VoteBatch::default();
        batch.push(vote(3, "a", &[1]), 0, 0);
        batch.push(vote(1, "b", &[1]), 0, 1);
        batch.push(vote(3, "c", &[1]), 0, 2);
        assert_eq!(
            batch.poll_ids(),
            vec![Uuid::from_u128(1), Uuid::from_u128(3)]
        );
    }

    #[test]
    fn increments_count_ballots_per_poll_and_choices_per_option() {
        let (p, a, b) = (Uuid::from_u128(1), Uuid::from_u128(10), Uuid::from_u128(11));
        let ballots = [vec![a, b], vec![a], vec![b]];
        let increments = Increments::from_inserted(ballots.iter().map(|o| (p, o.as_slice())));
        assert_eq!(increments.per_poll[&p], 3);
        assert_eq!(increments.per_option[&a], 2);
        assert_eq!(increments.per_option[&b], 2);
        assert_eq!(
            Increments::sorted(&increments.per_option),
            vec![(a, 2), (b, 2)]
        );
    }
}
