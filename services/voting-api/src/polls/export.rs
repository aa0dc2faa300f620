//! `GET /api/v1/polls/{code}/ballots.csv`: every counted ballot, streamed as CSV.
//!
//! A spreadsheet runs a cell that begins with `=`, `+`, `-` or `@` (and some with a tab or a
//! carriage return first) as a formula, so a voter id or an option text could leak the sheet
//! (`=HYPERLINK("http://…?x="&A2)`) or run a command when the owner opens the file. Every text
//! cell that came from a person is neutralised as OWASP's CSV injection guidance says: such a
//! cell gets a single quote `'` in front, and every cell that is not a number is quoted.

use std::borrow::Cow;
use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use pollstream_store::ballots::{self, Ballot};
use pollstream_wire::ErrorBody;
use uuid::Uuid;

use super::owned_poll;
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, Caller};
use crate::state::AppState;

/// Every ballot of a poll as CSV, streamed; owner only. Cells holding people's text (voter
/// ids, option texts) that begin with `=`, `+`, `-`, `@`, a tab or a carriage return get a
/// single quote `'` in front, so that a spreadsheet shows them as text instead of running them
/// as formulas (OWASP, CSV injection); every cell that is not a number is quoted.
#[utoipa::path(get, path = "/api/v1/polls/{code}/ballots.csv", tag = "polls", security(("bearer" = [])),
    params(("code" = String, Path, description = "join code")),
    responses((status = 200, content_type = "text/csv", body = String, description = "vote_id,voter_id,option_ids,options,cast_at,counted_at"),
        (status = 400, body = ErrorBody, description = "the path is not valid UTF-8"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not the owner, or a guest"), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(super) async fn export_ballots(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
) -> Result<Response, ApiError> {
    let poll = owned_poll(&state, &caller, &code).await?;
    let texts: HashMap<Uuid, String> = poll
        .options
        .iter()
        .map(|o| (o.id, o.text.clone()))
        .collect();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(32);
    let db = state.db.clone();
    let poll_id = poll.id;
    tokio::spawn(async move {
        // The header is ours and holds nothing to quote: scripts that match it as it was
        // (`head -1`, a column list) keep working.
        let header_row = csv_row_quoted(
            &[
                "vote_id",
                "voter_id",
                "option_ids",
                "options",
                "cast_at",
                "counted_at",
            ],
            csv::QuoteStyle::Necessary,
        );
        if tx.send(Ok(header_row)).await.is_err() {
            return;
        }
        let mut rows = ballots::all_of(&db, poll_id);
        loop {
            let chunk = match rows.try_next().await {
                Ok(Some(ballot)) => Ok(csv_ballot(&ballot, &texts)),
                Ok(None) => return,
                Err(err) => {
                    tracing::error!(poll_id = %poll_id, error = %err, "Ballot export failed midway");
                    Err(std::io::Error::other(err))
                }
            };
            let failed = chunk.is_err();
            // The client hung up: stop reading.
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let filename = format!("attachment; filename=\"poll-{}-ballots.csv\"", poll.code);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// One ballot as a CSV line, its options by id and by text.
fn csv_ballot(ballot: &Ballot, texts: &HashMap<Uuid, String>) -> Vec<u8> {
    let ids: Vec<String> = ballot.option_ids.iter().map(Uuid::to_string).collect();
    // Each text of the list is neutralised, not only the first: a spreadsheet opened with `;`
    // as its separator splits the cell there.
    let names: Vec<Cow<'_, str>> = ballot
        .option_ids
        .iter()
        .map(|id| text_cell(texts.get(id).map_or("", String::as_str)))
        .collect();
    csv_row(&[
        &ballot.vote_id.to_string(),
        &text_cell(&ballot.voter_id),
        &ids.join(";"),
        &names.join(";"),
        &ballot.cast_at.to_rfc3339(),
        &ballot.counted_at.to_rfc3339(),
    ])
}

/// A text cell from a person, made inert for spreadsheets: a single quote in front when it
/// begins with a character that starts a formula (OWASP's list: `=`, `+`, `-`, `@`, tab,
/// carriage return).
fn text_cell(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// One CSV line with RFC 4180 quoting (voter ids and option texts may hold commas and quotes),
/// every field that is not a number in quotes.
fn csv_row(fields: &[&str]) -> Vec<u8> {
    csv_row_quoted(fields, csv::QuoteStyle::NonNumeric)
}

/// One CSV line with RFC 4180 quoting, fields quoted as `style` says.
fn csv_row_quoted(fields: &[&str], style: csv::QuoteStyle) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(style)
        .from_writer(Vec::new());
    writer
        .write_record(fields)
        .expect("writing to memory cannot fail");
    writer.into_inner().expect("flushing to memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_start_a_formula_are_quoted_as_text() {
        // Tabs and carriage returns cannot reach an export through the API (texts are trimmed,
        // subjects refuse them): the rule still covers them, for rows written some other way.
        for formula in ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(text_cell(formula), format!("'{formula}"));
        }
        for text in ["plain", "1", "a=b", " =x", "'quoted"] {
            assert_eq!(text_cell(text), text);
        }
        let row = String::from_utf8(csv_row(&["=1", "x,y", "12"])).unwrap();
        assert_eq!(row, "\"=1\",\"x,y\",12\n");
    }
}
