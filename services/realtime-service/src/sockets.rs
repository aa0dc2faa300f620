//! Socket.IO handlers: `join` and `leave` a poll's room.
//!
//! A joining client is put in the room *before* its snapshot is read, so no update can fall
//! between the snapshot it gets as acknowledgement and the first broadcast it receives.

use std::sync::Arc;

use pollstream_store::{results_cache, snapshots};
use pollstream_wire::{ErrorBody, PollSnapshot, RoomRequest};
use socketioxide::extract::{AckSender, SocketRef, TryData};
use uuid::Uuid;

use crate::hub::Hub;
use crate::rooms::room_name;

/// Registers the event handlers of a newly connected socket.
pub fn on_connect(socket: SocketRef, hub: Arc<Hub>) {
    metrics::gauge!("sockets_connected").increment(1.0);
    let join_hub = hub.clone();
    socket.on(
        "join",
        async move |socket: SocketRef, TryData(request): TryData<RoomRequest>, ack: AckSender| {
            let reply = match request {
                Ok(request) => join(&socket, &join_hub, request).await,
                Err(err) => Err(error(
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
                Ok(request) => match leave_hub.resolve(&request).await {
                    Ok(poll_id) => {
                        socket.leave(room_name(poll_id));
                        Ok(serde_json::json!({ "pollId": poll_id, "left": true }))
                    }
                    Err(err) => Err(err),
                },
                Err(err) => Err(error(
                    "invalid_request",
                    format!("`leave` expects {{pollId}} or {{code}}: {err}"),
                )),
            };
            send_ack(ack, reply);
        },
    );
    socket.on_disconnect(async || {
        metrics::gauge!("sockets_connected").decrement(1.0);
    });
}

async fn join(
    socket: &SocketRef,
    hub: &Hub,
    request: RoomRequest,
) -> Result<serde_json::Value, ErrorBody> {
    let poll_id = hub.resolve(&request).await?;
    socket.join(room_name(poll_id));
    let snapshot = current_snapshot(hub, poll_id).await?;
    Ok(serde_json::to_value(snapshot).expect("a snapshot serialises"))
}

/// The newest snapshot available: broadcast already, in the results cache, or in PostgreSQL.
async fn current_snapshot(hub: &Hub, poll_id: Uuid) -> Result<PollSnapshot, ErrorBody> {
    let broadcast = hub.ledger.latest(poll_id);
    let mut redis = hub.redis.clone();
    let cached = match results_cache::read(&mut redis, poll_id).await {
        Ok(cached) => cached,
        Err(err) => {
            tracing::warn!(poll_id = %poll_id, error = %err, "Results cache unreadable, using PostgreSQL");
            None
        }
    };
    let stored = match cached {
        Some(snapshot) => Some(snapshot),
        None => snapshots::load(&hub.db, poll_id).await.map_err(|err| {
            tracing::warn!(poll_id = %poll_id, error = %err, "Cannot read snapshot");
            error(
                "unavailable",
                "results are temporarily unavailable, retry shortly",
            )
        })?,
    };
    [broadcast, stored]
        .into_iter()
        .flatten()
        .max_by_key(|snapshot| snapshot.seq)
        .ok_or_else(|| error("poll_not_found", format!("no poll with id {poll_id}")))
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

/// An error acknowledgement in the same shape as HTTP errors.
pub fn error(code: &str, message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        error: code.to_owned(),
        message: message.into(),
    }
}
