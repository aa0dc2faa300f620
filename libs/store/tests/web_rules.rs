//! Cases of the join-code rule ([`JoinCode::parse`]) and of the ballot rule
//! ([`PollKind::choice_limits`], [`check_choices`]) with the answers these rules give, in
//! `web/tests/fixtures/rules.json`. The web app applies both rules before it asks the API
//! (the home page's code field, the ballot form), and its unit tests check its functions give
//! the same answers, so the TypeScript copy cannot drift from the rule that decides. The
//! poll form also checks option lengths and duplicates the way [`input::normalize_text`] and
//! [`input::comparison_key`] do, by grapheme cluster: the text cases hold their answers too
//! (the stored text, its length in grapheme clusters, whether it fits an option, and whether
//! two options read the same).
//!
//! `UPDATE_FIXTURES=1 cargo test -p pollstream-store --test web_rules` rewrites the file after
//! a rule or a case changed; commit it with the change.

use std::path::PathBuf;

use pollstream_store::JoinCode;
use pollstream_store::PollKind;
use pollstream_store::ballots::{ChoiceFault, CountFault, check_choices};
use pollstream_wire::input;
use serde_json::{Value, json};
use unicode_segmentation::UnicodeSegmentation;
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

/// Texts as people type them into the poll form: emoji with presentation selectors, a ZWJ
/// sequence, subdivision flags (tag sequences), an ideographic variation sequence, lone
/// invisible characters, control characters, whitespace, and lengths around the option limit
/// counted in graphemes and in code points.
fn typed_texts() -> Vec<String> {
    let england = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}";
    let mut texts: Vec<String> = [
        "\u{2764}\u{FE0F}",
        "1\u{FE0F}\u{20E3}",
        "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}",
        england,
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}",
        "\u{845B}\u{E0100}\u{98FE}",
        "\u{1F469}\u{200D}\u{1F4BB}",
        "  Yes \t\n please ",
        "Ye\u{200B}s\u{FEFF}",
        "\u{200D}x\u{200D}",
        "a \u{200D} b",
        "\u{200B}",
        "\u{FE0F}",
        " \u{FE0F} ",
        "\u{E0067}\u{E007F}",
        "\u{3164}",
        "\u{2800}",
        "a\u{0}b",
        "esc\u{1B}[31m",
        "Cafe\u{301}",
        "\u{1F468}\u{1F3FD}\u{200D}\u{1F469}\u{1F3FD}\u{200D}\u{1F467}\u{1F3FD}",
    ]
    .map(str::to_owned)
    .to_vec();
    texts.push(england.repeat(input::MAX_OPTION_CHARS));
    texts.push(england.repeat(input::MAX_OPTION_CHARS + 1));
    texts.push("e\u{301}".repeat(input::MAX_OPTION_CHARS));
    texts.push("x".repeat(input::MAX_OPTION_CHARS + 1));
    // One cluster stacking marks up to the option's bound in code points (NFC makes `a` and
    // the first mark one), then one past it.
    for extra in [0, 1] {
        let marks = input::MAX_OPTION_CHARS * input::CODE_POINTS_PER_GRAPHEME + extra;
        texts.push(format!("a{}", "\u{301}".repeat(marks)));
    }
    texts
}

/// Pairs of options, the same to a reader or not: look-alikes, and case folding where it goes
/// past lower-casing (`ẞ`, a final sigma, the Kelvin sign, a ligature) or stops short of it (the
/// dotless `ı` is not `i`).
const OPTION_PAIRS: &[(&str, &str)] = &[
    (
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
    ),
    (
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}",
    ),
    (
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
        "\u{1F3F4}",
    ),
    ("\u{2764}\u{FE0F}", "\u{2764}"),
    ("\u{845B}\u{E0100}\u{98FE}", "\u{845B}\u{98FE}"),
    ("\u{1F469}\u{200D}\u{1F4BB}", "\u{1F469}\u{1F4BB}"),
    ("Yes", "yes"),
    ("Yes", "Yes\u{200B}"),
    ("Café", "Cafe\u{301}"),
    ("Straße", "STRASSE"),
    ("ｙｅｓ", "yes"),
    ("a  b", "a b"),
    ("ab", "a b"),
    ("Yes", "No"),
    ("\u{1E9E}", "ss"),
    ("ΣΑΣ", "σας"),
    ("\u{212A}", "k"),
    ("\u{FB00}", "FF"),
    ("ı", "i"),
];

fn texts() -> Vec<Value> {
    typed_texts()
        .iter()
        .map(|typed| {
            let normalized =
                input::normalize_text(typed, usize::MAX / input::CODE_POINTS_PER_GRAPHEME).ok();
            let characters = normalized
                .as_deref()
                .map_or(0, |text| text.graphemes(true).count());
            let fits = input::normalize_text(typed, input::MAX_OPTION_CHARS).is_ok();
            json!({
                "typed": typed,
                "normalized": normalized,
                "characters": characters,
                "fitsOption": fits,
            })
        })
        .collect()
}

fn option_pairs() -> Vec<Value> {
    OPTION_PAIRS
        .iter()
        .map(|&(a, b)| {
            let same = input::comparison_key(a) == input::comparison_key(b);
            json!({ "a": a, "b": b, "same": same })
        })
        .collect()
}

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
        "texts": texts(),
        "optionPairs": option_pairs(),
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
