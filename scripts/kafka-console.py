"""Kafka console for pollstream's topics: tail, produce, consumer-group lag, topics.

Run it through scripts/kafka-console (or scripts/kafka-tail, scripts/kafka-produce,
scripts/kafka-lag), which provide a virtualenv with confluent-kafka. confluent-kafka bundles a
recent librdkafka, which talks to both Apache Kafka and the local tansu broker; Debian's kcat
links librdkafka 2.0.2, which cannot parse tansu's ApiVersions reply.

The broker list comes from --brokers, else KAFKA_BROKERS, else 127.0.0.1:9092 (scripts/up's
broker; the compose stack's is 127.0.0.1:19092).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import NoReturn

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

DEFAULT_BROKERS = "127.0.0.1:9092"
TIMEOUT_S = 10.0


def brokers(args: argparse.Namespace) -> str:
    return args.brokers or os.environ.get("KAFKA_BROKERS") or DEFAULT_BROKERS


def note(message: str) -> None:
    """Progress and summaries go to stderr, so stdout carries only the data."""
    print(message, file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    note(f"kafka-console: error: {message}")
    sys.exit(1)


def base_config(args: argparse.Namespace) -> dict:
    return {
        "bootstrap.servers": brokers(args),
        "socket.timeout.ms": 10000,
        # librdkafka logs every failed connection attempt; failures still reach us as errors.
        "log_level": 2,
    }


def topic_partitions(admin: AdminClient, topic: str) -> list[int]:
    metadata = admin.list_topics(topic=topic, timeout=TIMEOUT_S)
    entry = metadata.topics.get(topic)
    if entry is None or entry.error is not None or not entry.partitions:
        reason = entry.error if entry is not None and entry.error else "no partitions"
        fail(f"topic {topic!r} is not available on {metadata.orig_broker_name} ({reason})")
    return sorted(entry.partitions)


# ---- tail ----------------------------------------------------------------------------------------


def decode(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")


def quote_if_spaced(value: str | None) -> str:
    if value is None or any(c in value for c in ' "'):
        return json.dumps(value)
    return value


def render(message, fmt: str) -> str:
    headers = [(k, decode(v)) for k, v in (message.headers() or [])]
    value = decode(message.value())
    if fmt == "value":
        return value if value is not None else ""
    ts_type, ts_ms = message.timestamp()
    timestamp = (
        datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
        if ts_ms is not None and ts_ms >= 0
        else None
    )
    if fmt == "json":
        parsed = value
        if value is not None:
            try:
                parsed = json.loads(value)
            except ValueError:
                pass
        return json.dumps(
            {
                "topic": message.topic(),
                "partition": message.partition(),
                "offset": message.offset(),
                "timestamp": timestamp,
                "key": decode(message.key()),
                "headers": dict(headers),
                "value": parsed,
            },
            separators=(",", ":"),
        )
    # Values with spaces (dlq-reason) are quoted, so each header stays one NAME=VALUE word.
    header_text = " ".join(f"{k}={quote_if_spaced(v)}" for k, v in headers)
    return (
        f"{message.topic()}[{message.partition()}]@{message.offset()} {timestamp} "
        f"key={decode(message.key())} headers={{{header_text}}}\n  {value}"
    )


def cmd_tail(args: argparse.Namespace) -> int:
    config = base_config(args)
    config.update(
        {
            # assign() below: no group membership, no commits, nothing shows up as lag.
            "group.id": f"kafka-console-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            # Some Kafka-compatible brokers hold a fetch for a fraction of this even with data
            # ready; keep it short so the tail is live.
            "fetch.wait.max.ms": 50,
        }
    )
    admin = AdminClient(base_config(args))
    partitions = args.partition if args.partition else topic_partitions(admin, args.topic)
    consumer = Consumer(config)
    assignment = []
    for partition in partitions:
        if args.last is not None:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(args.topic, partition), timeout=TIMEOUT_S
            )
            start = max(low, high - args.last)
        elif args.offset is not None:
            start = args.offset
        elif args.from_beginning:
            start = OFFSET_BEGINNING
        else:
            start = OFFSET_END
        assignment.append(TopicPartition(args.topic, partition, start))
    consumer.assign(assignment)
    note(
        f"tailing {args.topic} partitions {partitions} on {brokers(args)}"
        + (" until the end" if args.exit else " (Ctrl-C to stop)")
    )

    at_end: set[int] = set()
    shown = 0
    deadline = time.monotonic() + args.timeout if args.timeout else None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            if args.max is not None and shown >= args.max:
                break
            if args.exit and at_end.issuperset(partitions):
                break
            if deadline is not None and time.monotonic() > deadline:
                if args.exit:
                    fail(f"did not reach the end of {args.topic} within {args.timeout}s")
                break
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                    continue
                fail(str(message.error()))
            at_end.discard(message.partition())
            if args.key is not None and decode(message.key()) != args.key:
                continue
            print(render(message, args.format), flush=True)
            shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    note(f"{shown} message(s)")
    return 0


# ---- produce -------------------------------------------------------------------------------------


def parse_header(text: str) -> tuple[str, bytes]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"header {text!r} is not NAME=VALUE")
    return name, value.encode("utf-8")


def cmd_produce(args: argparse.Namespace) -> int:
    config = base_config(args)
    # The same guarantees as the services' producers: a delivery report means acks=all.
    config.update({"enable.idempotence": True, "acks": "all", "linger.ms": 5})
    producer = Producer(config)
    values = args.values or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not values:
        fail("nothing to produce: give VALUE arguments or lines on stdin")

    failures: list[str] = []

    def delivered(err, message) -> None:
        if err is not None:
            failures.append(str(err))
        else:
            print(f"{message.topic()}[{message.partition()}]@{message.offset()}", flush=True)

    for value in values:
        key = args.key
        if args.key_field:
            try:
                key = str(json.loads(value)[args.key_field])
            except (ValueError, KeyError, TypeError):
                fail(f"value has no JSON field {args.key_field!r}: {value[:200]}")
        message = {
            "value": value.encode("utf-8"),
            "key": key.encode("utf-8") if key is not None else None,
            "headers": args.header or None,
            "on_delivery": delivered,
        }
        try:
            producer.produce(args.topic, **message)
        except BufferError:
            # The local queue is full: wait for deliveries, then send this one again.
            producer.flush(TIMEOUT_S)
            producer.produce(args.topic, **message)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_S * 3)
    if remaining:
        failures.append(f"{remaining} message(s) not acknowledged in time")
    if failures:
        fail("; ".join(sorted(set(failures))))
    note(f"{len(values)} message(s) acknowledged by {brokers(args)}")
    return 0


# ---- lag -----------------------------------------------------------------------------------------


def cmd_lag(args: argparse.Namespace) -> int:
    admin = AdminClient(base_config(args))
    if args.list:
        groups = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result()
        for group in sorted(groups.valid, key=lambda g: g.group_id):
            print(group.group_id)
        return 0

    request = [ConsumerGroupTopicPartitions(args.group)]
    result = admin.list_consumer_group_offsets(request, request_timeout=TIMEOUT_S)
    committed = {
        (tp.topic, tp.partition): tp.offset
        for tp in result[args.group].result().topic_partitions
        if tp.error is None
    }
    topics = args.topic or sorted({topic for topic, _ in committed})
    if not topics:
        fail(f"group {args.group!r} has no committed offsets; name the topic with --topic")

    # Watermarks through a consumer that never joins a group.
    probe = Consumer({**base_config(args), "group.id": f"kafka-console-{uuid.uuid4()}"})
    rows = []
    total = 0
    try:
        for topic in topics:
            for partition in topic_partitions(admin, topic):
                low, high = probe.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=TIMEOUT_S
                )
                offset = committed.get((topic, partition), -1)
                # No commit yet: the group starts from its auto.offset.reset position; count
                # everything still in the log as not consumed.
                lag = high - (offset if offset >= 0 else low)
                total += lag
                rows.append((topic, partition, offset if offset >= 0 else "-", high, lag))
    finally:
        probe.close()

    members = ""
    try:
        described = admin.describe_consumer_groups([args.group], request_timeout=TIMEOUT_S)
        group = described[args.group].result()
        members = f", {len(group.members)} member(s), state {group.state.name}"
    except KafkaException:
        pass  # Not every Kafka-compatible broker implements DescribeGroups.

    print(f"group {args.group}{members}")
    print(f"{'TOPIC':<24} {'PARTITION':>9} {'COMMITTED':>10} {'END':>10} {'LAG':>8}")
    for topic, partition, offset, high, lag in rows:
        print(f"{topic:<24} {partition:>9} {offset!s:>10} {high:>10} {lag:>8}")
    print(f"total lag {total}")
    if args.max_lag is not None and total > args.max_lag:
        note(f"lag {total} is above --max-lag {args.max_lag}")
        return 2
    return 0


# ---- topics --------------------------------------------------------------------------------------


def cmd_topics(args: argparse.Namespace) -> int:
    admin = AdminClient(base_config(args))
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    for name in sorted(metadata.topics):
        if name.startswith("__") and not args.all:
            continue
        print(f"{name} ({len(metadata.topics[name].partitions)} partitions)")
    return 0


def build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="kafka-console",
        description="Inspect and feed pollstream's Kafka topics (raw-votes, raw-votes.dlq, "
        "poll-updates) on any Kafka-compatible broker.",
    )
    parser.add_argument("--brokers", help=f"bootstrap servers (KAFKA_BROKERS, {DEFAULT_BROKERS})")
    parser.add_argument("command", choices=["tail", "produce", "lag", "topics"])
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="the command's arguments (COMMAND --help)")

    def command(name: str, description: str, run) -> argparse.ArgumentParser:
        sub = argparse.ArgumentParser(prog=f"kafka-console {name}", description=description)
        sub.set_defaults(run=run)
        return sub

    tail = command("tail", "Print a topic's messages with partition, offset, key and headers. "
                   "Reads without joining a consumer group: nothing is committed.", cmd_tail)
    tail.add_argument("topic")
    start = tail.add_mutually_exclusive_group()
    start.add_argument("-b", "--from-beginning", action="store_true", help="start at the oldest message")
    start.add_argument("-n", "--last", type=int, metavar="N", help="start N messages before the end of each partition")
    start.add_argument("-o", "--offset", type=int, help="start at this offset (with --partition)")
    tail.add_argument("-p", "--partition", type=int, action="append", help="only this partition (repeatable)")
    tail.add_argument("-k", "--key", help="only messages with this key (e.g. a poll id)")
    tail.add_argument("-e", "--exit", action="store_true", help="stop at the end of every partition")
    tail.add_argument("-m", "--max", type=int, help="stop after this many messages")
    tail.add_argument("--timeout", type=float, help="stop after this many seconds")
    tail.add_argument("-f", "--format", choices=["text", "json", "value"], default="text",
                      help="text (default), json (one object a line), value (the value only)")

    produce = command("produce", "Produce values (arguments, or one per line on stdin) with an "
                      "idempotent acks=all producer; prints TOPIC[PARTITION]@OFFSET for each.", cmd_produce)
    produce.add_argument("topic")
    produce.add_argument("values", nargs="*", metavar="VALUE")
    keying = produce.add_mutually_exclusive_group()
    keying.add_argument("-k", "--key", help="message key (pollstream keys by poll id)")
    keying.add_argument("--key-field", metavar="FIELD", help="take each key from this JSON field of the value (e.g. pollId)")
    produce.add_argument("-H", "--header", action="append", type=parse_header, metavar="NAME=VALUE", help="a header (repeatable)")

    lag = command("lag", "Committed offset, end offset and lag per partition of a consumer group.", cmd_lag)
    lag.add_argument("group", nargs="?", default="poll-aggregator")
    lag.add_argument("-t", "--topic", action="append", help="topic(s) to report (default: those the group committed)")
    lag.add_argument("--max-lag", type=int, help="exit with status 2 when the total lag is above this")
    lag.add_argument("--list", action="store_true", help="list the consumer groups instead")

    topics = command("topics", "List topics and their partition counts.", cmd_topics)
    topics.add_argument("--all", action="store_true", help="include internal topics")
    return parser, {"tail": tail, "produce": produce, "lag": lag, "topics": topics}


def main() -> int:
    parser, commands = build_parsers()
    top = parser.parse_args()
    sub = commands[top.command]
    # Intermixed: options may follow the positional arguments (scripts/kafka-produce TOPIC VALUE -k KEY).
    args = sub.parse_intermixed_args(top.arguments)
    args.brokers = top.brokers
    if getattr(args, "offset", None) is not None and not args.partition:
        sub.error("--offset needs --partition")
    try:
        return args.run(args)
    except KafkaException as err:
        fail(f"{err} (brokers: {brokers(args)})")
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
