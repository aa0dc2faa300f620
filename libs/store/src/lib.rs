//! What pollstream keeps in PostgreSQL and Redis, and the rules every service applies to it.
//!
//! A rule two services must agree on is written once, here: when a poll is closed
//! ([`polls::status_at`]), which choices a ballot may hold ([`ballots::check_choices`]), who
//! may see counts ([`visibility`]), what a join code looks like ([`join_code`]), and where the
//! current snapshot is read from ([`results_cache::current`]: the Redis cache the aggregator
//! refreshes, then PostgreSQL). Services hold no SQL of their own for polls, ballots or
//! accounts; they call the functions of these modules.

pub mod accounts;
pub mod ballots;
pub mod closed_flag;
pub mod join_code;
pub mod polls;
pub mod results_cache;
pub mod snapshots;
pub mod visibility;

pub use join_code::{JoinCode, NoSuchCode};
pub use polls::{PollDefinition, PollKind, PollOption};
pub use visibility::{ResultsVisibility, Viewer};
