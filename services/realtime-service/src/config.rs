//! realtime-service configuration, read from the environment once at start.

use std::time::Duration;

use axum::http::Uri;
use pollstream_infra::env::{ConfigError, Vars};
use pollstream_infra::http::HttpSettings;
use pollstream_infra::jwt::JwtSettings;
use pollstream_infra::kafka::KafkaSettings;
use pollstream_infra::redis::RedisSettings;
use pollstream_wire::POLL_UPDATES_TOPIC;

/// Everything realtime-service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// PostgreSQL, to resolve join codes and read snapshots the cache does not have.
    pub database_url: String,
    /// Redis and its command timeout.
    pub redis: RedisSettings,
    /// Kafka brokers.
    pub kafka: KafkaSettings,
    /// Port for Socket.IO, health and metrics (`REALTIME_SERVICE_PORT`).
    pub port: u16,
    /// Header-read (and idle keep-alive) timeout, total and per-address connection caps of the
    /// HTTP listener: handshakes, long-polling and health; an upgraded WebSocket counts in the
    /// total only (`HTTP_HEADER_READ_TIMEOUT_MS` default 10,000 ms, `HTTP_MAX_CONNECTIONS`
    /// default 16,384, `HTTP_MAX_CONNECTIONS_PER_IP` default 8,192, `0` off), so that clients
    /// that open connections and never finish a request cannot exhaust the file descriptors; see
    /// `pollstream_infra::http`.
    pub http: HttpSettings,
    /// Topic snapshots are consumed from.
    pub poll_updates_topic: String,
    /// Prefix of this replica's consumer group; a random suffix makes it unique so every
    /// replica receives every update.
    pub group_prefix: String,
    /// Verifies the tokens clients send with `join`, for results visibility.
    pub jwt: JwtSettings,
    /// How viewers are counted across replicas and how often `poll-presence` goes out.
    pub presence: PresenceSettings,
    /// Tokio worker threads (`REALTIME_WORKER_THREADS`, default 1, up to 64). With one, a
    /// broadcast queues its events on every socket before any socket's writer runs, so each
    /// socket sends an update's `poll-results` and `poll-stats` in one write; with more, idle
    /// workers take the writers as soon as they wake and send each event on its own (see
    /// BENCHMARKS.md, fan-out against Node socket.io). Scale out with replicas instead.
    pub worker_threads: usize,
    /// Origins (`scheme://host[:port]`) of pages served elsewhere that may connect to Socket.IO
    /// (`REALTIME_ALLOWED_ORIGINS`, comma-separated; empty, the default: same origin only, i.e.
    /// the `Origin`'s host and port are the `Host` header's). A request with any other `Origin`
    /// gets `403 origin_not_allowed` on both transports, one without `Origin` is served; behind
    /// a proxy that rewrites `Host`, list the public origin. See `allowed_origins.rs`.
    pub allowed_origins: Vec<String>,
}

/// Timing of the per-replica viewer counts kept in Redis (see `presence.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceSettings {
    /// How often a replica writes its counts, reads the totals and emits the changed ones
    /// (`PRESENCE_INTERVAL_MS`, default 1,000 ms, 1,000 to 60,000): `poll-presence` goes out
    /// at most this often per poll.
    pub interval: Duration,
    /// How long a replica's heartbeat outlives its last write (`PRESENCE_TTL_MS`, default
    /// 5,000 ms, more than twice the interval): a replica gone without a goodbye stops being
    /// counted within this time plus one interval.
    pub ttl: Duration,
}

impl PresenceSettings {
    /// Reads `PRESENCE_INTERVAL_MS` and `PRESENCE_TTL_MS`.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let interval = vars.ranged_or("PRESENCE_INTERVAL_MS", 1_000u64, 1_000..=60_000)?;
        let ttl = vars.ranged_or("PRESENCE_TTL_MS", 5_000u64, 1_000..=600_000)?;
        // A heartbeat that lapses between two writes would drop a live replica's viewers.
        if ttl <= 2 * interval {
            return Err(ConfigError::Invalid {
                name: "PRESENCE_TTL_MS",
                value: ttl.to_string(),
                reason: format!("must be more than twice PRESENCE_INTERVAL_MS ({interval})"),
            });
        }
        Ok(Self {
            interval: Duration::from_millis(interval),
            ttl: Duration::from_millis(ttl),
        })
    }
}

impl Config {
    /// Reads the configuration from `vars`, naming the variable on any error.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            database_url: vars.required("DATABASE_URL")?,
            redis: RedisSettings::from_vars(vars)?,
            kafka: KafkaSettings::from_vars(vars)?,
            port: vars.parsed_or("REALTIME_SERVICE_PORT", 3003)?,
            http: HttpSettings::from_vars(vars)?,
            poll_updates_topic: vars.or_default("POLL_UPDATES_TOPIC", POLL_UPDATES_TOPIC),
            group_prefix: vars.or_default("REALTIME_GROUP_PREFIX", "realtime-service"),
            jwt: JwtSettings::from_vars(vars)?,
            presence: PresenceSettings::from_vars(vars)?,
            worker_threads: vars.ranged_or("REALTIME_WORKER_THREADS", 1usize, 1..=64)?,
            allowed_origins: allowed_origins(vars)?,
        })
    }
}

/// `REALTIME_ALLOWED_ORIGINS`, each entry checked to be an origin as a browser sends it in
/// `Origin`: `http` or `https`, a host, an optional port, nothing after.
fn allowed_origins(vars: &Vars) -> Result<Vec<String>, ConfigError> {
    const NAME: &str = "REALTIME_ALLOWED_ORIGINS";
    let listed = vars.or_default(NAME, "");
    let mut origins = Vec::new();
    for origin in listed.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let invalid = |reason: &str| ConfigError::Invalid {
            name: NAME,
            value: listed.clone(),
            reason: format!("{origin:?} {reason}"),
        };
        let uri: Uri = origin
            .parse()
            .map_err(|_| invalid("is not a URL such as https://polls.example.org"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(invalid("needs http:// or https:// and a host"));
        }
        let extra = origin.ends_with('/')
            || uri.path() != "/"
            || uri.query().is_some()
            || uri.authority().is_some_and(|a| a.as_str().contains('@'));
        if extra {
            return Err(invalid(
                "is not an origin: no user, path, query or trailing slash",
            ));
        }
        origins.push(origin.to_owned());
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_is_required() {
        let err = Config::from_vars(&Vars::from_pairs([]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn defaults_apply() {
        let config = Config::from_vars(&Vars::from_pairs([
            ("DATABASE_URL", "postgres://x/y"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ]))
        .unwrap();
        assert_eq!(config.port, 3003);
        assert_eq!(config.poll_updates_topic, "poll-updates");
        assert_eq!(config.presence.interval, Duration::from_secs(1));
        assert_eq!(config.presence.ttl, Duration::from_secs(5));
        assert_eq!(config.worker_threads, 1);
        assert!(config.allowed_origins.is_empty());
    }

    #[test]
    fn allowed_origins_are_origins() {
        let read =
            |value| allowed_origins(&Vars::from_pairs([("REALTIME_ALLOWED_ORIGINS", value)]));
        assert_eq!(
            read(" http://localhost:3001, https://polls.example.org ").unwrap(),
            ["http://localhost:3001", "https://polls.example.org"]
        );
        for wrong in [
            "http://user@a.example",
            "localhost:3001",
            "http://localhost:3001/",
            "https://a.example/x",
            "ftp://a.example",
            "*",
        ] {
            let err = read(wrong).unwrap_err().to_string();
            assert!(err.contains("REALTIME_ALLOWED_ORIGINS"), "{wrong}: {err}");
        }
    }

    #[test]
    fn a_presence_ttl_shorter_than_two_intervals_is_refused() {
        let err = PresenceSettings::from_vars(&Vars::from_pairs([
            ("PRESENCE_INTERVAL_MS", "2000"),
            ("PRESENCE_TTL_MS", "3000"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("PRESENCE_TTL_MS"), "{err}");
    }
}
