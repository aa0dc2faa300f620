//! Kafka → screens: this replica's consumer of `poll-updates` hands each update over
//! ([`forward_updates`]); each accepted snapshot is emitted to its poll's room, and the clients
//! it makes eligible leave the waiting room.

use std::sync::Arc;

use pollstream_infra::kafka::{ConsumeHandler, GroupConsumer, KafkaSettings, Progress, consume};
use pollstream_store::ResultsVisibility;
use pollstream_wire::{DecodeError, PollSnapshot, PollStatus};
use rdkafka::Message;
use rdkafka::message::BorrowedMessage;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metric_names::{self, ROOM_BROADCASTS_TOTAL, STALE_SNAPSHOTS_DROPPED_TOTAL};
use crate::rooms::{room_name, waiting_room_name};
use crate::state::AppState;

/// Broadcasts an update from `poll-updates` to its room, unless it is stale, and lets in
/// waiting clients the update makes eligible.
pub async fn publish(hub: &AppState, snapshot: PollSnapshot) {
    let poll_id = snapshot.poll_id;
    let turn = hub.room_order.turn(poll_id).await;
    let Some(broadcast) = hub.ledger.accept(snapshot) else {
        metrics::counter!(STALE_SNAPSHOTS_DROPPED_TOTAL).increment(1);
        tracing::debug!(poll_id = %poll_id, "Stale snapshot dropped");
        return;
    };
    let mut sent = 0u64;
    let room = room_name(poll_id);
    sent += emit(hub, &room, "poll-results", &broadcast.snapshot).await;
    for stats in &broadcast.stats {
        sent += emit(hub, &room, "poll-stats", stats).await;
    }
    if broadcast.closed_now {
        sent += emit(hub, &room, "poll-closed", &broadcast.snapshot).await;
    }
    // What follows goes to clients that get no counts or only this snapshot (the waiting
    // room, voters just counted); it needs the database, so joins need not wait for it.
    drop(turn);
    if broadcast.closed_now {
        sent += release_at_close(hub, &broadcast.snapshot).await;
    }
    sent += hub
        .waiting
        .release_counted(&hub.io, &hub.db, &broadcast.snapshot)
        .await;
    metrics::counter!(ROOM_BROADCASTS_TOTAL).increment(sent);
}

/// Emits `event` to `room`; 1 if it went out, 0 (logged) if not.
async fn emit<T: serde::Serialize + ?Sized>(
    hub: &AppState,
    room: &str,
    event: &'static str,
    data: &T,
) -> u64 {
    match hub.io.to(room.to_owned()).emit(event, data).await {
        Ok(()) => 1,
        Err(err) => {
            tracing::warn!(room, event, error = %err, "Cannot broadcast");
            0
        }
    }
}

/// At close, tells waiting clients; for `after_close` polls they now see the counts and
/// move to the results room.
async fn release_at_close(hub: &AppState, snapshot: &PollSnapshot) -> u64 {
    let poll_id = snapshot.poll_id;
    let waiting = waiting_room_name(poll_id);
    let Ok(access) = hub.polls.access(poll_id).await else {
        return 0;
    };
    if access.visibility == ResultsVisibility::AfterClose {
        let sent = emit(hub, &waiting, "poll-closed", snapshot).await;
        if let Err(err) = hub.io.to(waiting.clone()).join(room_name(poll_id)).await {
            tracing::warn!(poll_id = %poll_id, error = %err, "Cannot move waiting sockets");
        }
        if let Err(err) = hub.io.to(waiting.clone()).leave(waiting).await {
            tracing::warn!(poll_id = %poll_id, error = %err, "Cannot empty the waiting room");
        }
        sent
    } else {
        let hidden = json!({ "pollId": poll_id, "status": PollStatus::Closed, "hidden": true });
        emit(hub, &waiting, "poll-closed", &hidden).await
    }
}

/// A consumer of `topic` in `group_id`, a group of its own, from when it subscribed: a replica
/// receives every update sent since it started (see `pollstream_infra::kafka::MemberContext`),
/// even those sent before the group gave it partitions. Its position is committed in
/// the background, so that a rebalance (its session lapsed while the group coordinator's
/// broker was down) resumes where it was: from `latest`, the updates sent while it rejoined
/// were skipped, and a poll whose last update fell there stayed wrong on its screens.
pub(crate) fn subscribe_to_updates(
    kafka: &KafkaSettings,
    group_id: &str,
    topic: &str,
) -> Result<GroupConsumer, rdkafka::error::KafkaError> {
    GroupConsumer::subscribe(
        kafka,
        group_id,
        "latest",
        KafkaSettings::DEFAULT_FETCH_WAIT,
        None,
        Progress::AutoCommitted,
        &[topic],
    )
}

/// Forwards every update from `poll-updates` to its room until `shutdown`.
pub(crate) async fn forward_updates(
    consumer: Arc<GroupConsumer>,
    hub: Arc<AppState>,
    shutdown: CancellationToken,
) {
    consume(&consumer, &mut UpdateForwarder { hub }, &shutdown).await;
}

/// Hands each decoded update to the hub, which broadcasts it unless it is stale; skips the
/// undecodable ones.
struct UpdateForwarder {
    hub: Arc<AppState>,
}

impl ConsumeHandler for UpdateForwarder {
    type Value = PollSnapshot;
    type DecodeError = DecodeError;

    fn decode(payload: &[u8]) -> Result<PollSnapshot, DecodeError> {
        PollSnapshot::decode(payload)
    }

    async fn handle(
        &mut self,
        message: &BorrowedMessage<'_>,
        snapshot: Result<PollSnapshot, DecodeError>,
    ) {
        match snapshot {
            Ok(snapshot) => {
                let span = tracing::info_span!("broadcast", poll_id = %snapshot.poll_id, seq = snapshot.seq);
                pollstream_infra::telemetry::trace_context::adopt(&span, message.headers());
                publish(&self.hub, snapshot).instrument(span).await;
            }
            Err(err) => {
                metrics::counter!(metric_names::UNDECODABLE_UPDATES_TOTAL).increment(1);
                tracing::warn!(partition = message.partition(), offset = message.offset(), error = %err, "Undecodable poll update skipped");
            }
        }
    }
}
