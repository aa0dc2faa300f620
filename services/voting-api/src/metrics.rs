//! Names of the metrics voting-api records, one place for all of them, so a dashboard or an
//! alert can be checked against this list. The HTTP request metrics every service shares are
//! `pollstream_infra::metrics`'s own.

/// Counter, votes: answered `202` (Kafka has them). No labels.
pub const VOTES_ACCEPTED: &str = "votes_accepted_total";
/// Counter, votes: refused; label `reason`, the error code answered (`already_voted`,
/// `overloaded`, `guests_not_allowed`, ...).
pub const VOTES_REJECTED: &str = "votes_rejected_total";
/// Histogram, seconds: from producing a vote to Kafka's acknowledgement (or the bound);
/// label `topic`.
pub const KAFKA_PRODUCE_DURATION: &str = "kafka_produce_duration_seconds";
/// Counter, errors: requests that failed on PostgreSQL (unavailable or a query error). No
/// labels.
pub const DATABASE_ERRORS: &str = "database_errors_total";
