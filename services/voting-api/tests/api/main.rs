//! voting-api against real PostgreSQL, Redis and a Kafka-compatible broker.

mod helpers;
mod polls;
mod votes;
