//! The consume loop every consumer of a topic runs: receive, replace a consumer that failed
//! fatally, decode, hand the message to the caller's handler; until shutdown.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::BorrowedMessage;
use tokio_util::sync::CancellationToken;

use super::{GroupConsumer, MemberConsumer};

/// Pause after a consumer error that did not call for a new consumer, so that a broker that
/// is away is not asked again in a tight loop.
const ERROR_PAUSE: Duration = Duration::from_millis(200);

/// What a [`consume`] loop does with what it reads.
pub trait ConsumeHandler {
    /// What a payload decodes into.
    type Value;
    /// Why a payload did not decode.
    type DecodeError;

    /// Decodes one payload; a message without one is decoded from no bytes.
    fn decode(payload: &[u8]) -> Result<Self::Value, Self::DecodeError>;

    /// Handles one message: its decoded value or why it did not decode, beside the message
    /// itself (partition, offset, key, headers, raw payload).
    fn handle(
        &mut self,
        message: &BorrowedMessage<'_>,
        value: Result<Self::Value, Self::DecodeError>,
    ) -> impl Future<Output = ()> + Send;

    /// Completes when [`ConsumeHandler::tick`] is due; never, unless the handler has periodic
    /// work.
    fn next_tick(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }

    /// Periodic work between two messages, such as a batch's time trigger.
    fn tick(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The consumer failed fatally and was replaced: its offsets can no longer be committed,
    /// so what was read since the last commit will be read again and must be dropped.
    fn consumer_replaced(&mut self) {}
}

/// Runs `handler` on every message `consumer` receives until `shutdown` is cancelled, which
/// is checked first, then a due tick, then the next message. A consumer error is logged; a
/// consumer that failed fatally is replaced (see [`GroupConsumer`]), otherwise the loop pauses
/// briefly. A consumer the handler replaced meanwhile is taken up before the next message.
pub async fn consume<H: ConsumeHandler>(
    consumer: &GroupConsumer,
    handler: &mut H,
    shutdown: &CancellationToken,
) {
    let mut current = consumer.get();
    loop {
        // Replaced by the handler (a stalled commit, see `GroupConsumer::replace_stalled`):
        // what the old one read and did not commit will be read again.
        if !consumer.is_current(&current) {
            handler.consumer_replaced();
            take_up(&mut current, consumer);
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = handler.next_tick() => handler.tick().await,
            received = current.recv() => match received {
                Ok(message) => {
                    let value = H::decode(message.payload().unwrap_or_default());
                    handler.handle(&message, value).await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "Kafka consumer error");
                    if consumer.recover(&current) {
                        handler.consumer_replaced();
                        take_up(&mut current, consumer);
                    } else {
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
            },
        }
    }
}

/// Makes `current` the group's consumer now. The old one is dropped on a thread of its own:
/// this may be its last reference, and closing a consumer blocks, which an async worker must
/// not.
fn take_up(current: &mut Arc<MemberConsumer>, consumer: &GroupConsumer) {
    let old = std::mem::replace(current, consumer.get());
    std::thread::spawn(move || drop(old));
}
