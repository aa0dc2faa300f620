//! Messages a test produces itself, standing in for a service: raw votes as voting-api sends
//! them, snapshots as the aggregator publishes them, or any bytes at all.

use std::time::Duration;

use pollstream_infra::kafka::KafkaSettings;
use pollstream_wire::{PollSnapshot, RawVote};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// A producer for one topic on the test broker.
pub struct TopicWriter {
    producer: FutureProducer,
    topic: String,
}

impl TopicWriter {
    /// A writer for `topic` on the brokers of [`crate::kafka_brokers`].
    pub fn new(topic: &str) -> Self {
        Self {
            producer: KafkaSettings::new(crate::kafka_brokers())
                .producer()
                .expect("creating a test producer"),
            topic: topic.to_owned(),
        }
    }

    /// Produces `payload` under `key`; returns the partition and offset it landed at.
    pub async fn send(&self, key: &str, payload: &[u8]) -> (i32, i64) {
        let delivery = self
            .producer
            .send(
                FutureRecord::to(&self.topic).key(key).payload(payload),
                Duration::from_secs(5),
            )
            .await
            .map_err(|(err, _)| err)
            .expect("producing a test message");
        (delivery.partition, delivery.offset)
    }

    /// Produces `vote` under its key ([`RawVote::key`]), as voting-api does; returns where it
    /// landed.
    pub async fn send_vote(&self, vote: &RawVote) -> (i32, i64) {
        self.send(&vote.key(), &vote.encode()).await
    }

    /// Publishes `snapshot` keyed by its poll id, as the aggregator does.
    pub async fn send_snapshot(&self, snapshot: &PollSnapshot) {
        self.send(&snapshot.poll_id.to_string(), &snapshot.encode())
            .await;
    }
}
