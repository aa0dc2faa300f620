//! Every metric realtime-service records, by name: one place to find what `/metrics` shows.

/// Gauge, sockets: Socket.IO sockets connected to this replica. No labels.
pub const SOCKETS_CONNECTED: &str = "sockets_connected";

/// Gauge, rooms: Socket.IO rooms with at least one socket on this replica, refreshed every
/// 5 s. No labels.
pub const ROOMS_ACTIVE: &str = "rooms_active";

/// Counter, events: events emitted to a room or to a released socket. No labels.
pub const ROOM_BROADCASTS_TOTAL: &str = "room_broadcasts_total";

/// Counter, snapshots: updates from `poll-updates` dropped as not newer than the last one
/// broadcast. No labels.
pub const STALE_SNAPSHOTS_DROPPED_TOTAL: &str = "stale_snapshots_dropped_total";

/// Counter, messages: `poll-updates` messages that could not be decoded and were skipped.
/// No labels.
pub const UNDECODABLE_UPDATES_TOTAL: &str = "undecodable_updates_total";

/// Counter, events: `poll-presence` events emitted (one per poll and change, to both of its
/// rooms). No labels.
pub const PRESENCE_UPDATES_TOTAL: &str = "presence_updates_total";

/// Counter, ticks: presence ticks skipped because Redis did not answer; viewer counts then
/// stay as they were, broadcasts are unaffected. No labels.
pub const PRESENCE_FAILURES_TOTAL: &str = "presence_failures_total";

/// Counter, requests: Socket.IO requests (long-polling or WebSocket upgrade) refused with `403`
/// because their `Origin` is neither the server's own nor listed in
/// `REALTIME_ALLOWED_ORIGINS`. No labels (the origin is in the debug log).
pub const ORIGINS_REFUSED_TOTAL: &str = "origins_refused_total";
