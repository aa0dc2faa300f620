//! Poll definitions: what a vote is validated against.

use chrono::{DateTime, Utc};
use pollstream_wire::PollStatus;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// Single or multiple choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PollKind {
    /// Exactly one option per ballot.
    Single,
    /// Between one and `max_choices` distinct options per ballot.
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
}

/// Who may see a poll's counts, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultsVisibility {
    /// Everyone, at all times.
    #[default]
    Always,
    /// A voter once their own vote is counted; the owner always.
    AfterVote,
    /// Everyone once the poll is closed; the owner always.
    AfterClose,
    /// Only the owner.
    OwnerOnly,
}

impl ResultsVisibility {
    /// The spelling stored in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultsVisibility::Always => "always",
            ResultsVisibility::AfterVote => "after_vote",
            ResultsVisibility::AfterClose => "after_close",
            ResultsVisibility::OwnerOnly => "owner_only",
        }
    }

    /// Parses the stored spelling; anything unknown is the strictest mode.
    pub fn parse(value: &str) -> Self {
        match value {
            "always" => ResultsVisibility::Always,
            "after_vote" => ResultsVisibility::AfterVote,
            "after_close" => ResultsVisibility::AfterClose,
            _ => ResultsVisibility::OwnerOnly,
        }
    }
}

/// Whether a viewer may see counts right now, given what is known about them.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    /// The viewer owns the poll.
    pub is_owner: bool,
    /// The viewer's ballot in this poll is counted.
    pub has_counted_ballot: bool,
}

impl ResultsVisibility {
    /// The rule itself, kept in one place for the REST endpoint and the sockets.
    pub fn allows(self, viewer: Viewer, status: PollStatus) -> bool {
        viewer.is_owner
            || match self {
                ResultsVisibility::Always => true,
                ResultsVisibility::AfterVote => viewer.has_counted_ballot,
                ResultsVisibility::AfterClose => status == PollStatus::Closed,
                ResultsVisibility::OwnerOnly => false,
            }
    }

    /// Whether the rule depends on the viewer's own ballot.
    pub fn needs_ballot(self) -> bool {
        self == ResultsVisibility::AfterVote
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

/// A poll as created, without counts.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The status in force at `now`: a poll past its `closes_at` is closed even before the
    /// row says so.
    pub fn status_at(&self, now: DateTime<Utc>) -> PollStatus {
        match self.closes_at {
            Some(closes_at) if closes_at <= now => PollStatus::Closed,
            _ => self.status,
        }
    }

    /// Loads a poll by its join code (case-insensitive).
    pub async fn load_by_code(pool: &PgPool, code: &str) -> Result<Option<Self>, sqlx::Error> {
        let row: Option<PollRow> = sqlx::query_as(
            "SELECT id, code, owner_id, question, kind, min_choices, max_choices, results_visibility,
                    status, closes_at, closed_at, created_at
             FROM polls WHERE code = $1",
        )
        .bind(code.to_ascii_uppercase())
        .fetch_optional(pool)
        .await?;
        Self::with_options(pool, row).await
    }

    /// Loads a poll by id.
    pub async fn load_by_id(pool: &PgPool, id: Uuid) -> Result<Option<Self>, sqlx::Error> {
        let row: Option<PollRow> = sqlx::query_as(
            "SELECT id, code, owner_id, question, kind, min_choices, max_choices, results_visibility,
                    status, closes_at, closed_at, created_at
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
            kind: if row.kind == "multiple" {
                PollKind::Multiple
            } else {
                PollKind::Single
            },
            min_choices: row.min_choices,
            max_choices: row.max_choices,
            visibility: ResultsVisibility::parse(&row.results_visibility),
            status: PollStatus::parse(&row.status).unwrap_or(PollStatus::Closed),
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
    status: String,
    closes_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}
