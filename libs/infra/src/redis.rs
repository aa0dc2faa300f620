//! Redis connection with bounded timeouts and automatic reconnection.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::env::{ConfigError, Vars};

/// Where Redis is and how long one command may take; every service reads them the same way.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `REDIS_URL` (default `redis://127.0.0.1:6379`).
    pub url: String,
    /// Upper bound on connecting and on any single command (`REDIS_TIMEOUT_MS`).
    pub timeout: Duration,
}

impl RedisSettings {
    /// Reads `REDIS_URL` and `REDIS_TIMEOUT_MS` (default 1,000 ms).
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            url: vars.or_default("REDIS_URL", "redis://127.0.0.1:6379"),
            timeout: Duration::from_millis(vars.ranged_or(
                "REDIS_TIMEOUT_MS",
                1_000u64,
                10..=60_000,
            )?),
        })
    }

    /// A connection to these settings (see [`connect_lazy`]).
    pub fn connect_lazy(&self) -> redis::RedisResult<ConnectionManager> {
        connect_lazy(&self.url, self.timeout)
    }
}

/// A multiplexed connection that reconnects by itself; each command fails after `timeout`
/// instead of hanging while Redis is away. Connects lazily so a service can start while
/// Redis is down.
pub fn connect_lazy(url: &str, timeout: Duration) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
}

/// Whether Redis answers `PING` right now.
pub async fn ping(conn: &mut ConnectionManager) -> redis::RedisResult<()> {
    redis::cmd("PING")
        .query_async::<String>(conn)
        .await
        .map(|_| ())
}
