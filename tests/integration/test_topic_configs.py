"""Topic configs on a real Apache Kafka broker (#12): compacted state, stated retention.

Tansu accepts and ignores topic configs, so these run on Kafka only.
"""
from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from agents.lifecycle import create_topics
from recstream.app import create_app
from recstream.kafka import admin, reader, topic_overrides
from recstream.settings import Settings
from recstream.topics import partition_counts, topic_configs
from tables.codecs import user_key
from tables.context import partition_for
from tests.brokers import free_port, start_kafka, stop_kafka
from tests.integration.conftest import Worker, hostport, produce, wait_for

PLATFORM_RETENTION_MS = "123456789"


def settings_for(broker: str) -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings.from_env({"RECSTREAM_BROKER": broker, "RECSTREAM_APP_ID": f"cfg-{run}",
                              "RECSTREAM_TOPIC": f"movielog-{run}", "RECSTREAM_PARTITIONS": "2"})


def table_names(settings: Settings) -> list[str]:
    return [t.name for t in create_app(settings).recstream.tables.all()]


async def precreate(bootstrap: str, topics: dict[str, dict[str, str]], partitions: int) -> None:
    client = admin(bootstrap)
    await client.start()
    try:
        await client.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)
                                    for name, configs in topics.items()])
    finally:
        await client.close()


async def overrides(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    client = admin(bootstrap)
    await client.start()
    try:
        return await topic_overrides(client, topics)
    finally:
        await client.close()


@pytest.mark.parametrize("broker", ["kafka"], indirect=True)
def test_every_topic_gets_its_configs_and_wrong_ones_are_altered(broker):
    settings = settings_for(broker)
    names = table_names(settings)
    wanted = topic_configs(settings, names)
    app = settings.app_id
    assert all(wanted[f"{app}-{t}-changelog"] == {"cleanup.policy": "compact"} for t in names)
    # A changelog and the answer log as every startup before #12 left them (broker
    # defaults: delete after 7 days), and the platform's movielog with its own retention.
    stale = {f"{app}-user_history-changelog": {}, f"{app}-recommendations": {},
             f"{app}-item-broadcast": {"cleanup.policy": "delete", "retention.ms": "1000"},
             settings.topic: {"retention.ms": PLATFORM_RETENTION_MS}}
    asyncio.run(precreate(hostport(broker), stale, settings.partitions))

    create_topics(settings, names)

    every = list(partition_counts(settings, names))
    got = asyncio.run(overrides(hostport(broker), every))
    for topic, configs in wanted.items():
        assert {k: got[topic].get(k) for k in configs} == configs, topic
    assert got[f"{app}-item-broadcast"]["retention.ms"] == "1000"  # others' overrides kept
    assert got[settings.topic] == {"retention.ms": PLATFORM_RETENTION_MS}  # never touched


async def beginning(bootstrap: str, topic: str) -> int:
    """The sum over partitions of the first offset still held."""
    consumer = reader(bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or
               await _partitions(consumer, topic)]
        return sum((await consumer.beginning_offsets(tps)).values())
    finally:
        await consumer.stop()


async def _partitions(consumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


@pytest.fixture
def short_retention_kafka(tmp_path):
    """A Kafka broker whose default retention is 4 s, checked every second from the start,
    with segments rolled every second (``log.roll.ms``; topic-level ``segment.ms``)."""
    os.environ["RECSTREAM_KAFKA_PROPERTIES"] = (
        "log.retention.ms=4000\nlog.retention.check.interval.ms=1000\nlog.roll.ms=1000\n"
        "log.initial.task.delay.ms=0")
    try:
        handle = start_kafka(free_port(), tmp_path / "kafka")
    finally:
        del os.environ["RECSTREAM_KAFKA_PROPERTIES"]
    yield f"kafka://{handle.bootstrap_servers}"
    stop_kafka(handle)


def test_a_table_survives_a_retention_sized_gap(short_retention_kafka, tmp_path):
    """A user not written for longer than the retention is still restored from the changelog."""
    broker = short_retention_kafka
    run = uuid.uuid4().hex[:8]
    app_id, topic = f"gap-{run}", f"movielog-{run}"
    workers = []

    def start(name: str) -> Worker:
        worker = Worker(broker, app_id, topic, tmp_path / name, tmp_path / f"{name}.log")
        workers.append(worker)
        return worker.start()

    try:
        first = start("one")
        produce(broker, topic, ["2026-11-22T20:00:00,41,GET /rate/the+matrix+1999=5",
                                "2026-11-22T20:00:01,41,GET /rate/alien+1979=2"])
        wait_for(lambda: len(first.user(41)["ratings"]) == 2, 60, "user 41's two ratings")
        # The gap: user 41 is not written again for well over the retention, while the
        # broker keeps rolling segments and deleting expired ones.
        # Others in user 41's partition keep its changelog partition rolling segments.
        same = [u for u in range(1000, 3000)
                if partition_for(user_key(u), 4) == partition_for(user_key(41), 4)]
        deadline = time.monotonic() + 15
        i = 0
        while time.monotonic() < deadline:
            produce(broker, topic, [f"2026-11-22T20:01:{i % 60:02d},{same[i]},"
                                    f"GET /rate/movie+{i}=3"])
            i += 1
            time.sleep(1.0)
        newest = same[i - 1]
        wait_for(lambda: first.user(newest)["known"], 60, "the newest user")
        first.stop()
        # The gap was retention-sized: the broker deleted the platform's oldest lines.
        assert asyncio.run(beginning(hostport(broker), topic)) > 0
        fresh = start("two")  # an empty disk: everything comes from the changelogs
        wait_for(lambda: fresh.user(newest)["known"], 60, "the newest user restored")
        assert sorted(fresh.user(41)["ratings"]) == ["alien+1979", "the+matrix+1999"]
    finally:
        for worker in workers:
            worker.stop()
