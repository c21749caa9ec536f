"""Every worker follows ``<app>-experiments`` into its :class:`ExperimentBook`.

A plain consumer from the beginning, no group (like the model-updates follower):
each worker holds every experiment's newest version, so all of them assign a
user to the same arm.  A malformed spec is logged and skipped; it never stops
the follower.
"""
from __future__ import annotations

import logging

from models.experiments.spec import ExperimentSpec
from recstream.experiments import TOPIC_CONFIGS, ExperimentBook, topic_name
from recstream.kafka import ensure_topics, follow_topic
from recstream.settings import Settings

log = logging.getLogger(__name__)


class ExperimentFollower:
    def __init__(self, *, settings: Settings, book: ExperimentBook, on_change=None) -> None:
        self.settings = settings
        self.book = book
        self.on_change = on_change
        self.topic = topic_name(settings)

    def apply_raw(self, raw: bytes) -> bool:
        try:
            spec = ExperimentSpec.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping a malformed experiment spec: %s", exc)
            return False
        changed = self.book.apply(spec)
        if changed:
            log.info("experiment %s v%d: %s, exposure %.3f, arms %s", spec.id, spec.version,
                     spec.state, spec.exposure, [a.name for a in spec.arms])
            if self.on_change is not None:
                self.on_change(spec)
        return changed

    async def follow(self) -> None:
        s = self.settings
        await ensure_topics(s.bootstrap_servers, {self.topic: 1}, s.replication_factor,
                            configs={self.topic: TOPIC_CONFIGS})
        await follow_topic(s.bootstrap_servers, self.topic, self.apply_batch)

    async def apply_batch(self, records: list) -> None:
        for record in records:
            self.apply_raw(record.value)


def register(app, follower: ExperimentFollower) -> ExperimentFollower:
    @app.task
    async def follow_experiments() -> None:
        await follower.follow()

    return follower
