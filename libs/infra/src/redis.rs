//! Redis connection with bounded timeouts and automatic reconnection.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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
