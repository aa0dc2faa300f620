//! Cases of the join-code rule ([`JoinCode::parse`]) and of the ballot rule
//! ([`PollKind::choice_limits`], [`check_choices`]) with the answers these rules give, in
//! `web/tests/fixtures/rules.json`. The web app applies both rules before it asks the API
//! (the home page's code field, the ballot form), and its unit tests check its functions give
//! the same answers, so the TypeScript copy cannot drift from the rule that decides.
//!
//! `UPDATE_FIXTURES=1 cargo test -p pollstream-store --test web_rules` rewrites the file after
//! a rule or a case changed; commit it with the change.

use std::path::PathBuf;

use pollstream_store::JoinCode;
use pollstream_store::PollKind;
use pollstream_store::ballots::{ChoiceFault, CountFault, check_choices};
use serde_json::{Value, json};
use uuid::Uuid;

/// Codes as people type them: kept, trimmed, cased, too short or long, and characters that a
/// JavaScript `toUpperCase` or `trim` treats differently from Rust's ASCII upper-casing and
/// Unicode `White_Space` trimming.
const TYPED_CODES: &[&str] = &[
    "K7QM2P",
    " abc42x ",
    "ABCD",
    "ABC",
    " abc",
    "",
    "   ",
    "AAAAAAAAAAAAAAAA",
    "AAAAAAAAAAAAAAAAA",
    "\tk7qm2p\n",
    "\u{3000}k7qm2p\u{00a0}",
    "\u{0085}k7qm2p\u{2028}",
    "\u{feff}k7qm2p",
    "k7q m2p",
    "k7q-m2p",
    "AB-CD",
    "K7QM2P!",
    "ÄBCDE",
    "straße",
    "abcı",
    "ｋ７ｑｍ２ｐ",
];

/// A poll's stored kind and choice bounds, its number of options, and a ballot: option
/// numbers, where a number past the poll's options is an option of another poll. Bounds are
/// those a stored poll can have (1 <= min <= max <= options: the create handler and the
/// table's checks).
const BALLOTS: &[(PollKind, i32, i32, u128, &[u128])] = &[
    (PollKind::Single, 1, 1, 3, &[1]),
    (PollKind::Single, 1, 1, 3, &[]),
    (PollKind::Single, 1, 1, 3, &[1, 2]),
    (PollKind::Single, 1, 1, 3, &[9]),
    (PollKind::Single, 1, 1, 3, &[1, 1]),
    (PollKind::Multiple, 1, 4, 4, &[1, 2, 3, 4]),
    (PollKind::Multiple, 1, 2, 4, &[1, 4]),
    (PollKind::Multiple, 1, 2, 4, &[1, 1]),
    (PollKind::Multiple, 1, 2, 4, &[1, 2, 3]),
    (PollKind::Multiple, 1, 2, 4, &[1, 9]),
    (PollKind::Multiple, 1, 2, 4, &[]),
    (PollKind::Multiple, 2, 3, 4, &[1]),
    (PollKind::Multiple, 2, 3, 4, &[1, 2]),
    (PollKind::Multiple, 2, 3, 4, &[1, 2, 3]),
    (PollKind::Multiple, 2, 3, 4, &[1, 2, 3, 4]),
    (PollKind::Multiple, 2, 3, 4, &[2, 2]),
    (PollKind::Multiple, 2, 3, 4, &[9]),
    (PollKind::Multiple, 3, 3, 5, &[1, 2]),
    (PollKind::Multiple, 3, 3, 5, &[1, 2, 5]),
    (PollKind::Multiple, 2, 2, 3, &[1, 2, 2, 3]),
];

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/tests/fixtures/rules.json")
}

fn option(number: u128) -> Uuid {
    Uuid::from_u128(number)
}

fn join_codes() -> Vec<Value> {
    TYPED_CODES
        .iter()
        .map(|typed| {
            let (code, valid) = match JoinCode::parse(typed) {
                Ok(code) => (String::from(code), true),
                Err(refused) => (refused.0, false),
            };
            json!({ "typed": typed, "code": code, "valid": valid })
        })
        .collect()
}

fn ballots() -> Vec<Value> {
    BALLOTS
        .iter()
        .map(|&(kind, min_choices, max_choices, options, chosen)| {
            let limits = kind.choice_limits(min_choices, max_choices);
            let options: Vec<Uuid> = (1..=options).map(option).collect();
            let chosen: Vec<Uuid> = chosen.iter().copied().map(option).collect();
            let check = check_choices(&chosen, limits, |id| options.contains(id));
            let count = check.count.map(|fault| match fault {
                CountFault::Empty => "empty",
                CountFault::TooMany { .. } => "too_many",
                CountFault::TooFew { .. } => "too_few",
            });
            let choice = check.choice.map(|fault| match fault {
                ChoiceFault::Repeated(_) => "repeated",
                ChoiceFault::Unknown(_) => "unknown",
            });
            json!({
                "kind": kind,
                "minChoices": min_choices,
                "maxChoices": max_choices,
                "options": options,
                "chosen": chosen,
                "limits": { "min": limits.min, "max": limits.max },
                "count": count,
                "choice": choice,
                "valid": check.is_valid(),
            })
        })
        .collect()
}

#[test]
fn the_web_apps_rule_cases_are_the_rust_rules_answers() {
    let expected = json!({
        "about": "Written by libs/store/tests/web_rules.rs from the Rust rules; \
                  UPDATE_FIXTURES=1 cargo test -p pollstream-store --test web_rules rewrites it.",
        "joinCodes": join_codes(),
        "ballots": ballots(),
    });
    let path = fixture();
    if std::env::var_os("UPDATE_FIXTURES").is_some_and(|value| value == "1") {
        let mut text = serde_json::to_string_pretty(&expected).expect("the cases print");
        text.push('\n');
        std::fs::write(&path, text)
            .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
        return;
    }
    let committed: Value = std::fs::read_to_string(&path)
        .map_err(|err| err.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|err| err.to_string()))
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    assert!(
        committed == expected,
        "{} does not hold the Rust rules' answers: run \
         `UPDATE_FIXTURES=1 cargo test -p pollstream-store --test web_rules` and commit it",
        path.display()
    );
}
