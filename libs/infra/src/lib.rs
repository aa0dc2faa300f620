//! Plumbing shared by the pollstream services: reading configuration from the environment,
//! connecting to Kafka, PostgreSQL and Redis with bounded timeouts, logging, metrics and the
//! shutdown signal. Nothing here knows about polls or votes.

pub mod env;
pub mod health;
pub mod http;
pub mod jwt;
pub mod kafka;
pub mod log_throttle;
pub mod metrics;
pub mod postgres;
pub mod redis;
mod run_error;
pub mod shutdown;
pub mod telemetry;

pub use run_error::RunError;
