//! voting-api against real PostgreSQL, Redis and a Kafka-compatible broker.

mod accounts;
mod database_outage;
mod errors;
mod guests;
mod helpers;
mod input;
mod lifecycle;
mod limits;
mod openapi_fuzz;
mod outages;
mod polls;
mod slow_clients;
mod visibility;
mod votes;
mod web;
