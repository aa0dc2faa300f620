//! The vote load: which voter votes for what, the open- and closed-loop drivers, and the tally
//! of every answer.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use pollstream_infra::jwt::JwtKeys;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::setup::{TOKEN_TTL, TargetPoll};

/// One vote attempt: a voter's ballot in one poll.
#[derive(Debug, Clone, Copy)]
pub struct Ballot {
    /// Index of the poll in the run's poll list.
    pub poll: u32,
    /// Index of the option in that poll.
    pub option: u32,
    /// Voter number; the token subject is `<prefix>-<voter>`.
    pub voter: u64,
    /// Whether this repeats an earlier ballot on purpose (a `409` is expected).
    pub duplicate: bool,
}

/// Hands out ballots: fresh ones go round-robin over the polls (voter `k / polls` votes in
/// poll `k % polls`), and a `duplicates` fraction of attempts repeats an earlier fresh ballot.
pub struct BallotPlan {
    polls: Vec<(u32, u32)>,
    duplicates: f64,
    attempts: u64,
    fresh: u64,
    rng: u64,
}

impl BallotPlan {
    /// A plan over `polls` (their option counts) with `duplicates` in [0, 1].
    pub fn new(option_counts: &[usize], duplicates: f64) -> Self {
        Self {
            polls: option_counts
                .iter()
                .enumerate()
                .map(|(i, n)| (i as u32, *n as u32))
                .collect(),
            duplicates: duplicates.clamp(0.0, 1.0),
            attempts: 0,
            fresh: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// The next attempt.
    pub fn next_ballot(&mut self) -> Ballot {
        let a = self.attempts as f64;
        self.attempts += 1;
        let duplicate_due =
            ((a + 1.0) * self.duplicates).floor() > (a * self.duplicates).floor() && self.fresh > 0;
        let k = if duplicate_due {
            self.random() % self.fresh
        } else {
            self.fresh += 1;
            self.fresh - 1
        };
        let polls = self.polls.len() as u64;
        let (poll, options) = self.polls[(k % polls) as usize];
        let voter = k / polls;
        Ballot {
            poll,
            option: ((voter + u64::from(poll)) % u64::from(options)) as u32,
            voter,
            duplicate: duplicate_due,
        }
    }

    /// xorshift64: enough to spread duplicates, no dependency for it.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// What a vote needs on the wire, prepared once per poll and option.
pub struct VoteTarget {
    /// The poll's vote URL on each voting-api replica.
    urls: Vec<String>,
    bodies: Vec<String>,
}

/// Everything the drivers share.
pub struct Voting {
    http: reqwest::Client,
    keys: JwtKeys,
    voter_prefix: String,
    targets: Vec<VoteTarget>,
    plan: Mutex<BallotPlan>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    /// Requests sent and not yet answered.
    pub in_flight: AtomicUsize,
    /// Open loop: scheduled votes not sent because `max_in_flight` was reached.
    pub skipped: AtomicU64,
    /// Attempts started, which picks the replica of the next one (round-robin).
    started: AtomicU64,
}

/// How a vote request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Answer {
    /// An HTTP status.
    Status(u16),
    /// No answer within the request timeout: the vote may or may not count.
    Timeout,
    /// The connection failed or broke: the vote may or may not count.
    Transport,
}

/// One finished attempt, sent to the [`Tally`].
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// What was sent.
    pub ballot: Ballot,
    /// When it was due (open loop) or sent (closed loop): latency starts here.
    pub due: Instant,
    /// When the answer arrived.
    pub answered: Instant,
    /// The answer.
    pub answer: Answer,
    /// The `error` code of an error answer's JSON body (see [`error_code`]), else `None`.
    pub code: Option<&'static str>,
    /// Which voting-api replica it went to (index into the run's API URLs).
    pub api: usize,
}

/// The error codes a vote can be answered with (voting-api's `docs/api.md`), so that an
/// outcome keeps one without an allocation per failed vote; anything else is `"other"`.
const ERROR_CODES: &[&str] = &[
    "already_voted",
    "poll_closed",
    "rate_limited",
    "overloaded",
    "kafka_unavailable",
    "redis_unavailable",
    "database_unavailable",
    "vote_unconfirmed",
    "unauthorized",
    "poll_not_found",
    "invalid_body",
    "request_timeout",
    "internal",
];

/// The `503` codes whose vote may still be counted: Kafka may have it (`docs/api.md`, "When
/// a vote's outcome is not known").
const MAY_COUNT: &[&str] = &["kafka_unavailable", "vote_unconfirmed"];

/// The `error` field of an error body ([`pollstream_wire::ErrorBody`]), as one of
/// [`ERROR_CODES`] or `"other"`; `None` when the body is not such JSON.
pub fn error_code(body: &[u8]) -> Option<&'static str> {
    let parsed: pollstream_wire::ErrorBody = serde_json::from_slice(body).ok()?;
    Some(
        ERROR_CODES
            .iter()
            .find(|code| **code == parsed.error)
            .copied()
            .unwrap_or("other"),
    )
}

impl Voting {
    /// Prepares the shared state; votes go round-robin to the voting-api replicas at `apis`
    /// (base URLs, at least one), outcomes go to `outcomes`.
    pub fn new(
        http: reqwest::Client,
        keys: JwtKeys,
        apis: &[String],
        voter_prefix: String,
        polls: &[TargetPoll],
        duplicates: f64,
        outcomes: mpsc::UnboundedSender<Outcome>,
    ) -> Self {
        let targets = polls
            .iter()
            .map(|poll| VoteTarget {
                urls: apis
                    .iter()
                    .map(|api| format!("{api}/api/v1/votes/{}", poll.code))
                    .collect(),
                bodies: poll
                    .options
                    .iter()
                    .map(|id| format!(r#"{{"optionIds":["{id}"]}}"#))
                    .collect(),
            })
            .collect();
        let counts: Vec<usize> = polls.iter().map(|p| p.options.len()).collect();
        Self {
            http,
            keys,
            voter_prefix,
            targets,
            plan: Mutex::new(BallotPlan::new(&counts, duplicates)),
            outcomes,
            in_flight: AtomicUsize::new(0),
            skipped: AtomicU64::new(0),
            started: AtomicU64::new(0),
        }
    }

    fn next_ballot(&self) -> Ballot {
        self.plan.lock().expect("ballot plan lock").next_ballot()
    }

    /// The token subject of voter `voter`.
    pub fn voter_id(&self, voter: u64) -> String {
        format!("{}-{voter}", self.voter_prefix)
    }

    /// Sends one ballot and reports its outcome, latency counted from `due`. Returns how long
    /// the server asked to wait before retrying (`Retry-After` of a `429` or `503`), if it did.
    async fn cast(&self, ballot: Ballot, due: Instant) -> Option<Duration> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let target = &self.targets[ballot.poll as usize];
        let api =
            (self.started.fetch_add(1, Ordering::Relaxed) % target.urls.len() as u64) as usize;
        let token = self.keys.issue(&self.voter_id(ballot.voter), TOKEN_TTL);
        let sent = self
            .http
            .post(&target.urls[api])
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(target.bodies[ballot.option as usize].clone())
            .send()
            .await;
        let mut retry_after = None;
        let mut code = None;
        let answer = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                if matches!(status, 429 | 503) {
                    retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
                        .map(|secs| Duration::from_secs(secs.min(MAX_RETRY_AFTER_SECS)));
                }
                // Read the body so the connection goes back to the pool, and an error's code.
                match response.bytes().await {
                    Ok(body) => {
                        if status >= 400 {
                            code = error_code(&body);
                        }
                        Answer::Status(status)
                    }
                    Err(err) if err.is_timeout() => Answer::Timeout,
                    Err(_) => Answer::Status(status),
                }
            }
            Err(err) if err.is_timeout() => Answer::Timeout,
            Err(_) => Answer::Transport,
        };
        let answered = Instant::now();
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let _ = self.outcomes.send(Outcome {
            ballot,
            due,
            answered,
            answer,
            code,
            api,
        });
        retry_after
    }
}

/// Longest `Retry-After` a closed-loop voter honours.
const MAX_RETRY_AFTER_SECS: u64 = 5;

/// Open loop: vote `i` is due at `start + i / rate` and is sent then, however long earlier
/// answers take; latency runs from that due time (no coordinated omission).
pub async fn open_loop(voting: Arc<Voting>, rate: f64, duration: Duration, max_in_flight: usize) {
    let start = Instant::now();
    let end = start + duration;
    let mut next: u64 = 0;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let due_count = ((now - start).as_secs_f64() * rate) as u64 + 1;
        while next < due_count {
            let due = start + Duration::from_secs_f64(next as f64 / rate);
            next += 1;
            if voting.in_flight.load(Ordering::Relaxed) >= max_in_flight {
                voting.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let ballot = voting.next_ballot();
            let voting = voting.clone();
            // Open loop: the schedule decides when the next vote goes, not the answers.
            tokio::spawn(async move { voting.cast(ballot, due).await });
        }
        tokio::time::sleep_until(start + Duration::from_secs_f64(next as f64 / rate)).await;
    }
}

/// After the load: waits for the votes still in flight to be answered (up to
/// `request_timeout` and a second more, by when every request has timed out), then drops
/// `voting`, which closes the outcome channel, and returns the scheduled votes skipped.
pub async fn wait_for_answers(voting: Arc<Voting>, request_timeout: Duration) -> u64 {
    let deadline = Instant::now() + request_timeout + Duration::from_secs(1);
    while voting.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    voting.skipped.load(Ordering::Relaxed)
}

/// Closed loop: `concurrency` voters, each sending its next vote as soon as the previous one
/// was answered, until `duration` has passed. Like a well-behaved client, a voter told to come
/// back later (`429`/`503` with `Retry-After`) waits that long first, so an overloaded server
/// is not hammered by instant retries.
pub async fn closed_loop(voting: Arc<Voting>, concurrency: usize, duration: Duration) {
    let end = Instant::now() + duration;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let voting = voting.clone();
            tokio::spawn(async move {
                while Instant::now() < end {
                    let ballot = voting.next_ballot();
                    if let Some(wait) = voting.cast(ballot, Instant::now()).await {
                        tokio::time::sleep_until((Instant::now() + wait).min(end)).await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}

/// Everything learnt from the answers.
pub struct Tally {
    /// Attempts answered or failed.
    pub sent: u64,
    /// Attempts by answer.
    pub answers: BTreeMap<Answer, u64>,
    /// Latency of `202` answers, in microseconds.
    pub accept_latency: Histogram<u64>,
    /// Latency of every HTTP answer, in microseconds.
    pub answer_latency: Histogram<u64>,
    /// Per poll: when each distinct ballot was accepted, in arrival order.
    pub accepted_at: Vec<Vec<Instant>>,
    /// Per poll and option: distinct ballots accepted.
    pub accepted_votes: Vec<Vec<i64>>,
    /// Per poll: attempts whose outcome is unknown (timeout, broken connection) for ballots
    /// never accepted otherwise; they may legitimately be counted.
    pub unknown: Vec<i64>,
    /// Duplicate attempts that were accepted although an earlier attempt already was.
    pub duplicates_accepted: u64,
    /// Duplicate attempts sent.
    pub duplicates_sent: u64,
    /// When the first and the last `202` arrived.
    pub first_accept: Option<Instant>,
    /// See `first_accept`.
    pub last_accept: Option<Instant>,
    seen: HashSet<(u32, u64)>,
    unknown_ballots: HashSet<(u32, u64)>,
}

/// A histogram of microseconds from 1 µs to one hour, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Tally {
    /// An empty tally for polls with `option_counts` options.
    pub fn new(option_counts: &[usize]) -> Self {
        Self {
            sent: 0,
            answers: BTreeMap::new(),
            accept_latency: latency_histogram(),
            answer_latency: latency_histogram(),
            accepted_at: vec![Vec::new(); option_counts.len()],
            accepted_votes: option_counts.iter().map(|n| vec![0; *n]).collect(),
            unknown: vec![0; option_counts.len()],
            duplicates_accepted: 0,
            duplicates_sent: 0,
            first_accept: None,
            last_accept: None,
            seen: HashSet::new(),
            unknown_ballots: HashSet::new(),
        }
    }

    /// Adds one outcome.
    pub fn record(&mut self, outcome: &Outcome) {
        self.sent += 1;
        *self.answers.entry(outcome.answer).or_default() += 1;
        let ballot = outcome.ballot;
        if ballot.duplicate {
            self.duplicates_sent += 1;
        }
        let micros = (outcome.answered - outcome.due).as_micros().max(1) as u64;
        let key = (ballot.poll, ballot.voter);
        match outcome.answer {
            Answer::Status(202) => {
                let _ = self.accept_latency.record(micros);
                let _ = self.answer_latency.record(micros);
                if self.seen.insert(key) {
                    let poll = ballot.poll as usize;
                    self.accepted_at[poll].push(outcome.answered);
                    self.accepted_votes[poll][ballot.option as usize] += 1;
                    if self.unknown_ballots.remove(&key) {
                        self.unknown[poll] -= 1;
                    }
                } else {
                    self.duplicates_accepted += 1;
                }
                self.first_accept.get_or_insert(outcome.answered);
                self.last_accept = Some(outcome.answered);
            }
            // Not known to be counted (docs/api.md): Kafka may have the vote.
            Answer::Status(503) if matches!(outcome.code, Some(code) if MAY_COUNT.contains(&code)) =>
            {
                let _ = self.answer_latency.record(micros);
                if !self.seen.contains(&key) && self.unknown_ballots.insert(key) {
                    self.unknown[ballot.poll as usize] += 1;
                }
            }
            Answer::Status(_) => {
                let _ = self.answer_latency.record(micros);
            }
            Answer::Timeout | Answer::Transport => {
                if !self.seen.contains(&key) && self.unknown_ballots.insert(key) {
                    self.unknown[ballot.poll as usize] += 1;
                }
            }
        }
    }

    /// Distinct ballots accepted, all polls together.
    pub fn accepted(&self) -> u64 {
        self.accepted_at.iter().map(|v| v.len() as u64).sum()
    }

    /// Attempts that got `status`.
    pub fn count(&self, answer: Answer) -> u64 {
        self.answers.get(&answer).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_gives_its_code_and_an_unknown_one_is_other() {
        let body = br#"{"error":"kafka_unavailable","message":"Kafka is unavailable"}"#;
        assert_eq!(error_code(body), Some("kafka_unavailable"));
        assert_eq!(
            error_code(br#"{"error":"something_new","message":"new"}"#),
            Some("other")
        );
        assert_eq!(error_code(b"<html>bad gateway</html>"), None);
    }

    #[test]
    fn fresh_ballots_cycle_over_polls_with_distinct_voters_per_poll() {
        let mut plan = BallotPlan::new(&[2, 3], 0.0);
        let ballots: Vec<_> = (0..6).map(|_| plan.next_ballot()).collect();
        let pairs: Vec<_> = ballots.iter().map(|b| (b.poll, b.voter)).collect();
        assert_eq!(pairs, [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]);
        assert!(ballots.iter().all(|b| !b.duplicate));
        assert!(ballots.iter().all(|b| b.option < 3));
    }

    #[test]
    fn the_duplicate_fraction_is_respected_and_repeats_earlier_ballots() {
        let mut plan = BallotPlan::new(&[4], 0.25);
        let ballots: Vec<_> = (0..1000).map(|_| plan.next_ballot()).collect();
        let duplicates: Vec<_> = ballots.iter().filter(|b| b.duplicate).collect();
        assert_eq!(duplicates.len(), 250);
        let fresh: HashSet<u64> = ballots
            .iter()
            .filter(|b| !b.duplicate)
            .map(|b| b.voter)
            .collect();
        assert_eq!(fresh.len(), 750);
        assert!(duplicates.iter().all(|b| fresh.contains(&b.voter)));
    }

    #[test]
    fn a_repeated_acceptance_is_not_counted_twice() {
        let mut tally = Tally::new(&[2]);
        let now = Instant::now();
        let ballot = Ballot {
            poll: 0,
            option: 1,
            voter: 7,
            duplicate: false,
        };
        let accepted = Outcome {
            ballot,
            due: now,
            answered: now,
            answer: Answer::Status(202),
            code: None,
            api: 0,
        };
        tally.record(&Outcome {
            answer: Answer::Timeout,
            ..accepted
        });
        assert_eq!(tally.unknown[0], 1);
        tally.record(&accepted);
        tally.record(&accepted);
        assert_eq!(tally.accepted(), 1);
        assert_eq!(tally.accepted_votes[0], [0, 1]);
        assert_eq!(tally.duplicates_accepted, 1);
        assert_eq!(tally.unknown[0], 0);
    }

    #[test]
    fn a_503_that_may_still_count_is_an_unknown_outcome_and_others_are_not() {
        let mut tally = Tally::new(&[2]);
        let now = Instant::now();
        let refused = |voter, code| Outcome {
            ballot: Ballot {
                poll: 0,
                option: 0,
                voter,
                duplicate: false,
            },
            due: now,
            answered: now,
            answer: Answer::Status(503),
            code: Some(code),
            api: 0,
        };
        tally.record(&refused(1, "vote_unconfirmed"));
        tally.record(&refused(2, "kafka_unavailable"));
        tally.record(&refused(3, "redis_unavailable"));
        tally.record(&refused(4, "overloaded"));
        assert_eq!(tally.unknown[0], 2);
    }
}
