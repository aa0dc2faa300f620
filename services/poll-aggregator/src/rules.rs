//! Which decoded votes may be counted: every field PostgreSQL will store is checked here, before
//! the insert, so that a vote produced by hand to `raw-votes` is parked with a named reason
//! instead of failing the flush.
//!
//! Each failed check has a stable name, the `dlq-reason` of the dead letter and the `reason`
//! label of `votes_parked_total`. The checks against the poll are the ones voting-api applied
//! before taking the vote, from `pollstream_store`: [`check_choices`] and [`polls::status_at`].

use chrono::{DateTime, Duration, TimeZone, Utc};
use pollstream_store::ballots::{ChoiceFault, check_choices};
use pollstream_store::polls::{self, CountingRules};
use pollstream_wire::input::check_subject;
use pollstream_wire::{PollStatus, RawVote};

/// How far ahead of the aggregator's clock a `castAt` may be: voting-api stamps votes with its
/// own clock, so this is room for clock skew between hosts, not for votes from the future.
pub const MAX_CAST_AT_AHEAD: Duration = Duration::minutes(5);

/// Earliest `castAt` accepted: 2020-01-01T00:00:00Z, before pollstream took any vote. It also
/// keeps timestamps inside PostgreSQL's `timestamptz` range (which starts at 4713 BC, where
/// chrono goes much further back).
pub fn earliest_cast_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid fixed date")
}

/// The reason of a vote cast in time that arrived after its poll's final count was announced.
pub const AFTER_FINAL_COUNT: &str = "after_final_count";

/// Why a vote that decoded fine is still not counted, as the stable name of the failed check;
/// `None` if it is countable. `now` is the aggregator's clock, the reference for `castAt`.
///
/// Checks, in order: the voter id by the shared subject rule
/// ([`pollstream_wire::input::check_subject`]: `voter_id_empty`, `voter_id_too_long`,
/// `voter_id_not_printable`), `castAt` within [`earliest_cast_at`] and `now` +
/// [`MAX_CAST_AT_AHEAD`] (`cast_at_out_of_range`), then against the poll: `unknown_poll`,
/// `bad_choice_count`, `unknown_option`, `duplicate_option`, `cast_after_close` (the poll was
/// closed at `castAt`), `after_final_count` (cast in time, but it arrived after the poll's
/// final count was announced: only a vote voting-api answered `503` can, its send having
/// outlived the deadline; counting it would change a result already announced as final).
pub fn rejection(
    vote: &RawVote,
    rules: Option<&CountingRules>,
    now: DateTime<Utc>,
) -> Option<&'static str> {
    if let Err(err) = check_subject(&vote.voter_id) {
        return Some(err.check());
    }
    if vote.cast_at < earliest_cast_at() || vote.cast_at > now + MAX_CAST_AT_AHEAD {
        return Some("cast_at_out_of_range");
    }
    let Some(rules) = rules else {
        return Some("unknown_poll");
    };
    let check = check_choices(&vote.option_ids, rules.choices, |id| {
        rules.options.contains(id)
    });
    if check.count.is_some() {
        return Some("bad_choice_count");
    }
    match check.choice {
        Some(ChoiceFault::Unknown(_)) => return Some("unknown_option"),
        Some(ChoiceFault::Repeated(_)) => return Some("duplicate_option"),
        None => {}
    }
    // The row's status is as of now, not as of `castAt`: only the two moments tell whether the
    // poll was already closed when the vote was cast.
    if !polls::status_at(
        PollStatus::Open,
        rules.closes_at,
        rules.closed_at,
        vote.cast_at,
    )
    .takes_votes()
    {
        return Some("cast_after_close");
    }
    if rules.counted_final {
        return Some(AFTER_FINAL_COUNT);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollstream_store::ballots::ChoiceLimits;
    use pollstream_wire::SCHEMA_VERSION;
    use uuid::Uuid;

    fn rules() -> CountingRules {
        CountingRules {
            choices: ChoiceLimits { min: 1, max: 2 },
            closes_at: None,
            closed_at: None,
            counted_final: false,
            options: vec![
                Uuid::from_u128(10),
                Uuid::from_u128(11),
                Uuid::from_u128(12),
            ],
        }
    }

    fn vote(options: &[u128]) -> RawVote {
        RawVote {
            v: SCHEMA_VERSION,
            vote_id: Uuid::from_u128(99),
            poll_id: Uuid::from_u128(1),
            voter_id: "v".into(),
            option_ids: options.iter().map(|&o| Uuid::from_u128(o)).collect(),
            cast_at: Utc::now(),
        }
    }

    #[test]
    fn valid_vote_is_countable() {
        assert_eq!(
            rejection(&vote(&[10, 12]), Some(&rules()), Utc::now()),
            None
        );
    }

    #[test]
    fn invalid_votes_are_named() {
        let now = Utc::now();
        assert_eq!(rejection(&vote(&[10]), None, now), Some("unknown_poll"));
        assert_eq!(
            rejection(&vote(&[]), Some(&rules()), now),
            Some("bad_choice_count")
        );
        assert_eq!(
            rejection(&vote(&[10, 11, 12]), Some(&rules()), now),
            Some("bad_choice_count")
        );
        assert_eq!(
            rejection(&vote(&[10, 77]), Some(&rules()), now),
            Some("unknown_option")
        );
        assert_eq!(
            rejection(&vote(&[11, 11]), Some(&rules()), now),
            Some("duplicate_option")
        );
        let mut closed = rules();
        closed.closes_at = Some(now - Duration::seconds(5));
        assert_eq!(
            rejection(&vote(&[10]), Some(&closed), now),
            Some("cast_after_close")
        );
    }

    #[test]
    fn a_vote_cast_before_its_owner_closed_the_poll_counts() {
        let now = Utc::now();
        let mut v = vote(&[10]);
        v.cast_at = now - Duration::seconds(5);
        let mut closed = rules();
        closed.closed_at = Some(now - Duration::seconds(1));
        assert_eq!(rejection(&v, Some(&closed), now), None);
        closed.closed_at = Some(now - Duration::seconds(10));
        assert_eq!(rejection(&v, Some(&closed), now), Some("cast_after_close"));
    }

    #[test]
    fn a_vote_cast_in_time_that_arrives_after_the_final_count_is_parked() {
        let now = Utc::now();
        let mut v = vote(&[10]);
        v.cast_at = now - Duration::seconds(20);
        let mut closed = rules();
        closed.closed_at = Some(now - Duration::seconds(10));
        assert_eq!(rejection(&v, Some(&closed), now), None, "still closing");
        closed.counted_final = true;
        assert_eq!(rejection(&v, Some(&closed), now), Some("after_final_count"));
    }

    #[test]
    fn voter_ids_follow_the_shared_subject_rule() {
        let now = Utc::now();
        for (voter, reason) in [
            ("", "voter_id_empty"),
            ("a\u{0}b", "voter_id_not_printable"),
            ("tab\there", "voter_id_not_printable"),
        ] {
            let mut v = vote(&[10]);
            v.voter_id = voter.into();
            assert_eq!(
                rejection(&v, Some(&rules()), now),
                Some(reason),
                "{voter:?}"
            );
        }
        let mut long = vote(&[10]);
        long.voter_id = "x".repeat(3_000);
        assert_eq!(
            rejection(&long, Some(&rules()), now),
            Some("voter_id_too_long")
        );
        // The voter id is checked before the poll: a bad one is named even for an unknown poll.
        assert_eq!(rejection(&long, None, now), Some("voter_id_too_long"));
    }

    #[test]
    fn cast_at_must_be_in_a_sane_range() {
        let now = Utc::now();
        let at = |cast_at| {
            let mut v = vote(&[10]);
            v.cast_at = cast_at;
            rejection(&v, Some(&rules()), now)
        };
        assert_eq!(at(now - Duration::days(400)), None);
        assert_eq!(at(earliest_cast_at()), None);
        assert_eq!(at(now + MAX_CAST_AT_AHEAD), None);
        assert_eq!(
            at(earliest_cast_at() - Duration::seconds(1)),
            Some("cast_at_out_of_range")
        );
        assert_eq!(
            at(now + MAX_CAST_AT_AHEAD + Duration::seconds(1)),
            Some("cast_at_out_of_range")
        );
        assert_eq!(at(DateTime::<Utc>::MAX_UTC), Some("cast_at_out_of_range"));
        assert_eq!(at(DateTime::<Utc>::MIN_UTC), Some("cast_at_out_of_range"));
    }
}
