//! A replica's consumer group can rebalance under it (its session lapsed while the group
//! coordinator's broker was down, in a chaos run): the update sent meanwhile must still reach
//! the screens, or a poll whose last update it was stays wrong on them.

mod common;

use common::{replica_env, start_replica, test_ground};

use std::time::Duration;

use pollstream_testkit::polls::NewPoll;
use pollstream_testkit::socket_client::publish_until_seen;
use pollstream_testkit::topic_writer::TopicWriter;
use pollstream_testkit::{SocketClient, unique_topic};
use pollstream_wire::PollStatus;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;

/// The replica's group, found by its unique prefix.
async fn group_of(prefix: &str) -> String {
    let admin: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", pollstream_testkit::kafka_brokers())
        .create()
        .unwrap();
    pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let groups = admin.fetch_group_list(None, Duration::from_secs(5)).ok()?;
        groups
            .groups()
            .iter()
            .find(|g| g.name().starts_with(prefix))
            .map(|g| g.name().to_owned())
    })
    .await
    .expect("the replica's consumer group never showed up")
}

/// Another member joins the replica's group and takes the topic's one partition (the range
/// assignor gives it to the member whose id sorts first: `0-…` before `rdkafka-…`); an
/// update is sent while it holds it; then it leaves and the partition goes back. The replica
/// must deliver that update: it resumes from its own position, not from the newest offset.
#[tokio::test]
async fn an_update_sent_while_the_group_rebalances_still_reaches_the_screens() {
    let (topic, db) = test_ground(1).await;
    let prefix = unique_topic("realtime-rebalance");
    let replica =
        start_replica(&replica_env(&topic, &db).set("REALTIME_GROUP_PREFIX", &prefix)).await;
    let updates = TopicWriter::new(&topic);
    let poll = NewPoll::new(2).insert(&db.pool).await;
    let mut screen = SocketClient::connect(&replica.url).await;
    screen.request("join", json!({ "pollId": poll.id })).await;
    publish_until_seen(
        &updates,
        &poll.snapshot(1, &[1, 0], PollStatus::Open),
        &mut [&mut screen],
    )
    .await;
    // Let the replica's background commit record its position (every 5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;

    let group = group_of(&prefix).await;
    let intruder: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", pollstream_testkit::kafka_brokers())
        .set("group.id", &group)
        .set("client.id", "0-intruder")
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "range,roundrobin")
        .create()
        .unwrap();
    intruder.subscribe(&[&topic]).unwrap();
    let holds_it = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        // Polling serves the rebalance; the intruder reads nothing it commits.
        let _ = intruder.poll(Duration::from_millis(100));
        let assigned = intruder.assignment().ok()?;
        (assigned.count() == 1).then_some(())
    })
    .await;
    assert!(holds_it.is_some(), "the intruder never got the partition");
    updates
        .send_snapshot(&poll.snapshot(2, &[2, 0], PollStatus::Open))
        .await;
    intruder.unsubscribe();
    drop(intruder);

    let seen = screen.wait_for_results(2, Duration::from_secs(30)).await;
    assert!(
        seen.is_some(),
        "the update sent during the rebalance never reached the screen"
    );
    screen.close().await;
    drop(replica);
}
