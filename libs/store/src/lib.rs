//! Reading polls and their snapshots, shared by the services that need them.
//!
//! voting-api validates votes against [`PollDefinition`]s and serves results; the realtime
//! service resolves join codes and answers `join` with the current snapshot. Both read the
//! snapshot from the Redis cache the aggregator refreshes and fall back to PostgreSQL.

pub mod ballots;
pub mod closed_flag;
pub mod polls;
pub mod results_cache;
pub mod snapshots;

pub use polls::{PollDefinition, PollKind, PollOption, ResultsVisibility, Viewer};
