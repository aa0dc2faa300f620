//! PostgreSQL crash-stopped for a few seconds under a steady trickle of votes, on the
//! multi-replica stack (two of each service, a PostgreSQL of the test's own): every vote by a
//! new voter on a poll both voting-api replicas know is `202` for the whole outage, long past
//! the poll cache's TTL, guests included (a guest token needs no database either); a voter
//! who already voted is `409`; both voting-api replicas stay ready (PostgreSQL named as
//! degraded) while a route only PostgreSQL can answer is `503` with `Retry-After`; a screen
//! joining a realtime-service replica that already resolved the poll gets its snapshot from the
//! results cache. Once PostgreSQL is back, the aggregators, which kept their offsets, count
//! every `202` exactly once, the screens show it, and nothing was restarted.

use std::time::{Duration, Instant};

use pollstream_testkit::polls::option_ids;
use pollstream_testkit::replicas::{ReplicaSettings, ReplicaStack, Service};
use pollstream_testkit::socket_client::SocketClient;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// How long PostgreSQL stays down: three times the poll cache's default TTL (2 s).
const OUTAGE: Duration = Duration::from_secs(6);

/// One vote every this often during the outage, alternating between the two replicas.
const VOTE_EVERY: Duration = Duration::from_millis(100);

/// `(status, Retry-After, body)` of a request.
async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Option<String>, Value) {
    let response = request.send().await.expect("request failed");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn vote(
    stack: &ReplicaStack,
    api: &str,
    code: &str,
    token: &str,
    option: &str,
) -> (StatusCode, Value) {
    let (status, _, body) = send(
        stack
            .http
            .post(format!("{api}/api/v1/votes/{code}"))
            .bearer_auth(token)
            .json(&json!({ "optionIds": [option] })),
    )
    .await;
    (status, body)
}

/// A guest token from `api`, as a phone gets one.
async fn guest_token(stack: &ReplicaStack, api: &str) -> String {
    let (status, _, body) = send(stack.http.post(format!("{api}/api/v1/auth/guest"))).await;
    assert_eq!(status, StatusCode::CREATED, "guest token: {body}");
    body["accessToken"].as_str().unwrap().to_owned()
}

async fn counted(stack: &ReplicaStack, poll_id: Uuid) -> (i64, i64) {
    let ballots: i64 = sqlx::query_scalar("SELECT count(*) FROM ballots WHERE poll_id = $1")
        .bind(poll_id)
        .fetch_one(&stack.pool)
        .await
        .unwrap_or(-1);
    let total: i64 = sqlx::query_scalar("SELECT total FROM polls WHERE id = $1")
        .bind(poll_id)
        .fetch_one(&stack.pool)
        .await
        .unwrap_or(-1);
    (ballots, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_are_taken_through_a_postgres_outage_and_counted_once() {
    let settings = ReplicaSettings {
        // One broker is enough here; the replica stack's three are for leader kills.
        brokers: 1,
        ..ReplicaSettings::new("postgres-outage")
    };
    let mut stack = ReplicaStack::start(settings).await;
    let apis = stack.urls(Service::VotingApi);
    let owner = stack.token("owner");
    let poll = pollstream_testkit::polls::create_poll(
        &stack.http,
        &apis[0],
        &owner,
        &json!({"question": "Through the outage?", "options": ["yes", "no"], "kind": "single"}),
    )
    .await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    let options = option_ids(&poll);

    // Both replicas read the poll before the outage, as any replica taking its votes has.
    let mut accepted = 0;
    for (i, api) in apis.iter().enumerate() {
        let token = stack.token(&format!("before-{i}"));
        let (status, body) = vote(&stack, api, &code, &token, &options[0]).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        accepted += 1;
    }

    let before = accepted as i64;
    let counted_before = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        (counted(&stack, poll_id).await == (before, before)).then_some(())
    })
    .await;
    assert!(
        counted_before.is_some(),
        "the first votes were never counted"
    );
    let realtime = stack.urls(Service::RealtimeService);
    let mut screen = SocketClient::connect(&realtime[0]).await;
    let joined = screen.request("join", json!({ "code": code })).await;
    assert_eq!(joined["total"], json!(before), "{joined}");

    stack.kill_postgres().await;
    let started = Instant::now();
    let mut answers = Vec::new();
    let mut i = 0;
    while started.elapsed() < OUTAGE {
        let api = &apis[i % apis.len()];
        // Every third voter is a guest, whose token is also had without the database.
        let token = if i % 3 == 0 {
            guest_token(&stack, api).await
        } else {
            stack.token(&format!("during-{i}"))
        };
        let (status, body) = vote(&stack, api, &code, &token, &options[i % 2]).await;
        answers.push((i, started.elapsed(), status, body));
        i += 1;
        tokio::time::sleep(VOTE_EVERY).await;
    }
    let refused: Vec<_> = answers
        .iter()
        .filter(|(_, _, status, _)| *status != StatusCode::ACCEPTED)
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {} votes during the outage were not taken: {refused:?}",
        refused.len(),
        answers.len()
    );
    println!(
        "{} votes by new voters during a {OUTAGE:?} PostgreSQL outage, every one 202",
        answers.len()
    );
    accepted += answers.len();
    assert!(
        answers
            .iter()
            .any(|(_, at, _, _)| *at > Duration::from_secs(4)),
        "no vote long past the cache's TTL"
    );

    for (i, api) in apis.iter().enumerate() {
        let again = stack.token(&format!("before-{}", 1 - i));
        let (status, body) = vote(&stack, api, &code, &again, &options[1]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::CONFLICT, Some("already_voted")),
            "{api}: {body}"
        );
        let (status, _, ready) = send(stack.http.get(format!("{api}/readyz"))).await;
        assert_eq!(status, StatusCode::OK, "{api}: {ready}");
        assert_eq!(ready["degraded"], json!(["postgres"]), "{api}: {ready}");
        let (status, retry_after, body) = send(
            stack
                .http
                .get(format!("{api}/api/v1/polls/mine"))
                .bearer_auth(&owner),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("database_unavailable")
            ),
            "{api}: {body}"
        );
        assert!(retry_after.is_some(), "{api}: no Retry-After");
    }

    // A second screen on the replica that resolved the poll: answered from the results cache.
    let mut late_screen = SocketClient::connect(&realtime[0]).await;
    let joined = late_screen.request("join", json!({ "code": code })).await;
    assert_eq!(joined["pollId"], json!(poll_id), "{joined}");
    assert!(
        joined["total"].as_i64().is_some_and(|t| t >= before),
        "{joined}"
    );

    stack.resume_postgres().await;
    let want = accepted as i64;
    let all_counted = pollstream_testkit::eventually(Duration::from_secs(60), || async {
        (counted(&stack, poll_id).await == (want, want)).then_some(())
    })
    .await;
    assert!(
        all_counted.is_some(),
        "{want} votes answered 202, counted (ballots, total) {:?}; logs in {}",
        counted(&stack, poll_id).await,
        stack.log_dir.display()
    );
    for screen in [&mut screen, &mut late_screen] {
        let shown = screen
            .wait_for(Duration::from_secs(15), |line| {
                line["event"] == "poll-results" && line["data"]["total"] == json!(want)
            })
            .await;
        assert!(shown.is_some(), "a screen never showed the {want} votes");
    }
    // A flush redone after the outage would show now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        counted(&stack, poll_id).await,
        (want, want),
        "counted twice"
    );
    let (status, _, results) = send(
        stack
            .http
            .get(format!("{}/api/v1/polls/{code}/results", apis[1]))
            .bearer_auth(&owner),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{results}");
    assert_eq!(results["total"], json!(want), "{results}");
    let (status, _, ready) = send(stack.http.get(format!("{}/readyz", apis[0]))).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    // Every process is the one started with the stack: none was restarted, none fell over.
    let unhealthy = stack.unhealthy_after(Duration::from_secs(30)).await;
    assert!(unhealthy.is_empty(), "not healthy again: {unhealthy:?}");
    screen.close().await;
    late_screen.close().await;
    stack.stop().await;
}
