"""scripts/kafka-tail, kafka-produce and kafka-lag against the running broker (the local tansu
broker that scripts/test starts, or whatever KAFKA_BROKERS names). Each test works on its own
throwaway topics (`test-console-...`) and consumer groups. Like the project's other tests, it
leaves them behind: tansu 0.6.0 (sqlite engine) can panic on DeleteTopics while other clients
are fetching, which takes the shared broker down.

Set KAFKA_CONSOLE_TESTS=skip to leave these out when no broker is running."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from rust_env import ROOT

BROKERS = os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092")

pytestmark = pytest.mark.skipif(
    os.environ.get("KAFKA_CONSOLE_TESTS") == "skip", reason="KAFKA_CONSOLE_TESTS=skip"
)


def broker_reachable() -> bool:
    host, _, port = BROKERS.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def admin() -> AdminClient:
    if not broker_reachable():
        pytest.fail(f"no Kafka broker at {BROKERS}: start one (scripts/up) or set KAFKA_CONSOLE_TESTS=skip")
    return AdminClient({"bootstrap.servers": BROKERS})


def create_topic(admin: AdminClient, name: str) -> str:
    for future in admin.create_topics([NewTopic(name, 3, 1)]).values():
        future.result(timeout=15)
    return name


@pytest.fixture
def topic(admin) -> str:
    """A fresh 3-partition topic, like raw-votes."""
    return create_topic(admin, f"test-console-{uuid.uuid4().hex[:12]}")


def run(script: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(ROOT / "scripts" / script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KAFKA_BROKERS": BROKERS},
    )
    assert result.returncode == 0, f"{script} {args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def tail_json(topic: str, *args: str) -> list[dict]:
    out = run("kafka-tail", topic, "--from-beginning", "--exit", "--format", "json", "--timeout", "30", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def raw_vote(poll_id: str) -> dict:
    return {"v": 1, "voteId": str(uuid.uuid4()), "pollId": poll_id, "voterId": "alice",
            "optionIds": [str(uuid.uuid4())], "castAt": "2026-11-23T10:00:00Z"}


def test_produce_then_tail_shows_keys_headers_and_values(topic):
    vote = raw_vote(str(uuid.uuid4()))
    produced = run("kafka-produce", topic, json.dumps(vote), "--key", vote["pollId"],
                   "-H", "traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert produced.stdout.strip().startswith(f"{topic}[")
    [message] = tail_json(topic)
    assert message["key"] == vote["pollId"]
    assert message["headers"] == {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    assert message["value"] == vote

    text = run("kafka-tail", topic, "-b", "-e", "--timeout", "30").stdout
    assert f"key={vote['pollId']}" in text and "traceparent=" in text


def test_key_field_keys_each_line_by_poll_id_like_the_api(topic):
    polls = [str(uuid.uuid4()) for _ in range(4)]
    lines = "\n".join(json.dumps(raw_vote(p)) for p in polls for _ in range(2)) + "\n"
    run("kafka-produce", topic, "--key-field", "pollId", stdin=lines)
    messages = tail_json(topic)
    assert len(messages) == 8
    partition_of = {}
    for message in messages:
        assert message["key"] == message["value"]["pollId"]
        # Same key, same partition: a poll's votes stay in order.
        assert partition_of.setdefault(message["key"], message["partition"]) == message["partition"]
    only = tail_json(topic, "--key", polls[0])
    assert [m["key"] for m in only] == [polls[0], polls[0]]


def test_last_and_value_formats(topic):
    run("kafka-produce", topic, "--key", "k", *(json.dumps({"n": n}) for n in range(5)))
    last = run("kafka-tail", topic, "--last", "2", "--exit", "--format", "value", "--timeout", "30").stdout
    assert [json.loads(line)["n"] for line in last.splitlines()] == [3, 4]


def test_replaying_dead_letters_with_tail_and_produce(admin, topic):
    """The README's replay: values out of one topic, keyed by pollId, into another."""
    votes = [raw_vote(str(uuid.uuid4())) for _ in range(3)]
    run("kafka-produce", topic, "--key", "x", "-H", "dlq-reason=test", *(json.dumps(v) for v in votes))
    target = create_topic(admin, f"{topic}-replay")
    values = run("kafka-tail", topic, "-b", "-e", "-f", "value", "--timeout", "30").stdout
    run("kafka-produce", target, "--key-field", "pollId", stdin=values)
    replayed = tail_json(target)
    assert sorted(m["value"]["voteId"] for m in replayed) == sorted(v["voteId"] for v in votes)
    assert all(m["key"] == m["value"]["pollId"] for m in replayed)


def test_lag_reports_committed_offsets_per_partition(topic):
    run("kafka-produce", topic, "--key-field", "p",
        stdin="".join(json.dumps({"p": f"poll-{n}"}) + "\n" for n in range(9)))
    group = f"test-console-group-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({"bootstrap.servers": BROKERS, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "fetch.wait.max.ms": 20})
    try:
        consumer.subscribe([topic])
        consumed = 0
        deadline = time.monotonic() + 30
        while consumed < 4 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            consumed += 1
            consumer.commit(message=message, asynchronous=False)
        assert consumed == 4
        positions = {tp.partition: tp.offset for tp in consumer.committed(
            [TopicPartition(topic, p) for p in range(3)], timeout=10)}
    finally:
        consumer.close()

    out = run("kafka-lag", group, "--topic", topic).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith(topic)]
    assert len(rows) == 3
    total = 0
    for name, partition, committed, end, lag in rows:
        expected = positions[int(partition)]
        assert committed == (str(expected) if expected >= 0 else "-")
        assert int(lag) == int(end) - max(expected, 0)
        total += int(lag)
    assert f"total lag {total}" in out and total == 9 - 4

    over = subprocess.run([str(ROOT / "scripts" / "kafka-lag"), group, "--topic", topic, "--max-lag", "0"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "KAFKA_BROKERS": BROKERS})
    assert over.returncode == 2
    assert group in run("kafka-lag", "--list").stdout.split()


def test_errors_are_reported_not_hidden():
    result = subprocess.run([str(ROOT / "scripts" / "kafka-tail"), f"test-console-missing-{uuid.uuid4().hex[:8]}", "-e"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "KAFKA_BROKERS": BROKERS})
    assert result.returncode != 0
    assert "error" in result.stderr
