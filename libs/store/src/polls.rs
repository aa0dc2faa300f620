//! Polls as stored in PostgreSQL: their definitions (what a vote is checked against), when
//! they are closed, and every statement that creates, closes, deletes or looks one up.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use pollstream_wire::PollStatus;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::ballots::{self, BallotCheck, ChoiceLimits};
use crate::join_code::JoinCode;
use crate::visibility::ResultsVisibility;

/// A poll's status at `at`: `closing` from its `closes_at` on (it closes by itself) and from
/// its `closed_at` on (its owner closed it, or it was closed on time), until its row says
/// `closed`, which only the aggregator's closer writes, once every vote accepted before the
/// close is counted; before both, `stored`, the status its row had when read. This is the one
/// rule for "is the poll open", in voting-api (votes, views, results), in snapshots, and in the
/// aggregator (was a vote cast after the close).
pub fn status_at(
    stored: PollStatus,
    closes_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> PollStatus {
    let reached = |moment: Option<DateTime<Utc>>| moment.is_some_and(|moment| moment <= at);
    if stored == PollStatus::Open && (reached(closes_at) || reached(closed_at)) {
        PollStatus::Closing
    } else {
        stored
    }
}

/// The status a row stores, as [`status_at`] takes it: anything unknown is closed.
pub(crate) fn stored_status(status: &str) -> PollStatus {
    PollStatus::parse(status).unwrap_or(PollStatus::Closed)
}

/// Single or multiple choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PollKind {
    /// Exactly one option per ballot.
    Single,
    /// Between `min_choices` and `max_choices` distinct options per ballot.
    Multiple,
}

impl PollKind {
    /// The spelling stored in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            PollKind::Single => "single",
            PollKind::Multiple => "multiple",
        }
    }

    /// Parses the stored spelling; anything but `multiple` is single choice.
    pub fn parse(value: &str) -> Self {
        if value == "multiple" {
            PollKind::Multiple
        } else {
            PollKind::Single
        }
    }

    /// The ballot limits of a poll of this kind as stored: exactly one option for `single`,
    /// `min_choices` to `max_choices` (each at least 1) for `multiple`.
    pub fn choice_limits(self, min_choices: i32, max_choices: i32) -> ChoiceLimits {
        match self {
            PollKind::Single => ChoiceLimits { min: 1, max: 1 },
            PollKind::Multiple => ChoiceLimits {
                min: min_choices.max(1) as usize,
                max: max_choices.max(1) as usize,
            },
        }
    }
}

/// One answer a voter can choose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PollOption {
    /// Stable identifier voters send.
    pub id: Uuid,
    /// What the screen shows.
    pub text: String,
}

/// A poll as created, without counts. Serialized (JSON, these field names) only for the
/// copy voting-api shares in Redis for when PostgreSQL cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollDefinition {
    /// Primary key; the Kafka key of its votes.
    pub id: Uuid,
    /// Short join code shown to the audience.
    pub code: String,
    /// Subject of the token that created it.
    pub owner_id: String,
    /// The question.
    pub question: String,
    /// Single or multiple choice.
    pub kind: PollKind,
    /// Fewest options one ballot may hold.
    pub min_choices: i32,
    /// Most options one ballot may hold.
    pub max_choices: i32,
    /// Who sees counts, and when.
    pub visibility: ResultsVisibility,
    /// Whether guest tokens may vote; `false` means the poll needs accounts.
    pub allow_guests: bool,
    /// Open or closed, as stored.
    pub status: PollStatus,
    /// When the poll stops taking votes by itself, if ever.
    pub closes_at: Option<DateTime<Utc>>,
    /// When it was closed, if it was.
    pub closed_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Options in display order.
    pub options: Vec<PollOption>,
}

impl PollDefinition {
    /// The status in force at `now` ([`status_at`]): a poll past its `closes_at` is closed even
    /// before the row says so.
    pub fn status_at(&self, now: DateTime<Utc>) -> PollStatus {
        status_at(self.status, self.closes_at, self.closed_at, now)
    }

    /// Checks a ballot's choices against this poll ([`ballots::check_choices`]).
    pub fn check_ballot(&self, option_ids: &[Uuid]) -> BallotCheck {
        ballots::check_choices(
            option_ids,
            self.kind.choice_limits(self.min_choices, self.max_choices),
            |id| self.options.iter().any(|option| option.id == *id),
        )
    }

    /// Loads a poll by its join code.
    pub async fn load_by_code(pool: &PgPool, code: &JoinCode) -> Result<Option<Self>, sqlx::Error> {
        let row: Option<PollRow> = sqlx::query_as(
            "SELECT id, code, owner_id, question, kind, min_choices, max_choices, results_visibility,
                    allow_guests, status, closes_at, closed_at, created_at
             FROM polls WHERE code = $1",
        )
        .bind(code.as_str())
        .fetch_optional(pool)
        .await?;
        Self::with_options(pool, row).await
    }

    /// Loads a poll by id.
    pub async fn load_by_id(pool: &PgPool, id: Uuid) -> Result<Option<Self>, sqlx::Error> {
        let row: Option<PollRow> = sqlx::query_as(
            "SELECT id, code, owner_id, question, kind, min_choices, max_choices, results_visibility,
                    allow_guests, status, closes_at, closed_at, created_at
             FROM polls WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?;
        Self::with_options(pool, row).await
    }

    async fn with_options(
        pool: &PgPool,
        row: Option<PollRow>,
    ) -> Result<Option<Self>, sqlx::Error> {
        let Some(row) = row else { return Ok(None) };
        let options: Vec<(Uuid, String)> =
            sqlx::query_as("SELECT id, text FROM options WHERE poll_id = $1 ORDER BY position")
                .bind(row.id)
                .fetch_all(pool)
                .await?;
        Ok(Some(PollDefinition {
            id: row.id,
            code: row.code,
            owner_id: row.owner_id,
            question: row.question,
            kind: PollKind::parse(&row.kind),
            min_choices: row.min_choices,
            max_choices: row.max_choices,
            visibility: ResultsVisibility::parse(&row.results_visibility),
            allow_guests: row.allow_guests,
            status: stored_status(&row.status),
            closes_at: row.closes_at,
            closed_at: row.closed_at,
            created_at: row.created_at,
            options: options
                .into_iter()
                .map(|(id, text)| PollOption { id, text })
                .collect(),
        }))
    }
}

#[derive(sqlx::FromRow)]
struct PollRow {
    id: Uuid,
    code: String,
    owner_id: String,
    question: String,
    kind: String,
    min_choices: i32,
    max_choices: i32,
    results_visibility: String,
    allow_guests: bool,
    status: String,
    closes_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

/// A checked new poll, ready to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollDraft {
    /// The question, normalised.
    pub question: String,
    /// Answers in display order, normalised.
    pub options: Vec<String>,
    /// Single or multiple choice.
    pub kind: PollKind,
    /// Fewest options one ballot may hold.
    pub min_choices: i32,
    /// Most options one ballot may hold.
    pub max_choices: i32,
    /// When the poll closes by itself, if ever.
    pub closes_at: Option<DateTime<Utc>>,
    /// Who sees counts, and when.
    pub visibility: ResultsVisibility,
    /// Whether guest tokens may vote.
    pub allow_guests: bool,
}

/// Why a poll could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Every random join code tried was taken.
    #[error("no free poll code after {0} attempts")]
    NoFreeCode(usize),
    /// PostgreSQL failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Join codes tried before giving up: a collision is unlikely (32^6 codes) but possible.
const CODE_ATTEMPTS: usize = 5;

/// Inserts `draft` as a new open poll of `owner` with a fresh random join code, its poll and
/// options in one transaction.
pub async fn insert(
    pool: &PgPool,
    owner: &str,
    draft: PollDraft,
) -> Result<PollDefinition, CreateError> {
    let id = Uuid::now_v7();
    let option_ids: Vec<Uuid> = draft.options.iter().map(|_| Uuid::now_v7()).collect();
    let positions: Vec<i32> = (0..draft.options.len() as i32).collect();
    for _ in 0..CODE_ATTEMPTS {
        let code = JoinCode::random();
        let mut tx = pool.begin().await?;
        let inserted: Option<(DateTime<Utc>,)> = sqlx::query_as(
            "INSERT INTO polls (id, code, owner_id, question, kind, min_choices, max_choices, closes_at,
                                results_visibility, allow_guests)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (code) DO NOTHING
             RETURNING created_at",
        )
        .bind(id)
        .bind(code.as_str())
        .bind(owner)
        .bind(&draft.question)
        .bind(draft.kind.as_str())
        .bind(draft.min_choices)
        .bind(draft.max_choices)
        .bind(draft.closes_at)
        .bind(draft.visibility.as_str())
        .bind(draft.allow_guests)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((created_at,)) = inserted else {
            continue;
        };
        sqlx::query(
            "INSERT INTO options (id, poll_id, position, text)
             SELECT o.id, $1, o.position, o.text
             FROM UNNEST($2::uuid[], $3::int[], $4::text[]) AS o(id, position, text)",
        )
        .bind(id)
        .bind(&option_ids)
        .bind(&positions)
        .bind(&draft.options)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(PollDefinition {
            id,
            code: code.into(),
            owner_id: owner.to_owned(),
            question: draft.question,
            kind: draft.kind,
            min_choices: draft.min_choices,
            max_choices: draft.max_choices,
            visibility: draft.visibility,
            allow_guests: draft.allow_guests,
            status: PollStatus::Open,
            closes_at: draft.closes_at,
            closed_at: None,
            created_at,
            options: option_ids
                .into_iter()
                .zip(draft.options)
                .map(|(id, text)| PollOption { id, text })
                .collect(),
        });
    }
    Err(CreateError::NoFreeCode(CODE_ATTEMPTS))
}

/// Closes `poll_id` now, with a new `seq`: it reads `closing` until the closer finalizes it
/// ([`finalize`]). A poll already closing or closed is left as it is.
pub async fn close(executor: impl PgExecutor<'_>, poll_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE polls SET status = 'closing', closed_at = now(), seq = seq + 1
         WHERE id = $1 AND status = 'open'",
    )
    .bind(poll_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Closes every open poll whose `closesAt` has passed, as of its `closesAt`, with a new
/// `seq`, and returns their ids; they read `closing` until [`finalize`]. This is [`status_at`]
/// in SQL: a poll is closing from its `closesAt` on, whether or not its row says so yet.
/// Several callers may run it at once; each poll is closed by exactly one of them (one atomic
/// `UPDATE`).
pub async fn close_due(executor: impl PgExecutor<'_>) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE polls SET status = 'closing', closed_at = closes_at, seq = seq + 1
         WHERE status = 'open' AND closes_at <= now()
         RETURNING id",
    )
    .fetch_all(executor)
    .await
}

/// Up to `limit` closing polls whose `closed_at` is at least `settled` ago by the database's
/// clock (the clock `closed_at` was written by): no vote accepted before their close can still
/// be on its way to Kafka. Oldest close first.
pub async fn closings_settled(
    executor: impl PgExecutor<'_>,
    settled: std::time::Duration,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM polls
         WHERE status = 'closing' AND closed_at <= now() - make_interval(secs => $1)
         ORDER BY closed_at, id LIMIT $2",
    )
    .bind(settled.as_secs_f64())
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Makes the closing polls of `poll_ids` `closed`, with a new `seq`: their tally is final. Only
/// once every vote accepted before their close is counted (the closer's fence). Returns the
/// ids it finalized; one already closed, or deleted, is left out.
pub async fn finalize(
    executor: impl PgExecutor<'_>,
    poll_ids: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE polls SET status = 'closed', seq = seq + 1
         WHERE id = ANY($1) AND status = 'closing'
         RETURNING id",
    )
    .bind(poll_ids)
    .fetch_all(executor)
    .await
}

/// Up to `limit` closing polls whose `closing` snapshot has not been produced to
/// `poll-updates` yet, in id order.
pub async fn unannounced_closings(
    executor: impl PgExecutor<'_>,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM polls WHERE status = 'closing' AND NOT closing_announced
         ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Records that the `closing` snapshots of `poll_ids` have been produced.
pub async fn mark_closing_announced(
    executor: impl PgExecutor<'_>,
    poll_ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE polls SET closing_announced = true WHERE id = ANY($1)")
        .bind(poll_ids)
        .execute(executor)
        .await?;
    Ok(())
}

/// Up to `limit` closed polls whose final snapshot has not been announced on `poll-updates`
/// yet, in id order.
pub async fn unannounced_closes(
    executor: impl PgExecutor<'_>,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM polls WHERE status = 'closed' AND NOT close_announced ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Records that the final snapshots of `poll_ids` have been announced.
pub async fn mark_close_announced(
    executor: impl PgExecutor<'_>,
    poll_ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE polls SET close_announced = true WHERE id = ANY($1)")
        .bind(poll_ids)
        .execute(executor)
        .await?;
    Ok(())
}

/// What a vote is counted against: a poll's ballot limits, when it closed or closes, and its
/// option ids.
#[derive(Debug, Clone)]
pub struct CountingRules {
    /// How many options one ballot may hold.
    pub choices: ChoiceLimits,
    /// Votes cast from this moment on are not counted.
    pub closes_at: Option<DateTime<Utc>>,
    /// Votes cast from the moment the poll was closed (by its owner, or on time) are not
    /// counted either.
    pub closed_at: Option<DateTime<Utc>>,
    /// The poll is `closed`: its final count is announced, and no vote may change it, however
    /// late it arrives (a send that voting-api gave up on, answered `503`, can still land).
    pub counted_final: bool,
    /// The poll's option ids.
    pub options: Vec<Uuid>,
}

/// The [`CountingRules`] of each existing poll in `poll_ids`, with the polls' rows locked
/// (`FOR UPDATE`, in id order) until the transaction ends: flushes of the same poll by two
/// aggregator replicas (briefly possible during a rebalance) then take turns, so `seq` and
/// the tallies stay consistent.
pub async fn lock_for_counting(
    connection: &mut PgConnection,
    poll_ids: &[Uuid],
) -> Result<HashMap<Uuid, CountingRules>, sqlx::Error> {
    let polls: Vec<CountingRow> = sqlx::query_as(
        "SELECT id, kind, min_choices, max_choices, closes_at, closed_at, status FROM polls
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(poll_ids)
    .fetch_all(&mut *connection)
    .await?;
    let options: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT poll_id, id FROM options WHERE poll_id = ANY($1)")
            .bind(poll_ids)
            .fetch_all(&mut *connection)
            .await?;
    let mut rules: HashMap<Uuid, CountingRules> = polls
        .into_iter()
        .map(|row| {
            let rules = CountingRules {
                choices: PollKind::parse(&row.kind).choice_limits(row.min_choices, row.max_choices),
                closes_at: row.closes_at,
                closed_at: row.closed_at,
                counted_final: stored_status(&row.status) == PollStatus::Closed,
                options: Vec::new(),
            };
            (row.id, rules)
        })
        .collect();
    for (poll_id, option_id) in options {
        if let Some(rule) = rules.get_mut(&poll_id) {
            rule.options.push(option_id);
        }
    }
    Ok(rules)
}

#[derive(sqlx::FromRow)]
struct CountingRow {
    id: Uuid,
    kind: String,
    min_choices: i32,
    max_choices: i32,
    closes_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    status: String,
}

/// Adds newly counted ballots to the tallies in place (`votes = votes + n`, atomic in
/// PostgreSQL): `per_option` to each option's count, `per_poll` to each poll's total, and a
/// new `seq` for each poll in `per_poll`. Each slice holds `(id, n)` pairs, sorted by id so
/// that concurrent flushes lock rows in the same order.
pub async fn add_to_tallies(
    connection: &mut PgConnection,
    per_option: &[(Uuid, i64)],
    per_poll: &[(Uuid, i64)],
) -> Result<(), sqlx::Error> {
    let (ids, counts): (Vec<Uuid>, Vec<i64>) = per_option.iter().copied().unzip();
    sqlx::query(
        "UPDATE options SET votes = votes + d.n
         FROM UNNEST($1::uuid[], $2::bigint[]) AS d(id, n)
         WHERE options.id = d.id",
    )
    .bind(&ids)
    .bind(&counts)
    .execute(&mut *connection)
    .await?;
    let (ids, counts): (Vec<Uuid>, Vec<i64>) = per_poll.iter().copied().unzip();
    sqlx::query(
        "UPDATE polls SET seq = seq + 1, total = total + d.n
         FROM UNNEST($1::uuid[], $2::bigint[]) AS d(id, n)
         WHERE polls.id = d.id",
    )
    .bind(&ids)
    .bind(&counts)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Deletes `poll_id` with its options and ballots.
pub async fn delete(executor: impl PgExecutor<'_>, poll_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM polls WHERE id = $1")
        .bind(poll_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// One poll in its owner's list, as `GET /api/v1/polls/mine` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollSummary {
    /// Primary key.
    pub id: Uuid,
    /// Join code.
    pub code: String,
    /// The question.
    pub question: String,
    /// Status at the time of reading ([`status_at`]).
    pub status: PollStatus,
    /// Ballots counted.
    pub total: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it closes by itself, if ever.
    pub closes_at: Option<DateTime<Utc>>,
    /// Whether guest tokens may vote.
    pub allow_guests: bool,
}

/// The polls of `owner`, newest first: at most `limit` of them after skipping `offset`.
pub async fn owned_by(
    executor: impl PgExecutor<'_>,
    owner: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<PollSummary>, sqlx::Error> {
    let rows: Vec<SummaryRow> = sqlx::query_as(
        "SELECT id, code, question, status, total, created_at, closes_at, closed_at, allow_guests
         FROM polls
         WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(owner)
    .bind(limit)
    .bind(offset)
    .fetch_all(executor)
    .await?;
    let now = Utc::now();
    Ok(rows
        .into_iter()
        .map(|row| PollSummary {
            status: status_at(
                stored_status(&row.status),
                row.closes_at,
                row.closed_at,
                now,
            ),
            id: row.id,
            code: row.code,
            question: row.question,
            total: row.total,
            created_at: row.created_at,
            closes_at: row.closes_at,
            allow_guests: row.allow_guests,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: Uuid,
    code: String,
    question: String,
    status: String,
    total: i64,
    created_at: DateTime<Utc>,
    closes_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    allow_guests: bool,
}

/// The id of the poll whose join code is `code`, if there is one.
pub async fn id_by_code(
    executor: impl PgExecutor<'_>,
    code: &JoinCode,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM polls WHERE code = $1")
        .bind(code.as_str())
        .fetch_optional(executor)
        .await
}

/// Who owns a poll and who may see its counts: what deciding on a viewer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsAccess {
    /// The owner always sees counts.
    pub owner_id: String,
    /// The poll's rule.
    pub visibility: ResultsVisibility,
}

/// Owner and visibility of `poll_id`, if there is such a poll.
pub async fn results_access(
    executor: impl PgExecutor<'_>,
    poll_id: Uuid,
) -> Result<Option<ResultsAccess>, sqlx::Error> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT owner_id, results_visibility FROM polls WHERE id = $1")
            .bind(poll_id)
            .fetch_optional(executor)
            .await?;
    Ok(row.map(|(owner_id, visibility)| ResultsAccess {
        owner_id,
        visibility: ResultsVisibility::parse(&visibility),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn choice_limits_follow_the_kind() {
        assert_eq!(
            PollKind::Single.choice_limits(1, 3),
            ChoiceLimits { min: 1, max: 1 }
        );
        assert_eq!(
            PollKind::Multiple.choice_limits(2, 3),
            ChoiceLimits { min: 2, max: 3 }
        );
        assert_eq!(
            PollKind::Multiple.choice_limits(0, 0),
            ChoiceLimits { min: 1, max: 1 }
        );
    }

    #[test]
    fn a_poll_is_closed_from_its_closing_moments_on() {
        let now = Utc::now();
        let second = Duration::seconds(1);
        let open = PollStatus::Open;
        assert_eq!(status_at(open, None, None, now), PollStatus::Open);
        assert_eq!(
            status_at(open, Some(now + second), None, now),
            PollStatus::Open
        );
        assert_eq!(status_at(open, Some(now), None, now), PollStatus::Closing);
        assert_eq!(
            status_at(open, Some(now - second), None, now),
            PollStatus::Closing
        );
        assert_eq!(
            status_at(open, None, Some(now - second), now),
            PollStatus::Closing
        );
        assert_eq!(
            status_at(open, Some(now + second), Some(now - second), now),
            PollStatus::Closing
        );
        assert_eq!(
            status_at(open, None, Some(now + second), now),
            PollStatus::Open
        );
        // A row that says closed is closed, whatever the clocks say.
        assert_eq!(
            status_at(PollStatus::Closed, Some(now + second), None, now),
            PollStatus::Closed
        );
        assert_eq!(stored_status("open"), PollStatus::Open);
        assert_eq!(stored_status("closed"), PollStatus::Closed);
        assert_eq!(stored_status("closing"), PollStatus::Closing);
        // Only the closer makes a poll closed: a closing row past its close stays closing.
        assert_eq!(
            status_at(PollStatus::Closing, None, Some(now - second), now),
            PollStatus::Closing
        );
        assert_eq!(stored_status("archived"), PollStatus::Closed);
    }
}
