//! One definition of valid input, shared by every service: token subjects (which become voter
//! ids and ballot keys) and the texts people read (questions and options).
//!
//! voting-api refuses what breaks these rules before anything is stored or produced, the
//! realtime `join` refuses such tokens too, and the aggregator checks them again on every vote it
//! reads from Kafka, where a message may have been produced by hand.
//!
//! Character classes come from the Unicode Character Database (via `icu_properties`), never
//! from hand-written tables: general categories `Cc` (control), `Cf` (format), `Zl`/`Zp`
//! (line and paragraph separators), and the `Default_Ignorable_Code_Point` and `White_Space`
//! properties; grapheme clusters (what a reader sees as one character) from Unicode Standard
//! Annex #29 (via `unicode-segmentation`).

use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory, WhiteSpace};
use icu_properties::{CodePointMapData, CodePointSetData};
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Longest token subject, in characters. The subject is the voter id of a ballot, part of
/// PostgreSQL's unique `(poll_id, voter_id)` index, whose entries may not exceed about 2.7 KB;
/// 200 characters of at most 4 bytes each stay far below.
pub const MAX_SUBJECT_CHARS: usize = 200;

/// Longest question, in grapheme clusters (what a reader counts as characters) after
/// normalisation.
pub const MAX_QUESTION_CHARS: usize = 500;

/// Longest option text, in grapheme clusters after normalisation.
pub const MAX_OPTION_CHARS: usize = 200;

/// Code points a text may hold per grapheme cluster of its limit, on average: bounds what is
/// stored when one cluster stacks hundreds of marks, and leaves room for the longest emoji
/// sequences (a subdivision flag is 7 code points, a family with skin tones 11).
pub const CODE_POINTS_PER_GRAPHEME: usize = 16;

/// ZERO WIDTH JOINER: invisible, but it glues emoji sequences (👩‍💻), so it is kept between
/// two visible characters.
const ZWJ: char = '\u{200D}';

/// BRAILLE PATTERN BLANK: a symbol (`So`) that renders as nothing, a known way to make an
/// option look empty.
const BRAILLE_BLANK: char = '\u{2800}';

/// Why a token subject is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// No characters at all.
    #[error("the subject is empty")]
    Empty,
    /// More than [`MAX_SUBJECT_CHARS`] characters.
    #[error("the subject is longer than {MAX_SUBJECT_CHARS} characters")]
    TooLong,
    /// A control, format, separator or otherwise invisible character (U+0000 included).
    #[error("the subject contains a control or invisible character")]
    NotPrintable,
}

impl SubjectError {
    /// Stable name of the failed check, for dead-letter headers and metrics labels.
    pub fn check(self) -> &'static str {
        match self {
            SubjectError::Empty => "voter_id_empty",
            SubjectError::TooLong => "voter_id_too_long",
            SubjectError::NotPrintable => "voter_id_not_printable",
        }
    }
}

/// Checks a token subject (`sub`, RFC 7519 §4.1.2) as pollstream accepts it: 1 to
/// [`MAX_SUBJECT_CHARS`] characters, none of them a control (`Cc`, U+0000 included), format
/// (`Cf`), line or paragraph separator, other whitespace than U+0020, or default-ignorable
/// (invisible) character.
pub fn check_subject(subject: &str) -> Result<(), SubjectError> {
    if subject.is_empty() {
        return Err(SubjectError::Empty);
    }
    // Printable ASCII is none of the refused classes: the usual subject (an id, `guest-<uuid>`)
    // needs no Unicode property lookups.
    if subject.len() <= MAX_SUBJECT_CHARS && subject.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Ok(());
    }
    if subject.chars().nth(MAX_SUBJECT_CHARS).is_some() {
        return Err(SubjectError::TooLong);
    }
    if subject
        .chars()
        .any(|c| is_unprintable(c) || (c != ' ' && is_whitespace(c)))
    {
        return Err(SubjectError::NotPrintable);
    }
    Ok(())
}

/// Why a text people read is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing visible is left once invisible characters and whitespace are removed.
    #[error("must not be blank")]
    Blank,
    /// Longer than allowed after normalisation.
    #[error("must be at most {max} characters")]
    TooLong {
        /// The limit, in grapheme clusters.
        max: usize,
    },
    /// Holds a control character (U+0000 to U+001F and U+007F to U+009F, other than tab and
    /// line breaks, which count as whitespace).
    #[error("must not contain control characters (found U+{code:04X})")]
    Control {
        /// The offending code point.
        code: u32,
    },
}

/// Normalises a question or option the way people read it, one extended grapheme cluster
/// (Unicode Standard Annex #29: what a reader sees as one character, such as `❤️`, `🏳️‍🌈`, the
/// England flag's tag sequence or `葛󠄀`) at a time: NFC (Unicode Standard Annex #15), each
/// cluster kept whole with its presentation and variation selectors, joiners and tags, clusters
/// made only of invisible characters (a lone zero width space, byte order mark, bidi control,
/// soft hyphen, Hangul filler) removed, each run of whitespace (tabs and line breaks included)
/// made one space, and both ends trimmed. A zero width joiner ending a cluster is kept only when
/// a visible cluster follows at once. Refuses control characters, text that is blank afterwards
/// (nothing but whitespace and invisible characters), text longer than `max_chars` grapheme
/// clusters and text longer than `max_chars` × [`CODE_POINTS_PER_GRAPHEME`] code points.
pub fn normalize_text(raw: &str, max_chars: usize) -> Result<String, TextError> {
    if let Some(c) = raw.chars().find(|&c| is_control(c) && !is_whitespace(c)) {
        return Err(TextError::Control { code: c as u32 });
    }
    let nfc: String = raw.nfc().collect();
    let clusters: Vec<&str> = nfc.graphemes(true).collect();
    let mut text = String::with_capacity(nfc.len());
    let mut graphemes = 0usize;
    let mut pending_space = false;
    for (index, &cluster) in clusters.iter().enumerate() {
        // A whitespace character may carry extenders (`" \u{200D}"` is one cluster): it is
        // still whitespace, and what hangs on it joins nothing.
        if cluster.chars().next().is_some_and(is_whitespace) {
            pending_space = !text.is_empty();
            continue;
        }
        if cluster.chars().all(is_invisible) {
            continue;
        }
        let mut kept = cluster;
        if let Some(unjoined) = kept.strip_suffix(ZWJ) {
            let joins = !pending_space
                && clusters
                    .get(index + 1)
                    .is_some_and(|next| next.chars().next().is_some_and(is_visible));
            if !joins {
                kept = unjoined;
            }
        }
        if pending_space {
            text.push(' ');
            graphemes += 1;
            pending_space = false;
        }
        text.push_str(kept);
        graphemes += 1;
    }
    if comparison_key(&text).is_empty() {
        return Err(TextError::Blank);
    }
    if graphemes > max_chars || text.chars().count() > max_chars * CODE_POINTS_PER_GRAPHEME {
        return Err(TextError::TooLong { max: max_chars });
    }
    Ok(text)
}

/// The key two texts are compared by when they must differ (a poll's options), built one
/// grapheme cluster at a time: compatibility normalisation (NFKC, so `ｙｅｓ` is `yes`), Unicode
/// default case folding (so `Straße` is `strasse`), clusters made only of invisible characters
/// dropped, whitespace runs made one space, and inside a cluster the variation selectors
/// (U+FE00 to U+FE0F, U+E0100 to U+E01EF: `❤️` and `❤`, `葛󠄀` and `葛` are one character drawn
/// two ways) and other invisible characters dropped, while the joiners and tag characters that
/// make a different picture (`👩‍💻` is not `👩💻`, the England flag is not the Scotland flag nor
/// a plain black flag) are kept. Two texts with the same key look the same to a reader.
pub fn comparison_key(text: &str) -> String {
    let mut key = String::with_capacity(text.len());
    let mut pending_space = false;
    for cluster in text.graphemes(true) {
        let first = cluster.chars().next();
        if first.is_some_and(|c| is_whitespace(c) || c == BRAILLE_BLANK) {
            pending_space = !key.is_empty();
            continue;
        }
        let drawn: String = cluster
            .chars()
            .filter(|&c| !is_control(c) && (!is_invisible(c) || c == ZWJ || is_tag(c)))
            .collect();
        let drawn = drawn.trim_start_matches(ZWJ).trim_end_matches(ZWJ);
        if drawn.is_empty() || drawn.chars().all(|c| c == ZWJ || is_tag(c)) {
            continue;
        }
        let folded = caseless::default_case_fold_str(&drawn.nfkd().collect::<String>());
        let mut cluster_key = String::with_capacity(folded.len());
        for c in folded.nfkc() {
            if is_whitespace(c) || c == BRAILLE_BLANK {
                // Compatibility forms may hold spaces (`U+33C2` is `a.m.`, `U+2474` `(1)`).
                cluster_key.push(' ');
            } else {
                cluster_key.push(c);
            }
        }
        if pending_space {
            key.push(' ');
            pending_space = false;
        }
        key.push_str(&cluster_key);
    }
    key
}

/// Tag characters (U+E0020 to U+E007F): invisible alone, but a tag sequence after U+1F3F4
/// names a flag (`gbeng`, `gbsct`, `gbwls`), so they are part of what a reader sees.
fn is_tag(c: char) -> bool {
    ('\u{E0020}'..='\u{E007F}').contains(&c)
}

fn category(c: char) -> GeneralCategory {
    CodePointMapData::<GeneralCategory>::new().get(c)
}

fn is_control(c: char) -> bool {
    category(c) == GeneralCategory::Control
}

fn is_whitespace(c: char) -> bool {
    CodePointSetData::new::<WhiteSpace>().contains(c)
}

/// Format characters and default-ignorable code points: zero width spaces and joiners, bidi
/// controls, soft hyphens, variation selectors, Hangul fillers, tags.
fn is_invisible(c: char) -> bool {
    category(c) == GeneralCategory::Format
        || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

fn is_unprintable(c: char) -> bool {
    matches!(
        category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::Surrogate
    ) || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

fn is_visible(c: char) -> bool {
    !is_whitespace(c) && !is_invisible(c) && !is_control(c) && c != BRAILLE_BLANK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_is_never_refused_in_a_subject() {
        // What lets `check_subject` skip the property lookups for printable ASCII.
        for c in ' '..='~' {
            assert!(
                !is_unprintable(c) && (c == ' ' || !is_whitespace(c)),
                "{c:?}"
            );
        }
        assert_eq!(
            check_subject(&"a".repeat(MAX_SUBJECT_CHARS)),
            Ok(()),
            "the limit itself is allowed"
        );
    }

    #[test]
    fn subjects_are_bounded_and_printable() {
        assert_eq!(check_subject("alice"), Ok(()));
        assert_eq!(check_subject("guest:01J9 Zoë"), Ok(()));
        assert_eq!(check_subject(&"é".repeat(MAX_SUBJECT_CHARS)), Ok(()));
        assert_eq!(check_subject(""), Err(SubjectError::Empty));
        assert_eq!(
            check_subject(&"a".repeat(MAX_SUBJECT_CHARS + 1)),
            Err(SubjectError::TooLong)
        );
        for bad in [
            "a\u{0}b",
            "tab\there",
            "line\nbreak",
            "del\u{7f}",
            "c1\u{85}",
            "zero\u{200B}width",
            "bidi\u{202E}override",
            "ls\u{2028}",
            "filler\u{3164}",
            "nbsp\u{a0}x",
        ] {
            assert_eq!(
                check_subject(bad),
                Err(SubjectError::NotPrintable),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn text_is_nfc_trimmed_and_single_spaced() {
        assert_eq!(
            normalize_text("  Yes \t\n please ", 200).unwrap(),
            "Yes please"
        );
        assert_eq!(normalize_text("Cafe\u{301}", 200).unwrap(), "Caf\u{e9}");
        assert_eq!(normalize_text("Ye\u{200B}s\u{FEFF}", 200).unwrap(), "Yes");
        assert_eq!(normalize_text("\u{AD}soft", 200).unwrap(), "soft");
    }

    #[test]
    fn emoji_sequences_keep_their_joiner() {
        let coder = "\u{1F469}\u{200D}\u{1F4BB}";
        assert_eq!(normalize_text(coder, 200).unwrap(), coder);
        assert_eq!(normalize_text("\u{200D}x\u{200D}", 200).unwrap(), "x");
        assert_eq!(normalize_text("a \u{200D} b", 200).unwrap(), "a b");
    }

    #[test]
    fn blank_text_is_refused() {
        for blank in [
            "",
            "   ",
            "\u{200B}",
            "\u{3164}",
            "\u{2800}",
            "\u{FEFF} \u{200D}",
        ] {
            assert_eq!(
                normalize_text(blank, 200),
                Err(TextError::Blank),
                "{blank:?}"
            );
        }
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(
            normalize_text("a\u{0}b", 200),
            Err(TextError::Control { code: 0 })
        );
        assert_eq!(
            normalize_text("esc\u{1B}[31m", 200),
            Err(TextError::Control { code: 0x1B })
        );
        assert_eq!(
            normalize_text("c1\u{9B}", 200),
            Err(TextError::Control { code: 0x9B })
        );
    }

    #[test]
    fn length_counts_characters_after_normalisation() {
        assert!(normalize_text(&"e\u{301}".repeat(200), 200).is_ok());
        assert_eq!(
            normalize_text(&"x".repeat(201), 200),
            Err(TextError::TooLong { max: 200 })
        );
        assert!(normalize_text(&format!("{}\u{200B}", "x".repeat(200)), 200).is_ok());
    }

    /// Emoji with a presentation selector, a ZWJ sequence, the three subdivision flags (tag
    /// sequences) and an ideographic variation sequence, as people type them.
    const AS_WRITTEN: [&str; 7] = [
        "\u{2764}\u{FE0F}",
        "1\u{FE0F}\u{20E3}",
        "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}",
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}",
        "\u{845B}\u{E0100}\u{98FE}",
    ];

    #[test]
    fn grapheme_clusters_are_kept_whole() {
        for text in AS_WRITTEN {
            assert_eq!(normalize_text(text, 200).as_deref(), Ok(text), "{text:?}");
            let spaced = format!("  Vote {text}\u{200B} now ");
            assert_eq!(
                normalize_text(&spaced, 200).unwrap(),
                format!("Vote {text} now"),
                "{text:?}"
            );
        }
        assert_eq!(
            normalize_text("❤️ 1️⃣ 🏳️‍🌈 🏴󠁧󠁢󠁥󠁮󠁧󠁿 🏴󠁧󠁢󠁳󠁣󠁴󠁿 🏴󠁧󠁢󠁷󠁬󠁳󠁿 葛󠄀飾", 500).unwrap(),
            AS_WRITTEN.join(" ")
        );
    }

    #[test]
    fn the_three_flags_are_three_options() {
        let [england, scotland, wales] = [AS_WRITTEN[3], AS_WRITTEN[4], AS_WRITTEN[5]];
        let black_flag = "\u{1F3F4}";
        let keys = [england, scotland, wales, black_flag].map(comparison_key);
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_ne!(
            comparison_key("\u{1F469}\u{200D}\u{1F4BB}"),
            comparison_key("\u{1F469}\u{1F4BB}")
        );
    }

    #[test]
    fn a_character_drawn_two_ways_is_one_option() {
        // A variation selector picks a glyph of the same character.
        assert_eq!(
            comparison_key("\u{2764}\u{FE0F}"),
            comparison_key("\u{2764}")
        );
        assert_eq!(
            comparison_key("\u{845B}\u{E0100}\u{98FE}"),
            comparison_key("葛飾")
        );
        assert_eq!(
            comparison_key("\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}"),
            comparison_key("\u{1F3F3}\u{200D}\u{1F308}")
        );
    }

    #[test]
    fn length_counts_what_a_reader_sees() {
        let england = AS_WRITTEN[3];
        assert_eq!(
            normalize_text(&england.repeat(200), 200).as_deref(),
            Ok(england.repeat(200).as_str())
        );
        assert_eq!(
            normalize_text(&england.repeat(201), 200),
            Err(TextError::TooLong { max: 200 })
        );
        // One cluster stacking thousands of marks is still bounded.
        let stacked = format!("a{}", "\u{301}".repeat(200 * CODE_POINTS_PER_GRAPHEME + 1));
        assert_eq!(
            normalize_text(&stacked, 200),
            Err(TextError::TooLong { max: 200 })
        );
    }

    #[test]
    fn lone_selectors_and_tags_are_blank() {
        for blank in ["\u{FE0F}", "\u{E0067}\u{E007F}", "\u{E0100}", " \u{FE0F} "] {
            assert_eq!(
                normalize_text(blank, 200),
                Err(TextError::Blank),
                "{blank:?}"
            );
        }
    }

    #[test]
    fn texts_that_look_the_same_have_the_same_key() {
        let same = [
            ("Yes", "yes"),
            ("Yes", "Yes\u{200B}"),
            ("Café", "Cafe\u{301}"),
            ("Straße", "STRASSE"),
            ("ｙｅｓ", "yes"),
            ("a  b", "a b"),
        ];
        for (a, b) in same {
            assert_eq!(comparison_key(a), comparison_key(b), "{a:?} vs {b:?}");
        }
        assert_ne!(comparison_key("Yes"), comparison_key("No"));
        assert_ne!(comparison_key("ab"), comparison_key("a b"));
    }
}
