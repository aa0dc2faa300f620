//! Polls, ballots and votes a test needs: written straight into the tables (for services
//! that only read polls), created through voting-api's API, or built to be produced.

use chrono::{DateTime, Utc};
use pollstream_wire::{OptionCount, PollSnapshot, PollStatus, RawVote, SCHEMA_VERSION};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// A poll to insert: owned by `owner`, question `Q`, options `option 0`, `option 1`, …, a
/// random join code; single choice unless [`NewPoll::max_choices`] allows more.
#[derive(Debug, Clone)]
pub struct NewPoll {
    options: usize,
    max_choices: i32,
    results_visibility: &'static str,
}

impl NewPoll {
    /// A single-choice poll with `options` options and results visible to everyone.
    pub fn new(options: usize) -> Self {
        Self {
            options,
            max_choices: 1,
            results_visibility: "always",
        }
    }

    /// Up to `max_choices` options per ballot; more than 1 makes it a `multiple` poll.
    pub fn max_choices(mut self, max_choices: i32) -> Self {
        self.max_choices = max_choices;
        self
    }

    /// Who may see the counts: `always`, `after_vote`, `after_close` or `owner_only`.
    pub fn results_visibility(mut self, visibility: &'static str) -> Self {
        self.results_visibility = visibility;
        self
    }

    /// Inserts the poll and its options, as voting-api stores a new one.
    pub async fn insert(self, db: &PgPool) -> StoredPoll {
        let id = Uuid::now_v7();
        let code = Uuid::new_v4().simple().to_string()[..12].to_uppercase();
        sqlx::query(
            "INSERT INTO polls (id, code, owner_id, question, kind, max_choices, results_visibility)
             VALUES ($1, $2, 'owner', 'Q', $3, $4, $5)",
        )
        .bind(id)
        .bind(&code)
        .bind(if self.max_choices > 1 {
            "multiple"
        } else {
            "single"
        })
        .bind(self.max_choices)
        .bind(self.results_visibility)
        .execute(db)
        .await
        .expect("inserting a test poll");
        let options: Vec<Uuid> = (0..self.options).map(|_| Uuid::now_v7()).collect();
        for (position, option) in options.iter().enumerate() {
            sqlx::query(
                "INSERT INTO options (id, poll_id, position, text) VALUES ($1, $2, $3, $4)",
            )
            .bind(option)
            .bind(id)
            .bind(position as i32)
            .bind(format!("option {position}"))
            .execute(db)
            .await
            .expect("inserting a test poll's option");
        }
        StoredPoll { id, code, options }
    }
}

/// A poll inserted by [`NewPoll::insert`].
#[derive(Debug, Clone)]
pub struct StoredPoll {
    /// Its id.
    pub id: Uuid,
    /// Its join code, upper case.
    pub code: String,
    /// Its option ids, in position order.
    pub options: Vec<Uuid>,
}

impl StoredPoll {
    /// A snapshot of this poll at `seq` with `votes` per option (position order), its total
    /// their sum, as the aggregator publishes one.
    pub fn snapshot(&self, seq: i64, votes: &[i64], status: PollStatus) -> PollSnapshot {
        assert_eq!(votes.len(), self.options.len(), "one count per option");
        PollSnapshot {
            v: SCHEMA_VERSION,
            poll_id: self.id,
            seq,
            total: votes.iter().sum(),
            status,
            options: self
                .options
                .iter()
                .zip(votes)
                .map(|(&option_id, &votes)| OptionCount { option_id, votes })
                .collect(),
            at: Utc::now(),
        }
    }
}

/// Inserts the ballot of `voter` for `option_ids` in `poll_id` as the aggregator records one,
/// without touching the counters: for tests of what reads ballots.
pub async fn insert_ballot(db: &PgPool, poll_id: Uuid, voter: &str, option_ids: &[Uuid]) {
    sqlx::query(
        "INSERT INTO ballots (poll_id, voter_id, vote_id, option_ids, cast_at)
         VALUES ($1, $2, $3, $4, now())",
    )
    .bind(poll_id)
    .bind(voter)
    .bind(Uuid::now_v7())
    .bind(option_ids)
    .execute(db)
    .await
    .expect("inserting a test ballot");
}

/// A vote of `voter` for `option_ids` in `poll_id`, cast at `cast_at`, with a fresh vote id.
pub fn raw_vote(
    poll_id: Uuid,
    voter: &str,
    option_ids: &[Uuid],
    cast_at: DateTime<Utc>,
) -> RawVote {
    RawVote {
        v: SCHEMA_VERSION,
        vote_id: Uuid::now_v7(),
        poll_id,
        voter_id: voter.to_owned(),
        option_ids: option_ids.to_vec(),
        cast_at,
    }
}

/// Creates a poll from the request `body` through `POST {api}/api/v1/polls` as the holder of
/// `token`; panics unless the answer is `201`. Returns the poll as the API shows it.
pub async fn create_poll(http: &reqwest::Client, api: &str, token: &str, body: &Value) -> Value {
    let response = http
        .post(format!("{api}/api/v1/polls"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("creating a poll: request failed");
    let status = response.status();
    let poll = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::CREATED, "{poll}");
    poll
}

/// One vote's answer: the status, the body's `error` code, `Retry-After`, and the body.
#[derive(Debug)]
pub struct VoteAnswer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `error` field of the body, if any.
    pub error: Option<String>,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body (`Null` if it was not JSON).
    pub body: Value,
}

/// Casts one vote for `option` in the poll `code` through `POST {api}/api/v1/votes/{code}` as
/// the holder of `token`; panics if the request gets no answer.
pub async fn cast_vote(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    code: &str,
    option: &str,
) -> VoteAnswer {
    let response = http
        .post(format!("{api}/api/v1/votes/{code}"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "optionIds": [option] }))
        .send()
        .await
        .expect("vote request failed");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    VoteAnswer {
        status,
        error: body["error"].as_str().map(str::to_owned),
        retry_after,
        body,
    }
}

/// The option ids of a poll as the API returned it, in position order.
pub fn option_ids(poll: &Value) -> Vec<String> {
    poll["options"]
        .as_array()
        .expect("a poll's options")
        .iter()
        .map(|o| o["id"].as_str().expect("an option id").to_owned())
        .collect()
}

/// The votes per option of a results snapshot (REST or `poll-results`), in position order.
pub fn option_votes(snapshot: &Value) -> Vec<i64> {
    snapshot["options"]
        .as_array()
        .expect("a snapshot's options")
        .iter()
        .map(|o| o["votes"].as_i64().expect("an option's votes"))
        .collect()
}
