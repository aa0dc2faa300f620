//! What a run needs before the first vote: signing keys, the polls, their starting counts.

use std::time::Duration;

use anyhow::{Context, bail};
use pollstream_infra::jwt::{JwtKeys, JwtSettings};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

/// Token lifetime: long enough for any bounded run.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Keys that sign tokens the services accept, from `JWT_SECRET` (and `JWT_ISSUER`,
/// `JWT_AUDIENCE` when set), the variables the services read.
pub fn signing_keys() -> anyhow::Result<JwtKeys> {
    let secret = std::env::var("JWT_SECRET").context(
        "JWT_SECRET is not set: run through scripts/stress-test (which reads .run/env) or export it",
    )?;
    let mut settings = JwtSettings::with_secret(&secret);
    if let Ok(issuer) = std::env::var("JWT_ISSUER") {
        settings.issuer = issuer;
    }
    if let Ok(audience) = std::env::var("JWT_AUDIENCE") {
        settings.audience = audience;
    }
    Ok(settings.keys())
}

/// One poll the run votes in.
#[derive(Debug, Clone)]
pub struct TargetPoll {
    /// Its id, as in snapshots.
    pub id: Uuid,
    /// Its join code, as in vote URLs.
    pub code: String,
    /// Its option ids, in order.
    pub options: Vec<Uuid>,
    /// Ballots counted before the run, subtracted from every later total.
    pub baseline_total: i64,
    /// Votes per option before the run.
    pub baseline_votes: Vec<i64>,
}

#[derive(Deserialize)]
struct PollView {
    id: Uuid,
    code: String,
    options: Vec<OptionView>,
}

#[derive(Deserialize)]
struct OptionView {
    id: Uuid,
}

/// The `results` answer, as far as the check needs it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Results {
    /// Ballots counted.
    pub total: i64,
    /// Per-option counts.
    pub options: Vec<OptionResult>,
}

/// One option of [`Results`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionResult {
    /// The option.
    pub option_id: Uuid,
    /// Ballots that chose it.
    pub votes: i64,
}

/// Creates `count` single-choice polls with `options` answers each.
pub async fn create_polls(
    http: &reqwest::Client,
    api: &str,
    keys: &JwtKeys,
    count: usize,
    options: usize,
) -> anyhow::Result<Vec<TargetPoll>> {
    if options < 2 {
        bail!("--options must be at least 2");
    }
    let token = keys.issue("stress-presenter", TOKEN_TTL);
    let mut polls = Vec::with_capacity(count);
    for index in 0..count {
        let texts: Vec<String> = (1..=options).map(|o| format!("Option {o}")).collect();
        let response = http
            .post(format!("{api}/api/v1/polls"))
            .bearer_auth(&token)
            .json(&json!({
                "question": format!("Stress test poll {}", index + 1),
                "options": texts,
                "kind": "single",
            }))
            .send()
            .await
            .with_context(|| format!("creating a poll at {api}"))?;
        let status = response.status();
        if status != reqwest::StatusCode::CREATED {
            let body = response.text().await.unwrap_or_default();
            bail!("creating a poll answered {status}: {body}");
        }
        let view: PollView = response.json().await.context("reading the created poll")?;
        polls.push(into_target(view));
    }
    Ok(polls)
}

/// Looks up existing polls by join code.
pub async fn existing_polls(
    http: &reqwest::Client,
    api: &str,
    codes: &[String],
) -> anyhow::Result<Vec<TargetPoll>> {
    let mut polls = Vec::with_capacity(codes.len());
    for code in codes {
        let response = http
            .get(format!("{api}/api/v1/polls/{code}"))
            .send()
            .await
            .with_context(|| format!("reading poll {code}"))?;
        if !response.status().is_success() {
            bail!("poll {code}: voting-api answered {}", response.status());
        }
        let view: PollView = response
            .json()
            .await
            .with_context(|| format!("decoding poll {code}"))?;
        polls.push(into_target(view));
    }
    Ok(polls)
}

fn into_target(view: PollView) -> TargetPoll {
    TargetPoll {
        id: view.id,
        code: view.code,
        baseline_votes: vec![0; view.options.len()],
        options: view.options.into_iter().map(|o| o.id).collect(),
        baseline_total: 0,
    }
}

/// Reads the counts of `poll` as voting-api serves them.
pub async fn results(
    http: &reqwest::Client,
    api: &str,
    poll: &TargetPoll,
) -> anyhow::Result<Results> {
    let response = http
        .get(format!("{api}/api/v1/polls/{}/results", poll.code))
        .send()
        .await
        .with_context(|| format!("reading the results of poll {}", poll.code))?;
    if !response.status().is_success() {
        bail!(
            "results of poll {}: voting-api answered {}",
            poll.code,
            response.status()
        );
    }
    response
        .json()
        .await
        .with_context(|| format!("decoding the results of poll {}", poll.code))
}

/// Records the counts each poll starts from.
pub async fn read_baselines(
    http: &reqwest::Client,
    api: &str,
    polls: &mut [TargetPoll],
) -> anyhow::Result<()> {
    for poll in polls.iter_mut() {
        let results = results(http, api, poll).await?;
        poll.baseline_total = results.total;
        poll.baseline_votes = option_votes(poll, &results);
    }
    Ok(())
}

/// Votes per option of `poll`, in its option order.
pub fn option_votes(poll: &TargetPoll, results: &Results) -> Vec<i64> {
    poll.options
        .iter()
        .map(|id| {
            results
                .options
                .iter()
                .find(|o| o.option_id == *id)
                .map_or(0, |o| o.votes)
        })
        .collect()
}
