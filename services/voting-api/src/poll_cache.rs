//! Poll definitions kept in memory for a short time, and served past it while PostgreSQL
//! cannot answer.
//!
//! Every vote must be validated against its poll (options, kind, status). Reading PostgreSQL
//! for each of tens of thousands of votes per second would make the database the bottleneck,
//! so definitions are cached for `POLL_CACHE_TTL_MS`. Concurrent misses for the same poll are
//! coalesced into one query. Unknown polls are not cached, so a poll created through another
//! replica is found at once.
//!
//! A vote needs PostgreSQL only for this definition: Kafka sits between ingest and counting so
//! that a database outage does not stop the audience. So a definition that has expired is
//! still served while the database fails to answer, for at most
//! `POLL_CACHE_STALE_IF_ERROR_SECS` since it was last read (the `stale-if-error` of RFC 5861,
//! HTTP caching's answer to the same problem). What a stale definition could get wrong is only
//! whether the poll is still open, and closing still takes effect: the vote's Redis script
//! checks the poll's closed flag, and the definition's own `closesAt` is applied to every vote.
//!
//! Each definition read is also copied to Redis (`poll-definition:v1:id:{id}` and
//! `poll-definition:v1:code:{CODE}`, JSON, expiring after the same bound; the `v1` changes with
//! the JSON's shape, so replicas of two versions never read each other's), so that a replica
//! that never read a poll, one just restarted for instance, can still take its votes during an
//! outage. The copy is what PostgreSQL said when some replica last read it, which is no worse
//! than this replica's own copy: the closed flag and `closesAt` still apply, and a deleted
//! poll's closed flag refuses its votes. A poll no replica has read within that bound is `503`
//! during an outage, within [`REFRESH_WAIT`] once the database is known to be failing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::future::Cache;
use pollstream_infra::log_throttle::LogThrottle;
use pollstream_store::{JoinCode, PollDefinition};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::metric_names::POLL_CACHE_STALE_SERVED;

/// Most definitions kept, fresh or stale.
const MAX_ENTRIES: u64 = 100_000;

/// How long a vote waits for an expired definition to be read again before it is answered
/// with the stale one: a healthy database answers in a few milliseconds, a stopped one only
/// after the pool's acquire timeout (3 s), which a vote should not wait out.
const REFRESH_WAIT: Duration = Duration::from_millis(250);

/// How a request names a poll.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PollKey {
    Code(String),
    Id(Uuid),
}

impl PollKey {
    /// Both keys `poll` is found by.
    fn of(poll: &PollDefinition) -> [PollKey; 2] {
        [PollKey::Id(poll.id), PollKey::Code(poll.code.clone())]
    }

    /// The Redis key of the shared copy found by this key.
    fn shared(&self) -> String {
        match self {
            PollKey::Code(code) => format!("poll-definition:v1:code:{code}"),
            PollKey::Id(id) => format!("poll-definition:v1:id:{id}"),
        }
    }
}

/// What one read of a poll found: the poll, no such poll, or the database's failure.
type Lookup = Result<Option<Arc<PollDefinition>>, ApiError>;

/// Cache of poll definitions by code and by id.
#[derive(Clone)]
pub struct PollCache {
    db: PgPool,
    /// Definitions read within `POLL_CACHE_TTL_MS`: served without a query.
    fresh: Cache<PollKey, Arc<PollDefinition>>,
    /// Every definition read within `POLL_CACHE_STALE_IF_ERROR_SECS`, for when the database
    /// cannot answer; `None` when that bound is zero.
    last_read: Option<Cache<PollKey, Arc<PollDefinition>>>,
    /// Where every replica's last read of a definition is shared, for as long; `None` when
    /// that bound is zero.
    shared: Option<(ConnectionManager, Duration)>,
    /// Whether the last read failed or was not answered within [`REFRESH_WAIT`]: while it
    /// did, votes are answered from stale definitions at once instead of each waiting first,
    /// and a poll with no copy here waits at most [`REFRESH_WAIT`] for the database.
    database_failing: Arc<AtomicBool>,
}

impl PollCache {
    /// A cache over `db` whose entries are fresh for `ttl` and served stale, while `db`
    /// fails, until `stale_if_error` after they were last read (zero: never), by this replica
    /// or, through `redis`, by any.
    pub fn new(
        db: PgPool,
        redis: ConnectionManager,
        ttl: Duration,
        stale_if_error: Duration,
    ) -> Self {
        let cache = |ttl| {
            Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(ttl)
                .build()
        };
        Self {
            db,
            fresh: cache(ttl),
            last_read: (!stale_if_error.is_zero()).then(|| cache(stale_if_error.max(ttl))),
            shared: (!stale_if_error.is_zero()).then(|| (redis, stale_if_error.max(ttl))),
            database_failing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The poll with join code `code` as typed ([`JoinCode::parse`]), or `404`; `503
    /// database_unavailable` if it must be read and PostgreSQL cannot answer.
    pub async fn by_code(&self, code: &str) -> Result<Arc<PollDefinition>, ApiError> {
        let code = JoinCode::parse(code).map_err(|unknown| ApiError::PollNotFound(unknown.0))?;
        let db = self.db.clone();
        let lookup = code.clone();
        self.get(PollKey::Code(code.as_str().to_owned()), async move {
            PollDefinition::load_by_code(&db, &lookup).await
        })
        .await?
        .ok_or_else(|| ApiError::PollNotFound(code.into()))
    }

    /// The poll with id `id`, or `404`; `503` as for [`PollCache::by_code`].
    pub async fn by_id(&self, id: Uuid) -> Result<Arc<PollDefinition>, ApiError> {
        let db = self.db.clone();
        self.get(PollKey::Id(id), async move {
            PollDefinition::load_by_id(&db, id).await
        })
        .await?
        .ok_or(ApiError::PollNotFound(id.to_string()))
    }

    async fn get(
        &self,
        key: PollKey,
        load: impl Future<Output = Result<Option<PollDefinition>, sqlx::Error>> + Send + 'static,
    ) -> Lookup {
        if let Some(poll) = self.fresh.get(&key).await {
            return Ok(Some(poll));
        }
        let stale = match &self.last_read {
            Some(last_read) => last_read.get(&key).await,
            None => None,
        };
        let failing = self.database_failing.load(Ordering::Relaxed);
        if stale.is_none() && !failing {
            return match self.read(key.clone(), load).await {
                Err(err @ ApiError::Unavailable { .. }) => match self.shared_copy(&key).await {
                    Some(shared) => Ok(Some(self.serve_stale(shared, Some(&err)))),
                    None => Err(err),
                },
                found => found,
            };
        }
        let stale = match stale {
            Some(stale) => Some(stale),
            // The database is failing and this replica has no copy: another replica's, at once.
            None => self.shared_copy(&key).await,
        };
        // The read runs to its end on its own, so that a vote that stops waiting for it does not
        // cancel it, and the next vote finds the definition fresh again.
        let this = self.clone();
        let read = tokio::spawn(async move { this.read(key, load).await });
        let answer = if stale.is_some() && failing {
            None
        } else {
            tokio::time::timeout(REFRESH_WAIT, read).await.ok()
        };
        match (answer, stale) {
            (Some(Ok(Ok(found))), _) => Ok(found),
            (Some(Ok(Err(err))), Some(stale)) => Ok(Some(self.serve_stale(stale, Some(&err)))),
            (Some(Ok(Err(err))), None) => Err(err),
            (Some(Err(err)), _) => Err(ApiError::Internal(format!("poll read task failed: {err}"))),
            (None, Some(stale)) => {
                self.database_failing.store(true, Ordering::Relaxed);
                Ok(Some(self.serve_stale(stale, None)))
            }
            // While the database is failing, a poll with no copy here is refused within the
            // wait rather than after the pool's acquire timeout: such votes would otherwise
            // hold their vote slots for seconds, crowding out the votes that can be taken.
            (None, None) => Err(ApiError::unavailable(
                "postgres",
                format!("no answer within {} ms", REFRESH_WAIT.as_millis()),
            )),
        }
    }

    /// Reads the poll (one query for concurrent callers) and records what the database said.
    async fn read(
        &self,
        key: PollKey,
        load: impl Future<Output = Result<Option<PollDefinition>, sqlx::Error>>,
    ) -> Lookup {
        let this = self.clone();
        let result = self
            .fresh
            .try_get_with(key.clone(), async move {
                match load.await {
                    Ok(Some(poll)) => {
                        // Shared once per read, not once per caller that waited on it.
                        let poll = Arc::new(poll);
                        this.share(&poll);
                        Ok(poll)
                    }
                    Ok(None) => Err(None),
                    Err(err) => Err(Some(err.to_string())),
                }
            })
            .await;
        match result {
            Ok(poll) => {
                self.database_failing.store(false, Ordering::Relaxed);
                if let Some(last_read) = &self.last_read {
                    last_read.insert(key, poll.clone()).await;
                }
                Ok(Some(poll))
            }
            Err(err) => match err.as_ref() {
                None => {
                    self.database_failing.store(false, Ordering::Relaxed);
                    if let Some(last_read) = &self.last_read {
                        last_read.invalidate(&key).await;
                    }
                    // No such poll (deleted through a replica whose drop of the copy was lost,
                    // or a code never used): no copy may answer for it during an outage.
                    if let Some((redis, _)) = &self.shared {
                        let _: Result<(), _> = redis.clone().del(key.shared()).await;
                    }
                    Ok(None)
                }
                Some(detail) => {
                    self.database_failing.store(true, Ordering::Relaxed);
                    Err(ApiError::unavailable("postgres", detail))
                }
            },
        }
    }

    /// `stale`, counted and logged (one line a second) as served past its TTL.
    fn serve_stale(
        &self,
        stale: Arc<PollDefinition>,
        err: Option<&ApiError>,
    ) -> Arc<PollDefinition> {
        static STALE: LogThrottle = LogThrottle::new(1_000);
        metrics::counter!(POLL_CACHE_STALE_SERVED).increment(1);
        if let Some(held_back) = STALE.admit() {
            let error = match err {
                Some(ApiError::Unavailable { detail, .. }) => detail.clone(),
                Some(other) => other.to_string(),
                None => format!("no answer within {} ms", REFRESH_WAIT.as_millis()),
            };
            tracing::warn!(poll_id = %stale.id, %error, held_back, "PostgreSQL cannot answer, serving a poll definition past its TTL");
        }
        stale
    }

    /// Another replica's last read of the poll `key` names, from Redis; `None` if there is
    /// none within the bound or Redis cannot answer.
    async fn shared_copy(&self, key: &PollKey) -> Option<Arc<PollDefinition>> {
        let (redis, _) = self.shared.as_ref()?;
        let json: Option<String> = redis.clone().get(key.shared()).await.ok()?;
        serde_json::from_str(&json?).ok().map(Arc::new)
    }

    /// Shares `poll` as just read, in the background: a vote does not wait for it, and a
    /// failure only leaves the older copy in place.
    fn share(&self, poll: &Arc<PollDefinition>) {
        let Some((redis, bound)) = &self.shared else {
            return;
        };
        let Ok(json) = serde_json::to_string(poll.as_ref()) else {
            return;
        };
        let mut redis = redis.clone();
        let keys = PollKey::of(poll).map(|key| key.shared());
        let secs = bound.as_secs().max(1);
        tokio::spawn(async move {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.set_ex(key, &json, secs).ignore();
            }
            let _: Result<(), _> = pipe.query_async(&mut redis).await;
        });
    }

    /// Adds a poll just created, so its first votes need no query.
    pub async fn insert(&self, poll: PollDefinition) {
        let poll = Arc::new(poll);
        self.share(&poll);
        for key in PollKey::of(&poll) {
            if let Some(last_read) = &self.last_read {
                last_read.insert(key.clone(), poll.clone()).await;
            }
            self.fresh.insert(key, poll.clone()).await;
        }
    }

    /// Drops a poll that was deleted, here and in Redis (its closed flag, set first, refuses
    /// votes on any copy that outlives it).
    pub async fn forget(&self, poll: &PollDefinition) {
        if let Some((redis, _)) = &self.shared {
            let keys = PollKey::of(poll).map(|key| key.shared());
            let _: Result<(), _> = redis.clone().del(&keys).await;
        }
        for key in PollKey::of(poll) {
            if let Some(last_read) = &self.last_read {
                last_read.invalidate(&key).await;
            }
            self.fresh.invalidate(&key).await;
        }
    }
}
