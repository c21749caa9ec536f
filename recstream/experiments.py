"""The experiments a worker serves, and their compacted topic ``<app>-experiments``.

Every worker follows the topic from the beginning (``agents.experiment_follower``)
into one :class:`ExperimentBook`; the operator commands (``recstream experiment
…``) publish new versions of a spec with :func:`publish`.  Assignment is a pure
function of (experiment id, user), so every worker agrees without talking.

Serving asks the book for a user's arm on every answer; the answer is cached per
user and invalidated as a whole when any spec changes, so the hot path costs a
dict lookup (the blake2b draws run once per user and book version).
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Optional

from aiokafka import TopicPartition

from models.experiments.assignment import HOLDOUT
from models.experiments.spec import Arm, ExperimentSpec
from recstream.kafka import end_offsets, ensure_topics, producer, reader
from recstream.settings import Settings

CACHE_LIMIT = 1_000_000
NO_ARM: tuple = ()


def topic_name(settings: Settings) -> str:
    return f"{settings.app_id}-experiments"


TOPIC_CONFIGS = {"cleanup.policy": "compact"}


class ExperimentBook:
    """The newest version of every experiment, and each user's arms (cached)."""

    def __init__(self) -> None:
        self.specs: dict[str, ExperimentSpec] = {}
        self.version = 0
        self._cache: dict[int, tuple] = {}

    def apply(self, spec: ExperimentSpec) -> bool:
        """Install ``spec`` if it is newer than what is held → whether it changed anything."""
        held = self.specs.get(spec.id)
        if held is not None and held.version >= spec.version:
            return False
        self.specs[spec.id] = spec
        self.version += 1
        self._cache.clear()
        return True

    def running(self) -> list[ExperimentSpec]:
        return [s for s in self.specs.values() if s.running]

    def arms_of(self, user: int) -> tuple[tuple[str, Arm, str], ...]:
        """``(experiment id, arm, kind)`` for every running experiment the user is in."""
        hit = self._cache.get(user)
        if hit is not None:
            return hit
        out = []
        for spec in self.specs.values():
            index = spec.arm_index(user)
            if index != HOLDOUT:
                out.append((spec.id, spec.arms[index], spec.kind))
        result = tuple(out) if out else NO_ARM
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[user] = result
        return result

    def ranker_of(self, user: int) -> Optional[tuple[str, Arm]]:
        """The first ranker experiment's arm for ``user`` (experiments on rankers are exclusive
        by construction: the serving path applies one ranker), or None."""
        for exp_id, arm, kind in self.arms_of(user):
            if kind == "ranker":
                return exp_id, arm
        return None

    def describes(self, user: int) -> bool:
        """Whether cold start may use ``user``'s self-description (True outside any experiment)."""
        for _, arm, kind in self.arms_of(user):
            if kind == "coldstart":
                return bool(arm.policy["describe"])
        return True

    def label(self, user: int) -> str:
        """The provenance record's ``arm``: ``exp:arm`` per experiment, comma-separated."""
        return ",".join(f"{e}:{a.name}" for e, a, _ in self.arms_of(user))


def parse_label(label: str) -> dict[str, str]:
    """``"a:x,b:y"`` → ``{"a": "x", "b": "y"}``."""
    out = {}
    for part in filter(None, label.split(",")):
        exp, _, arm = part.partition(":")
        out[exp] = arm
    return out


async def publish(settings: Settings, spec: ExperimentSpec) -> ExperimentSpec:
    """Write ``spec`` (stamped with the wall clock) to the experiments topic."""
    name = topic_name(settings)
    await ensure_topics(settings.bootstrap_servers, {name: 1}, settings.replication_factor,
                        configs={name: TOPIC_CONFIGS})
    spec = dataclasses.replace(spec, updated=time.time())
    out = producer(settings.bootstrap_servers)
    await out.start()
    try:
        await out.send_and_wait(name, spec.to_json(), key=spec.id.encode())
    finally:
        await out.stop()
    return spec


async def read_all(settings: Settings, timeout_s: float = 10.0) -> dict[str, ExperimentSpec]:
    """The newest version of every experiment on the topic (empty when there is none)."""
    name = topic_name(settings)
    book = ExperimentBook()
    consumer = reader(settings.bootstrap_servers)
    await consumer.start()
    try:
        topics = await consumer.topics()
        if name not in topics:
            return {}
        tp = TopicPartition(name, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await end_offsets(consumer, settings, [tp]))[tp]
        deadline = time.monotonic() + timeout_s
        while await consumer.position(tp) < end and time.monotonic() < deadline:
            for record in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                book.apply(ExperimentSpec.from_json(record.value))
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return dict(book.specs)
