//! The dead-letter path: a message the aggregator cannot count (undecodable, refused by the
//! ballot rules, or refused by PostgreSQL) is parked in the dead-letter topic (the votes topic's
//! name and `.dlq`: `raw-votes.dlq`), as it was read, with headers naming why (`dlq-reason`, and for a vote PostgreSQL refused
//! `dlq-sqlstate` and `dlq-database-message`) and where it came from (`dlq-source-topic`,
//! `dlq-source-partition`, `dlq-source-offset`). A message is only ever skipped once it is
//! parked: producing is retried until the broker takes it, and a message not parked by
//! shutdown is left uncommitted, to be read again.

use std::time::Duration;

use pollstream_infra::kafka::ResilientProducer;
use pollstream_wire::DecodeError;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::flush::Rejected;
use crate::metric_names as names;
use crate::retry::{MAX_BACKOFF, sleep_or_cancel};

/// The dead-letter topic of the votes topic being counted, and the producer that writes it.
pub(crate) struct DeadLetters<'a> {
    /// Produces dead letters.
    pub(crate) producer: &'a ResilientProducer,
    /// Names the dead-letter topic and the source topic of its headers.
    pub(crate) config: &'a Config,
}

impl DeadLetters<'_> {
    /// Parks a message that holds no vote it can decode, under its partition and offset;
    /// `false` if shutdown came first.
    pub(crate) async fn park_undecodable(
        &self,
        message: &BorrowedMessage<'_>,
        err: DecodeError,
        shutdown: &CancellationToken,
    ) -> bool {
        let (partition, offset) = (message.partition(), message.offset());
        let reason = err.to_string();
        tracing::warn!(partition, offset, error = %reason, "Undecodable vote, parking it in the dead-letter topic");
        let headers = dead_letter_headers(&self.config.raw_votes_topic, partition, offset, &reason);
        let payload = message.payload().unwrap_or_default().to_vec();
        let key = message.key().map(<[u8]>::to_vec);
        let label = match err {
            DecodeError::Malformed(_) => "malformed",
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
        };
        self.send(key.as_deref(), &payload, headers, label, shutdown)
            .await
    }

    /// Parks a vote the flush could not count, under its source partition and offset; `false`
    /// if shutdown came first.
    pub(crate) async fn park(&self, rejected: &Rejected, shutdown: &CancellationToken) -> bool {
        let Rejected {
            vote: received,
            reason,
            refusal,
        } = rejected;
        let vote = &received.vote;
        let mut headers = dead_letter_headers(
            &self.config.raw_votes_topic,
            received.partition,
            received.offset,
            reason,
        );
        if let Some(refusal) = refusal {
            tracing::warn!(poll_id = %vote.poll_id, vote_id = %vote.vote_id, partition = received.partition, offset = received.offset, reason, sqlstate = %refusal.sqlstate, error = %refusal.message, "PostgreSQL refused a vote, parking it");
            headers = headers
                .insert(Header {
                    key: "dlq-sqlstate",
                    value: Some(refusal.sqlstate.as_str()),
                })
                .insert(Header {
                    key: "dlq-database-message",
                    value: Some(refusal.message.as_str()),
                });
        } else {
            tracing::warn!(poll_id = %vote.poll_id, vote_id = %vote.vote_id, partition = received.partition, offset = received.offset, reason, "Vote not countable, parking it");
        }
        self.send(
            Some(vote.key().as_bytes()),
            &vote.encode(),
            headers,
            reason,
            shutdown,
        )
        .await
    }

    /// Produces one dead letter, retrying until the broker takes it (`true`) or shutdown
    /// (`false`): a message is skipped only once it is parked. `reason` labels
    /// `votes_parked_total` and must be a stable name.
    async fn send(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
        reason: &'static str,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut record = FutureRecord::to(&self.config.dead_letter_topic)
                .payload(payload)
                .headers(headers.clone());
            if let Some(key) = key {
                record = record.key(key);
            }
            match self.producer.send(record, Duration::from_secs(1)).await {
                Ok(_) => {
                    metrics::counter!(names::DEAD_LETTERS_TOTAL).increment(1);
                    metrics::counter!(names::VOTES_PARKED_TOTAL, "reason" => reason).increment(1);
                    return true;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "Cannot produce dead letter, retrying");
                    if sleep_or_cancel(backoff, shutdown).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// The headers every dead letter carries: why it was parked, and where it was read.
fn dead_letter_headers(topic: &str, partition: i32, offset: i64, reason: &str) -> OwnedHeaders {
    let partition = partition.to_string();
    let offset = offset.to_string();
    OwnedHeaders::new()
        .insert(Header {
            key: "dlq-reason",
            value: Some(reason),
        })
        .insert(Header {
            key: "dlq-source-topic",
            value: Some(topic),
        })
        .insert(Header {
            key: "dlq-source-partition",
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: "dlq-source-offset",
            value: Some(offset.as_str()),
        })
}
