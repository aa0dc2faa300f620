//! The chaos run: two replicas of every service on a three-broker Kafka cluster with a
//! PostgreSQL and a Redis of its own ([`pollstream_testkit::replicas::ReplicaStack`]), steady
//! votes spread over both voting-api replicas and Socket.IO screens on both realtime-service
//! replicas (the set-up, load and screens of `pollstream-stress`), and faults on a seeded plan
//! ([`plan`]): `kill -9` and restart of any service replica or of the broker leading a
//! `raw-votes` partition, Redis restarted empty, PostgreSQL crash-stopped and started again.
//!
//! The run ([`run`]) takes its [`settings`] and fills in its [`observations`]; at the end
//! [`report`] reads them and checks that every `202` was counted exactly once, that every screen
//! converged on the final count without ever going backwards, and that every process became
//! healthy again on its own, and measures each fault's impact. `pollstream-chaos` (the CLI,
//! `scripts/chaos`) and `e2e/tests/chaos.rs` both call [`run::run`].

pub mod monitor;
pub mod observations;
pub mod plan;
pub mod report;
pub mod run;
pub mod settings;
