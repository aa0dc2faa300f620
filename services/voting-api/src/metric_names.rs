//! Names of the metrics voting-api records, one place for all of them, so a dashboard or an
//! alert can be checked against this list; the ones every service shares (HTTP, Kafka clients,
//! database errors) are in `pollstream_infra::metrics::names`.

pub use pollstream_infra::metrics::names::{DATABASE_ERRORS_TOTAL, KAFKA_PRODUCE_DURATION_SECONDS};

/// Counter, votes: answered `202` (Kafka has them). No labels.
pub const VOTES_ACCEPTED: &str = "votes_accepted_total";
/// Counter, votes: refused; label `reason`, the error code answered (`already_voted`,
/// `overloaded`, `guests_not_allowed`, ...).
pub const VOTES_REJECTED: &str = "votes_rejected_total";
/// Counter, restores of a poll's vote locks after its lock-ledger marker was found missing;
/// label `outcome`: `restored`, `failed` (PostgreSQL, Kafka or the aggregator not ready: a
/// later vote tries again) or `timed_out` (outlasted its lease).
pub const VOTE_LOCK_RESTORES: &str = "vote_lock_restores_total";
/// Counter, votes answered from their counted ballot because their lock could not vouch for
/// them (taken while the poll's vote locks were being restored, or lost while Kafka was
/// acknowledging the vote; see `vote_confirm`); label `outcome`: `counted` (`202`),
/// `already_voted`, `poll_closed`, `not_counted` (read, not counted: parked) or `unconfirmed`
/// (the aggregator did not count it in time, or PostgreSQL did not answer).
pub const VOTES_CONFIRMED: &str = "votes_confirmed_total";
/// Counter, votes and poll reads answered with a poll definition past its
/// `POLL_CACHE_TTL_MS` because PostgreSQL could not answer (stale-if-error, see
/// `poll_cache`). No labels.
pub const POLL_CACHE_STALE_SERVED: &str = "poll_cache_stale_served_total";
