//! realtime-service with the official socket.io-client against real PostgreSQL, Redis and a
//! Kafka-compatible broker; snapshots are produced straight to a throwaway `poll-updates`.

mod common;

use common::{replica_env, start_replica, test_ground};

use std::time::Duration;

use pollstream_testkit::polls::{NewPoll, StoredPoll, insert_ballot};
use pollstream_testkit::server::RunningServer;
use pollstream_testkit::socket_client::publish_until_seen;
use pollstream_testkit::tokens::{claims, sign_claims, token};
use pollstream_testkit::topic_writer::TopicWriter;
use pollstream_testkit::{JWT_SECRET, SocketClient, TestDatabase};
use pollstream_wire::PollStatus;
use realtime_service::RunError;
use serde_json::{Value, json};
use uuid::Uuid;

struct Harness {
    db: TestDatabase,
    updates: TopicWriter,
    /// The replicas, stopped when the test drops the harness.
    _servers: Vec<RunningServer<RunError>>,
    urls: Vec<String>,
}

impl Harness {
    async fn new(replicas: usize) -> Self {
        let (topic, db) = test_ground(3).await;
        let mut servers = Vec::new();
        for _ in 0..replicas {
            servers.push(start_replica(&replica_env(&topic, &db)).await);
        }
        Self {
            db,
            updates: TopicWriter::new(&topic),
            urls: servers.iter().map(|server| server.url.clone()).collect(),
            _servers: servers,
        }
    }

    async fn poll(&self) -> StoredPoll {
        NewPoll::new(2).insert(&self.db.pool).await
    }

    async fn publish(&self, poll: &StoredPoll, seq: i64, votes: [i64; 2], status: PollStatus) {
        self.updates
            .send_snapshot(&poll.snapshot(seq, &votes, status))
            .await;
    }

    /// Publishes `seq` 1 until `client` sees it: the service consumes from the latest offset,
    /// so updates sent before its partitions are assigned are (rightly) never seen.
    async fn warm_up(&self, poll: &StoredPoll, clients: &mut [&mut SocketClient]) {
        let snapshot = poll.snapshot(1, &[1, 0], PollStatus::Open);
        publish_until_seen(&self.updates, &snapshot, clients).await;
    }

    /// A poll with the given results visibility, owned by `owner`.
    async fn poll_with(&self, visibility: &'static str) -> StoredPoll {
        NewPoll::new(2)
            .results_visibility(visibility)
            .insert(&self.db.pool)
            .await
    }

    async fn count_ballot(&self, poll: &StoredPoll, voter: &str) {
        insert_ballot(&self.db.pool, poll.id, voter, &[poll.options[0]]).await;
    }
}

fn seqs(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["seq"].as_i64().unwrap()).collect()
}

/// The `seq`s of the `poll-results` `client` got, once `last` arrived and 300 ms more passed
/// (an update sent before it but delivered late would show by then).
async fn seqs_once_settled(client: &mut SocketClient, last: i64) -> Vec<i64> {
    client
        .wait_for_results(last, Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("seq {last} never arrived"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    seqs(&client.events("poll-results"))
}

#[tokio::test]
async fn join_by_code_acknowledges_the_current_snapshot() {
    let h = Harness::new(1).await;
    let poll = h.poll().await;
    sqlx::query("UPDATE polls SET seq = 7, total = 3 WHERE id = $1")
        .bind(poll.id)
        .execute(&h.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE options SET votes = 3 WHERE id = $1")
        .bind(poll.options[1])
        .execute(&h.db.pool)
        .await
        .unwrap();
    let mut client = SocketClient::connect(&h.urls[0]).await;
    let ack = client
        .request("join", json!({ "code": poll.code.to_lowercase() }))
        .await;
    assert_eq!(ack["pollId"], poll.id.to_string());
    assert_eq!(ack["seq"], 7);
    assert_eq!(ack["total"], 3);
    assert_eq!(ack["options"][1]["votes"], 3);
    assert_eq!(ack["status"], "open");
    client.close().await;
}

#[tokio::test]
async fn bad_join_requests_get_an_error_acknowledgement() {
    let h = Harness::new(1).await;
    let mut client = SocketClient::connect(&h.urls[0]).await;
    let ack = client.request("join", json!({ "code": "NOPE42" })).await;
    assert_eq!(ack["error"], "poll_not_found");
    let ack = client
        .request("join", json!({ "pollId": Uuid::now_v7() }))
        .await;
    assert_eq!(ack["error"], "poll_not_found");
    let ack = client.request("join", json!({})).await;
    assert_eq!(ack["error"], "invalid_request");
    let ack = client.request("join", json!({ "pollId": 42 })).await;
    assert_eq!(ack["error"], "invalid_request");
    client.close().await;
}

#[tokio::test]
async fn updates_reach_the_room_in_order_and_stale_ones_are_dropped() {
    let h = Harness::new(1).await;
    let poll = h.poll().await;
    let other = h.poll().await;
    let mut member = SocketClient::connect(&h.urls[0]).await;
    let mut outsider = SocketClient::connect(&h.urls[0]).await;
    member.request("join", json!({ "pollId": poll.id })).await;
    outsider
        .request("join", json!({ "pollId": other.id }))
        .await;
    h.warm_up(&poll, &mut [&mut member]).await;

    h.publish(&poll, 3, [1, 2], PollStatus::Open).await;
    h.publish(&poll, 2, [1, 1], PollStatus::Open).await; // stale: must not be shown
    h.publish(&poll, 4, [2, 2], PollStatus::Open).await;
    assert_eq!(seqs_once_settled(&mut member, 4).await, vec![1, 3, 4]);

    let stats = member.events("poll-stats");
    let last = stats.last().unwrap();
    assert_eq!(last["pollId"], poll.id.to_string());
    assert_eq!(last["optionId"], poll.options[0].to_string());
    assert_eq!(last["newCount"], 2);
    assert!(stats.iter().all(|s| s["pollId"] == poll.id.to_string()));

    assert!(
        outsider.events("poll-results").is_empty(),
        "another poll's room got updates"
    );
    member.close().await;
    outsider.close().await;
}

/// A replica behind on `poll-updates` answers a join from PostgreSQL with a newer snapshot
/// than its room was sent: the room is shown it too, and the older update arriving later is
/// dropped instead of moving the newcomer's counts backwards.
#[tokio::test]
async fn a_join_newer_than_the_room_shows_the_room_and_older_updates_are_dropped() {
    let h = Harness::new(1).await;
    let poll = h.poll().await;
    let mut member = SocketClient::connect(&h.urls[0]).await;
    member.request("join", json!({ "pollId": poll.id })).await;
    h.warm_up(&poll, &mut [&mut member]).await;
    // Counted up to seq 3 while this replica has only broadcast seq 1.
    sqlx::query("UPDATE polls SET seq = 3, total = 2 WHERE id = $1")
        .bind(poll.id)
        .execute(&h.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE options SET votes = 1 WHERE poll_id = $1")
        .bind(poll.id)
        .execute(&h.db.pool)
        .await
        .unwrap();

    let mut newcomer = SocketClient::connect(&h.urls[0]).await;
    let ack = newcomer.request("join", json!({ "pollId": poll.id })).await;
    assert_eq!(
        (ack["seq"].as_i64(), ack["total"].as_i64()),
        (Some(3), Some(2))
    );
    h.publish(&poll, 2, [1, 0], PollStatus::Open).await; // on its way before the join: stale now
    h.publish(&poll, 4, [2, 1], PollStatus::Open).await;
    assert_eq!(seqs_once_settled(&mut member, 4).await, vec![1, 3, 4]);
    let shown = seqs_once_settled(&mut newcomer, 4).await;
    assert!(
        shown.iter().all(|&seq| seq >= 3),
        "the newcomer was sent an update older than its acknowledgement: {shown:?}"
    );
    member.close().await;
    newcomer.close().await;
}

/// A join the replica cannot answer (the snapshot cannot be read: PostgreSQL fails) leaves the
/// screen out of the room. Were it let in first, as it once was, it would get the updates a
/// replica that just started reads again from before it subscribed, older than what the screen
/// showed before it re-joined, and its counts would go backwards: a chaos run's screens did so
/// after their replica restarted.
#[tokio::test]
async fn a_join_that_cannot_be_answered_leaves_the_screen_out_of_the_room() {
    let h = Harness::new(1).await;
    let poll = h.poll().await;
    let mut member = SocketClient::connect(&h.urls[0]).await;
    member.request("join", json!({ "pollId": poll.id })).await;
    // The poll's access is remembered now; its snapshot can no longer be read.
    sqlx::query("ALTER TABLE options RENAME TO options_unreadable")
        .execute(&h.db.pool)
        .await
        .unwrap();
    let mut refused = SocketClient::connect(&h.urls[0]).await;
    let ack = refused.request("join", json!({ "pollId": poll.id })).await;
    assert_eq!(ack["error"], "unavailable", "{ack}");

    h.warm_up(&poll, &mut [&mut member]).await;
    h.publish(&poll, 2, [2, 0], PollStatus::Open).await;
    seqs_once_settled(&mut member, 2).await;
    let leaked = refused.events("poll-results");
    assert!(
        leaked.is_empty(),
        "a screen whose join failed got updates: {:?}",
        seqs(&leaked)
    );
    member.close().await;
    refused.close().await;
}

#[tokio::test]
async fn leaving_stops_updates_and_closing_is_announced_once() {
    let h = Harness::new(1).await;
    let poll = h.poll().await;
    let mut stays = SocketClient::connect(&h.urls[0]).await;
    let mut leaves = SocketClient::connect(&h.urls[0]).await;
    stays.request("join", json!({ "code": poll.code })).await;
    leaves.request("join", json!({ "code": poll.code })).await;
    h.warm_up(&poll, &mut [&mut stays, &mut leaves]).await;
    let ack = leaves.request("leave", json!({ "code": poll.code })).await;
    assert_eq!(ack["left"], true);

    h.publish(&poll, 2, [1, 1], PollStatus::Closed).await;
    h.publish(&poll, 2, [1, 1], PollStatus::Closed).await;
    stays
        .wait_for(Duration::from_secs(10), |line| {
            line["event"] == "poll-closed"
        })
        .await
        .expect("poll-closed never arrived");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stays.events("poll-closed").len(), 1);
    assert_eq!(stays.events("poll-closed")[0]["status"], "closed");
    assert!(
        leaves.events("poll-results").iter().all(|s| s["seq"] == 1),
        "updates after leave"
    );
    stays.close().await;
    leaves.close().await;
}

#[tokio::test]
async fn every_replica_delivers_every_update() {
    let h = Harness::new(2).await;
    let poll = h.poll().await;
    let mut first = SocketClient::connect(&h.urls[0]).await;
    let mut second = SocketClient::connect(&h.urls[1]).await;
    first.request("join", json!({ "pollId": poll.id })).await;
    second.request("join", json!({ "pollId": poll.id })).await;
    h.warm_up(&poll, &mut [&mut first, &mut second]).await;
    h.publish(&poll, 5, [3, 2], PollStatus::Open).await;
    for client in [&mut first, &mut second] {
        client
            .wait_for_results(5, Duration::from_secs(10))
            .await
            .expect("a replica missed the update");
    }
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn owner_only_counts_reach_only_the_owner() {
    let h = Harness::new(1).await;
    let poll = h.poll_with("owner_only").await;
    let mut owner = SocketClient::connect(&h.urls[0]).await;
    let mut stranger = SocketClient::connect(&h.urls[0]).await;
    let ack = owner
        .request(
            "join",
            json!({ "pollId": poll.id, "token": token("owner") }),
        )
        .await;
    assert_eq!(ack["total"], 0, "the owner gets the snapshot: {ack}");
    let ack = stranger
        .request(
            "join",
            json!({ "pollId": poll.id, "token": token("someone") }),
        )
        .await;
    assert_eq!(ack["hidden"], true, "{ack}");
    assert!(
        ack.get("options").is_none() && ack.get("total").is_none(),
        "no counts: {ack}"
    );
    let ack = stranger
        .request("join", json!({ "pollId": poll.id, "token": "forged" }))
        .await;
    assert_eq!(ack["error"], "unauthorized");

    h.warm_up(&poll, &mut [&mut owner]).await;
    h.publish(&poll, 2, [3, 1], PollStatus::Closed).await;
    owner
        .wait_for(Duration::from_secs(10), |l| l["event"] == "poll-closed")
        .await
        .expect("owner saw no close");
    let closed = stranger
        .wait_for(Duration::from_secs(10), |l| l["event"] == "poll-closed")
        .await
        .expect("the stranger is told the poll closed");
    assert_eq!(closed["data"]["hidden"], true);
    assert!(closed["data"].get("options").is_none(), "{closed}");
    assert!(
        stranger.events("poll-results").is_empty(),
        "counts leaked to a stranger"
    );
    assert!(
        stranger.events("poll-stats").is_empty(),
        "counts leaked to a stranger"
    );
    owner.close().await;
    stranger.close().await;
}

/// A `join` used to put every socket in the results room before it knew whether it may see
/// counts, and take it out again after reading the snapshot: an update broadcast in between
/// reached a viewer who may not see counts. Updates stream while a stranger joins and leaves
/// an owner-only poll again and again; it must never get one.
#[tokio::test]
async fn a_viewer_who_may_not_see_counts_gets_none_while_joining() {
    let h = Harness::new(1).await;
    let poll = h.poll_with("owner_only").await;
    let mut owner = SocketClient::connect(&h.urls[0]).await;
    owner
        .request(
            "join",
            json!({ "pollId": poll.id, "token": token("owner") }),
        )
        .await;
    h.warm_up(&poll, &mut [&mut owner]).await;
    let mut stranger = SocketClient::connect(&h.urls[0]).await;
    let joining = std::cell::Cell::new(true);
    let updates = async {
        let mut seq = 2;
        while joining.get() {
            h.publish(&poll, seq, [seq, 1], PollStatus::Open).await;
            seq += 1;
        }
        seq - 1
    };
    let joins = async {
        for _ in 0..60 {
            let ack = stranger
                .request(
                    "join",
                    json!({ "pollId": poll.id, "token": token("someone") }),
                )
                .await;
            assert_eq!(ack["hidden"], true, "{ack}");
            stranger
                .request("leave", json!({ "pollId": poll.id }))
                .await;
        }
        joining.set(false);
    };
    let (last_seq, ()) = tokio::join!(updates, joins);
    owner
        .wait_for_results(last_seq, Duration::from_secs(10))
        .await
        .expect("the owner missed updates");
    assert!(
        owner.events("poll-results").len() > 10,
        "too few updates streamed to test anything"
    );
    assert!(
        stranger.events("poll-results").is_empty() && stranger.events("poll-stats").is_empty(),
        "counts leaked to a stranger while joining: {:?}",
        seqs(&stranger.events("poll-results"))
    );
    owner.close().await;
    stranger.close().await;
}

/// The owner's own token, but not valid yet (`nbf`), issued in the future (`iat`) or with a
/// subject no service accepts: the `join` is refused like a forged token, no counts shown.
#[tokio::test]
async fn join_refuses_tokens_not_yet_valid_or_with_a_bad_subject() {
    let h = Harness::new(1).await;
    let poll = h.poll_with("owner_only").await;
    let mut client = SocketClient::connect(&h.urls[0]).await;
    let now = jsonwebtoken::get_current_timestamp();
    let sign = |claims: Value| sign_claims(&claims, JWT_SECRET);
    let mut base = claims("owner");
    base["exp"] = (now + 7200).into();
    let mut not_yet = base.clone();
    not_yet["nbf"] = (now + 3600).into();
    let mut future = base.clone();
    future["iat"] = (now + 3600).into();
    for (what, bad) in [
        ("nbf an hour ahead", sign(not_yet)),
        ("iat an hour ahead", sign(future)),
        ("U+0000 in the subject", token("owner\u{0}")),
    ] {
        let ack = client
            .request("join", json!({ "pollId": poll.id, "token": bad }))
            .await;
        assert_eq!(ack["error"], "unauthorized", "{what}: {ack}");
        assert!(ack.get("options").is_none(), "{what}: {ack}");
    }
    let ack = client
        .request("join", json!({ "pollId": poll.id, "token": sign(base) }))
        .await;
    assert_eq!(ack["total"], 0, "the same claims, valid now: {ack}");
    client.close().await;
}

#[tokio::test]
async fn after_close_counts_appear_for_everyone_at_close() {
    let h = Harness::new(1).await;
    let poll = h.poll_with("after_close").await;
    let mut owner = SocketClient::connect(&h.urls[0]).await;
    let mut audience = SocketClient::connect(&h.urls[0]).await;
    owner
        .request(
            "join",
            json!({ "code": poll.code, "token": token("owner") }),
        )
        .await;
    let ack = audience.request("join", json!({ "code": poll.code })).await;
    assert_eq!(ack["hidden"], true);
    h.warm_up(&poll, &mut [&mut owner]).await;
    h.publish(&poll, 2, [2, 2], PollStatus::Open).await;
    owner
        .wait_for(Duration::from_secs(10), |l| {
            l["event"] == "poll-results" && l["data"]["seq"] == 2
        })
        .await
        .unwrap();
    assert!(
        audience.events("poll-results").is_empty(),
        "counts before close"
    );

    h.publish(&poll, 3, [2, 3], PollStatus::Closed).await;
    let closed = audience
        .wait_for(Duration::from_secs(10), |l| l["event"] == "poll-closed")
        .await
        .expect("poll-closed never reached the audience");
    assert_eq!(
        closed["data"]["total"], 5,
        "the final snapshot comes with the close: {closed}"
    );
    // From now on the audience is in the results room.
    h.publish(&poll, 4, [3, 3], PollStatus::Closed).await;
    audience
        .wait_for(Duration::from_secs(10), |l| {
            l["event"] == "poll-results" && l["data"]["seq"] == 4
        })
        .await
        .expect("late counts after close");
    assert_eq!(audience.events("poll-closed").len(), 1, "announced once");
    let late = SocketClient::connect(&h.urls[0]).await;
    let mut late = late;
    let ack = late.request("join", json!({ "code": poll.code })).await;
    assert_eq!(
        ack["total"], 6,
        "after close anyone joining sees counts: {ack}"
    );
    for client in [owner, audience, late] {
        client.close().await;
    }
}

#[tokio::test]
async fn after_vote_counts_appear_once_the_voters_ballot_is_counted() {
    let h = Harness::new(1).await;
    let poll = h.poll_with("after_vote").await;
    let mut owner = SocketClient::connect(&h.urls[0]).await;
    let mut voter = SocketClient::connect(&h.urls[0]).await;
    let mut lurker = SocketClient::connect(&h.urls[0]).await;
    owner
        .request(
            "join",
            json!({ "pollId": poll.id, "token": token("owner") }),
        )
        .await;
    assert_eq!(
        voter
            .request("join", json!({ "pollId": poll.id, "token": token("ivy") }))
            .await["hidden"],
        true
    );
    assert_eq!(
        lurker.request("join", json!({ "pollId": poll.id })).await["hidden"],
        true
    );
    h.warm_up(&poll, &mut [&mut owner]).await;
    assert!(
        voter.events("poll-results").is_empty(),
        "counts shown to a voter whose ballot is not counted"
    );

    // The aggregator counts Ivy's ballot, then publishes the snapshot that includes it. The
    // first results she gets may also come from a late copy of the warm-up's snapshot whose
    // ballot check ran after the count; either way she then follows the room.
    h.count_ballot(&poll, "ivy").await;
    h.publish(&poll, 2, [2, 0], PollStatus::Open).await;
    voter
        .wait_for(Duration::from_secs(10), |l| {
            l["event"] == "poll-results" && l["data"]["seq"] == 2
        })
        .await
        .expect("the voter never saw results after being counted");
    h.publish(&poll, 3, [3, 0], PollStatus::Open).await;
    voter
        .wait_for(Duration::from_secs(10), |l| {
            l["event"] == "poll-results" && l["data"]["seq"] == 3
        })
        .await
        .expect("the voter now follows the room");
    assert!(
        lurker.events("poll-results").is_empty(),
        "counts leaked to someone who did not vote"
    );

    // A voter whose ballot is already counted sees counts at once.
    let mut returning = SocketClient::connect(&h.urls[0]).await;
    let ack = returning
        .request("join", json!({ "pollId": poll.id, "token": token("ivy") }))
        .await;
    assert_eq!(ack["seq"], 3, "{ack}");
    for client in [owner, voter, lurker, returning] {
        client.close().await;
    }
}
