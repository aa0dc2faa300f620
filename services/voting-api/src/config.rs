//! voting-api configuration, read from the environment once at start.

use std::time::Duration;

use pollstream_infra::env::{ConfigError, Vars};
use pollstream_infra::jwt::MIN_SECRET_LEN;
use pollstream_infra::kafka::KafkaSettings;

/// Everything voting-api needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// PostgreSQL, for poll definitions and the results fallback.
    pub database_url: String,
    /// Redis, for vote locks and the results cache.
    pub redis_url: String,
    /// Kafka brokers and produce timeout.
    pub kafka: KafkaSettings,
    /// Secret that signs and verifies bearer tokens.
    pub jwt_secret: String,
    /// Port to listen on (`VOTING_API_PORT`).
    pub port: u16,
    /// Lifetime of the per-voter lock that turns a second vote into `409`.
    pub vote_lock_ttl: Duration,
    /// Topic accepted votes are produced to.
    pub raw_votes_topic: String,
    /// How long a poll definition is served from memory before it is read again.
    pub poll_cache_ttl: Duration,
    /// Upper bound on any single Redis command.
    pub redis_timeout: Duration,
    /// Largest PostgreSQL pool.
    pub db_max_connections: u32,
}

impl Config {
    /// Reads the configuration from `vars`, naming the variable on any error.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let jwt_secret = vars.required("JWT_SECRET")?;
        if jwt_secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                value: "<hidden>".into(),
                reason: format!("must be at least {MIN_SECRET_LEN} bytes"),
            });
        }
        Ok(Self {
            database_url: vars.required("DATABASE_URL")?,
            redis_url: vars.or_default("REDIS_URL", "redis://127.0.0.1:6379"),
            kafka: KafkaSettings::from_vars(vars)?,
            jwt_secret,
            port: vars.parsed_or("VOTING_API_PORT", 3001)?,
            vote_lock_ttl: Duration::from_secs(vars.ranged_or(
                "VOTE_LOCK_TTL_SECS",
                86_400u64,
                1..=30 * 86_400,
            )?),
            raw_votes_topic: vars.or_default("RAW_VOTES_TOPIC", pollstream_wire::RAW_VOTES_TOPIC),
            poll_cache_ttl: Duration::from_millis(vars.ranged_or(
                "POLL_CACHE_TTL_MS",
                2_000u64,
                0..=600_000,
            )?),
            redis_timeout: Duration::from_millis(vars.ranged_or(
                "REDIS_TIMEOUT_MS",
                1_000u64,
                10..=60_000,
            )?),
            db_max_connections: vars.ranged_or("DATABASE_MAX_CONNECTIONS", 10u32, 1..=1_000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_apply_when_only_required_variables_are_set() {
        let vars = Vars::from_pairs([("DATABASE_URL", "postgres://x/y"), ("JWT_SECRET", SECRET)]);
        let config = Config::from_vars(&vars).unwrap();
        assert_eq!(config.port, 3001);
        assert_eq!(config.raw_votes_topic, "raw-votes");
        assert_eq!(config.kafka.brokers, "127.0.0.1:9092");
    }

    #[test]
    fn short_secret_is_refused_without_echoing_it() {
        let vars = Vars::from_pairs([("DATABASE_URL", "postgres://x/y"), ("JWT_SECRET", "short")]);
        let err = Config::from_vars(&vars).unwrap_err().to_string();
        assert!(
            err.contains("JWT_SECRET") && !err.contains("short\""),
            "{err}"
        );
    }

    #[test]
    fn zero_lock_ttl_is_refused() {
        let vars = Vars::from_pairs([
            ("DATABASE_URL", "postgres://x/y"),
            ("JWT_SECRET", SECRET),
            ("VOTE_LOCK_TTL_SECS", "0"),
        ]);
        assert!(
            Config::from_vars(&vars)
                .unwrap_err()
                .to_string()
                .contains("VOTE_LOCK_TTL_SECS")
        );
    }
}
