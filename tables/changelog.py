"""Table writes that reach the changelog without Faust's per-message producer buffer.

``table[key] = value`` in Faust queues a FutureMessage in its ProducerBuffer,
which a task then publishes one by one through the topic/channel layers with
a callback each; on the ingest path that costs more than the write itself.
:class:`ChangelogWriter` does the same two things directly: the RocksDB put
(as the event, so it lands in the event's partition) and one record queued on
the app's producer for the same changelog topic and partition.  The records are
identical to Faust's (raw key and value bytes), so recovery, standbys and
``faust tables`` see no difference.  Durability is the same too: Faust flushes
the producer before it commits source offsets.  The persisted changelog offset
(where recovery resumes) is recorded once per partition per batch, from the
newest record's acknowledgement.
"""
from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import faust
from faust.types import EventT, TP

from tables.context import put_in


class ChangelogWriter:
    def __init__(self, app: faust.App, progress: Any = None) -> None:
        self.app = app
        self._newest: dict[tuple[faust.Table, int], asyncio.Future] = {}
        self._sent = 0  # records sent since the last checkpoint
        # The pipeline counter (recstream.prometheus), optional: records sent, and acked
        # (counted per checkpoint from its newest records' acknowledgements).
        self.progress = progress

    async def put(self, table: faust.Table, key: bytes, value: bytes, event: EventT) -> None:
        partition = event.message.partition
        put_in(table, key, value, event)
        self._newest[(table, partition)] = await self.send(table, key, value, partition)
        self._sent += 1

    async def send(self, table: faust.Table, key: bytes, value: bytes,
                   partition: int) -> asyncio.Future:
        return await self.app.producer.send(table.changelog_topic.get_topic_name(), key, value,
                                            partition, None, None)

    def checkpoint(self) -> None:
        """Record each partition's newest changelog offset once it is acknowledged."""
        for (table, partition), future in self._newest.items():
            future.add_done_callback(partial(_persist, table, partition))
        if self.progress is not None and self._newest:
            self.progress.labels("changelog_sent").inc(self._sent)
            acked = asyncio.gather(*self._newest.values(), return_exceptions=True)
            acked.add_done_callback(partial(_count_acked, self.progress, self._sent))
        self._sent = 0
        self._newest.clear()


def _count_acked(progress: Any, n: int, done: asyncio.Future) -> None:
    # Records of one partition are acknowledged in order: the newest one's ack covers all.
    if not done.cancelled() and not any(isinstance(r, BaseException) for r in done.result()):
        progress.labels("changelog_acked").inc(n)


def _persist(table: faust.Table, partition: int, future: asyncio.Future) -> None:
    if future.cancelled() or future.exception() is not None:
        return  # not written: recovery will read from the previous persisted offset
    app = table.app
    if app.rebalancing or app.in_recovery:
        return  # acknowledged after the highwaters were read: would fail Faust's check
    tp = TP(table.changelog_topic.get_topic_name(), partition)
    table.data.set_persisted_offset(tp, future.result().offset)
