//! The names of a poll's Socket.IO rooms.
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

/// The room of the poll owner's own screens (the presenter), in the results room as well:
/// presence counts the audience, so it leaves these out.
pub fn presenter_room_name(poll_id: Uuid) -> String {
    format!("poll:{poll_id}:presenter")
}

/// The poll whose results or waiting room `room` is; `None` for any other room.
pub fn poll_of_room(room: &str) -> Option<Uuid> {
    let rest = room.strip_prefix("poll:")?;
    let id = rest.strip_suffix(":waiting").unwrap_or(rest);
    Uuid::parse_str(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_rooms_name_their_poll() {
        let poll_id = Uuid::from_u128(7);
        assert_eq!(poll_of_room(&room_name(poll_id)), Some(poll_id));
        assert_eq!(poll_of_room(&waiting_room_name(poll_id)), Some(poll_id));
        assert_eq!(poll_of_room("lobby"), None);
        assert_eq!(poll_of_room("poll:not-a-uuid"), None);
        assert_eq!(poll_of_room(&presenter_room_name(poll_id)), None);
    }
}
