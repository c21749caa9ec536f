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

from faust.exceptions import ConsumerNotStarted

from recstream.monitor import consumer_lag
from recstream.runtime import Runtime
from recstream.windows import FEATURES
from tables.context import as_event

log = logging.getLogger(__name__)
REFRESH_S = 5.0
LAG_S = 5.0


def assigned_partitions(rt: Runtime) -> set[int] | None:
    """Partitions of the user-event topics this worker consumes (None: not known yet)."""
    try:
        tps = rt.app.consumer.assignment()
    except (ConsumerNotStarted, AttributeError):
        return None
    names = {rt.topics.movielog.get_topic_name(), rt.topics.events.get_topic_name(),
             rt.topics.user_profiles.get_topic_name()}
    return {tp.partition for tp in tps if tp.topic in names}


class DriftStore:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.loaded: set[int] = set()

    async def sync(self, assigned: set[int], *, recovered: bool) -> int:
        """Bring memory and the table in line for ``assigned``; → records written."""
        rt = self.rt
        monitor, table = rt.monitor, rt.tables.drift_windows
        drift = monitor.drift
        if any(p not in assigned for p in self.loaded | set(monitor.events)):
            drift.forget(assigned)  # revoked: the new owner loads them from the table
            monitor.events = {p: e for p, e in monitor.events.items() if p in assigned}
            self.loaded &= assigned
        writes = 0
        new = assigned - self.loaded
        if new and recovered:
            stale = drift.load(list(table.items()), new, monitor.now)
            self.loaded |= new
            for key in stale:
                writes += await self._delete(key)
        for p, s in drift.advance(monitor.now):
            for feature in FEATURES:
                writes += await self._delete(drift.key(p, feature, s))
        for p, s, sl in list(drift.dirty()):
            event = monitor.events.get(p)
            if p not in self.loaded or event is None:
                continue  # never overwrite stored slices before merging them
            for feature, value in drift.encode(sl):
                await rt.changelog.put(table, drift.key(p, feature, s), value, event)
                writes += 1
            sl.dirty = False
            drift.stored.add((p, s))
        if writes:
            rt.changelog.checkpoint()
        return writes

    async def _delete(self, key: bytes) -> int:
        rt = self.rt
        event = rt.monitor.events.get(int(key.split(b"|", 1)[0]))
        if event is None:
            return 0  # no event of that partition yet: deleted on a later round
        table = rt.tables.drift_windows
        with as_event(event):
            table.data.pop(key, None)
        await rt.changelog.send(table, key, None, event.message.partition)
        return 1


def lag_roles(rt: Runtime) -> dict[str, str]:
    """Topic name -> the ``topic`` label of ``recstream_consumer_lag`` (stable across names)."""
    return {rt.topics.movielog.get_topic_name(): "movielog",
            rt.topics.events.get_topic_name(): "events",
            rt.topics.movie_updates.get_topic_name(): "movie-updates"}


async def refresh(rt: Runtime, store: DriftStore) -> None:
    """Publish the gauges; persist drift slices once the assignment is known."""
    rt.monitor.publish()
    assigned = assigned_partitions(rt)
    if assigned is not None:
        recovered = rt.readiness.tables_recovered.is_set() and not rt.app.in_recovery
        await store.sync(assigned, recovered=recovered)


async def publish_lag(rt: Runtime, roles: dict[str, str]) -> None:
    try:
        lag = await consumer_lag(rt.app.consumer, roles)
    except ConsumerNotStarted:
        return
    for role, value in lag.items():
        rt.metrics.consumer_lag.labels(role).set(value)


def register(app, rt: Runtime) -> DriftStore:
    store = DriftStore(rt)
    roles = lag_roles(rt)

    @app.timer(REFRESH_S, name="monitor_refresh")
    async def monitor_refresh() -> None:
        await refresh(rt, store)

    @app.timer(LAG_S, name="consumer_lag")
    async def measure_lag() -> None:
        await publish_lag(rt, roles)

    return store
