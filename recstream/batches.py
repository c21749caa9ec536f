"""Raw batches from the consumer: chosen topics skip Faust's per-message delivery (#11).

Faust hands every fetched record to its streams one at a time: per message the fetcher
waits on ``wait_first(callback(message), suspend_flow.wait())`` (two tasks and an
``asyncio.wait``), the conductor finds the topic's channels, decodes, queues, and the
stream's iterator, processors and ``take_events`` buffer take it out again.  On this box
that was ~55% of the worker's CPU per ingested line (docs/benchmarks.md, "Issue #11:
ingest phase 4").  For the topics registered here (the raw movielog and the re-keyed
events) :class:`BatchedDrain` instead hands each poll's records of a partition to that
topic's :class:`BatchQueue` as one list of :class:`faust.Event`; the agent reads lists.
Every other topic keeps Faust's path, message by message.

What Faust's path guarantees is kept, with the same consumer state:
- offsets: each message is tracked as unacked when queued and acked (``Event.ack``) by
  the agent only once its effects are written; Faust commits acked offsets as before,
  and read offsets and gaps are kept per partition as Faust's drain keeps them;
- flow control: nothing is queued while the app's flow control is suspended or after
  the consumer's generation changed (a rebalance), and the app's ``flow_control.clear()``
  (at revocation and resume) empties the queue, as it does every stream's buffer, so
  records of a revoked partition are never applied and Faust's ``wait_empty`` waits
  only for the batch an agent already holds;
- backpressure: above ``high`` queued events the queue's partitions are taken out of
  the fetch (``on_buffer_full``, Faust's own mechanism for a full stream buffer), and
  given back below ``low``, so other topics' records (movie updates) keep flowing
  while a movielog backlog is ingested.

A consumer without this mixin (the tests' ``memory://`` transport) delivers every topic
the Faust way; :func:`delivers_batches` tells the agents which way to read.
"""
from __future__ import annotations

import asyncio
from collections import deque
from time import monotonic
from typing import Optional

from faust.events import Event
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as kafka_driver
from faust.types import TP

__all__ = ["BatchQueue", "BatchedDrain", "KafkaTransport", "batch_queue", "delivers_batches"]

HIGH_WATER = 8192  # queued events above which a partition leaves the fetch (Faust's buffer)
LOW_WATER = 2048
YIELD_EVERY = 500  # records made into events between two turns of the loop (~1-2 ms)


def _queues(app) -> dict[str, "BatchQueue"]:
    queues = getattr(app, "_recstream_batch_queues", None)
    if queues is None:
        queues = app._recstream_batch_queues = {}
    return queues


def batch_queue(app, topic: str, *, high: int = HIGH_WATER, low: int = LOW_WATER
                ) -> "BatchQueue":
    """The queue ``topic``'s records go to (made once per app and topic, before start)."""
    queues = _queues(app)
    if topic not in queues:
        queues[topic] = BatchQueue(app, high=high, low=low)
    return queues[topic]


def delivers_batches(app) -> bool:
    """Whether ``app``'s consumer hands the registered topics to their queues."""
    return isinstance(app.consumer, BatchedDrain)


class BatchQueue:
    """Events of one topic, queued by the consumer's drain in lists, taken by one agent."""

    def __init__(self, app, *, high: int, low: int) -> None:
        self.app, self.high, self.low = app, high, low
        self._lists: deque[list[Event]] = deque()
        self._pending = 0
        self._paused: set[TP] = set()
        self._more: Optional[asyncio.Event] = None
        app.flow_control.manage_queue(self)  # cleared with every stream's buffer

    def __len__(self) -> int:
        return self._pending

    def _wakeup(self) -> asyncio.Event:
        if self._more is None:  # made on the worker's loop, at first use
            self._more = asyncio.Event()
        return self._more

    def put(self, tp: TP, events: list[Event]) -> None:
        """Queue a partition's events (never waits: a full queue pauses the partition)."""
        tp = TP(tp.topic, tp.partition)  # aiokafka's TopicPartition: Faust asserts its own
        self._lists.append(events)
        self._pending += len(events)
        self._wakeup().set()
        if self._pending >= self.high and tp not in self._paused:
            self._paused.add(tp)
            self.app.consumer.on_buffer_full(tp)

    async def get(self, n: int, within_s: float) -> list[Event]:
        """Up to ``n`` events in order; waits for the first, then ≤ ``within_s`` for ``n``."""
        more = self._wakeup()
        while not self._pending:
            more.clear()
            await more.wait()
        if self._pending < n and within_s > 0:
            deadline = monotonic() + within_s
            while self._pending < n:
                left = deadline - monotonic()
                if left <= 0:
                    break
                more.clear()
                try:
                    await asyncio.wait_for(more.wait(), left)
                except asyncio.TimeoutError:
                    break
        out: list[Event] = []
        lists = self._lists
        while lists and len(out) < n:
            head = lists[0]
            room = n - len(out)
            if len(head) <= room:
                out.extend(lists.popleft())
            else:
                out.extend(head[:room])
                lists[0] = head[room:]
        self._pending -= len(out)
        inbound = self.app.monitor.stream_inbound_time  # Faust's livelock check reads it
        now = monotonic()
        for tp in {event.message.tp for event in out}:
            inbound[tp] = now
        if self._paused and self._pending <= self.low:
            self._resume()
        return out

    def clear(self) -> None:
        """Drop what is queued (a rebalance): those offsets are not acked, so re-read."""
        self._lists.clear()
        self._pending = 0
        if self._paused:
            self._resume()

    def _resume(self) -> None:
        consumer = self.app.consumer
        held = getattr(consumer, "_paused_partitions", ())  # paused by Faust (a rebalance)
        for tp in self._paused:
            if tp in held:  # not ours to resume: only forget that our buffer was full
                consumer._buffered_partitions.discard(tp)
            else:
                consumer.on_buffer_drop(tp)
        self._paused.clear()


class BatchedDrain:
    """Consumer mixin: registered topics' records go to their queues, a poll at a time."""

    async def _drain_messages(self, fetcher) -> None:  # pragma: no cover - needs a broker
        queues = _queues(self.app)
        if not queues:
            return await super()._drain_messages(fetcher)
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                await self._drain_one_poll(queues)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _drain_one_poll(self, queues: dict[str, BatchQueue]) -> None:
        """One ``getmany``: queued topics a partition list at a time, the rest Faust's way."""
        records, active = await self._wait_next_records(1.0)
        await self.sleep(0)
        if records is None or self.should_stop:
            return
        if not self.flow_active:  # as Faust's getmany: back to the committed offsets
            try:
                await self.perform_seek()
            except Exception as exc:  # noqa: BLE001 - Faust logs and goes on too
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return
        app = self.app
        generation = app.consumer_generation_id
        others = {}
        for tp, batch in records.items():
            if not (active is None or tp in active or tp in self._buffered_partitions):
                continue
            queue = queues.get(tp.topic)
            if queue is None:
                others[tp] = batch
                continue
            events = await self._events_of(tp, batch)
            if not events:
                continue
            await app.flow_control.acquire()
            if not self.flow_active or app.consumer_generation_id != generation:
                return  # a rebalance began: these are re-read from the committed offsets
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            unacked = self._unacked_messages
            for event in events:
                unacked.add(event.message)
            queue.put(tp, events)
        if others:
            await self._deliver_one_by_one(others, generation)

    async def _events_of(self, tp: TP, batch: list) -> list[Event]:
        """The records as events, past Faust's read offset; gaps noted for the commit."""
        r_offset = self._read_offset[tp]
        if r_offset is not None and batch[0].offset < r_offset:
            batch = [record for record in batch if record.offset >= r_offset]
            if not batch:
                return []
        acks = self.app.topics.acks_enabled_for(tp.topic)
        first, last = batch[0].offset, batch[-1].offset
        if acks and r_offset and first - r_offset > 1:
            await self._add_gap(tp, r_offset + 1, first)
        if acks and last - first + 1 != len(batch):  # holes (control records, compaction)
            previous = first
            for record in batch[1:]:
                if record.offset - previous > 1:
                    await self._add_gap(tp, previous + 1, record.offset)
                previous = record.offset
        commit_every = self._commit_every
        if commit_every is not None and self._n_acked >= commit_every:
            self._n_acked = 0
            await self.commit()
        self._read_offset[tp] = last
        app, to_message = self.app, self._to_message
        out = []
        for start in range(0, len(batch), YIELD_EVERY):
            if start:
                await asyncio.sleep(0)  # a large poll must not hold the loop (serving)
            for record in batch[start:start + YIELD_EVERY]:
                message = to_message(tp, record)
                out.append(Event(app, message.key, message.value, None, message))
        return out

    async def _deliver_one_by_one(self, records: dict, generation: int) -> None:
        """Faust's drain for the other topics: each message to its streams, in turn."""
        callback, to_message = self.callback, self._to_message
        monitor = self.app.monitor
        for n, (tp, record) in enumerate(self.scheduler.iterate(records), 1):
            if not n % 100:
                await asyncio.sleep(0)  # as Faust's drain: the loop gets a turn
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return
            offset = record.offset
            r_offset = self._read_offset[tp]
            if r_offset is not None and offset < r_offset:
                continue
            if r_offset and offset - r_offset > 1 and self.app.topics.acks_enabled_for(tp.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            commit_every = self._commit_every
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            monitor.track_tp_end_offset(tp, self.highwater(tp))
            await self.wait_first(callback(to_message(tp, record)), self.suspend_flow.wait())
            self._read_offset[tp] = offset


class Consumer(BatchedDrain, kafka_driver.Consumer):
    """Faust's aiokafka consumer with :class:`BatchedDrain`."""


class KafkaTransport(kafka_driver.Transport):
    """``recstream-kafka://``: Faust's Kafka transport, queued topics in raw batches."""

    Consumer = Consumer


def batched_url(url: str) -> str:
    """The broker URL Faust is given: ``kafka://`` → our batched Kafka transport."""
    for scheme in ("kafka://", "aiokafka://"):
        if url.startswith(scheme):
            return "recstream-kafka://" + url[len(scheme):]
    return url

