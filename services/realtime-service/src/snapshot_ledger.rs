//! What each poll's room has already been shown.
//!
//! [`SnapshotLedger`] remembers the newest snapshot broadcast for each poll. An update whose
//! `seq` is not newer is dropped, so screens never see counts move backwards, whatever order
//! Kafka or a rebalance delivers snapshots in.

use std::collections::HashMap;
use std::sync::Mutex;

use pollstream_wire::{PollSnapshot, PollStats, PollStatus};
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard};
use uuid::Uuid;

/// What to emit to a room for one accepted update.
#[derive(Debug, PartialEq)]
pub struct Broadcast {
    /// The full snapshot, emitted as `poll-results`.
    pub snapshot: PollSnapshot,
    /// One `poll-stats` per option whose count changed.
    pub stats: Vec<PollStats>,
    /// Whether this update closed the poll (emit `poll-closed` once).
    pub closed_now: bool,
}

/// Newest snapshot broadcast per poll. Updates from Kafka enter it, and so does a newer
/// snapshot read for a joining client, which is then broadcast too: the room may skip that
/// update when it arrives from Kafka, having been shown it already.
#[derive(Debug, Default)]
pub struct SnapshotLedger {
    latest: Mutex<HashMap<Uuid, PollSnapshot>>,
}

impl SnapshotLedger {
    /// Records `snapshot` if it is newer than what was seen, and says what to broadcast;
    /// `None` means it is stale (or a repeat) and must be dropped.
    pub fn accept(&self, snapshot: PollSnapshot) -> Option<Broadcast> {
        let mut latest = self.latest.lock().expect("ledger lock poisoned");
        let previous = latest.get(&snapshot.poll_id);
        // A status further along (open → closing → closed) must get through even without new
        // counts: snapshots of older builds closed a poll at the same `seq`.
        let closes = previous.is_some_and(|p| p.status < snapshot.status);
        if previous.is_some_and(|p| p.seq >= snapshot.seq) && !closes {
            return None;
        }
        let stats = snapshot.stats_since(previous);
        let closed_now = snapshot.status == PollStatus::Closed
            && previous.is_none_or(|p| p.status != PollStatus::Closed);
        latest.insert(snapshot.poll_id, snapshot.clone());
        Some(Broadcast {
            snapshot,
            stats,
            closed_now,
        })
    }

    /// The newest snapshot broadcast for `poll_id`.
    pub fn latest(&self, poll_id: Uuid) -> Option<PollSnapshot> {
        self.latest
            .lock()
            .expect("ledger lock poisoned")
            .get(&poll_id)
            .cloned()
    }
}

/// Puts a poll's room broadcasts and the acknowledgement of a client joining that room in one
/// order. A broadcast holds its poll's turn from [`SnapshotLedger::accept`] until its events are
/// emitted; a join holds it from entering the room until its acknowledgement is sent. Without
/// it, a join could read the ledger, then an update accepted just after could be emitted to the
/// new member before its (older) acknowledgement, and its counts would move backwards.
///
/// Polls share a fixed number of turns (hashed by id): a broadcast of one poll can make a join
/// to another wait for that one broadcast, never longer.
pub struct RoomOrder {
    turns: Box<[AsyncMutex<()>]>,
}

impl RoomOrder {
    /// How many turns polls share: enough that two busy polls seldom share one.
    const TURNS: usize = 64;

    /// Waits for `poll_id`'s turn; it ends when the guard is dropped.
    pub async fn turn(&self, poll_id: Uuid) -> AsyncMutexGuard<'_, ()> {
        let (_, low) = poll_id.as_u64_pair();
        self.turns[(low % self.turns.len() as u64) as usize]
            .lock()
            .await
    }
}

impl Default for RoomOrder {
    fn default() -> Self {
        Self {
            turns: (0..Self::TURNS).map(|_| AsyncMutex::new(())).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use pollstream_wire::{OptionCount, SCHEMA_VERSION};

    fn snapshot(seq: i64, votes: i64, status: PollStatus) -> PollSnapshot {
        PollSnapshot {
            v: SCHEMA_VERSION,
            poll_id: Uuid::from_u128(1),
            seq,
            total: votes,
            status,
            options: vec![OptionCount {
                option_id: Uuid::from_u128(10),
                votes,
            }],
            at: Utc::now(),
        }
    }

    #[test]
    fn older_and_repeated_snapshots_are_dropped() {
        let ledger = SnapshotLedger::default();
        assert!(ledger.accept(snapshot(2, 5, PollStatus::Open)).is_some());
        assert!(ledger.accept(snapshot(1, 3, PollStatus::Open)).is_none());
        assert!(ledger.accept(snapshot(2, 5, PollStatus::Open)).is_none());
        let newer = ledger.accept(snapshot(3, 6, PollStatus::Open)).unwrap();
        assert_eq!(newer.stats.len(), 1);
        assert_eq!(newer.stats[0].new_count, 6);
        assert_eq!(ledger.latest(Uuid::from_u128(1)).unwrap().seq, 3);
    }

    #[test]
    fn closing_is_announced_once() {
        let ledger = SnapshotLedger::default();
        assert!(
            !ledger
                .accept(snapshot(1, 1, PollStatus::Open))
                .unwrap()
                .closed_now
        );
        let closing = ledger.accept(snapshot(1, 1, PollStatus::Closed)).unwrap();
        assert!(closing.closed_now);
        assert!(closing.stats.is_empty());
        assert!(ledger.accept(snapshot(1, 1, PollStatus::Closed)).is_none());
    }

    #[test]
    fn closing_is_not_closed_and_the_final_count_closes_once() {
        let ledger = SnapshotLedger::default();
        ledger.accept(snapshot(1, 1, PollStatus::Open)).unwrap();
        let closing = ledger.accept(snapshot(2, 1, PollStatus::Closing)).unwrap();
        assert!(!closing.closed_now);
        let counted = ledger.accept(snapshot(3, 4, PollStatus::Closing)).unwrap();
        assert!(!counted.closed_now);
        assert_eq!(counted.stats.len(), 1);
        let last = ledger.accept(snapshot(4, 4, PollStatus::Closed)).unwrap();
        assert!(last.closed_now);
        assert_eq!(last.snapshot.total, 4);
        assert!(ledger.accept(snapshot(3, 4, PollStatus::Closing)).is_none());
        assert!(ledger.accept(snapshot(4, 4, PollStatus::Closed)).is_none());
    }
}
