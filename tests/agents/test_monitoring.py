"""The monitor on the real app: fed by the user writer, drift slices kept in their table.

``rt``/``recorder``/``make_event`` as in tests/conftest.py: changelog records are
recorded instead of produced; the drift_windows store is the real RocksDB one.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from faust.types import TP

from agents.user_writer import UserWriter
from recstream.monitor import Monitor
from recstream.parsing import parse_line
from recstream.windows import FEATURES, RATING
from tables.codecs import user_key
from tables.context import partition_for
from tests.wiring import drift_store, monitoring_timers, user_writer

DAY = "2024-10-14T"


def line(user: int, request: str, clock: str = "15:30:00") -> str:
    return f"{DAY}{clock},{user},{request}"


def sample(rt, name: str, **labels: str) -> float:
    return rt.metrics.registry.get_sample_value(name, labels) or 0.0


async def apply_lines(rt, make_event, writer: UserWriter, *lines: str) -> None:
    batch = []
    for text in lines:
        record = parse_line(text)
        key = user_key(record.user)
        batch.append((make_event(text.encode(), key=key,
                                 partition=partition_for(key, rt.settings.partitions)),
                      record))
    await writer.apply(batch)


def users_in_two_partitions(rt) -> tuple[int, int]:
    first = 1
    for user in range(2, 100):
        if partition_for(user_key(user), rt.settings.partitions) != \
                partition_for(user_key(first), rt.settings.partitions):
            return first, user
    raise AssertionError("no two partitions")


async def test_the_user_writer_drives_the_monitor(rt, make_event):
    rt.items.set_cost("up+2009", 1.5)
    rt.items.set_cost("cars+2006", None)  # metadata without a cost
    assert math.isnan(rt.items.cost_of("cars+2006")) and math.isnan(rt.items.cost_of("x+1"))
    writer = user_writer(rt)
    reco = "recommendation request h:8082, status 200, result: up+2009, cars+2006, 55 ms"
    await apply_lines(
        rt, make_event, writer,
        line(5, reco, "15:30:00"),
        line(5, "GET /data/m/up+2009/0.mpg", "15:30:10"),
        line(5, "GET /data/m/up+2009/0.mpg", "15:30:10"),  # redelivered
        line(6, "recommendation request h:8082, status 504, result: timeout", "15:30:11"),
        line(6, "GET /data/m/up+2009/0.mpg", "15:30:12"),  # not recommended to 6
        line(5, "GET /rate/up+2009=5", "15:31:00"))
    await apply_lines(rt, make_event, writer, line(5, "GET /data/m/up+2009/60.mpg", "16:10:00"))
    assert sample(rt, "recstream_platform_requests_total", result="ok") == 1
    assert sample(rt, "recstream_platform_requests_total", result="error") == 1
    assert sample(rt, "recstream_recommended_views_total") == 1
    assert sample(rt, "recstream_recommended_completions_total") == 1
    assert sample(rt, "recstream_licence_cost_total", source="recommended") == 1.5
    assert sample(rt, "recstream_licence_cost_total", source="other") == 1.5
    values = rt.monitor.values()
    assert values["availability_1h"] == 0.5
    assert math.isnan(values["availability_5m"])  # 40 minutes later: nothing in 5 minutes
    assert values["conversion_1h"] == 1.0
    assert math.isnan(values["watch_through_1h"])  # its cohort (15:30) is read from 17:30 on
    assert values["rating_mean_1h"] == 5.0
    await apply_lines(rt, make_event, writer, line(6, "GET /data/m/up+2009/0.mpg", "17:45:00"))
    assert rt.monitor.values()["watch_through_1h"] == 1.0  # 1 start, 1 completion
    assert rt.monitor.now == rt.recommender.stream_time  # one clock policy


async def test_drift_slices_are_written_per_partition_reloaded_and_pruned(
        rt, recorder, make_event, monkeypatch):
    a, b = users_in_two_partitions(rt)
    pa, pb = (partition_for(user_key(u), rt.settings.partitions) for u in (a, b))
    changelog = rt.tables.drift_windows.changelog_topic.get_topic_name()
    monkeypatch.setattr(rt.app.assignor, "assigned_actives",
                        lambda: {TP(changelog, p) for p in range(rt.settings.partitions)})
    writer = user_writer(rt)
    await apply_lines(rt, make_event, writer,
                      line(a, "GET /rate/up+2009=4"), line(a, "GET /rate/cars+2006=2"),
                      line(b, "GET /rate/up+2009=5"))
    store = drift_store(rt)
    assert await store.sync({pa, pb}, recovered=True) == 2 * len(FEATURES)
    written = {key: value for key, value in
               ((k, v) for name, k, v, _ in recorder.changelog if name == "drift_windows")}
    start = rt.monitor.drift.slice_s * int(rt.monitor.now // rt.monitor.drift.slice_s)
    key_a = f"{pa}|rating|{start:.3f}".encode()
    np.testing.assert_array_equal(np.frombuffer(written[key_a], "<i8"), [0, 1, 0, 1, 0])
    assert {p for p, _, _, in (k.decode().split("|") for k in written)} == {str(pa), str(pb)}
    assert rt.tables.drift_windows.get(key_a) == written[key_a]
    assert await store.sync({pa, pb}, recovered=True) == 0  # nothing changed since

    # A new worker (fresh monitor, no event seen yet) assigned partition pa finds pa's
    # slices in the table.
    first = rt.monitor
    rt = dataclasses.replace(rt, monitor=Monitor(rt.settings, rt.metrics, rt.items.cost_of))
    writer = user_writer(rt)  # the new worker's writer feeds its own monitor
    fresh = drift_store(rt)
    await fresh.sync({pa}, recovered=False)  # not recovered yet: nothing loaded
    assert rt.monitor.drift.slices == {}
    await fresh.sync({pa}, recovered=True)
    loaded = rt.monitor.drift.slices
    assert list(loaded) == [(pa, int(first.now // first.drift.slice_s))]
    assert next(iter(loaded.values())).counts == first.drift.slices[list(loaded)[0]].counts

    # Three hours later the old slices of pa are deleted (tombstones), pb is revoked.
    await apply_lines(rt, make_event, writer, line(a, "GET /rate/x+2001=3", "18:31:00"))
    recorder.changelog.clear()
    await fresh.sync({pa}, recovered=True)
    tombstones = [k for name, k, v, _ in recorder.changelog
                  if name == "drift_windows" and v is None]
    assert sorted(tombstones) == sorted(f"{pa}|{f}|{start:.3f}".encode() for f in FEATURES)
    assert rt.tables.drift_windows.get(key_a) is None
    assert all(p == pa for p, _ in rt.monitor.drift.slices)
    (new_slice,) = rt.monitor.drift.slices.values()
    assert new_slice.counts[RATING] == [0, 0, 1, 0, 0]


async def test_revoked_partitions_are_forgotten(rt, make_event):
    a, b = users_in_two_partitions(rt)
    pa, pb = (partition_for(user_key(u), rt.settings.partitions) for u in (a, b))
    writer = user_writer(rt)
    await apply_lines(rt, make_event, writer, line(a, "GET /rate/up+2009=4"),
                      line(b, "GET /rate/up+2009=5"))
    store = drift_store(rt)
    await store.sync({pa}, recovered=False)
    assert {p for p, _ in rt.monitor.drift.slices} == {pa}
    assert set(rt.monitor.events) == {pa}


async def test_the_refresh_timer_publishes_and_persists(rt, recorder, make_event,
                                                       monkeypatch):
    a, _ = users_in_two_partitions(rt)
    pa = partition_for(user_key(a), rt.settings.partitions)
    await apply_lines(rt, make_event, user_writer(rt),
                      line(a, "recommendation request h:8082, status 200, result: x+1, 700 ms"))
    timers = monitoring_timers(rt)
    await timers.refresh()  # the consumer has not started: gauges only
    assert sample(rt, "recstream_availability", window="5m") == 0.0  # one slow answer
    assert recorder.writes("drift_windows") == []
    tps = {TP(rt.topics.movielog.get_topic_name(), pa), TP("elsewhere", 3)}
    monkeypatch.setattr(rt.app.consumer, "assignment", lambda: tps)
    await timers.refresh()  # tables not recovered: stored slices not merged, none written
    assert recorder.writes("drift_windows") == []
    rt.readiness.tables_recovered.set()
    # Issue #11: nothing is written while Faust rebalances or recovers (a write acknowledged
    # between its highwater and persisted-offset reads failed its consistency check).
    for flag in ("rebalancing", "in_recovery"):
        monkeypatch.setattr(rt.app, flag, True)
        await timers.refresh()
        assert recorder.writes("drift_windows") == []
        monkeypatch.setattr(rt.app, flag, False)
    await timers.refresh()
    assert len(recorder.writes("drift_windows")) == len(FEATURES)


async def test_the_lag_timer_labels_topics_by_role(rt, monkeypatch):
    timers = monitoring_timers(rt)
    movielog, updates = (TP(rt.topics.movielog.get_topic_name(), 0),
                         TP(rt.topics.movie_updates.get_topic_name(), 1))
    consumer = rt.app.consumer
    monkeypatch.setattr(consumer, "assignment", lambda: {movielog, updates})
    monkeypatch.setattr(consumer, "highwater", lambda tp: {movielog: 40, updates: 5}[tp])
    monkeypatch.setattr(consumer, "_committed_offset", {movielog: 15, updates: 5})
    await timers.publish_lag()
    assert sample(rt, "recstream_consumer_lag", topic="movielog") == 25
    assert sample(rt, "recstream_consumer_lag", topic="movie-updates") == 0
    assert sample(rt, "recstream_consumer_lag", topic="events") == 0
