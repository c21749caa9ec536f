"""#12: the watch-through cohorts survive a worker restart.

Before, the attribution state lived only in the monitor's memory: after a restart the
gauge read NaN for hours and a view started before the restart could never complete.
Now each cohort bucket (starts, completions, open views) is written to ``drift_windows``
by the DriftStore and merged back by the next owner of the partition.  ``rt`` etc. as in
tests/conftest.py (real RocksDB tables, changelog records recorded).
"""
from __future__ import annotations

import dataclasses
import math

from faust.types import TP

from recstream.cohorts import FEATURE
from recstream.monitor import Monitor
from tables.codecs import user_key
from tables.context import partition_for
from tests.agents.test_monitoring import apply_lines, line
from tests.wiring import drift_store, user_writer

RECO = "recommendation request h:8082, status 200, result: up+2009, cars+2006, 55 ms"


def two_users_one_partition(rt) -> tuple[int, int, int]:
    first = partition_for(user_key(1), rt.settings.partitions)
    other = next(u for u in range(2, 200)
                 if partition_for(user_key(u), rt.settings.partitions) == first)
    return 1, other, first


def restarted(rt):
    """The same tables, a new monitor: what a worker restarted on this data dir starts with."""
    return dataclasses.replace(rt, monitor=Monitor(rt.settings, rt.metrics, rt.items.cost_of))


async def test_a_cohort_started_before_a_restart_completes_after_it(rt, recorder, make_event,
                                                                   monkeypatch):
    a, b, p = two_users_one_partition(rt)
    changelog = rt.tables.drift_windows.changelog_topic.get_topic_name()
    monkeypatch.setattr(rt.app.assignor, "assigned_actives",
                        lambda: {TP(changelog, q) for q in range(rt.settings.partitions)})
    await apply_lines(rt, make_event, user_writer(rt),
                      line(a, RECO, "15:30:00"), line(a, "GET /data/m/up+2009/0.mpg", "15:30:10"),
                      line(b, RECO, "15:31:00"), line(b, "GET /data/m/cars+2006/0.mpg", "15:31:10"),
                      line(b, "GET /data/m/cars+2006/60.mpg", "16:31:10"))  # b completes
    store = drift_store(rt)
    await store.sync({p}, recovered=True)
    written = [k for name, k, v, _ in recorder.changelog
               if name == "drift_windows" and f"|{FEATURE}|".encode() in k and v]
    assert written, "the cohort bucket was not persisted"

    after = restarted(rt)
    fresh = drift_store(after)
    await fresh.sync({p}, recovered=True)  # tables recovered: the stored cohort is merged
    assert after.monitor.cohorts.where == {(a, "up+2009"): (p, after.monitor.cohorts.where[
        (a, "up+2009")][1])}  # a's view is still open, b's is done
    writer = user_writer(after)
    await apply_lines(after, make_event, writer,
                      line(a, "GET /data/m/up+2009/60.mpg", "16:40:00"),  # completes after
                      line(a, "GET /rate/x+2001=3", "17:45:00"))  # stream time: 15:30 cohort read
    assert after.monitor.values()["watch_through_1h"] == 1.0  # 2 starts, 2 completions

    # The same events into a monitor that loads nothing (the old in-memory behaviour):
    # the pre-restart start is unknown, the completion unattributed, the gauge empty.
    amnesic = restarted(rt)
    await apply_lines(amnesic, make_event, user_writer(amnesic),
                      line(a, "GET /data/m/up+2009/60.mpg", "16:40:00"),
                      line(a, "GET /rate/x+2001=3", "17:45:00"))
    assert math.isnan(amnesic.monitor.values()["watch_through_1h"])


async def test_cohorts_of_revoked_partitions_are_forgotten_and_old_ones_deleted(
        rt, recorder, make_event, monkeypatch):
    a, _, p = two_users_one_partition(rt)
    changelog = rt.tables.drift_windows.changelog_topic.get_topic_name()
    monkeypatch.setattr(rt.app.assignor, "assigned_actives",
                        lambda: {TP(changelog, q) for q in range(rt.settings.partitions)})
    writer = user_writer(rt)
    await apply_lines(rt, make_event, writer,
                      line(a, RECO, "15:30:00"), line(a, "GET /data/m/up+2009/0.mpg", "15:30:10"))
    store = drift_store(rt)
    await store.sync({p}, recovered=True)
    cohorts = rt.monitor.cohorts
    assert cohorts.buckets and cohorts.stored
    # Four hours later the 15:30 bucket has left the kept span: dropped and tombstoned.
    await apply_lines(rt, make_event, writer, line(a, "GET /rate/x+2001=3", "19:45:00"))
    recorder.changelog.clear()
    await store.sync({p}, recovered=True)
    tombstones = [k for name, k, v, _ in recorder.changelog
                  if name == "drift_windows" and v is None and f"|{FEATURE}|".encode() in k]
    assert len(tombstones) == 1 and not cohorts.where
    other = (p + 1) % rt.settings.partitions
    await store.sync({other}, recovered=True)  # p revoked: its cohorts leave memory
    assert all(q != p for q, _ in cohorts.buckets)
