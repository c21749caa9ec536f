"""Training data read from Kafka with a plain consumer, up to end offsets fixed at the start.

Two sources, both ending as per-user :class:`~tables.codecs.UserHistory` rows:

* the ``<app>-user_history-changelog`` topic: the state the workers hold (last value per
  key wins, a tombstone deletes the key).  Read from the beginning: on a compacting broker
  it holds one record per user; on Tansu (no compaction) every write of a user, of which
  only the newest is decoded.
* the raw movielog topic: every line parsed with the ingest parser and applied with the
  workers' own idempotent rules (latest rating by event time, furthest minute per watch).
  Where the broker answers ListOffsets by time (Apache Kafka) the scan starts at the first
  record produced after ``newest - window - margin``; Tansu answers every time query with
  offset 0 and timestamp -1, so there the whole topic is scanned.  Either way the window
  itself is applied to event time afterwards.

:class:`TopicRange` records exactly which offsets were read, for the manifest.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from recstream.kafka import end_offsets, reader
from recstream.parsing import parse_raw
from recstream.records import Rating, Rejected, WatchMinute
from recstream.settings import Settings
from tables.codecs import UserHistory, decode_history

STALL_S = 30.0        # no new record for this long before the end offset: give up
SEEK_MARGIN_H = 1.0   # records may be produced this long after their event time (+10 %)


class ReadError(RuntimeError):
    """A partition could not be read up to its end offset."""


@dataclasses.dataclass
class TopicRange:
    """The offsets read: partition → ``(start, end)``, end exclusive."""

    topic: str
    offsets: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_manifest(self) -> dict[str, dict[str, dict[str, int]]]:
        return {self.topic: {str(p): {"start": s, "end": e}
                             for p, (s, e) in sorted(self.offsets.items())}}

    def describe(self) -> str:
        records = sum(e - s for s, e in self.offsets.values())
        return f"{self.topic}: {len(self.offsets)} partitions, {records} offsets read"


# -- pure aggregation (unit-tested without Kafka) ------------------------------------------
def latest_values(records: Iterable[tuple[bytes | None, bytes | None]]) -> dict[bytes, bytes]:
    """Compacted view of a changelog: the last value per key, tombstoned keys removed."""
    latest: dict[bytes, bytes | None] = {}
    for key, value in records:
        if key is not None:
            latest[key] = value
    return {key: value for key, value in latest.items() if value is not None}


def histories_from_changelog(latest: Mapping[bytes, bytes]) -> dict[int, UserHistory]:
    """Decode ``user_history`` values; keys that are not user ids are skipped."""
    return {int(key): decode_history(value) for key, value in latest.items()
            if key.isdigit() and len(key) <= 12}


class LogAggregator:
    """movielog lines → per-user histories, by the same rules the user writer applies."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.users: dict[int, UserHistory] = {}
        self.counts = {"lines": 0, "ratings": 0, "watch_minutes": 0, "rejected": 0, "other": 0}

    def add(self, raw: bytes | str | None) -> None:
        s = self.settings
        self.counts["lines"] += 1
        record = parse_raw(raw or b"", rating_min=s.rating_min, rating_max=s.rating_max,
                           max_user_id=s.max_user_id, max_minute=s.max_minute)
        if isinstance(record, Rating):
            self.counts["ratings"] += 1
            self._user(record.user).rate(record.movie, record.rating, record.time)
        elif isinstance(record, WatchMinute):
            self.counts["watch_minutes"] += 1
            self._user(record.user).watch(record.movie, record.minute, record.time,
                                          s.watch_complete_minutes)
        elif isinstance(record, Rejected):
            self.counts["rejected"] += 1
        else:
            self.counts["other"] += 1

    def _user(self, user: int) -> UserHistory:
        history = self.users.get(user)
        if history is None:
            history = self.users[user] = UserHistory()
        return history


# -- reading -------------------------------------------------------------------------------
def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-user_history-changelog"


async def read_changelog(settings: Settings, progress: Any
                         ) -> tuple[dict[int, UserHistory], TopicRange]:
    latest: dict[bytes, bytes | None] = {}

    def keep(record) -> None:
        if record.key is not None:
            latest[record.key] = record.value

    read = await _read_topic(settings, changelog_topic(settings), keep, progress)
    live = {key: value for key, value in latest.items() if value is not None}
    read.stats = {"keys": len(latest), "tombstoned": len(latest) - len(live)}
    return histories_from_changelog(live), read


async def read_movielog(settings: Settings, hours: float, progress: Any
                        ) -> tuple[dict[int, UserHistory], TopicRange]:
    aggregator = LogAggregator(settings)
    read = await _read_topic(settings, settings.topic, lambda r: aggregator.add(r.value),
                             progress, window_hours=hours if hours > 0 else None)
    read.stats = {**read.stats, **aggregator.counts}
    return aggregator.users, read


async def _read_topic(settings: Settings, topic: str, on_record: Callable, progress: Any, *,
                      window_hours: float | None = None) -> TopicRange:
    consumer = reader(settings.bootstrap_servers, fetch_max_wait_ms=100,
                      max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return TopicRange(topic, stats={"missing_topic": True})
        # Apache Kafka's bootstrap metadata names no topic (Tansu's names all): ask for it
        parts = await consumer._client._wait_on_metadata(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = await end_offsets(consumer, settings, tps)
        starts = await consumer.beginning_offsets(tps)
        stats: dict[str, Any] = {"seek": "beginning"}
        if window_hours is not None and settings.broker_url.startswith("tansu://"):
            stats["seek"] = "beginning (Tansu answers time lookups with offset 0)"
        elif window_hours is not None:
            starts, stats["seek"] = await _window_starts(consumer, tps, starts, ends,
                                                         window_hours)
        read = TopicRange(topic, {tp.partition: (starts[tp], ends[tp]) for tp in tps}, stats)
        await _consume(consumer, {tp: (starts[tp], ends[tp]) for tp in tps}, on_record,
                       progress)
        return read
    finally:
        await consumer.stop()


async def _window_starts(consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                         starts: dict, ends: dict, hours: float) -> tuple[dict, str]:
    """First offsets worth reading for the window, or the beginnings if time is unknown."""
    newest: list[int] = []
    last = {tp: (ends[tp] - 1, ends[tp]) for tp in tps if ends[tp] > starts[tp]}
    await _consume(consumer, last, lambda r: newest.append(r.timestamp), None)
    if not newest or max(newest) <= 0:
        return starts, "beginning (no record timestamps)"
    margin_h = SEEK_MARGIN_H + 0.1 * hours
    target = int(max(newest) - (hours + margin_h) * 3_600_000)
    try:
        found = await consumer.offsets_for_times({tp: target for tp in tps})
    except KafkaError:
        return starts, "beginning (broker cannot look offsets up by time)"
    if any(hit is not None and hit.timestamp < 0 for hit in found.values()):
        return starts, "beginning (broker answers time lookups without timestamps)"
    chosen = {tp: ends[tp] if found[tp] is None else max(starts[tp], found[tp].offset)
              for tp in tps}
    return chosen, f"by time: records produced after {target} ms (window + {margin_h:g} h)"


async def _consume(consumer: AIOKafkaConsumer, ranges: dict[TopicPartition, tuple[int, int]],
                   on_record: Callable, progress: Any) -> None:
    """Call ``on_record`` for every record in each ``[start, end)``, in offset order.

    Progress is the consumer's position, which also moves past offsets a compacted topic
    no longer holds.
    """
    todo = {tp: (s, e) for tp, (s, e) in ranges.items() if e > s}
    total, done = sum(e - s for s, e in todo.values()), 0
    for tp, (start, _) in todo.items():
        consumer.seek(tp, start)
    moved_at = time.monotonic()
    while todo:
        batches = await consumer.getmany(*todo, timeout_ms=500, max_records=50_000)
        for tp, records in batches.items():
            end = todo[tp][1] if tp in todo else -1
            for record in records:
                if record.offset >= end:
                    break
                on_record(record)
        for tp in list(todo):
            start, end = todo[tp]
            position = min(end, await consumer.position(tp))
            if position > start:
                done += position - start
                moved_at = time.monotonic()
            if position >= end:
                del todo[tp]
                consumer.pause(tp)
            else:
                todo[tp] = (position, end)
        if progress is not None and total:
            progress.bar("records", done, total)
        if todo and time.monotonic() - moved_at > STALL_S:
            raise ReadError(f"no records for {STALL_S:g}s before the end offsets of "
                            + ", ".join(f"{tp.topic}[{tp.partition}]@{e}"
                                        for tp, (_, e) in todo.items()))
    consumer.resume(*ranges)
