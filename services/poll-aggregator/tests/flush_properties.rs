//! Property tests of one flush against the real PostgreSQL: whatever a batch holds (voter ids
//! with NUL, control characters, thousands of characters or none; unknown, repeated or too many
//! options; timestamps decades away; votes the database itself refuses), the flush ends, counts
//! every valid vote once, returns every other one as rejected with its reason, and leaves the
//! counters equal to a simple model. Redoing the flush (a replay) changes nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use poll_aggregator::batch::VoteBatch;
use poll_aggregator::flush::{DATABASE_REFUSED, FlushOutcome, flush_batch};
use pollstream_testkit::TestDatabase;
use pollstream_testkit::polls::{NewPoll, raw_vote};
use pollstream_wire::input::check_subject;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;

/// Voter ids the test database refuses by a constraint of its own, past validation.
const REFUSED_PREFIX: &str = "refuse-";

/// Options per test poll.
const OPTIONS: usize = 3;

/// One generated vote, before the polls of its case exist.
#[derive(Debug, Clone)]
struct VoteSpec {
    voter: String,
    /// 0: single choice poll, 1: multiple choice poll (at most 2), 2: a poll that does not exist.
    poll: usize,
    /// Option positions in the poll; `None` is an option of no poll.
    options: Vec<Option<usize>>,
    cast_at: CastAt,
}

#[derive(Debug, Clone, Copy)]
enum CastAt {
    /// Seconds before now.
    Past(i64),
    /// Seconds after now, well inside the allowed clock skew.
    SlightlyAhead(i64),
    /// Days after now.
    FarAhead(i64),
    /// Before 2020.
    Ancient(i64),
    /// The ends of what chrono can represent, far beyond PostgreSQL's `timestamptz`.
    Extreme(bool),
}

impl CastAt {
    fn at(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            CastAt::Past(secs) => now - chrono::Duration::seconds(secs),
            CastAt::SlightlyAhead(secs) => now + chrono::Duration::seconds(secs),
            CastAt::FarAhead(days) => now + chrono::Duration::days(days),
            CastAt::Ancient(secs) => {
                Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap() - chrono::Duration::seconds(secs)
            }
            CastAt::Extreme(max) => {
                if max {
                    DateTime::<Utc>::MAX_UTC
                } else {
                    DateTime::<Utc>::MIN_UTC
                }
            }
        }
    }

    /// Whether the aggregator must refuse it (the model's own statement of the rule).
    fn out_of_range(self) -> bool {
        !matches!(self, CastAt::Past(_) | CastAt::SlightlyAhead(_))
    }
}

fn voter_id() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0..6u8).prop_map(|i| format!("voter-{i}")),
        2 => (0..3u8).prop_map(|i| format!("{REFUSED_PREFIX}{i}")),
        1 => Just(String::new()),
        2 => ("[a-z]{0,4}", "[a-z]{0,4}").prop_map(|(a, b)| format!("{a}\u{0}{b}")),
        1 => "[a-z]{0,3}[\\x01-\\x1f\\x7f\\u{85}\\u{200b}\\u{2028}]{1,2}[a-z]{0,3}",
        2 => (201..4_000usize).prop_map(|n| "x".repeat(n)),
        1 => Just("\u{e9}".repeat(200)),
        2 => proptest::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
    ]
}

fn cast_at() -> impl Strategy<Value = CastAt> {
    prop_oneof![
        8 => (0..86_400i64 * 30).prop_map(CastAt::Past),
        2 => (0..60i64).prop_map(CastAt::SlightlyAhead),
        1 => (1..36_500i64).prop_map(CastAt::FarAhead),
        1 => (1..3_000_000_000i64).prop_map(CastAt::Ancient),
        1 => any::<bool>().prop_map(CastAt::Extreme),
    ]
}

fn vote_spec() -> impl Strategy<Value = VoteSpec> {
    let option = prop_oneof![6 => (0..OPTIONS).prop_map(Some), 1 => Just(None)];
    (
        voter_id(),
        prop_oneof![5 => Just(0usize), 5 => Just(1), 1 => Just(2)],
        proptest::collection::vec(option, 0..4),
        cast_at(),
    )
        .prop_map(|(voter, poll, options, cast_at)| VoteSpec {
            voter,
            poll,
            options,
            cast_at,
        })
}

/// What the model expects of one vote.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Counted,
    Duplicate,
    Rejected(&'static str),
}

/// The rules, restated plainly: the shared subject rule, `castAt` range, then the poll.
fn model_reason(spec: &VoteSpec) -> Option<&'static str> {
    if let Err(err) = check_subject(&spec.voter) {
        return Some(err.check());
    }
    if spec.cast_at.out_of_range() {
        return Some("cast_at_out_of_range");
    }
    if spec.poll == 2 {
        return Some("unknown_poll");
    }
    let max = if spec.poll == 0 { 1 } else { 2 };
    if spec.options.is_empty() || spec.options.len() > max {
        return Some("bad_choice_count");
    }
    for (index, option) in spec.options.iter().enumerate() {
        if option.is_none() {
            return Some("unknown_option");
        }
        if spec.options[..index].contains(option) {
            return Some("duplicate_option");
        }
    }
    None
}

struct Model {
    expected: Vec<Expected>,
    /// Ballots per poll.
    totals: [i64; 2],
    /// Votes per option, per poll, in position order.
    votes: [[i64; OPTIONS]; 2],
}

fn model(specs: &[VoteSpec]) -> Model {
    let mut model = Model {
        expected: Vec::new(),
        totals: [0; 2],
        votes: [[0; OPTIONS]; 2],
    };
    let mut voters: HashSet<(usize, &str)> = HashSet::new();
    for spec in specs {
        let expected = match model_reason(spec) {
            Some(reason) => Expected::Rejected(reason),
            None if spec.voter.starts_with(REFUSED_PREFIX) => Expected::Rejected(DATABASE_REFUSED),
            None if !voters.insert((spec.poll, spec.voter.as_str())) => Expected::Duplicate,
            None => {
                model.totals[spec.poll] += 1;
                for option in spec.options.iter().flatten() {
                    model.votes[spec.poll][*option] += 1;
                }
                Expected::Counted
            }
        };
        model.expected.push(expected);
    }
    model
}

/// A single (`max_choices` 1) or multiple (2) choice poll with [`OPTIONS`] options.
async fn create_poll(db: &TestDatabase, max_choices: i32) -> (Uuid, Vec<Uuid>) {
    let poll = NewPoll::new(OPTIONS)
        .max_choices(max_choices)
        .insert(&db.pool)
        .await;
    (poll.id, poll.options)
}

/// Flushes `batch`, failing the case if it errs or does not end within 30 s.
async fn flush(db: &TestDatabase, batch: &VoteBatch) -> Result<FlushOutcome, TestCaseError> {
    match tokio::time::timeout(Duration::from_secs(30), flush_batch(&db.pool, batch)).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(err)) => Err(TestCaseError::fail(format!("the flush failed: {err}"))),
        Err(_) => Err(TestCaseError::fail("the flush did not end within 30 s")),
    }
}

async fn check(db: &TestDatabase, specs: Vec<VoteSpec>) -> Result<(), TestCaseError> {
    let polls = [create_poll(db, 1).await, create_poll(db, 2).await];
    let unknown_poll = Uuid::now_v7();
    let now = Utc::now();
    let mut batch = VoteBatch::default();
    for (index, spec) in specs.iter().enumerate() {
        let (poll_id, options) = match polls.get(spec.poll) {
            Some((id, options)) => (*id, options.as_slice()),
            None => (unknown_poll, polls[0].1.as_slice()),
        };
        let option_ids: Vec<Uuid> = spec
            .options
            .iter()
            .map(|o| o.map_or_else(Uuid::now_v7, |position| options[position]))
            .collect();
        let vote = raw_vote(poll_id, &spec.voter, &option_ids, spec.cast_at.at(now));
        batch.push(vote, (index % 3) as i32, index as i64);
    }
    let model = model(&specs);
    let counted = model
        .expected
        .iter()
        .filter(|e| **e == Expected::Counted)
        .count();
    let duplicates = model
        .expected
        .iter()
        .filter(|e| **e == Expected::Duplicate)
        .count();

    let outcome = flush(db, &batch).await?;
    prop_assert_eq!(outcome.counted, counted, "counted");
    prop_assert_eq!(outcome.duplicates, duplicates, "duplicates");
    let rejected: HashMap<i64, (&'static str, Option<String>)> = outcome
        .rejected
        .iter()
        .map(|r| {
            (
                r.vote.offset,
                (r.reason, r.refusal.as_ref().map(|f| f.sqlstate.clone())),
            )
        })
        .collect();
    prop_assert_eq!(
        rejected.len(),
        outcome.rejected.len(),
        "a vote rejected twice"
    );
    for (index, expected) in model.expected.iter().enumerate() {
        let got = rejected.get(&(index as i64));
        match expected {
            Expected::Rejected(reason) => {
                let (got_reason, sqlstate) = got.cloned().ok_or_else(|| {
                    TestCaseError::fail(format!("vote {index} was not rejected ({reason})"))
                })?;
                prop_assert_eq!(got_reason, *reason, "vote {}", index);
                let want_sqlstate = (*reason == DATABASE_REFUSED).then(|| "23514".to_owned());
                prop_assert_eq!(sqlstate, want_sqlstate, "vote {}", index);
                let source = outcome
                    .rejected
                    .iter()
                    .find(|r| r.vote.offset == index as i64);
                prop_assert_eq!(
                    source.map(|r| r.vote.partition),
                    Some((index % 3) as i32),
                    "vote {} keeps its source",
                    index
                );
            }
            _ => prop_assert!(got.is_none(), "vote {} was rejected: {:?}", index, got),
        }
    }

    for (poll, (poll_id, _)) in polls.iter().enumerate() {
        let (seq, total, votes) = db.counts(*poll_id).await;
        prop_assert_eq!(total, model.totals[poll], "total of poll {}", poll);
        prop_assert_eq!(&votes[..], &model.votes[poll][..], "votes of poll {}", poll);
        let ballots: i64 = sqlx::query_scalar("SELECT count(*) FROM ballots WHERE poll_id = $1")
            .bind(poll_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        prop_assert_eq!(ballots, model.totals[poll]);
        // The snapshot to publish is the poll's final state.
        let present = specs.iter().any(|s| s.poll == poll);
        let snapshot = outcome.snapshots.iter().find(|s| s.poll_id == *poll_id);
        prop_assert_eq!(snapshot.is_some(), present, "snapshot of poll {}", poll);
        if let Some(snapshot) = snapshot {
            prop_assert_eq!((snapshot.seq, snapshot.total), (seq, total));
        }
    }
    prop_assert!(
        outcome.snapshots.iter().all(|s| s.poll_id != unknown_poll),
        "a snapshot of a poll that does not exist"
    );

    // Redone whole, as after a crash before the offsets were committed: nothing changes.
    let before: Vec<_> = [db.counts(polls[0].0).await, db.counts(polls[1].0).await].into();
    let replay = flush(db, &batch).await?;
    prop_assert_eq!(replay.counted, 0, "a replay counted again");
    prop_assert_eq!(replay.duplicates, counted + duplicates);
    prop_assert_eq!(replay.rejected.len(), outcome.rejected.len());
    let after: Vec<_> = [db.counts(polls[0].0).await, db.counts(polls[1].0).await].into();
    prop_assert_eq!(before, after, "a replay changed the counts");
    Ok(())
}

#[test]
fn any_batch_is_counted_around_its_poison_and_matches_the_model() {
    pollstream_testkit::init_logging();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = runtime.block_on(async {
        let db = TestDatabase::create().await;
        // A refusal validation does not foresee, to drive the splitting path.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE ballots ADD CONSTRAINT refused_voters CHECK (voter_id NOT LIKE '{REFUSED_PREFIX}%')"
        )))
        .execute(&db.pool)
        .await
        .unwrap();
        db
    });
    let mut runner = TestRunner::new(Config {
        cases: 64,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(vote_spec(), 0..40), |specs| {
        runtime.block_on(check(&db, specs))
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}
