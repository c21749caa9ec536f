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

import faust
from faust.types import EventT, TP

from tables.context import as_event


class ChangelogWriter:
    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._newest: dict[tuple[faust.Table, int], asyncio.Future] = {}

    async def put(self, table: faust.Table, key: bytes, value: bytes, event: EventT) -> None:
        partition = event.message.partition
        with as_event(event):
            table.data[key] = value
        self._newest[(table, partition)] = await self.send(table, key, value, partition)

    async def send(self, table: faust.Table, key: bytes, value: bytes,
                   partition: int) -> asyncio.Future:
        return await self.app.producer.send(table.changelog_topic.get_topic_name(), key, value,
                                            partition, None, None)

    def checkpoint(self) -> None:
        """Record each partition's newest changelog offset once it is acknowledged."""
        for (table, partition), future in self._newest.items():
            future.add_done_callback(partial(_persist, table, partition))
        self._newest.clear()


def _persist(table: faust.Table, partition: int, future: asyncio.Future) -> None:
    if future.cancelled() or future.exception() is not None:
        return  # not written: recovery will read from the previous persisted offset
    tp = TP(table.changelog_topic.get_topic_name(), partition)
    table.data.set_persisted_offset(tp, future.result().offset)
