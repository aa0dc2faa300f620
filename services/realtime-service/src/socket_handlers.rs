//! Client → server: the Socket.IO handlers `join` and `leave` a poll's room, and disconnect.
//!
//! A joining client that may see counts enters the room only once its snapshot has been read
//! and the room shown it, and in its poll's [`RoomOrder`](crate::snapshot_ledger::RoomOrder)
//! turn: its acknowledgement is the newest snapshot the room has been shown, and every
//! broadcast after it is newer. A client that may not see counts yet is never put in the room,
//! even for a moment.

use std::sync::Arc;

use pollstream_infra::log_throttle::LogThrottle;
use pollstream_store::{Viewer, results_cache};
use pollstream_wire::{ErrorBody, PollSnapshot, PollStatus, RoomRequest};
use socketioxide::extract::{AckSender, SocketRef, TryData};
use tokio::sync::MutexGuard as AsyncMutexGuard;
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
            match request {
                Ok(request) => match join(&socket, &join_hub, request).await {
                    Ok(Joined { reply, turn }) => {
                        // Sent before the room's turn ends: nothing newer reaches it first.
                        send_ack(ack, Ok(reply));
                        drop(turn);
                    }
                    Err(err) => send_ack(ack, Err(err)),
                },
                Err(err) => send_ack(
                    ack,
                    Err(ErrorBody::new(
                        "invalid_request",
                        format!("`join` expects {{pollId}} or {{code}}: {err}"),
                    )),
                ),
            }
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

/// The acknowledgement of a `join`, and the room's turn when it entered the results room:
/// held until the acknowledgement is sent.
struct Joined<'a> {
    reply: serde_json::Value,
    turn: Option<AsyncMutexGuard<'a, ()>>,
}

/// Puts the socket in the poll's results room if it may see counts now (and answers with the
/// snapshot), or in its waiting room otherwise (and answers without counts).
async fn join<'a>(
    socket: &SocketRef,
    hub: &'a AppState,
    request: RoomRequest,
) -> Result<Joined<'a>, ErrorBody> {
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
    // A viewer who may not see counts while the poll is open waits in the waiting room, which
    // is never sent counts, until a snapshot shows they may see them (at close, or once their
    // ballot is counted). One who may joins the results room below, once the snapshot is read.
    if !access.visibility.allows(rights, PollStatus::Open) {
        socket.join(waiting_room_name(poll_id));
    }
    if rights.is_owner {
        socket.join(presenter_room_name(poll_id));
    }
    hub.presence.joined(poll_id);
    let current = current_snapshot(hub, poll_id).await?;
    current.show_room(hub).await;
    let status = current.snapshot.status;
    if access.visibility.allows(rights, status) {
        return Ok(enter_results_room(hub, socket, poll_id, current.snapshot).await);
    }
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
            let current = current_snapshot(hub, poll_id).await?;
            current.show_room(hub).await;
            return Ok(enter_results_room(hub, socket, poll_id, current.snapshot).await);
        }
    }
    Ok(Joined {
        reply: serde_json::json!({
            "pollId": poll_id,
            "status": status,
            "hidden": true,
            "resultsVisibility": access.visibility,
        }),
        turn: None,
    })
}

/// Moves `socket` into the poll's results room in the room's turn, and answers with the
/// newest snapshot the room has been shown: `read`, or a newer one broadcast meanwhile, which
/// the socket, not yet in the room, did not receive.
async fn enter_results_room<'a>(
    hub: &'a AppState,
    socket: &SocketRef,
    poll_id: Uuid,
    read: PollSnapshot,
) -> Joined<'a> {
    let turn = hub.room_order.turn(poll_id).await;
    socket.leave(waiting_room_name(poll_id));
    socket.join(room_name(poll_id));
    let newest = hub.ledger.latest(poll_id).unwrap_or(read);
    Joined {
        reply: serde_json::to_value(newest).expect("a snapshot serialises"),
        turn: Some(turn),
    }
}

/// The newest snapshot of a poll, and whether its room has been shown it.
struct CurrentSnapshot {
    snapshot: PollSnapshot,
    ahead_of_room: bool,
}

impl CurrentSnapshot {
    /// Broadcasts the snapshot to its room if the room has not been shown it, as if it came
    /// from Kafka: the ledger then drops the older updates still on their way (this replica is
    /// behind on `poll-updates`, or just started), which would otherwise reach the room, and
    /// the joining client, after the newer snapshot and move their counts backwards. Called
    /// before the joining client enters the room, whose acknowledgement answers it.
    async fn show_room(&self, hub: &AppState) {
        if self.ahead_of_room {
            crate::broadcast::publish(hub, self.snapshot.clone()).await;
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
