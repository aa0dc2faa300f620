//! Names of the metrics poll-aggregator records, in one place; the ones every service shares
//! (HTTP, Kafka clients, database errors) are in `pollstream_infra::metrics::names`.

pub use pollstream_infra::metrics::names::{DATABASE_ERRORS_TOTAL, KAFKA_PRODUCE_DURATION_SECONDS};

/// Counter: votes counted (a new ballot inserted and added to the tallies).
pub const VOTES_COUNTED_TOTAL: &str = "votes_counted_total";
/// Counter: votes whose voter already had a ballot in the poll (redelivered or repeated):
/// ignored, never counted twice.
pub const VOTES_DUPLICATE_TOTAL: &str = "votes_duplicate_total";
/// Counter: votes parked in the dead-letter topic, by `reason` (the `dlq-reason` header).
pub const VOTES_PARKED_TOTAL: &str = "votes_parked_total";
/// Counter: messages produced to the dead-letter topic.
pub const DEAD_LETTERS_TOTAL: &str = "dead_letters_total";
/// Histogram, seconds: time to flush one batch (database transaction and snapshots).
pub const FLUSH_DURATION_SECONDS: &str = "flush_duration_seconds";
/// Histogram, votes: size of each flushed batch; its buckets (1 to 50,000) are set in
/// `pollstream_infra::metrics::handle`.
pub const FLUSH_BATCH_VOTES: &str = "flush_batch_votes";
/// Counter: failed flushes, by `cause`; the batch is kept and retried.
pub const FLUSH_FAILURES_TOTAL: &str = "flush_failures_total";
/// Counter: closes (on time or by the owner) announced on `poll-updates`.
pub const POLLS_CLOSED_ANNOUNCED_TOTAL: &str = "polls_closed_announced_total";
