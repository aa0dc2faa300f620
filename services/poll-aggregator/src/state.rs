//! The shared state of the aggregator: [`AppState`], built once in `run`, holding the
//! connections the counting loop, the closer and the health checks share. Each pollstream
//! service names its shared state `AppState`, in its own `state.rs`.

use std::sync::Arc;

use pollstream_infra::kafka::{GroupConsumer, Progress, ResilientProducer};

use crate::{Config, RunError};

/// The connections the aggregator, the closer and the health checks share.
#[derive(Clone)]
pub(crate) struct AppState {
    /// Ballots and tallies are written here, in the flush transaction; readiness pings it.
    pub(crate) db: sqlx::PgPool,
    /// The results cache and the closed flags; readiness pings it.
    pub(crate) redis: redis::aio::ConnectionManager,
    /// Snapshots to `poll-updates` and dead letters to `raw-votes.dlq`.
    pub(crate) producer: Arc<ResilientProducer>,
    /// The `raw-votes` member of the shared group; its offsets are committed by hand after a
    /// flush, and readiness asks the cluster for metadata through it.
    pub(crate) consumer: Arc<GroupConsumer>,
}

impl AppState {
    /// Creates every client; PostgreSQL and Redis connect lazily, the consumer subscribes to
    /// `raw-votes` in the shared group.
    pub(crate) fn connect(config: &Config) -> Result<Self, RunError> {
        let db = pollstream_infra::postgres::connect_lazy(&config.database_url, 4)
            .map_err(RunError::setup("PostgreSQL pool"))?;
        let redis = config
            .redis
            .connect_lazy()
            .map_err(RunError::setup("Redis client"))?;
        let producer = Arc::new(
            ResilientProducer::new(config.kafka.clone())
                .map_err(RunError::setup("Kafka producer"))?,
        );
        let consumer = Arc::new(
            GroupConsumer::subscribe(
                &config.kafka,
                &config.group_id,
                "earliest",
                config.fetch_wait,
                config.instance_id.as_deref(),
                Progress::CommittedByHand,
                &[&config.raw_votes_topic],
            )
            .map_err(RunError::setup("Kafka consumer"))?,
        );
        Ok(Self {
            db,
            redis,
            producer,
            consumer,
        })
    }
}
