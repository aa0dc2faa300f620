//! What every realtime-service test stands on: a `poll-updates` topic and a database of its
//! own, and replicas of the service started on them in-process (port 0).

use pollstream_testkit::server::{RunningServer, start_server};
use pollstream_testkit::service_env::ServiceEnv;
use pollstream_testkit::{TestDatabase, unique_topic};
use realtime_service::{Config, RunError};

/// A fresh `poll-updates` topic with `partitions` partitions and a migrated database, for one
/// test (logs on when `TEST_LOG` is set).
pub async fn test_ground(partitions: i32) -> (String, TestDatabase) {
    pollstream_testkit::init_logging();
    let topic = unique_topic("poll-updates");
    pollstream_testkit::create_topics(&[(&topic, partitions)]).await;
    (topic, TestDatabase::create().await)
}

/// The settings of a replica reading `topic` with database `db`; a test adds its own.
pub fn replica_env(topic: &str, db: &TestDatabase) -> ServiceEnv {
    ServiceEnv::new(&db.url).set("POLL_UPDATES_TOPIC", topic)
}

/// Starts a replica with `env`; it stops when the returned server is dropped.
pub async fn start_replica(env: &ServiceEnv) -> RunningServer<RunError> {
    let config = Config::from_vars(&env.vars()).unwrap();
    start_server(|listener, shutdown| realtime_service::run(config, listener, shutdown)).await
}
