//! Client → server: the Socket.IO handlers `join` and `leave` a poll's room, and disconnect.
//!
//! A joining client that may see counts is put in the room *before* its snapshot is read, so no
//! update can fall between the snapshot it gets as acknowledgement and the first broadcast it
//! receives; one that may not yet is never put there, even for a moment.

use std::sync::Arc;

use pollstream_infra::log_throttle::LogThrottle;
use pollstream_store::{Viewer, results_cache};
use pollstream_wire::{ErrorBody, PollSnapshot, PollStatus, RoomRequest};
use socketioxide::extract::{AckSender, SocketRef, TryData};
use uuid::Uuid;

use crate::metric_names::SOCKETS_CONNECTED;
use crate::rooms::{presenter_room_name, room_name, waiting_room_name};
use crate::state::AppState;

/// Registers the event handlers of a newly connected socket.
pub fn on_connect(socket: SocketRef, hub: Arc<AppState>) {
    metrics::gauge!(SOCKETS_CONNECTED).increment(1.0);
    let join_hub = hub.clone();
    socket.on(
        "join",
        async move |socket: SocketRef, TryData(request): TryData<RoomRequest>, ack: AckSender| {
            let reply = match request {
                Ok(request) => join(&socket, &join_hub, request).await,
                Err(err) => Err(ErrorBody::new(
                    "invalid_request",
                    format!("`join` expects {{pollId}} or {{code}}: {err}"),
                )),
            };
            send_ack(ack, reply);
        },
    );
    let leave_hub = hub.clone();
    socket.on(
        "leave",
        async move |socket: SocketRef, TryData(request): TryData<RoomRequest>, ack: AckSender| {
            let reply = match request {
                Ok(request) => match leave_hub.polls.resolve(&request).await {
                    Ok(poll_id) => {
                        socket.leave(room_name(poll_id));
                        socket.leave(waiting_room_name(poll_id));
                        socket.leave(presenter_room_name(poll_id));
                        leave_hub.waiting.stop_waiting(Some(poll_id), socket.id);
                        Ok(serde_json::json!({ "pollId": poll_id, "left": true }))
                    }
                    Err(err) => Err(err),
                },
                Err(err) => Err(ErrorBody::new(
                    "invalid_request",
                    format!("`leave` expects {{pollId}} or {{code}}: {err}"),
                )),
            };
            send_ack(ack, reply);
        },
    );
    socket.on_disconnect(async move |socket: SocketRef| {
        metrics::gauge!(SOCKETS_CONNECTED).decrement(1.0);
        hub.waiting.stop_waiting(None, socket.id);
    });
}

/// Puts the socket in the poll's results room if it may see counts now (and answers with the
/// snapshot), or in its waiting room otherwise (and answers without counts).
async fn join(
    socket: &SocketRef,
    hub: &AppState,
    request: RoomRequest,
) -> Result<serde_json::Value, ErrorBody> {
    let viewer = match request.token.as_deref() {
        Some(token) => Some(
            hub.jwt
                .verify(token)
                .map_err(|err| ErrorBody::new("unauthorized", err.to_string()))?
                .sub,
        ),
        None => None,
    };
    let poll_id = hub.polls.resolve(&request).await?;
    let access = hub.polls.access(poll_id).await?;
    let rights = Viewer::decide(
        &access.owner_id,
        access.visibility,
        viewer.as_deref(),
        async |voter| hub.polls.has_counted_ballot(poll_id, voter).await,
    )
    .await?;
    // A viewer who may see counts whatever the poll's status (a close only ever shows more)
    // joins the results room before the snapshot is read, so no broadcast falls between the
    // snapshot and the first event. Anyone else joins the waiting room, which is never sent
    // counts they may not see, until the snapshot shows they may see them.
    let sees_counts_while_open = access.visibility.allows(rights, PollStatus::Open);
    socket.join(if sees_counts_while_open {
        room_name(poll_id)
    } else {
        waiting_room_name(poll_id)
    });
    if rights.is_owner {
        socket.join(presenter_room_name(poll_id));
    }
    hub.presence.joined(poll_id);
    let current = current_snapshot(hub, poll_id).await?;
    let snapshot = current.snapshot.clone();
    if access.visibility.allows(rights, snapshot.status) {
        if !sees_counts_while_open {
            // Shown at close: the poll is closed, its counts final.
            socket.leave(waiting_room_name(poll_id));
            socket.join(room_name(poll_id));
        }
        current.show_room(hub, socket).await;
        return Ok(serde_json::to_value(snapshot).expect("a snapshot serialises"));
    }
    current.show_room(hub, socket).await;
    if access.visibility.needs_ballot()
        && let Some(voter) = viewer
    {
        hub.waiting
            .wait_for_ballot(poll_id, socket.id, voter.clone());
        // The ballot may have been counted between the check above and now.
        if hub
            .polls
            .has_counted_ballot(poll_id, &voter)
            .await
            .unwrap_or(false)
        {
            hub.waiting.stop_waiting(Some(poll_id), socket.id);
            socket.leave(waiting_room_name(poll_id));
            socket.join(room_name(poll_id));
            let current = current_snapshot(hub, poll_id).await?;
            current.show_room(hub, socket).await;
            return Ok(serde_json::to_value(current.snapshot).expect("a snapshot serialises"));
        }
    }
    Ok(serde_json::json!({
        "pollId": poll_id,
        "status": snapshot.status,
        "hidden": true,
        "resultsVisibility": access.visibility,
    }))
}

/// The newest snapshot of a poll, and whether its room has been shown it.
struct CurrentSnapshot {
    snapshot: PollSnapshot,
    ahead_of_room: bool,
}

impl CurrentSnapshot {
    /// Broadcasts the snapshot to its room if the room has not been shown it, as if it came
    /// from Kafka: the ledger then drops the older updates still on their way (this replica is
    /// behind on `poll-updates`, or just started), which would otherwise reach the joining
    /// client after its acknowledgement and move its counts backwards. Called once `joiner`
    /// is in the room it may be in, so no one sees counts they may not see; `joiner` itself
    /// is left out, its acknowledgement answers it.
    async fn show_room(&self, hub: &AppState, joiner: &SocketRef) {
        if self.ahead_of_room {
            crate::broadcast::publish_except(hub, self.snapshot.clone(), Some(joiner)).await;
        }
    }
}

/// The newest snapshot available: broadcast already, in the results cache, or in PostgreSQL.
async fn current_snapshot(hub: &AppState, poll_id: Uuid) -> Result<CurrentSnapshot, ErrorBody> {
    let broadcast = hub.ledger.latest(poll_id);
    let mut redis = hub.redis.clone();
    let stored = results_cache::current(&hub.db, &mut redis, poll_id)
        .await
        .map_err(|err| {
            // Every join fails alike while PostgreSQL is down: one line a second.
            static CANNOT_READ: LogThrottle = LogThrottle::new(1_000);
            if let Some(held_back) = CANNOT_READ.admit() {
                tracing::warn!(poll_id = %poll_id, error = %err, held_back, "Cannot read snapshot");
            }
            ErrorBody::new(
                "unavailable",
                "results are temporarily unavailable, retry shortly",
            )
        })?;
    match stored {
        Some(stored) if broadcast.as_ref().is_none_or(|b| stored.seq > b.seq) => {
            Ok(CurrentSnapshot {
                snapshot: stored,
                ahead_of_room: true,
            })
        }
        _ => broadcast
            .map(|snapshot| CurrentSnapshot {
                snapshot,
                ahead_of_room: false,
            })
            .ok_or_else(|| ErrorBody::new("poll_not_found", format!("no poll with id {poll_id}"))),
    }
}

fn send_ack(ack: AckSender, reply: Result<serde_json::Value, ErrorBody>) {
    let sent = match reply {
        Ok(value) => ack.send(&value),
        Err(body) => ack.send(&body),
    };
    if let Err(err) = sent {
        tracing::debug!(error = %err, "Acknowledgement not delivered");
    }
}
