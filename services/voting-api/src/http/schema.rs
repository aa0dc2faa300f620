//! OpenAPI schemas for the limits the server enforces that `#[derive(ToSchema)]` cannot state
//! (item constraints, unique items), so that the document refuses what the server refuses.

use pollstream_wire::input;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};

/// Control characters `input::normalize_text` refuses: C0 and C1 controls other than the
/// whitespace ones (tab, line breaks, NEL).
const CONTROL: &str = r"\u0000-\u0008\u000E-\u001F\u007F-\u0084\u0086-\u009F";

/// Characters that render as nothing and are removed before the blank check (the Basic
/// Multilingual Plane's default-ignorable and format characters, the Hangul fillers and
/// the blank Braille pattern).
const INVISIBLE: &str = r"\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFFB";

/// A text people read (a question, an option): no control characters and at least one
/// visible character. ECMA-262 syntax that Python's and Rust's regex engines read alike.
pub fn text_pattern() -> String {
    format!(r"^[^{CONTROL}]*[^\s{CONTROL}\u0085{INVISIBLE}][^{CONTROL}]*$")
}

/// A text matching [`text_pattern`] of 1 to `max_chars` grapheme clusters: JSON Schema's
/// `maxLength` counts code points, so it states the server's code point bound
/// (`max_chars` × [`input::CODE_POINTS_PER_GRAPHEME`]), and the description the cluster limit.
pub fn text(max_chars: usize, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max_chars * input::CODE_POINTS_PER_GRAPHEME))
        .pattern(Some(text_pattern()))
        .description(Some(description))
}

/// An array of `min..=max` distinct UUIDs.
pub fn distinct_uuids(min: usize, max: usize, description: &str) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        )
        .min_items(Some(min))
        .max_items(Some(max))
        .unique_items(true)
        .description(Some(description))
}

/// Rust's `White_Space`, which `str::trim` removes and `normalise_email` refuses inside.
const WHITESPACE: &str =
    r"\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// An email as `accounts::normalise_email` takes it: surrounding whitespace ignored, then
/// `local@domain`, the local part without `@`, the domain with a dot neither first nor last,
/// no whitespace or control character anywhere; 3 to 254 characters (the server counts bytes).
pub fn email() -> ObjectBuilder {
    let ws = format!("[{WHITESPACE}]");
    let visible = format!(r"[^{WHITESPACE}\u0000-\u001F\u007F-\u009F]");
    let not_at = format!(r"[^@{WHITESPACE}\u0000-\u001F\u007F-\u009F]");
    let not_dot = format!(r"[^.{WHITESPACE}\u0000-\u001F\u007F-\u009F]");
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(3))
        .max_length(Some(254))
        .pattern(Some(format!(
            r"^{ws}*{not_at}+@{not_dot}{visible}*\.{visible}*{not_dot}{ws}*$"
        )))
        .description(Some(
            "case-insensitive; once trimmed, 3 to 254 bytes, `local@domain` with a dot inside the domain, no whitespace or control characters",
        ))
}
