//! docs/operations.md's "Kafka console workflow", run for real: the three services as processes, then
//! Apache Kafka's console tools (`scripts/kafka-*`, the distribution's classes) and Debian's
//! `kcat` with that section's command lines, on the stack's own topics and consumer group.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pollstream_testkit::otlp::OtlpReceiver;
use pollstream_testkit::polls::{option_ids, option_votes};
use pollstream_testkit::stack::Stack;
use pollstream_wire::raw_vote_key;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use uuid::Uuid;

/// Runs the console tools against one set of brokers.
struct Console {
    brokers: String,
    scripts: PathBuf,
}

impl Console {
    fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
            scripts: pollstream_testkit::owned::workspace_root().join("scripts"),
        }
    }

    /// `scripts/TOOL --bootstrap-server BROKERS ARGS...`; its standard output.
    async fn tool(&self, tool: &str, args: &[&str], stdin: Option<&str>) -> String {
        let mut full = vec!["--bootstrap-server", self.brokers.as_str()];
        full.extend_from_slice(args);
        run(&self.scripts.join(tool), &full, stdin).await
    }

    /// Every message of `topic` so far, read by `kcat -C -o beginning -e -f KCAT_FORMAT`.
    async fn kcat_all(&self, topic: &str) -> Vec<Printed> {
        let args = [
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-f",
            KCAT_FORMAT,
        ];
        parse_kcat(&self.kcat(&args, None).await)
    }

    /// `kcat -b BROKERS ARGS...`; its standard output.
    async fn kcat(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut full = vec!["-b", self.brokers.as_str()];
        full.extend_from_slice(args);
        run(&PathBuf::from("kcat"), &full, stdin).await
    }
}

/// Runs `program` to completion (at most 90 s), feeding it `stdin`; panics with its output
/// unless it exits 0. Returns its standard output.
async fn run(program: &PathBuf, args: &[&str], stdin: Option<&str>) -> String {
    let started = Instant::now();
    let quoted: Vec<String> = args
        .iter()
        .map(|arg| {
            if arg.contains(|c: char| c.is_whitespace() || c == '|') {
                format!("'{}'", arg.escape_default())
            } else {
                (*arg).to_owned()
            }
        })
        .collect();
    let shown = format!("{} {}", program.display(), quoted.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("starting {shown}: {err}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes())
            .await
            .unwrap_or_else(|err| panic!("writing to {shown}: {err}"));
        // Closing standard input ends the producers' input.
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{shown} still running after 90 s"))
        .unwrap_or_else(|err| panic!("waiting for {shown}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{shown}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    println!("kafka_console: {:.1?} {shown}", started.elapsed());
    stdout
}

/// One message as kcat prints it with `-f '%p\t%o\t%k\t%h\t%s\n'`.
#[derive(Debug)]
struct Printed {
    partition: String,
    offset: String,
    key: String,
    headers: String,
    value: String,
}

const KCAT_FORMAT: &str = "%p\t%o\t%k\t%h\t%s\n";

fn parse_kcat(output: &str) -> Vec<Printed> {
    output
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.splitn(5, '\t').collect();
            assert_eq!(fields.len(), 5, "unexpected kcat line: {line:?}");
            Printed {
                partition: fields[0].to_owned(),
                offset: fields[1].to_owned(),
                key: fields[2].to_owned(),
                headers: fields[3].to_owned(),
                value: fields[4].to_owned(),
            }
        })
        .collect()
}

/// (partition, committed offset, log end offset, lag) per partition of `topic`, from
/// `kafka-consumer-groups --describe` (`-` where the group has committed nothing).
fn parse_describe(output: &str, topic: &str) -> Vec<(String, String, String, String)> {
    output
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|columns| columns.len() >= 6 && columns[1] == topic)
        .map(|columns| {
            (
                columns[2].to_owned(),
                columns[3].to_owned(),
                columns[4].to_owned(),
                columns[5].to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_console_workflow_on_the_running_stack() {
    let started = Instant::now();
    // The services trace (and put `traceparent` in the Kafka headers) only with an endpoint
    // to export to; what they export is not looked at here.
    let otlp = OtlpReceiver::start().await;
    let stack = Stack::start_with(
        "kafka-console",
        200,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.endpoint)],
    )
    .await;
    let raw_votes = stack.env_value("RAW_VOTES_TOPIC").to_owned();
    let dead_letters = format!("{raw_votes}{}", pollstream_wire::DEAD_LETTER_SUFFIX);
    let group = stack.env_value("AGGREGATOR_GROUP_ID").to_owned();
    let console = Console::new(stack.env_value("KAFKA_BROKERS"));

    let poll = stack.create_poll(&["a", "b", "c"]).await;
    let code = poll["code"].as_str().unwrap().to_owned();
    let poll_id: Uuid = poll["id"].as_str().unwrap().parse().unwrap();
    // A vote's key is its poll and voter (`{pollId}/{voterId}`): one poll spreads over the
    // partitions, one voter's votes stay on one.
    let key = raw_vote_key(poll_id, "alice");
    let options = option_ids(&poll);
    assert_eq!(
        stack.vote(&code, "alice", &options[0]).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        stack.vote(&code, "bob", &options[1]).await,
        StatusCode::ACCEPTED
    );
    let counted = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        (stack.counts(poll_id).await.0 == 2).then_some(())
    })
    .await;
    assert!(counted.is_some(), "the two votes were never counted");

    // (a) Tail raw-votes with keys and headers: the console consumer, then kcat.
    let tail = console
        .tool(
            "kafka-console-consumer",
            &[
                "--topic",
                &raw_votes,
                "--from-beginning",
                "--max-messages",
                "2",
                "--timeout-ms",
                "30000",
                "--property",
                "print.key=true",
                "--property",
                "print.headers=true",
                "--property",
                "print.partition=true",
                "--property",
                "print.offset=true",
            ],
            None,
        )
        .await;
    // Partition:P <tab> Offset:O <tab> headers <tab> key <tab> value
    let consumed: Vec<Vec<&str>> = tail
        .lines()
        .filter(|line| line.starts_with("Partition:"))
        .map(|line| line.splitn(5, '\t').collect())
        .collect();
    assert_eq!(consumed.len(), 2, "kafka-console-consumer printed:\n{tail}");
    let mut voters = Vec::new();
    for fields in &consumed {
        assert_eq!(fields.len(), 5, "{fields:?}");
        assert!(fields[1].starts_with("Offset:"), "{fields:?}");
        assert!(fields[2].contains("traceparent:00-"), "{fields:?}");
        let vote: Value = serde_json::from_str(fields[4]).expect("a raw vote");
        assert_eq!(vote["pollId"], poll_id.to_string());
        let voter = vote["voterId"].as_str().unwrap();
        assert_eq!(fields[3], raw_vote_key(poll_id, voter), "{fields:?}");
        voters.push(vote["voterId"].as_str().unwrap().to_owned());
    }
    voters.sort();
    assert_eq!(voters, ["alice", "bob"]);

    let printed = console.kcat_all(&raw_votes).await;
    assert_eq!(printed.len(), 2, "{printed:?}");
    assert!(
        printed.iter().all(|m| {
            let vote: Value = serde_json::from_str(&m.value).unwrap();
            m.key == raw_vote_key(poll_id, vote["voterId"].as_str().unwrap())
        }),
        "{printed:?}"
    );
    assert!(
        printed
            .iter()
            .all(|m| m.headers.contains("traceparent=00-")),
        "{printed:?}"
    );
    let alice = printed
        .iter()
        .find(|m| m.key == key)
        .expect("alice's vote in raw-votes");
    let (partition, alice_vote) = (alice.partition.clone(), alice.value.clone());

    // (b) An undecodable message produced by hand (under alice's key, `key<TAB>value` as the
    // docs/operations.md does it) lands in the dead-letter topic, with why.
    console
        .kcat(
            &[
                "-P",
                "-t",
                &raw_votes,
                "-K",
                "\t",
                "-X",
                "partitioner=murmur2_random",
            ],
            Some(&format!("{key}\tthis is not a vote\n")),
        )
        .await;
    let parked = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let printed = console.kcat_all(&dead_letters).await;
        (!printed.is_empty()).then_some(printed)
    })
    .await
    .expect("nothing reached the dead-letter topic");
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].key, key);
    assert_eq!(parked[0].value, "this is not a vote");
    assert!(parked[0].headers.contains("dlq-reason="), "{parked:?}");
    assert!(
        parked[0]
            .headers
            .contains(&format!("dlq-source-topic={raw_votes}")),
        "{parked:?}"
    );
    // kcat with murmur2_random put alice's key where voting-api put it.
    assert!(
        parked[0]
            .headers
            .contains(&format!("dlq-source-partition={partition}")),
        "{parked:?} (alice's vote is on partition {partition})"
    );

    let tail_dlq = console
        .tool(
            "kafka-console-consumer",
            &[
                "--topic",
                &dead_letters,
                "--from-beginning",
                "--max-messages",
                "1",
                "--timeout-ms",
                "30000",
                "--property",
                "print.headers=true",
                "--property",
                "print.key=true",
            ],
            None,
        )
        .await;
    let line = tail_dlq
        .lines()
        .find(|line| line.contains("dlq-reason:"))
        .unwrap_or_else(|| panic!("no dead letter printed:\n{tail_dlq}"));
    assert!(
        line.contains(&format!("dlq-source-topic:{raw_votes}")),
        "{line}"
    );
    assert!(
        line.ends_with(&format!("\t{key}\tthis is not a vote")),
        "{line}"
    );

    // (d) Replay alice's counted vote twice, then a poisonous vote PostgreSQL would refuse
    // (U+0000 in its voter id: it once stopped all counting), then a never-counted vote, by hand.
    let mut carol: Value = serde_json::from_str(&alice_vote).unwrap();
    carol["voteId"] = Uuid::new_v4().to_string().into();
    carol["voterId"] = "carol".into();
    carol["optionIds"] = serde_json::json!([options[2]]);
    let mut poison = carol.clone();
    poison["voteId"] = Uuid::new_v4().to_string().into();
    poison["voterId"] = "mallory\u{0}".into();
    assert!(poison.to_string().contains(r"\u0000"), "{poison}");
    let poison_key = raw_vote_key(poll_id, "mallory\u{0}");
    let carol_key = raw_vote_key(poll_id, "carol");
    let lines = format!(
        "{key}\t{alice_vote}\n{key}\t{alice_vote}\n{poison_key}\t{poison}\n{carol_key}\t{carol}\n"
    );
    console
        .tool(
            "kafka-console-producer",
            &[
                "--topic",
                &raw_votes,
                "--property",
                "parse.key=true",
                "--property",
                "key.separator=\t",
            ],
            Some(&lines),
        )
        .await;
    let results = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let results = stack.results(&code).await;
        (results["total"] == 3).then_some(results)
    })
    .await
    .expect("carol's vote was never counted");
    let votes = option_votes(&results);
    assert_eq!(votes, [1, 1, 1], "{results}");
    assert_eq!(stack.counts(poll_id).await, (3, vec![1, 1, 1]));
    assert_eq!(stack.ballots(poll_id).await, 3);
    let parked = pollstream_testkit::eventually(Duration::from_secs(30), || async {
        let printed = console.kcat_all(&dead_letters).await;
        (printed.len() >= 2).then_some(printed)
    })
    .await
    .expect("the poisonous vote was never parked");
    assert_eq!(parked.len(), 2, "{parked:?}");
    assert!(
        parked[1].value.contains(r"mallory\u0000"),
        "{:?}",
        parked[1]
    );
    assert!(
        parked[1]
            .headers
            .contains("dlq-reason=voter_id_not_printable"),
        "{:?}",
        parked[1]
    );
    assert_eq!(parked[1].key, poison_key, "a parked vote keeps its key");
    let printed = console.kcat_all(&raw_votes).await;
    assert_eq!(printed.len(), 7, "{printed:?}");
    let source = printed
        .iter()
        .find(|m| m.value.contains(r"mallory\u0000"))
        .expect("the poison in raw-votes");
    assert_eq!(source.key, poison_key);
    for header in [
        format!("dlq-source-partition={}", source.partition),
        format!("dlq-source-offset={}", source.offset),
    ] {
        assert!(
            parked[1].headers.contains(&header),
            "{header}: where the poison was read in {raw_votes} ({source:?}): {:?}",
            parked[1]
        );
    }

    // kafka-console-producer (the Java client's murmur2) agrees with the services and kcat:
    // every copy of alice's key is on the partition voting-api put her vote on, and each key
    // is on one partition.
    assert_eq!(
        printed.iter().filter(|m| m.key == key).count(),
        4,
        "{printed:?}"
    );
    for printed_message in &printed {
        let same_key = printed.iter().filter(|m| m.key == printed_message.key);
        assert!(
            same_key
                .clone()
                .all(|m| m.partition == printed_message.partition),
            "one key, one partition: {printed:?}"
        );
    }
    assert!(
        printed
            .iter()
            .filter(|m| m.key == key)
            .all(|m| m.partition == partition),
        "alice's key on her vote's partition: {printed:?}"
    );

    // (c) Consumer-group lag: every message (votes, dead letter, replays) committed.
    let describe = pollstream_testkit::eventually(Duration::from_secs(45), || async {
        let out = console
            .tool(
                "kafka-consumer-groups",
                &["--describe", "--group", &group],
                None,
            )
            .await;
        let rows = parse_describe(&out, &raw_votes);
        let sum = |column: fn(&(String, String, String, String)) -> &String| -> i64 {
            rows.iter()
                .filter_map(|row| column(row).parse::<i64>().ok())
                .sum()
        };
        let settled = rows.len() == 3
            && rows.iter().all(|(_, _, _, lag)| lag == "0" || lag == "-")
            && sum(|row| &row.1) == 7
            && sum(|row| &row.2) == 7;
        settled.then_some(out)
    })
    .await;
    assert!(
        describe.is_some(),
        "group {group} never showed lag 0 on {raw_votes}"
    );
    let groups = console
        .tool("kafka-consumer-groups", &["--list"], None)
        .await;
    assert!(groups.lines().any(|line| line == group), "{groups}");

    println!("kafka_console: whole workflow in {:.1?}", started.elapsed());
    stack.stop().await;
}
