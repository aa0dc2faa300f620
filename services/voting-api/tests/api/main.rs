//! voting-api against real PostgreSQL, Redis and a Kafka-compatible broker.

mod accounts;
mod helpers;
mod input;
mod lifecycle;
mod limits;
mod outages;
mod polls;
mod visibility;
mod votes;
