//! The names of a poll's two Socket.IO rooms.
//!
//! `poll:{id}` receives counts; `poll:{id}:waiting` holds clients whose results are hidden for
//! now (see [`pollstream_store::ResultsVisibility`]). Counts are only ever emitted to the first.
//! A waiting client moves over the moment the rule allows it: at close for `after_close`, once
//! its own ballot is counted for `after_vote`.

use uuid::Uuid;

/// The Socket.IO room of a poll: its members receive counts.
pub fn room_name(poll_id: Uuid) -> String {
    format!("poll:{poll_id}")
}

/// The room of clients whose results are hidden for now: they receive no counts.
pub fn waiting_room_name(poll_id: Uuid) -> String {
    format!("poll:{poll_id}:waiting")
}
