"""Plain aiokafka clients outside Faust's own consumer, built in one place.

Agents that follow a topic from the beginning (items, model updates), the
operator commands (train, replay, provenance) and the model-updates announcer
all need the same few things: a reader that is not in a consumer group, a
producer that waits for every replica, topics created before first use, and end
offsets that are true on Tansu too.  Keeping them here means one place decides
those settings, and a broker quirk is fixed once.
"""
from __future__ import annotations

from typing import Any, Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from recstream.settings import Settings

PROBE_ROUNDS = 50  # fetch rounds when reading Tansu's true end offsets

def reader(bootstrap: str | list[str], **overrides: Any) -> AIOKafkaConsumer:
    """A consumer outside any group that starts at the beginning and commits nothing."""
    options: dict[str, Any] = dict(group_id=None, enable_auto_commit=False,
                                   auto_offset_reset="earliest")
    options.update(overrides)
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, **options)


def producer(bootstrap: str | list[str], **overrides: Any) -> AIOKafkaProducer:
    """A producer acknowledged by every in-sync replica (``acks=all``) unless overridden."""
    options: dict[str, Any] = dict(acks="all")
    options.update(overrides)
    return AIOKafkaProducer(bootstrap_servers=bootstrap, **options)


def admin(bootstrap: str | list[str]) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap)


async def ensure_topics(bootstrap: str | list[str], wanted: Mapping[str, int],
                        replication: int = 1,
                        configs: Mapping[str, Mapping[str, str]] | None = None) -> list[str]:
    """Create the topics in ``wanted`` (name → partitions) that do not exist yet.

    ``configs`` maps a topic name to its topic configs (e.g. ``cleanup.policy``);
    topics without an entry get the broker's defaults.  → the names created.
    """
    client = admin(bootstrap)
    await client.start()
    created = []
    try:
        existing = set(await client.list_topics())
        for name, partitions in wanted.items():
            if name in existing:
                continue
            topic_configs = dict((configs or {}).get(name) or {})
            try:
                await client.create_topics([NewTopic(name, partitions, replication,
                                                     topic_configs=topic_configs)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
    finally:
        await client.close()
    return created


async def ensure_topic(bootstrap: str | list[str], topic: str, partitions: int,
                       replication: int = 1) -> None:
    await ensure_topics(bootstrap, {topic: partitions}, replication)


async def end_offsets(consumer: AIOKafkaConsumer, settings: Settings,
                      tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """End offsets to read up to; on ``tansu://`` read from the log (its report is wrong)."""
    ends = await consumer.end_offsets(tps)
    if not settings.broker_url.startswith("tansu://"):
        return ends
    return await true_end_offsets(settings.bootstrap_servers, ends)


async def true_end_offsets(bootstrap: str | list[str], reported: Mapping[Any, int]
                           ) -> dict[Any, int]:
    """The real end offset of each partition, starting from the broker's report.

    Tansu reports the base offset of the last batch + 1 (see :mod:`recstream.tansu`):
    fetch from the reported end - 1 until the partition is quiet.  Keys are
    ``TopicPartition`` or Faust ``TP`` (both ``(topic, partition)`` tuples) and keep their type.
    """
    ends = dict(reported)
    probe = {tp: end for tp, end in reported.items() if end > 0}
    if not probe:
        return ends
    consumer = reader(bootstrap, fetch_max_wait_ms=50, isolation_level="read_uncommitted")
    await consumer.start()
    try:
        tps = {TopicPartition(tp.topic, tp.partition): tp for tp in probe}
        consumer.assign(list(tps))
        for ktp, tp in tps.items():
            consumer.seek(ktp, probe[tp] - 1)
        quiet = 0
        for _ in range(PROBE_ROUNDS):
            batches = await consumer.getmany(timeout_ms=100, max_records=100_000)
            if not batches:
                quiet += 1
                if quiet >= 2:
                    break
                continue
            quiet = 0
            for ktp, records in batches.items():
                tp = tps[TopicPartition(ktp.topic, ktp.partition)]
                ends[tp] = max(ends[tp], records[-1].offset + 1)
    finally:
        await consumer.stop()
    return ends


def line_key(line: bytes) -> bytes | None:
    """The user id of a movielog line as its Kafka key (None when there is none)."""
    parts = line.split(b",", 2)
    if len(parts) >= 2 and parts[1].isdigit() and len(parts[1]) <= 12:
        return str(int(parts[1])).encode()
    return None


class AppProducer:
    """Already-encoded messages straight onto a Faust app's producer.

    Skips Faust's channel/buffer layers (per-message futures and callbacks) that cost
    more than the work itself on the ingest path; delivery and ordering are the
    producer's (idempotent, acks=all in production).
    """

    def __init__(self, app: Any) -> None:
        self._app = app

    async def produce(self, topic: Any, key: bytes | None, value: bytes) -> None:
        await self._app.producer.send(topic.get_topic_name(), key, value, None, None, None)
