//! voting-api configuration, read from the environment once at start.

use std::path::PathBuf;
use std::time::Duration;

use pollstream_infra::env::{ConfigError, Vars};
use pollstream_infra::http::HttpSettings;
use pollstream_infra::jwt::JwtSettings;
use pollstream_infra::kafka::KafkaSettings;
use pollstream_infra::redis::RedisSettings;

use crate::http::web::{self, RealtimeUrl};

/// Everything voting-api needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// PostgreSQL, for poll definitions and the results fallback.
    pub database_url: String,
    /// Redis and its command timeout.
    pub redis: RedisSettings,
    /// Kafka brokers and produce timeout.
    pub kafka: KafkaSettings,
    /// Secret, issuer and audience of bearer tokens.
    pub jwt: JwtSettings,
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_token_ttl: Duration,
    /// Lifetime of guest tokens (`GUEST_TOKEN_TTL_SECS`, default 12 h): a guest has no refresh
    /// token, so the token outlives an event and a reload stays the same voter.
    pub guest_token_ttl: Duration,
    /// Rate limits on voting and authentication.
    pub rate_limits: RateLimits,
    /// Origins allowed by CORS (`*` for any); empty allows none.
    pub cors_origins: Vec<String>,
    /// Whether to take the client address from `X-Forwarded-For` (only behind a proxy that
    /// sets it), for per-IP limits.
    pub trust_forwarded_for: bool,
    /// Port to listen on (`VOTING_API_PORT`).
    pub port: u16,
    /// Header-read (and idle keep-alive) timeout, total and per-address connection caps of the
    /// HTTP listener (`HTTP_HEADER_READ_TIMEOUT_MS` default 10,000 ms, `HTTP_MAX_CONNECTIONS`
    /// default 16,384, `HTTP_MAX_CONNECTIONS_PER_IP` default 8,192, `0` off), so slow or idle
    /// clients cannot hold every connection; see `pollstream_infra::http`. Behind ingress-nginx
    /// every connection comes from the proxy, so the per-address cap is off there
    /// (`k8s/base/config.env`).
    pub http: HttpSettings,
    /// Lifetime of the per-voter lock that turns a second vote into `409`.
    pub vote_lock_ttl: Duration,
    /// Topic accepted votes are produced to.
    pub raw_votes_topic: String,
    /// The aggregator's consumer group (`AGGREGATOR_GROUP_ID`, default `poll-aggregator`, the
    /// aggregator's own default): a restore of vote locks waits until it has committed past
    /// every vote accepted so far (see `lock_restore`).
    pub aggregator_group_id: String,
    /// How long a poll definition is served from memory before it is read again.
    pub poll_cache_ttl: Duration,
    /// How long after it was last read a poll definition is still served while PostgreSQL
    /// cannot answer (`POLL_CACHE_STALE_IF_ERROR_SECS`, default 600, `0` off), so votes on
    /// polls this replica knows are taken through a database outage (see `poll_cache`).
    pub poll_cache_stale_if_error: Duration,
    /// Largest PostgreSQL pool.
    pub db_max_connections: u32,
    /// Vote requests served at once (`MAX_VOTES_IN_FLIGHT`); more are answered `503
    /// overloaded` at once. At ~10,000 votes/s an instance has a few hundred in flight.
    pub max_votes_in_flight: usize,
    /// The built web app (`WEB_DIR`, default `web/dist` relative to the working directory);
    /// without an `index.html` there the service serves the API only, and says so at start.
    pub web_dir: PathBuf,
    /// Where pages connect to realtime-service (`REALTIME_PUBLIC_URL`, an `http(s)` origin);
    /// unset or empty: the page's own origin, `/socket.io` routed there by the proxy in front.
    pub realtime_public_url: Option<RealtimeUrl>,
}

impl Config {
    /// Reads the configuration from `vars`, naming the variable on any error.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            database_url: vars.required("DATABASE_URL")?,
            redis: RedisSettings::from_vars(vars)?,
            kafka: KafkaSettings::from_vars(vars)?,
            jwt: JwtSettings::from_vars(vars)?,
            access_token_ttl: Duration::from_secs(vars.ranged_or(
                "ACCESS_TOKEN_TTL_SECS",
                15 * 60u64,
                10..=86_400,
            )?),
            refresh_token_ttl: Duration::from_secs(vars.ranged_or(
                "REFRESH_TOKEN_TTL_SECS",
                7 * 86_400u64,
                60..=90 * 86_400,
            )?),
            guest_token_ttl: Duration::from_secs(vars.ranged_or(
                "GUEST_TOKEN_TTL_SECS",
                12 * 3_600u64,
                60..=7 * 86_400,
            )?),
            rate_limits: RateLimits::from_vars(vars)?,
            cors_origins: vars
                .or_default("CORS_ALLOWED_ORIGINS", "")
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(str::to_owned)
                .collect(),
            trust_forwarded_for: vars.parsed_or("TRUST_FORWARDED_FOR", false)?,
            port: vars.parsed_or("VOTING_API_PORT", 3001)?,
            http: HttpSettings::from_vars(vars)?,
            vote_lock_ttl: Duration::from_secs(vars.ranged_or(
                "VOTE_LOCK_TTL_SECS",
                86_400u64,
                1..=30 * 86_400,
            )?),
            raw_votes_topic: vars.or_default("RAW_VOTES_TOPIC", pollstream_wire::RAW_VOTES_TOPIC),
            aggregator_group_id: vars.or_default("AGGREGATOR_GROUP_ID", "poll-aggregator"),
            poll_cache_ttl: Duration::from_millis(vars.ranged_or(
                "POLL_CACHE_TTL_MS",
                2_000u64,
                0..=600_000,
            )?),
            poll_cache_stale_if_error: Duration::from_secs(vars.ranged_or(
                "POLL_CACHE_STALE_IF_ERROR_SECS",
                600u64,
                0..=86_400,
            )?),
            db_max_connections: vars.ranged_or("DATABASE_MAX_CONNECTIONS", 10u32, 1..=1_000)?,
            max_votes_in_flight: vars.ranged_or(
                "MAX_VOTES_IN_FLIGHT",
                2_048usize,
                1..=1_000_000,
            )?,
            web_dir: PathBuf::from(vars.or_default("WEB_DIR", web::DEFAULT_DIR)),
            realtime_public_url: realtime_public_url(vars)?,
        })
    }
}

fn realtime_public_url(vars: &Vars) -> Result<Option<RealtimeUrl>, ConfigError> {
    let value = vars.or_default("REALTIME_PUBLIC_URL", "");
    if value.trim().is_empty() {
        return Ok(None);
    }
    RealtimeUrl::parse(&value)
        .map(Some)
        .map_err(|reason| ConfigError::Invalid {
            name: "REALTIME_PUBLIC_URL",
            value,
            reason,
        })
}

/// Requests allowed per client and window, shared by all replicas through Redis. `0`
/// disables a limit.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Length of a window.
    pub window: Duration,
    /// Vote attempts per voter.
    pub votes_per_voter: u64,
    /// Vote attempts per client address (one venue's Wi-Fi may be many voters: be generous).
    pub votes_per_ip: u64,
    /// Account requests (register, login, refresh) per client address: each costs an Argon2
    /// hash or a database write, and guessing passwords must stay slow.
    pub auth_per_ip: u64,
    /// Guest tokens per client address (`RATE_LIMIT_GUEST_PER_IP`, default 20,000): a guest
    /// token costs one signature, and a hall of thousands shares one venue address.
    pub guest_per_ip: u64,
    /// Key prefix, so independent deployments sharing a Redis do not share counters.
    pub namespace: String,
}

impl RateLimits {
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            window: Duration::from_secs(vars.ranged_or(
                "RATE_LIMIT_WINDOW_SECS",
                60u64,
                1..=3_600,
            )?),
            votes_per_voter: vars.parsed_or("RATE_LIMIT_VOTES_PER_VOTER", 30)?,
            votes_per_ip: vars.parsed_or("RATE_LIMIT_VOTES_PER_IP", 20_000)?,
            auth_per_ip: vars.parsed_or("RATE_LIMIT_AUTH_PER_IP", 300)?,
            guest_per_ip: vars.parsed_or("RATE_LIMIT_GUEST_PER_IP", 20_000)?,
            namespace: vars.or_default("RATE_LIMIT_NAMESPACE", "ratelimit"),
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
        assert_eq!(config.aggregator_group_id, "poll-aggregator");
        assert_eq!(config.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(config.guest_token_ttl, Duration::from_secs(12 * 3_600));
        assert_eq!(config.rate_limits.auth_per_ip, 300);
        assert_eq!(config.rate_limits.guest_per_ip, 20_000);
        assert_eq!(config.web_dir, PathBuf::from("web/dist"));
        assert_eq!(config.realtime_public_url, None);
        assert_eq!(config.poll_cache_stale_if_error, Duration::from_secs(600));
    }

    #[test]
    fn realtime_public_url_must_be_an_origin() {
        let vars = |url| {
            Vars::from_pairs([
                ("DATABASE_URL", "postgres://x/y"),
                ("JWT_SECRET", SECRET),
                ("REALTIME_PUBLIC_URL", url),
            ])
        };
        let config = Config::from_vars(&vars("http://127.0.0.1:3003")).unwrap();
        assert_eq!(
            config
                .realtime_public_url
                .map(|url| url.origin())
                .as_deref(),
            Some("http://127.0.0.1:3003")
        );
        let err = Config::from_vars(&vars("127.0.0.1:3003")).unwrap_err();
        assert!(err.to_string().contains("REALTIME_PUBLIC_URL"), "{err}");
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
