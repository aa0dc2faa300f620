//! Sockets of `after_vote` polls waiting for their own ballot to be counted, and their
//! release into the results room once it is.

use std::collections::HashMap;
use std::sync::Mutex;

use pollstream_store::ballots;
use pollstream_wire::PollSnapshot;
use socketioxide::SocketIo;
use socketioxide::socket::Sid;
use sqlx::PgPool;
use uuid::Uuid;

use crate::rooms::{room_name, waiting_room_name};

/// Per `after_vote` poll: the waiting sockets and the voter each one is.
#[derive(Default)]
pub struct WaitingVoters {
    /// Poll id → socket → voter (a token's subject).
    waiting: Mutex<HashMap<Uuid, HashMap<Sid, String>>>,
}

impl WaitingVoters {
    /// Remembers that socket `sid` (voter `voter`) waits for its ballot in `poll_id`.
    pub fn wait_for_ballot(&self, poll_id: Uuid, sid: Sid, voter: String) {
        self.waiting
            .lock()
            .expect("waiting lock poisoned")
            .entry(poll_id)
            .or_default()
            .insert(sid, voter);
    }

    /// Forgets socket `sid` in `poll_id`, or in every poll when `None` (disconnect).
    pub fn stop_waiting(&self, poll_id: Option<Uuid>, sid: Sid) {
        let mut waiting = self.waiting.lock().expect("waiting lock poisoned");
        match poll_id {
            Some(poll_id) => {
                if let Some(sockets) = waiting.get_mut(&poll_id) {
                    sockets.remove(&sid);
                }
            }
            None => waiting.values_mut().for_each(|sockets| {
                sockets.remove(&sid);
            }),
        }
        waiting.retain(|_, sockets| !sockets.is_empty());
    }

    /// Moves the waiting voters of `snapshot`'s poll whose ballot is now counted into the
    /// results room and sends them `snapshot`; returns how many events were sent.
    pub async fn release_counted(
        &self,
        io: &SocketIo,
        db: &PgPool,
        snapshot: &PollSnapshot,
    ) -> u64 {
        let poll_id = snapshot.poll_id;
        let candidates: Vec<(Sid, String)> = match self
            .waiting
            .lock()
            .expect("waiting lock poisoned")
            .get(&poll_id)
        {
            Some(sockets) => sockets
                .iter()
                .map(|(sid, voter)| (*sid, voter.clone()))
                .collect(),
            None => return 0,
        };
        let voters: Vec<&str> = candidates.iter().map(|(_, voter)| voter.as_str()).collect();
        let counted = match ballots::counted_voters(db, poll_id, &voters).await {
            Ok(counted) => counted,
            Err(err) => {
                // Retried with the next snapshot of this poll.
                tracing::warn!(poll_id = %poll_id, error = %err, "Cannot check waiting voters");
                return 0;
            }
        };
        let mut sent = 0;
        for (sid, voter) in candidates {
            if !counted.contains(&voter) {
                continue;
            }
            self.stop_waiting(Some(poll_id), sid);
            if let Some(socket) = io.get_socket(sid) {
                socket.leave(waiting_room_name(poll_id));
                socket.join(room_name(poll_id));
                match socket.emit("poll-results", snapshot) {
                    Ok(()) => sent += 1,
                    Err(err) => tracing::debug!(error = %err, "Socket gone before its results"),
                }
            }
        }
        sent
    }
}
