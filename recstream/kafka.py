"""Plain aiokafka clients outside Faust's own consumer, built in one place.

Agents that follow a topic from the beginning (items, model updates), the
operator commands (train, replay, provenance) and the model-updates announcer
all need the same few things: a reader that is not in a consumer group, a
producer that waits for every replica, topics created before first use, and end
offsets that are true on Tansu too.  Keeping them here means one place decides
those settings, and a broker quirk is fixed once.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from recstream.settings import Settings

PROBE_ROUNDS = 50  # fetch rounds when reading Tansu's true end offsets
DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs v1+ config_source of a topic-level override
UNKNOWN_TOPIC = 3  # error code UNKNOWN_TOPIC_OR_PARTITION
DESCRIBE_ATTEMPTS = 40  # × 0.25 s
log = logging.getLogger(__name__)


class TopicConfigError(RuntimeError):
    """The broker refused to set a topic config we need."""

def reader(bootstrap: str | list[str], **overrides: Any) -> AIOKafkaConsumer:
    """A consumer outside any group that starts at the beginning and commits nothing."""
    options: dict[str, Any] = dict(group_id=None, enable_auto_commit=False,
                                   auto_offset_reset="earliest")
    options.update(overrides)
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, **options)


async def follow_topic(bootstrap: str | list[str], topic: str,
                       handle: Callable[[list[Any]], Awaitable[None]], *, partition: int = 0,
                       timeout_ms: int = 500) -> None:
    """Read one partition of a compacted topic from the beginning and then forever.

    Every worker follows the small announcement topics this way (model updates,
    experiments): a plain consumer, no group, so each holds the newest value of every
    key.  ``handle`` gets each fetched batch of records (possibly empty) in order; the
    consumer is stopped however the loop ends (cancellation included).
    """
    consumer = reader(bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        while True:
            batch = await consumer.getmany(tp, timeout_ms=timeout_ms)
            await handle(batch.get(tp, []))
    finally:
        await consumer.stop()


def producer(bootstrap: str | list[str], **overrides: Any) -> AIOKafkaProducer:
    """A producer acknowledged by every in-sync replica (``acks=all``) unless overridden."""
    options: dict[str, Any] = dict(acks="all")
    options.update(overrides)
    return AIOKafkaProducer(bootstrap_servers=bootstrap, **options)


def admin(bootstrap: str | list[str]) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap)


async def ensure_topics(bootstrap: str | list[str], wanted: Mapping[str, int],
                        replication: int = 1,
                        configs: Mapping[str, Mapping[str, str]] | None = None,
                        reconcile: bool = False) -> list[str]:
    """Create the topics in ``wanted`` (name → partitions) that do not exist yet.

    ``configs`` maps a topic name to its topic configs (e.g. ``cleanup.policy``);
    topics without an entry get the broker's defaults.  With ``reconcile``, a
    topic that already exists with other values for those configs is altered to
    them (see :func:`reconcile_configs`).  → the names created.
    """
    configs = configs or {}
    client = admin(bootstrap)
    await client.start()
    created = []
    try:
        existing = set(await client.list_topics())
        for name, partitions in wanted.items():
            if name in existing:
                continue
            topic_configs = dict(configs.get(name) or {})
            try:
                response = await client.create_topics([NewTopic(
                    name, partitions, replication, topic_configs=topic_configs)])
            except TopicAlreadyExistsError:
                existing.add(name)
                continue
            # aiokafka reports per-topic errors in the response instead of raising
            errors = {entry[0]: entry[1] for entry in response.topic_errors}
            if errors.get(name, 0) == TopicAlreadyExistsError.errno:
                existing.add(name)  # created meanwhile (e.g. by another worker)
            elif errors.get(name, 0):
                raise TopicConfigError(f"could not create topic {name}: {response.topic_errors}")
            else:
                created.append(name)
        if reconcile:
            await reconcile_configs(client, {name: dict(configs[name]) for name in wanted
                                             if name in existing and configs.get(name)})
    finally:
        await client.close()
    return created


async def topic_overrides(client: AIOKafkaAdminClient, topics: list[str]
                          ) -> dict[str, dict[str, str]]:
    """Each topic's topic-level config overrides (what was set on it, not broker defaults)."""
    if not topics:
        return {}
    for attempt in range(DESCRIBE_ATTEMPTS):
        responses = await client.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics])
        codes = {r[0] for response in responses for r in response.resources}
        # a topic created a moment ago (here or by another worker) may not have
        # reached the broker's metadata yet: UNKNOWN_TOPIC_OR_PARTITION for a while
        if UNKNOWN_TOPIC not in codes or attempt == DESCRIBE_ATTEMPTS - 1:
            break
        await asyncio.sleep(0.25)
    out: dict[str, dict[str, str]] = {}
    for response in responses:
        for error_code, message, _type, name, entries in response.resources:
            if error_code:
                raise TopicConfigError(f"describe_configs {name}: {error_code} {message}")
            out[name] = {}
            for entry in entries:
                # v0: (name, value, read_only, is_default, sensitive); v1+: (…, source, …)
                overridden = (not entry[3]) if len(entry) == 5 else \
                    entry[3] == DYNAMIC_TOPIC_CONFIG
                if overridden and entry[1] is not None:
                    out[name][entry[0]] = entry[1]
    return out


async def reconcile_configs(client: AIOKafkaAdminClient,
                            wanted: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Alter existing topics whose configs differ from ``wanted``; → the names altered.

    We alter rather than refuse: every topic here is ours, and each change only
    keeps state longer (delete → compact) or states a retention we own.  A
    topic created before its configs were set (all of them until #12) would
    otherwise keep deleting table history by age.  The old AlterConfigs call
    (aiokafka has no incremental one) replaces a topic's whole override set, so
    the overrides already on the topic are sent back with ours; a broker that
    refuses raises :class:`TopicConfigError` and the worker does not start.
    """
    current = await topic_overrides(client, list(wanted))
    changes = {name: {**current.get(name, {}), **dict(configs)}
               for name, configs in wanted.items()
               if any(current.get(name, {}).get(k) != v for k, v in configs.items())}
    if not changes:
        return []
    for name, configs in changes.items():
        log.warning("topic %s: configs %s → %s", name,
                    {k: current.get(name, {}).get(k) for k in wanted[name]}, dict(wanted[name]))
    responses = await client.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, configs)
         for name, configs in changes.items()])
    for response in responses:
        for error_code, message, _type, name in response.resources:
            if error_code:
                raise TopicConfigError(f"could not set the configs of topic {name} "
                                       f"({error_code} {message}): its data could be deleted by "
                                       "age; fix the topic or the broker's permissions")
    return sorted(changes)


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


def partition_count(consumer: Any, topic: str) -> int | None:
    """How many partitions ``topic`` has, as a Faust app's consumer knows it (None: not yet).

    Faust's ``topic_partitions`` reads aiokafka's group-coordinator snapshot, which only
    the group's *leader* keeps (it is filled while computing the assignment): on every
    other member it answers None.  The client's cluster metadata, which every member
    keeps for the topics it reads, answers there.
    """
    known = consumer.topic_partitions(topic)
    if known:
        return known
    thread = getattr(consumer, "_thread", None)
    client = getattr(getattr(thread, "_consumer", None), "_client", None)
    parts = client.cluster.partitions_for_topic(topic) if client is not None else None
    return len(parts) if parts else None


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

    async def produce(self, topic: Any, key: bytes | None, value: bytes) -> Any:
        """Queue one message; → the future of its acknowledgement."""
        return await self._app.producer.send(topic.get_topic_name(), key, value, None, None,
                                             None)

    async def produce_acked(self, topic: Any, messages: list[tuple[bytes | None, bytes]]
                            ) -> None:
        """Queue every message, then wait until the broker acknowledged all of them."""
        await asyncio.gather(*await self.produce_many(topic, messages))

    async def produce_many(self, topic: Any, messages: list[tuple[bytes | None, bytes]]
                           ) -> list:
        """Queue every message; → the futures of their acknowledgements (await them later)."""
        acks = [await self.produce(topic, key, value) for key, value in messages]
        return [ack for ack in acks if ack is not None]
