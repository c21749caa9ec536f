"""Monitoring timers: publish the monitor's gauges, persist drift slices, consumer lag.

The user writer feeds :class:`recstream.monitor.Monitor` per event; these
timers do the rest off the ingest path.  ``drift_windows`` has one writer,
:meth:`DriftStore.sync`: every ``REFRESH_S`` of wall time it writes the slices
that changed, each as the latest event of its partition (so the RocksDB store
and the changelog record are that partition's), deletes slices older than the
reference window, and — once tables are recovered — merges the stored slices
of partitions this worker was newly assigned.  Writing per event would put a
changelog record per event on the ingest path; the price is that a crash
loses up to ``REFRESH_S`` of histogram counts (and replayed events count
again): drift windows are statistics, not state.
"""
from __future__ import annotations

import logging
from typing import Any

from faust.exceptions import ConsumerNotStarted

from recstream.monitor import consumer_lag
from recstream.prometheus import Metrics
from recstream.monitor import Monitor
from recstream.parts import Readiness
from recstream.topics import Topics
from recstream.windows import FEATURES
from tables.changelog import ChangelogWriter
from tables.context import as_event

log = logging.getLogger(__name__)
REFRESH_S = 5.0
LAG_S = 5.0


def assigned_partitions(app: Any, user_topics: set[str]) -> set[int] | None:
    """Partitions of the user-event topics this worker consumes (None: not known yet)."""
    try:
        tps = app.consumer.assignment()
    except (ConsumerNotStarted, AttributeError):
        return None
    return {tp.partition for tp in tps if tp.topic in user_topics}


def user_topics(topics: Topics) -> set[str]:
    """The co-partitioned topics keyed by user: their partitions are this worker's users."""
    return {topics.movielog.get_topic_name(), topics.events.get_topic_name(),
            topics.user_profiles.get_topic_name()}


class DriftStore:
    """The one writer of ``drift_windows``: the monitor's slices, per owned partition."""

    def __init__(self, *, monitor: Monitor, table: Any, changelog: ChangelogWriter) -> None:
        self.monitor, self.table, self.changelog = monitor, table, changelog
        self.loaded: set[int] = set()

    async def sync(self, assigned: set[int], *, recovered: bool) -> int:
        """Bring memory and the table in line for ``assigned``; → records written."""
        monitor, table = self.monitor, self.table
        drift = monitor.drift
        cohorts = monitor.cohorts  # watch-through cohorts (#12): persisted beside the slices
        if any(p not in assigned for p in self.loaded | set(monitor.events)):
            drift.forget(assigned)  # revoked: the new owner loads them from the table
            cohorts.forget(assigned)
            monitor.events = {p: e for p, e in monitor.events.items() if p in assigned}
            self.loaded &= assigned
        writes = 0
        new = assigned - self.loaded
        if new and recovered:
            items = list(table.items())
            stale = drift.load(items, new, monitor.now) + cohorts.load(items, new, monitor.now)
            self.loaded |= new
            for key in stale:
                writes += await self._delete(key)
        for p, s in drift.advance(monitor.now):
            for feature in FEATURES:
                writes += await self._delete(drift.key(p, feature, s))
        for p, b in cohorts.advance(monitor.now):
            writes += await self._delete(cohorts.key(p, b))
        for p, b, bucket in list(cohorts.dirty()):
            event = monitor.events.get(p)
            if p in self.loaded and event is not None:
                await self.changelog.put(table, cohorts.key(p, b), bucket.encode(), event)
                writes += 1
                bucket.dirty = False
                cohorts.stored.add((p, b))
        for p, s, sl in list(drift.dirty()):
            event = monitor.events.get(p)
            if p not in self.loaded or event is None:
                continue  # never overwrite stored slices before merging them
            for feature, value in drift.encode(sl):
                await self.changelog.put(table, drift.key(p, feature, s), value, event)
                writes += 1
            sl.dirty = False
            drift.stored.add((p, s))
        if writes:
            self.changelog.checkpoint()
        return writes

    async def _delete(self, key: bytes) -> int:
        event = self.monitor.events.get(int(key.split(b"|", 1)[0]))
        if event is None:
            return 0  # no event of that partition yet: deleted on a later round
        table = self.table
        with as_event(event):
            table.data.pop(key, None)
        await self.changelog.send(table, key, None, event.message.partition)
        return 1


def lag_roles(topics: Topics) -> dict[str, str]:
    """Topic name -> the ``topic`` label of ``recstream_consumer_lag`` (stable across names)."""
    return {topics.movielog.get_topic_name(): "movielog",
            topics.events.get_topic_name(): "events",
            topics.movie_updates.get_topic_name(): "movie-updates"}


class MonitoringTimers:
    """What the two timers do: publish gauges and persist drift slices; measure lag."""

    def __init__(self, store: DriftStore, *, app: Any, readiness: Readiness,
                 metrics: Metrics, topics: Topics) -> None:
        self.store, self.app, self.readiness, self.metrics = store, app, readiness, metrics
        self.user_topics = user_topics(topics)
        self.roles = lag_roles(topics)

    async def refresh(self) -> None:
        """Publish the gauges; persist drift slices once the assignment is known."""
        self.store.monitor.publish()
        if self.app.rebalancing or self.app.in_recovery:
            # No changelog write while Faust measures highwaters and reads persisted
            # offsets: an acknowledged write in between made the persisted offset pass the
            # highwater (ConsistencyError, a second worker joining on Tansu: issue #11).
            return
        assigned = assigned_partitions(self.app, self.user_topics)
        if assigned is not None:
            recovered = self.readiness.tables_recovered.is_set() and not self.app.in_recovery
            await self.store.sync(assigned, recovered=recovered)

    async def publish_lag(self) -> None:
        try:
            lag = await consumer_lag(self.app.consumer, self.roles)
        except ConsumerNotStarted:
            return
        for role, value in lag.items():
            self.metrics.consumer_lag.labels(role).set(value)


def register(app, timers: MonitoringTimers) -> DriftStore:
    @app.timer(REFRESH_S, name="monitor_refresh")
    async def monitor_refresh() -> None:
        await timers.refresh()

    @app.timer(LAG_S, name="consumer_lag")
    async def measure_lag() -> None:
        await timers.publish_lag()

    return timers.store
