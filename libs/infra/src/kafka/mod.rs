//! Kafka clients configured the way every pollstream service needs them.
//!
//! Producers are idempotent with `acks=all`, so a delivery report means the message is durable
//! and a retry inside librdkafka cannot duplicate it. Consumers commit offsets by hand, only
//! after the side effect of the messages they cover succeeded, unless reading has no effect to
//! redo ([`Progress`]).
//!
//! - [`KafkaSettings`]: where the brokers are; builds producers, consumers and topics.
//! - [`ResilientProducer`]: sends, and rebuilds itself after a failed send.
//! - [`GroupConsumer`]: a group member, replaced when it fails fatally; reports its lag.
//! - [`consume`]: the receive → decode → handle loop, with a [`ConsumeHandler`].
//! - [`CommitWatch`]: waits until a group has committed past one message, for many waiters.
//! - [`fence::wait_until_committed`]: waits until a group has committed past a topic's
//!   watermarks, i.e. has done its work for everything in the topic.

mod commit_watch;
mod consume_loop;
mod consumer;
pub mod fence;
mod producer;
mod settings;

pub use commit_watch::{CommitWatch, NotCommitted};
pub use consume_loop::{ConsumeHandler, consume};
pub use consumer::{GroupConsumer, MemberConsumer, MemberContext};
pub use producer::ResilientProducer;
pub use settings::{KafkaSettings, Progress};
