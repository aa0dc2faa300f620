//! A replica's consumer group can rebalance under it (its session lapsed while the group
//! coordinator's broker was down, in a chaos run): the update sent meanwhile must still reach
//! the screens, or a poll whose last update it was stays wrong on them. Likewise for the
//! update sent while a replica that just started waits for its group's first partitions, and
//! the first updates on a partition added to the topic while it runs.

mod common;

use common::{replica_env, start_replica, test_ground};

use std::time::Duration;

use pollstream_testkit::polls::{NewPoll, StoredPoll};
use pollstream_testkit::{SocketClient, unique_topic};
use pollstream_wire::{PollSnapshot, PollStatus};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

/// Writes snapshots to chosen partitions of the test's `poll-updates`.
struct Updates {
    topic: String,
    producer: FutureProducer,
}

impl Updates {
    fn new(topic: &str) -> Self {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", pollstream_testkit::kafka_brokers())
            .create()
            .unwrap();
        Self {
            topic: topic.to_owned(),
            producer,
        }
    }

    async fn send(&self, partition: i32, snapshot: &PollSnapshot) {
        let key = snapshot.poll_id.to_string();
        let payload = snapshot.encode();
        let record = FutureRecord::to(&self.topic)
            .partition(partition)
            .key(&key)
            .payload(&payload);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(err, _)| err)
            .unwrap();
    }

    /// Sends `snapshot` to `partition` until `screen` shows it (the replica reads from the
    /// newest offset once it has its partitions).
    async fn warm_up(&self, partition: i32, snapshot: &PollSnapshot, screen: &mut SocketClient) {
        for _ in 0..100 {
            self.send(partition, snapshot).await;
            if screen
                .wait_for_results(snapshot.seq, Duration::from_millis(300))
                .await
                .is_some()
            {
                return;
            }
        }
        panic!("the replica never delivered an update");
    }
}

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

/// Another member that joins `group`, holds partition 0 of `topic` (the range assignor gives
/// the first partitions to the member whose id sorts first: `0-…` before `rdkafka-…`) while
/// `during` runs, then leaves, so that the replica gets the partition back.
async fn rebalance_around(group: &str, topic: &str, during: impl Future<Output = ()>) {
    let intruder: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", pollstream_testkit::kafka_brokers())
        .set("group.id", group)
        .set("client.id", "0-intruder")
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "range,roundrobin")
        .create()
        .unwrap();
    intruder.subscribe(&[topic]).unwrap();
    let holds_it = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        // Polling serves the rebalance; the intruder commits nothing.
        let _ = intruder.poll(Duration::from_millis(100));
        let assigned = intruder.assignment().ok()?;
        assigned
            .elements()
            .iter()
            .any(|e| e.partition() == 0)
            .then_some(())
    })
    .await;
    assert!(holds_it.is_some(), "the intruder never got partition 0");
    during.await;
    intruder.unsubscribe();
}

/// A replica of its own group (prefix returned) reading `topic`, and a screen on `poll`.
async fn replica_with_screen(
    topic: &str,
    db: &pollstream_testkit::TestDatabase,
    poll: &StoredPoll,
) -> (
    pollstream_testkit::server::RunningServer<realtime_service::RunError>,
    String,
    SocketClient,
) {
    let prefix = unique_topic("realtime-rebalance");
    let replica =
        start_replica(&replica_env(topic, db).set("REALTIME_GROUP_PREFIX", &prefix)).await;
    let mut screen = SocketClient::connect(&replica.url).await;
    screen.request("join", json!({ "pollId": poll.id })).await;
    (replica, prefix, screen)
}

/// A replica whose screen has seen `seq` 1 (sent to `warm_partition`) loses partition 0 to
/// another member; `seq` 2 goes to partition 0; the member leaves. Whether the screen then
/// gets `seq` 2.
async fn update_during_rebalance_arrives(partitions: i32, warm_partition: i32) -> bool {
    let (topic, db) = test_ground(partitions).await;
    let poll = NewPoll::new(2).insert(&db.pool).await;
    let (replica, prefix, mut screen) = replica_with_screen(&topic, &db, &poll).await;
    let updates = Updates::new(&topic);
    updates
        .warm_up(
            warm_partition,
            &poll.snapshot(1, &[1, 0], PollStatus::Open),
            &mut screen,
        )
        .await;
    // Let the replica's background commit record its position (every 5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;

    let group = group_of(&prefix).await;
    rebalance_around(&group, &topic, async {
        updates
            .send(0, &poll.snapshot(2, &[2, 0], PollStatus::Open))
            .await;
    })
    .await;

    let seen = screen.wait_for_results(2, Duration::from_secs(30)).await;
    screen.close().await;
    drop(replica);
    seen.is_some()
}

/// The partition the update goes to was read from before the rebalance.
#[tokio::test]
async fn an_update_sent_while_the_group_rebalances_still_reaches_the_screens() {
    assert!(
        update_during_rebalance_arrives(1, 0).await,
        "the update sent during the rebalance never reached the screen"
    );
}

/// The partition the update goes to had nothing to read since the replica started (one poll's
/// updates all go to one partition, so most partitions are quiet): it has no message offset
/// to commit, and must still not start again at the newest offset after the rebalance. The
/// replica reads partition 1 only before the rebalance.
#[tokio::test]
async fn an_update_on_a_partition_quiet_until_the_rebalance_still_reaches_the_screens() {
    assert!(
        update_during_rebalance_arrives(2, 1).await,
        "the update sent to a quiet partition during the rebalance never reached the screen"
    );
}

/// A replica restarted while updates flow: its screens re-join at once, and are answered from
/// the database. The poll's next update, sent before the replica's new consumer group gave it
/// partitions, must still reach them (it did not when the replica started reading at the
/// newest offset of the moment it got them: a chaos run's screens stayed on the counts of
/// the restart).
#[tokio::test]
async fn an_update_sent_before_a_new_replica_has_its_partitions_still_reaches_the_screens() {
    let (topic, db) = test_ground(1).await;
    let poll = NewPoll::new(2).insert(&db.pool).await;
    let updates = Updates::new(&topic);
    // A first update connects the producer, so that the one that matters goes out at once.
    updates
        .send(0, &poll.snapshot(1, &[1, 0], PollStatus::Open))
        .await;
    let replica = start_replica(&replica_env(&topic, &db)).await;
    // Sent as the replica starts, long before a new group can have given it partitions.
    updates
        .send(0, &poll.snapshot(2, &[2, 0], PollStatus::Open))
        .await;
    let mut screen = SocketClient::connect(&replica.url).await;
    let ack = screen.request("join", json!({ "pollId": poll.id })).await;
    let seen = ack["seq"] == 2
        || screen
            .wait_for_results(2, Duration::from_secs(20))
            .await
            .is_some();
    screen.close().await;
    drop(replica);
    assert!(
        seen,
        "the update sent before the replica had its partitions never reached the screen (joined at {})",
        ack["seq"]
    );
}

/// A screen joins a replica the moment it starts, while its new consumer group is still giving
/// it partitions (here well under a second, seconds on a loaded cluster), and the poll's
/// updates go on meanwhile: the screen must get every one of them, the one sent before the
/// replica held a partition as well as those after its join.
#[tokio::test]
async fn a_screen_joining_a_replica_still_being_assigned_partitions_gets_every_update() {
    let (topic, db) = test_ground(1).await;
    let poll = NewPoll::new(2).insert(&db.pool).await;
    let updates = Updates::new(&topic);
    // A first update connects the producer, so that the ones that matter go out at once.
    updates
        .send(0, &poll.snapshot(1, &[1, 0], PollStatus::Open))
        .await;
    let replica = start_replica(&replica_env(&topic, &db)).await;
    let during_assignment = poll.snapshot(2, &[2, 0], PollStatus::Open);
    let (screen, ()) = tokio::join!(
        async {
            let mut screen = SocketClient::connect(&replica.url).await;
            let ack = screen.request("join", json!({ "pollId": poll.id })).await;
            (screen, ack)
        },
        updates.send(0, &during_assignment),
    );
    let (mut screen, ack) = screen;
    // Answered from the database (`seq` 0) when the join came first, else from the update the
    // replica had read by then: either way the screen must get every later one.
    let answered = ack["seq"].as_i64().expect("join ack without a seq");
    assert!(
        answered <= 2,
        "the join was answered from the future: {ack}"
    );
    for seq in 3..=5 {
        updates
            .send(0, &poll.snapshot(seq, &[seq, 0], PollStatus::Open))
            .await;
    }
    let mut missed = Vec::new();
    for seq in answered + 1..=5 {
        if screen
            .wait_for_results(seq, Duration::from_secs(20))
            .await
            .is_none()
        {
            missed.push(seq);
        }
    }
    screen.close().await;
    drop(replica);
    assert!(
        missed.is_empty(),
        "the screen that joined while the replica was being assigned partitions missed seq {missed:?}"
    );
}

/// A partition added to `poll-updates` while a replica runs (an operator's
/// `kafka-topics --alter --partitions`) moves some polls' updates there: the replica's group
/// gives it the partition once its metadata shows it, and it must read the partition from its
/// first update, not from the end it has by then.
#[tokio::test]
async fn an_update_on_a_partition_added_while_the_replica_runs_reaches_the_screen() {
    let (topic, db) = test_ground(1).await;
    let poll = NewPoll::new(2).insert(&db.pool).await;
    let (replica, _prefix, mut screen) = replica_with_screen(&topic, &db, &poll).await;
    Updates::new(&topic)
        .warm_up(0, &poll.snapshot(1, &[1, 0], PollStatus::Open), &mut screen)
        .await;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", pollstream_testkit::kafka_brokers())
        .create()
        .unwrap();
    for result in admin
        .create_partitions(&[NewPartitions::new(&topic, 2)], &AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
    // A producer started now knows of the partition (an older one only at its next metadata
    // refresh); retried while the brokers' metadata catches up.
    let on_new_partition = poll.snapshot(2, &[2, 0], PollStatus::Open).encode();
    let sent = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let fresh = Updates::new(&topic);
        let record = FutureRecord::to(&topic)
            .partition(1)
            .key("added")
            .payload(&on_new_partition);
        fresh
            .producer
            .send(record, Duration::from_secs(2))
            .await
            .ok()
    })
    .await;
    assert!(sent.is_some(), "the added partition never took a message");
    let arrived = screen
        .wait_for_results(2, Duration::from_secs(30))
        .await
        .is_some();
    screen.close().await;
    drop(replica);
    assert!(
        arrived,
        "the update sent to the added partition never reached the screen"
    );
}
