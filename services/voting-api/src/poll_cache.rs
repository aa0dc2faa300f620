//! Poll definitions kept in memory for a short time.
//!
//! Every vote must be validated against its poll (options, kind, status). Reading PostgreSQL
//! for each of tens of thousands of votes per second would make the database the bottleneck,
//! so definitions are cached for `POLL_CACHE_TTL_MS`. Concurrent misses for the same poll are
//! coalesced into one query. Unknown polls are not cached, so a poll created through another
//! replica is found at once.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use pollstream_store::{JoinCode, PollDefinition};
use sqlx::PgPool;
use uuid::Uuid;

use crate::http::error::ApiError;

/// How a request names a poll.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PollKey {
    Code(String),
    Id(Uuid),
}

/// Cache of poll definitions by code and by id.
#[derive(Clone)]
pub struct PollCache {
    db: PgPool,
    entries: Cache<PollKey, Arc<PollDefinition>>,
}

impl PollCache {
    /// A cache over `db` whose entries live for `ttl`.
    pub fn new(db: PgPool, ttl: Duration) -> Self {
        Self {
            db,
            entries: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The poll with join code `code` as typed ([`JoinCode::parse`]), or `404`.
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

    /// The poll with id `id`, or `404`.
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
        load: impl Future<Output = Result<Option<PollDefinition>, sqlx::Error>>,
    ) -> Result<Option<Arc<PollDefinition>>, ApiError> {
        let result = self
            .entries
            .try_get_with(key, async move {
                match load.await {
                    Ok(Some(poll)) => Ok(Arc::new(poll)),
                    Ok(None) => Err(None),
                    Err(err) => Err(Some(err.to_string())),
                }
            })
            .await;
        match result {
            Ok(poll) => Ok(Some(poll)),
            Err(err) => match err.as_ref() {
                None => Ok(None),
                Some(detail) => Err(ApiError::unavailable("postgres", detail)),
            },
        }
    }

    /// Adds a poll just created, so its first votes need no query.
    pub async fn insert(&self, poll: PollDefinition) {
        let poll = Arc::new(poll);
        self.entries
            .insert(PollKey::Id(poll.id), poll.clone())
            .await;
        self.entries
            .insert(PollKey::Code(poll.code.clone()), poll)
            .await;
    }

    /// Drops a poll that was deleted.
    pub async fn forget(&self, poll: &PollDefinition) {
        self.entries.invalidate(&PollKey::Id(poll.id)).await;
        self.entries
            .invalidate(&PollKey::Code(poll.code.clone()))
            .await;
    }
}
