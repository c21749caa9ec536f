"""What the canary controller reads, read once: consumers that keep their position.

Phase 3's controller re-read the whole recommendations topic and the whole movielog at
every look (~300k lines after 10 minutes of a drill), which is what hit the scan
deadline on a loaded box.  :class:`Tail` keeps one consumer (outside any group, commits
nothing) on every partition of a topic; :meth:`Tail.read` returns what was appended
since the last read.  A read is bounded in time; what it leaves is read at the next
look (nothing re-read, nothing lost).  :class:`CanaryFeed` keeps what the guardrails
need: the experiment's answers and, per user, the movielog's watch minutes and the
platform's outcome lines (each line parsed once).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

import orjson
from aiokafka import TopicPartition

from models.experiments.telemetry import Watch, watches_from_minutes
from recstream.experiments import parse_label
from recstream.kafka import end_offsets, reader
from recstream.parsing import parse_raw
from recstream.records import RecommendationOutcome, WatchMinute
from recstream.settings import Settings
from recstream.topics import topic_names

READ_S = 20.0          # one look reads at most this long; the rest waits for the next look
BATCH = 20_000


class Tail:
    """New records of one topic since the last :meth:`read` (values ``keep`` accepts)."""

    def __init__(self, settings: Settings, topic: str,
                 keep: Callable[[Optional[bytes], bytes], bool]) -> None:
        self.settings, self.topic, self.keep = settings, topic, keep
        self.consumer: Any = None
        self.tps: list[TopicPartition] = []

    async def _assign(self) -> None:
        if self.consumer is None:
            self.consumer = reader(self.settings.bootstrap_servers)
            await self.consumer.start()
        available = self.consumer.partitions_for_topic(self.topic)
        if not available:
            await self.consumer._client.force_metadata_update()
            available = self.consumer.partitions_for_topic(self.topic) or set()
        new = [TopicPartition(self.topic, p) for p in sorted(available)
               if TopicPartition(self.topic, p) not in self.tps]
        if new:
            self.tps = self.tps + new
            self.consumer.assign(self.tps)
            await self.consumer.seek_to_beginning(*new)

    async def read(self, timeout_s: float = READ_S) -> list[bytes]:
        """Values appended since the last read, until the topic is quiet or ``timeout_s``."""
        await self._assign()
        if not self.tps:
            return []
        out: list[bytes] = []
        # Up to the ends as of now (a topic written continuously is never quiet, so "until
        # nothing comes" would read until the deadline; Tansu's reported ends are corrected).
        end = await end_offsets(self.consumer, self.settings, self.tps)
        remaining = {tp for tp in self.tps if await self.consumer.position(tp) < end[tp]}
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            batches = await self.consumer.getmany(*remaining, timeout_ms=250, max_records=BATCH)
            for tp, records in batches.items():
                out.extend(r.value for r in records if r.offset < end[tp] and
                           r.value is not None and self.keep(r.key, r.value))
                if records and records[-1].offset >= end[tp]:  # past this read's end
                    self.consumer.seek(tp, end[tp])
            for tp in list(remaining):
                if await self.consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return out

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None


class CanaryFeed:
    """An experiment's answers and the movielog events the conversion guardrail joins."""

    def __init__(self, settings: Settings, exp_id: str, *, quality: bool) -> None:
        names = topic_names(settings)
        self.settings, self.exp_id, self.quality = settings, exp_id, quality
        tag = f"{exp_id}:".encode()
        self.answers_tail = Tail(settings, names["recommendations"], lambda k, v: tag in v)
        self.log_tail = Tail(settings, names["movielog"], lambda k, v: b"/data/m/" in v or
                             b"recommendation request" in v)
        self.answers: list[dict] = []
        self.minutes: dict[int, list[tuple[int, str, float, int]]] = {}
        self.outcomes: dict[tuple[int, tuple], list[float]] = {}

    async def look(self) -> None:
        """Read what is new (raises the consumers' errors: the caller looks again later)."""
        for raw in await self.answers_tail.read():
            body = orjson.loads(raw)
            arm = parse_label(body.get("arm") or "").get(self.exp_id)
            if arm is not None:
                self.answers.append(dict(body, arm=arm))
        if not self.quality:
            return
        s = self.settings
        for raw in await self.log_tail.read():
            event = parse_raw(raw, rating_min=s.rating_min, rating_max=s.rating_max,
                              max_user_id=s.max_user_id)
            if isinstance(event, WatchMinute):
                self.minutes.setdefault(event.user, []).append(
                    (event.user, event.movie, event.time, event.minute))
            elif isinstance(event, RecommendationOutcome) and event.status == 200:
                self.outcomes.setdefault((event.user, tuple(event.movies)), []).append(event.time)

    def watches(self, users: set[int]) -> list[Watch]:
        return watches_from_minutes(m for u in users for m in self.minutes.get(u, ()))

    async def stop(self) -> None:
        await self.answers_tail.stop()
        await self.log_tail.stop()
