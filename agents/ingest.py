"""movielog → parsed events in their user's partition → :class:`UserWriter`; profiles too.

Each raw line is parsed once.  Rejects go to the quarantine topic with their
reason and are counted.  A valid event already in the partition its user id
hashes to (our simulator and ``replay`` key lines by user) is applied right
here; any other is forwarded, keyed by user, to the events topic and applied
by ``ingest_rekeyed`` on the partition's owner.  Both agents call the same
writer, so each user's state still has exactly one writer per partition.

Our own :class:`~recstream.records.UserProfile` records (cold start) arrive on their
own topic, ``<app>-user-profiles``, keyed by user like the events topic, and go to the
same writer through ``apply_profiles``: the platform's lines and our records never share
a topic, so nothing has to tell them apart by their first byte.
"""
from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, Callable

from recstream.parsing import parse_raw
from recstream.records import Rejected, UserProfile
from recstream.kafka import AppProducer, partition_count
from recstream.prometheus import Metrics
from recstream.settings import Settings
from recstream.topics import Topics
from tables.codecs import user_key
from tables.context import partition_for

from agents.user_writer import UserWriter


def decode_profile(raw: bytes) -> UserProfile | None:
    """A UserProfile from the user-profiles topic (JSON), or None when it is not one."""
    try:
        record = UserProfile.loads(raw, serializer="json")
    except (ValueError, TypeError, KeyError):  # not ours: quarantined as a bad line
        return None
    ok = isinstance(record, UserProfile) and isinstance(record.user, int) and \
        isinstance(record.time, (int, float)) and isinstance(record.vector, list)
    return record if ok else None


# Events applied between two yields to the event loop: ~1-2 ms of work, so a
# request never waits behind a whole batch (ingest and serving share the loop).
CHUNK = 25
BAD_PROFILE = "bad_profile"  # quarantine reason: not a UserProfile of ours
PARTITION_MEMO = 1 << 16  # users whose key and partition are remembered (~10 MB at most)


class Ingest:
    """Parses, quarantines, re-keys or applies; the writer does the rest."""

    def __init__(self, *, settings: Settings, writer: UserWriter, metrics: Metrics,
                 producer: AppProducer, topics: Topics, consumer_of: Callable[[], Any]) -> None:
        self.writer, self.metrics, self.producer = writer, metrics, producer
        self.quarantine, self.events = topics.quarantine, topics.events
        self.movielog = topics.movielog
        self.consumer_of = consumer_of  # the app's consumer, asked for partition counts
        s = settings
        self.parse_args = dict(rating_min=s.rating_min, rating_max=s.rating_max,
                               max_user_id=s.max_user_id, max_minute=s.max_minute)
        self.partitions = s.partitions
        self._valid = metrics.lines.labels("valid")
        self._partitions: dict[int, tuple[bytes, int]] = {}

    async def consume(self, events, *, forward: bool) -> None:
        """Parse, apply and persist ``events`` (direct callers; the agents stage chunks)."""
        await self.stage(events, forward=forward)
        await self.commit()

    async def commit(self) -> None:
        """Persist what was staged, after the broker's acks (see :meth:`seal`)."""
        await self.writer.seal()

    def seal(self, events) -> asyncio.Future:
        """This micro-batch's writes, started now; ``events`` are acked once they are done.

        Each event's message is held (one more reference) so Faust does not commit its
        offset when the stream moves on to the next batch: the offset may only be
        committed once the users' state that event changed is written.
        """
        for event in events:
            event.message.incref()
        done = self.writer.seal()
        done.add_done_callback(partial(_ack_when_written, events))
        return done

    async def stage(self, events, *, forward: bool) -> None:
        metrics = self.metrics
        local = []
        valid = 0
        # Applying in place is only right when movielog is co-partitioned with
        # the tables (same partition count); otherwise every event is re-keyed.
        same_layout = not forward or self._co_partitioned()
        partition_of = self._partition_of
        for event in events:
            value = event.value if event.value is not None else b""
            parsed = parse_raw(value, **self.parse_args)
            if type(parsed) is Rejected:
                metrics.lines.labels("rejected").inc()  # only raw lines can be rejected
                metrics.rejects.labels(parsed.reason).inc()
                message = event.message
                parsed.topic, parsed.partition, parsed.offset = (
                    message.topic, message.partition, message.offset)
                await self.producer.produce(self.quarantine, None, parsed.dumps())
                continue
            valid += 1
            if not forward:
                local.append((event, parsed))
                continue
            key, partition = partition_of(parsed.user)
            if same_layout and event.message.partition == partition:
                local.append((event, parsed))
            else:
                metrics.rekeyed.inc()
                await self.producer.produce(self.events, key, event.value)
        if forward and valid:
            self._valid.inc(valid)
        if local:
            await self.writer.stage(local)

    def _partition_of(self, user: int) -> tuple[bytes, int]:
        """The user's key and the partition it hashes to (memoised: murmur2 is pure Python)."""
        known = self._partitions.get(user)
        if known is None:
            key = user_key(user)
            known = (key, partition_for(key, self.partitions))
            if len(self._partitions) >= PARTITION_MEMO:
                self._partitions.clear()
            self._partitions[user] = known
        return known

    async def consume_profiles(self, events) -> None:
        await self.stage_profiles(events)
        await self.commit()

    async def stage_profiles(self, events) -> None:
        """Our cold-start profiles, already in their user's partition; rejects quarantined."""
        local = []
        for event in events:
            profile = decode_profile(event.value or b"")
            if profile is not None:
                local.append((event, profile))
                continue
            self.metrics.rejects.labels(BAD_PROFILE).inc()
            message = event.message
            reject = Rejected(reason=BAD_PROFILE,
                              line=(event.value or b"").decode("utf-8", "replace")[:1000],
                              topic=message.topic, partition=message.partition,
                              offset=message.offset)
            await self.producer.produce(self.quarantine, None, reject.dumps())
        if local:
            await self.writer.stage(local)

    def _co_partitioned(self) -> bool:
        topic = self.movielog.get_topic_name()
        # #12: not ``topic_partitions`` alone — on every worker but the group's leader it
        # answers None, and such a worker re-keyed every line it read through the events
        # topic (twice the work, and a second hop behind the committed movielog offsets)
        return partition_count(self.consumer_of(), topic) == self.partitions


def _ack_when_written(events, done: asyncio.Future) -> None:
    if done.cancelled() or done.exception() is not None:
        return  # never acked: the offsets stay uncommitted and the events are replayed
    for event in events:
        event.ack()


async def run_batches(stream, stage, ingest: Ingest, *, batch_size: int,
                      within_s: float, written: Any = None) -> None:
    """Stage each micro-batch in chunks, then write it while the next one is staged.

    Chunks are staged (applied in memory, movie updates sent) with a yield between them;
    the batch's users' state is sealed (encoded) at its end and written once the broker
    acknowledged its movie updates, while the next batch is parsed and staged (#11: one
    batch in flight per agent, so the broker's round trip and the producer's linger are
    no longer paid in line).  Events are acked only after their batch is written.
    """
    pending: asyncio.Future | None = None
    async for events in stream.take_events(batch_size, within_s):
        for start in range(0, len(events), CHUNK):
            await stage(events[start:start + CHUNK])
            await asyncio.sleep(0)  # let /recommend in between chunks
        done = ingest.seal(events)
        if written is not None:
            done.add_done_callback(partial(_count_written, written, len(events)))
        if pending is not None:
            await pending  # the previous batch is written before this one is waited for
        pending = done
    if pending is not None:
        await pending


def _count_written(counter: Any, n: int, done: asyncio.Future) -> None:
    if not done.cancelled() and done.exception() is None:
        counter.inc(n)


def register(app, ingest: Ingest, *, topics: Topics, batch_size: int,
             within_s: float, progress: Any = None) -> Ingest:
    """``ingest_movielog``, ``ingest_rekeyed`` and ``apply_profiles`` over one :class:`Ingest`.

    ``progress`` (the pipeline counter, optional) counts each agent's events written.
    """
    options = dict(batch_size=batch_size, within_s=within_s)

    def written(stage: str) -> Any:
        return progress.labels(stage) if progress is not None else None

    @app.agent(topics.movielog, name="ingest_movielog")
    async def ingest_movielog(stream) -> None:
        await run_batches(stream, partial(ingest.stage, forward=True), ingest,
                          written=written("movielog_written"), **options)

    @app.agent(topics.events, name="ingest_rekeyed")
    async def ingest_rekeyed(stream) -> None:
        await run_batches(stream, partial(ingest.stage, forward=False), ingest,
                          written=written("events_written"), **options)

    @app.agent(topics.user_profiles, name="apply_profiles")
    async def apply_profiles(stream) -> None:
        await run_batches(stream, ingest.stage_profiles, ingest,
                          written=written("profiles_written"), **options)

    return ingest
