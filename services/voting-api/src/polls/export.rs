//! `GET /api/v1/polls/{code}/ballots.csv`: every counted ballot, streamed as CSV.

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

/// Every ballot of a poll as CSV, streamed; owner only.
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
        let header_row = csv_row(&[
            "vote_id",
            "voter_id",
            "option_ids",
            "options",
            "cast_at",
            "counted_at",
        ]);
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
    let names: Vec<&str> = ballot
        .option_ids
        .iter()
        .map(|id| texts.get(id).map_or("", String::as_str))
        .collect();
    csv_row(&[
        &ballot.vote_id.to_string(),
        &ballot.voter_id,
        &ids.join(";"),
        &names.join(";"),
        &ballot.cast_at.to_rfc3339(),
        &ballot.counted_at.to_rfc3339(),
    ])
}

/// One CSV line with RFC 4180 quoting (voter ids and option texts may hold commas and quotes).
fn csv_row(fields: &[&str]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(fields)
        .expect("writing to memory cannot fail");
    writer.into_inner().expect("flushing to memory cannot fail")
}
