//! Which poll a client names and who may see its counts, looked up once and remembered.
//!
//! Join codes, owners and visibility never change once a poll exists, so both caches only
//! need a bound on their size.

use std::collections::HashMap;
use std::sync::Mutex;

use pollstream_store::polls::ResultsAccess;
use pollstream_store::{JoinCode, ballots, polls};
use pollstream_wire::{ErrorBody, RoomRequest};
use sqlx::PgPool;
use uuid::Uuid;

/// Most polls or codes remembered; both are immutable, so this only bounds memory.
const MAX_CACHED: usize = 100_000;

/// Resolves the polls clients name and their owner and visibility, cached.
pub struct PollAccessCache {
    /// Where codes and access are read on a miss.
    db: PgPool,
    /// Join code → poll id, filled on first use.
    codes: Mutex<HashMap<String, Uuid>>,
    /// Poll id → owner and visibility, filled on first use.
    access: Mutex<HashMap<Uuid, ResultsAccess>>,
}

impl PollAccessCache {
    /// An empty cache that reads from `db`.
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            codes: Mutex::new(HashMap::new()),
            access: Mutex::new(HashMap::new()),
        }
    }

    /// The poll a `join`/`leave` names; a code is looked up once and remembered.
    pub async fn resolve(&self, request: &RoomRequest) -> Result<Uuid, ErrorBody> {
        match (request.poll_id, request.code.as_deref()) {
            (Some(poll_id), _) => Ok(poll_id),
            (None, Some(code)) => {
                let code = JoinCode::parse(code)
                    .map_err(|unknown| ErrorBody::new("poll_not_found", unknown.to_string()))?;
                if let Some(id) = self
                    .codes
                    .lock()
                    .expect("codes lock poisoned")
                    .get(code.as_str())
                {
                    return Ok(*id);
                }
                let id = polls::id_by_code(&self.db, &code)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| {
                        ErrorBody::new(
                            "poll_not_found",
                            format!("no poll with code {:?}", code.as_str()),
                        )
                    })?;
                let mut codes = self.codes.lock().expect("codes lock poisoned");
                if codes.len() >= MAX_CACHED {
                    codes.clear();
                }
                codes.insert(code.into(), id);
                Ok(id)
            }
            (None, None) => Err(ErrorBody::new(
                "invalid_request",
                "give either `pollId` or `code`",
            )),
        }
    }

    /// Owner and visibility of `poll_id`.
    pub async fn access(&self, poll_id: Uuid) -> Result<ResultsAccess, ErrorBody> {
        if let Some(access) = self
            .access
            .lock()
            .expect("access lock poisoned")
            .get(&poll_id)
        {
            return Ok(access.clone());
        }
        let access = polls::results_access(&self.db, poll_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                ErrorBody::new("poll_not_found", format!("no poll with id {poll_id}"))
            })?;
        let mut cache = self.access.lock().expect("access lock poisoned");
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(poll_id, access.clone());
        Ok(access)
    }

    /// Whether `voter` has a counted ballot in `poll_id`.
    pub async fn has_counted_ballot(&self, poll_id: Uuid, voter: &str) -> Result<bool, ErrorBody> {
        ballots::is_counted(&self.db, poll_id, voter)
            .await
            .map_err(unavailable)
    }
}

fn unavailable(err: sqlx::Error) -> ErrorBody {
    tracing::warn!(error = %err, "Database unavailable for a socket request");
    ErrorBody::new(
        "unavailable",
        "cannot look up the poll right now, retry shortly",
    )
}
