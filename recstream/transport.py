"""Faust's Kafka transport, re-reading what a rebalance dropped from never-committed partitions.

During a rebalance and the table recovery after it, Faust's consumer keeps fetching but
drops what it fetched for partitions whose flow is stopped (``Consumer.getmany`` breaks
off a fetched batch, or skips partitions not active yet); aiokafka's position has moved
past those records all the same.  Faust's safety net is to seek every stream partition
back to its committed offset when recovery ends (``perform_seek``), but aiokafka's
``seek_to_committed`` seeks only to offsets > 0: a partition nothing was ever committed
for keeps its advanced position, and the dropped records are never read (faust-streaming
issue #216 is the same hole for partitions that had an offset).  In recstream that lost the
first few hundred movie updates of every partition whenever a worker joined while the
first one ingested: movie counters short by 552–1,966 (issue #12, found by
``test_a_rebalance_mid_ingest_loses_and_doubles_nothing``).

Here a stream partition with no committed offset (or 0) is sought to its beginning, which
is what ``auto_offset_reset="earliest"`` would have read.  Changelog partitions are left
alone: Faust positions them itself from the offsets its stores persisted.
"""
from __future__ import annotations

from typing import Any, Mapping

from faust.transport.drivers import aiokafka as kafka_driver

__all__ = ["ConsumerThread", "Consumer", "Transport", "never_committed"]


def never_committed(committed: Mapping[Any, int | None], changelogs: set[str]) -> list:
    """The stream partitions of ``committed`` that have no offset to seek to (None or 0)."""
    return [tp for tp, offset in committed.items()
            if not offset and tp.topic not in changelogs]


class ConsumerThread(kafka_driver.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[Any, int]:
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self) -> Mapping[Any, int]:
        consumer = self._ensure_consumer()
        committed = await consumer.seek_to_committed()
        app = self.consumer.app
        if app.conf.consumer_auto_offset_reset == "earliest":
            missing = never_committed(committed, set(app.tables.changelog_topics))
            if missing:
                await consumer.seek_to_beginning(*missing)
        return committed


class Consumer(kafka_driver.Consumer):
    thread_class: type[ConsumerThread] = ConsumerThread  # recstream.tansu sets its own

    def _new_consumer_thread(self) -> ConsumerThread:
        return self.thread_class(self, loop=self.loop, beacon=self.beacon)


class Transport(kafka_driver.Transport):
    """``recstream-kafka://host:port`` — Faust's aiokafka transport with the seek above."""

    Consumer = Consumer


def faust_broker_url(broker_url: str) -> str:
    """The URL Faust is given: ``kafka://``/``aiokafka://`` brokers get this transport."""
    scheme, rest = broker_url.split("://", 1)
    return f"recstream-kafka://{rest}" if scheme in ("kafka", "aiokafka") else broker_url
