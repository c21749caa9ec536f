"""The monitor: availability, online quality, licence cost, drift and lag, by known answers.

Events are fed the way the user writer feeds them (``feed`` mirrors
``agents.user_writer.UserWriter``: ``observe`` for every event, then ``watched`` /
``rated`` for those that changed the user's history).  T0 is a whole hour, so
10 s / 1 min / 10 min buckets start at T0.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
import numpy as np
import pytest
from faust.types import TP

from models.drift import psi
from recstream import windows
from recstream.prometheus import Metrics
from recstream.monitor import (ANSWERS, ERROR, OK, SLOW, Monitor, consumer_lag)
from recstream.parsing import parse_line
from recstream.records import Rating, RecommendationOutcome, WatchMinute
from recstream.settings import Settings
from tables.codecs import UserHistory

T0 = 1_699_999_200.0  # 472222 h since the epoch
assert T0 % 3600 == 0


def make(costs: dict[str, float] | None = None, **overrides) -> Monitor:
    settings = Settings.from_mapping(overrides)
    costs = costs or {}
    return Monitor(settings, Metrics(), lambda movie: costs.get(movie, math.nan))


def feed(mon: Monitor, *records, histories: dict | None = None, partition: int = 0) -> None:
    histories = {} if histories is None else histories
    complete_at = 60
    for rec in records:
        mon.observe(rec, partition)
        history = histories.setdefault(rec.user, UserHistory())
        if isinstance(rec, WatchMinute):
            is_new = rec.movie not in history.watches
            change = history.watch(rec.movie, rec.minute, rec.time, complete_at)
            if change is not None:
                mon.watched(rec, is_new, change == "complete")
        elif isinstance(rec, Rating):
            change, _ = history.rate(rec.movie, rec.rating, rec.time)
            if change is not None:
                mon.rated(rec, change == "new")


def answer(t: float, user: int, movies=("a+2000",), status=200, latency=50):
    return RecommendationOutcome(time=T0 + t, user=user, server="s:8082", status=status,
                                 movies=list(movies) if status == 200 else [],
                                 error="" if status == 200 else "boom", latency_ms=latency)


def watch(t: float, user: int, movie: str, minute: int = 0) -> WatchMinute:
    return WatchMinute(time=T0 + t, user=user, movie=movie, minute=minute)


def rate(t: float, user: int, movie: str, rating: int) -> Rating:
    return Rating(time=T0 + t, user=user, movie=movie, rating=rating)


def metric(mon: Monitor, name: str, **labels) -> float:
    value = mon.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def requests(mon: Monitor) -> tuple[float, float, float]:
    return tuple(metric(mon, "recstream_platform_requests_total", result=r)
                 for r in ("ok", "slow", "error"))


# -- availability ---------------------------------------------------------------------

def test_availability_windows_late_and_far_future_lines():
    mon = make()
    feed(mon, answer(0, 1, latency=100), answer(5, 2, latency=700), answer(20, 3, status=500),
         answer(30, 4, latency=600), answer(31, 5, latency=601))
    assert requests(mon) == (2, 2, 1)  # 600 ms is within the deadline, 601 is not
    v = mon.values()
    assert v["availability_5m"] == v["availability_1h"] == pytest.approx(2 / 5)

    feed(mon, answer(400, 6))  # 5m = buckets from T0+110 s: only this line
    v = mon.values()
    assert (v["availability_5m"], v["availability_1h"]) == (1.0, pytest.approx(3 / 6))

    feed(mon, answer(200, 7, status=504, latency=-1))  # late, still inside both windows
    assert mon.now == T0 + 400
    v = mon.values()
    assert (v["availability_5m"], v["availability_1h"]) == (0.5, pytest.approx(3 / 7))

    feed(mon, answer(50, 8, status=500))  # late, before the 5 minutes: hour only
    v = mon.values()
    assert (v["availability_5m"], v["availability_1h"]) == (0.5, pytest.approx(3 / 8))

    feed(mon, answer(10 * 86_400, 9))  # ten days ahead: counted, clock and windows untouched
    assert mon.now == T0 + 400
    assert requests(mon) == (4, 2, 3)
    assert mon.values()["availability_1h"] == pytest.approx(3 / 8)

    feed(mon, answer(0, 1, latency=100))  # the first line redelivered: changes nothing
    assert requests(mon) == (4, 2, 3)

    mon.publish()
    assert metric(mon, "recstream_availability", window="5m") == 0.5
    assert metric(mon, "recstream_availability", window="1h") == pytest.approx(3 / 8)


def test_an_hour_later_the_old_lines_leave_the_window():
    mon = make()
    feed(mon, answer(0, 1, status=500), answer(59, 2))
    feed(mon, answer(3600, 3))  # buckets T0+60 .. T0+3600: the first minute is gone
    assert mon.values()["availability_1h"] == 1.0
    assert math.isnan(make().values()["availability_5m"])  # no lines: no value


# -- online quality and licence cost ------------------------------------------------

def test_conversion_watch_through_rating_and_cost_known_answer():
    mon = make(costs={"a": 2.0, "b": 3.0, "c": 5.0, "e": 1.0})  # "d" has no metadata yet
    h: dict = {}
    feed(mon,
         answer(0, 1, movies=("a", "b", "x")), answer(10, 2, movies=("c", "d")),
         answer(20, 3, movies=("a",)),
         watch(30, 2, "d", 0),  # recommended to 2 at T0+10: attributed, cost unknown
         watch(60, 1, "a", 0),  # recommended to 1 at T0+0: attributed, cost 2
         watch(100, 2, "e", 0),  # not recommended to 2: cost 1
         watch(300, 2, "d", 1),  # progress of a started view: nothing new
         watch(5, 4, "a", 0),  # a late line; user 4 had no answer: cost 2
         rate(400, 1, "a", 4), rate(410, 2, "e", 1), rate(420, 2, "d", 2),
         rate(430, 2, "d", 5),  # a changed rating is not a new one
         watch(1000, 1, "a", 60),  # completes user 1's recommended view
         histories=h)
    assert metric(mon, "recstream_recommended_views_total") == 2
    assert metric(mon, "recstream_recommended_completions_total") == 1
    assert metric(mon, "recstream_licence_cost_total", source="recommended") == 2.0
    assert metric(mon, "recstream_licence_cost_total", source="other") == 1.0 + 2.0
    v = mon.values()
    assert v["conversion_1h"] == pytest.approx(2 / 3)  # the answers to users 1 and 2
    # watch-through reads a cohort of starts at least 2 h old (test_watch_through_per_cohort)
    assert math.isnan(v["watch_through_1h"])
    assert v["rating_mean_1h"] == pytest.approx((4 + 2) / 2)
    assert v["cost_per_view_1h"] == pytest.approx((2 + 1 + 2) / 3)  # 4 views, 3 with a cost
    minutes = 1000 // 60 + 1  # the buckets from T0 to the one holding T0+1000 s
    assert v["cost_per_hour_1h"] == pytest.approx(5 / 3 * 4 / (minutes / 60))

    # User 3 starts "a" 3680 s after it was recommended: beyond the attribution window.
    feed(mon, watch(3700, 3, "a", 0), histories=h)
    assert metric(mon, "recstream_recommended_views_total") == 2
    assert metric(mon, "recstream_licence_cost_total", source="other") == 5.0
    v = mon.values()  # the hour is now the buckets from T0+120 s to T0+3660 s
    assert math.isnan(v["conversion_1h"]) and math.isnan(v["watch_through_1h"])
    assert v["rating_mean_1h"] == pytest.approx(3.0)
    assert v["cost_per_view_1h"] == 2.0
    assert v["cost_per_hour_1h"] == pytest.approx(2.0)  # one view of cost 2 in a full hour

    mon.publish()
    assert metric(mon, "recstream_online_rating_mean", window="1h") == pytest.approx(3.0)
    assert metric(mon, "recstream_licence_cost_per_view", window="1h") == 2.0
    assert math.isnan(metric(mon, "recstream_online_conversion", window="1h"))


def test_attribution_edges_and_order():
    mon = make()
    h: dict = {}
    feed(mon, answer(100, 1, movies=("m",)), watch(50, 1, "m"), histories=h)
    assert metric(mon, "recstream_recommended_views_total") == 0  # started before the answer
    feed(mon, answer(200, 2, movies=("m",)), watch(3800, 2, "m"), histories=h)
    assert metric(mon, "recstream_recommended_views_total") == 1  # exactly 3600 s later
    feed(mon, watch(3900, 3, "m"), answer(3850, 3, movies=("m",)), histories=h)
    # the start was processed before its answer line arrived: not attributed (documented)
    assert metric(mon, "recstream_recommended_views_total") == 1
    # two answers listing the same movie both convert; the view counts once
    feed(mon, answer(4000, 4, movies=("m", "n")), answer(4010, 4, movies=("m",)),
         watch(4020, 4, "m"), watch(4030, 4, "n"), histories=h)
    assert metric(mon, "recstream_recommended_views_total") == 3
    t = mon.hour.totals(mon.now)  # from T0+480 s: the answers to 3 and 4 (twice)
    assert (t[ANSWERS], t[ANSWERS + 1]) == (3, 2)  # answers, converted (not the one to 3)


def test_memory_is_bounded():
    mon = make(costs=None)
    mon.max_users, mon.answers_per_user, mon.dedupe = 100, 2, 50
    feed(mon, *[answer(i * 0.001, user) for i, user in enumerate(range(1000))])
    assert len(mon.recent) == 100 and mon.evicted == 900
    assert list(mon.recent)[0] == 900  # least recently answered users went first
    feed(mon, *[answer(10 + i, 999, movies=(f"m{i}",)) for i in range(10)])
    assert [a[1] for a in mon.recent[999].answers] == [("m8",), ("m9",)]
    assert len(mon._seen) == 50
    # per-slice user counts are capped too, and old slices are dropped
    old_cap = windows.MAX_ACTIVE_USERS
    try:
        windows.MAX_ACTIVE_USERS = 10
        feed(mon, *[watch(700, u, "x") for u in range(2000, 2050)])  # a new slice
    finally:
        windows.MAX_ACTIVE_USERS = old_cap
    sl = mon.drift.slice_for(0, T0 + 700, mon.now)
    assert len(sl.users) == 10
    feed(mon, *[watch(600.0 * k, 1, f"x{k}") for k in range(1, 200)])  # 33 hours of slices
    assert len(mon.drift.slices) <= 2 * windows.SLICES + 1


# -- drift ------------------------------------------------------------------------------

def drift_monitor(ref_ratings: list[int], cur_ratings: list[int]) -> Monitor:
    """Window 600 s in slices of 100 s: reference = slices 0-5, recent = slices 6-11."""
    mon = make(drift_window_s=600)
    for window, ratings in ((0, ref_ratings), (600, cur_ratings)):
        feed(mon, *[rate(window + (i % 600), 10_000 + i, "m", r)
                    for i, r in enumerate(ratings)])
    feed(mon, answer(1200, 1))  # stream time enters slice 12: slices 6-11 are complete
    return mon


def test_drift_same_distribution_is_stable_and_a_shift_is_not():
    same = drift_monitor([3] * 100 + [4] * 100, [4] * 100 + [3] * 100)
    psi_value, p = same.drift_values()["rating"]
    assert psi_value == 0.0 and p == pytest.approx(1.0)
    assert same.drift_values()["event_kind"] == (0.0, 1.0)  # only ratings in both
    assert all(math.isnan(x) for x in same.drift_values()["latency_ms"])  # no data

    shifted = drift_monitor([3] * 100 + [4] * 100, [3] * 50 + [4] * 150)
    psi_value, p = shifted.drift_values()["rating"]
    assert psi_value == pytest.approx(psi([0, 0, 100, 100, 0], [0, 0, 50, 150, 0]))
    assert psi_value > 0.1 and p < 1e-4
    shifted.publish()
    assert metric(shifted, "recstream_drift_psi", feature="rating") == pytest.approx(psi_value)
    assert metric(shifted, "recstream_drift_pvalue", feature="rating") == pytest.approx(p)


def test_drift_features_count_what_they_say():
    mon = make(drift_window_s=600)
    h: dict = {}
    feed(mon, watch(0, 1, "a", 0), watch(1, 1, "a", 0),  # a redelivered minute
         watch(2, 1, "a", 7), watch(3, 1, "a", 61), answer(4, 1, latency=450),
         answer(5, 2, status=504, latency=-1), rate(6, 1, "a", 5), histories=h)
    (p, s), = mon.drift.slices
    counts = mon.drift.slices[(p, s)].counts
    assert counts[windows.EVENT_KIND] == [4, 1, 0, 2]  # every event, duplicates included
    assert counts[windows.RATING] == [0, 0, 0, 0, 1]
    watch_bins = [0] * len(windows.WATCH_EDGES_MIN)
    for minute in (0, 7, 61):  # the redelivered minute changed nothing
        watch_bins[[i for i, e in enumerate(windows.WATCH_EDGES_MIN) if e <= minute][-1]] += 1
    assert counts[windows.WATCH_LENGTH] == watch_bins
    assert sum(counts[windows.LATENCY]) == 1  # the 504 had no latency
    assert counts[windows.LATENCY][windows.LATENCY_EDGES_MS.index(400)] == 1
    # user 1: 6 events (bin 4-7), user 2: 1 event (bin 1)
    assert counts[windows.ACTIVITY][:4] == [1, 0, 1, 0]


# -- the real sample --------------------------------------------------------------------

STATUS = re.compile(r", status (\d+), result: .*, (\d+) ms$")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_availability_on_the_real_sample_matches_an_independent_count(sample_lines):
    outcomes = [r for r in map(parse_line, sample_lines) if isinstance(r, RecommendationOutcome)]
    raw = [line for line in sample_lines if ",recommendation request " in line]
    assert len(outcomes) == len(raw) == 372
    mon = make()
    feed(mon, *sorted(outcomes, key=lambda r: r.time))

    # Independently: status and latency by regex, times by datetime.
    lines = []
    for line in raw:
        status, latency = STATUS.search(line).groups()
        lines.append((_epoch(line.split(",", 1)[0]), int(status), int(latency)))
    result = ["ok" if s == 200 and ms <= 600 else "slow" if s == 200 else "error"
              for _, s, ms in lines]
    assert requests(mon) == tuple(result.count(r) for r in ("ok", "slow", "error")) == (2, 0, 370)

    # The clock: the two status-200 lines are three weeks after the rest, more than a day
    # ahead, so stream time stays at the last line of 7 October 2022.
    times = sorted(t for t, _, _ in lines)
    clock = max(t for t in times if t - times[0] <= 86_400)
    assert mon.now == clock and datetime.fromtimestamp(clock, timezone.utc).day == 7
    head = int(clock // 60)
    in_hour = [r for (t, _, _), r in zip(lines, result) if head - 60 < int(t // 60) <= head]
    totals = mon.hour.totals(mon.now)
    assert (totals[OK], totals[SLOW], totals[ERROR]) == (
        in_hour.count("ok"), in_hour.count("slow"), in_hour.count("error"))
    assert len(in_hour) > 100
    assert mon.values()["availability_1h"] == in_hour.count("ok") / len(in_hour) == 0.0

    # The day of the two answers alone: both within the deadline.
    late = [r for r in outcomes if r.time > clock + 86_400]
    day = make()
    feed(day, *late)
    assert len(late) == 2 and day.values()["availability_5m"] == 1.0


# -- consumer lag -----------------------------------------------------------------------

async def test_consumer_lag_sums_assigned_partitions_per_topic():
    a0, a1, e0, other = TP("ml", 0), TP("ml", 1), TP("ev", 0), TP("changelog", 0)
    high = {a0: 100, a1: 50, e0: 7, other: 1000}
    positions = {a1: 20}

    class FakeConsumer:
        _committed_offset = {a0: 90, e0: 9}  # e0 committed past a stale highwater: 0

        def assignment(self):
            return {a0, a1, e0, other}

        def highwater(self, t):
            return high[t]

        async def position(self, t):
            return positions[t]

    lag = await consumer_lag(FakeConsumer(), {"ml": "movielog", "ev": "events",
                                              "mu": "movie-updates"})
    assert lag == {"movielog": 10 + 30, "events": 0, "movie-updates": 0}


def test_watch_through_per_cohort():
    """#12: completions are attributed to their view's start, so the ratio is completions
    over starts of the same views (the cohort that started 3 h to 2 h ago)."""
    mon = make()
    h: dict = {}
    # Cohort A (starts in the first hour): users 1-4 start a recommended movie, 1 and 2 finish.
    feed(mon, *[answer(10 * u, u, movies=("a",)) for u in range(1, 5)],
         *[watch(100 + 10 * u, u, "a", 0) for u in range(1, 5)], histories=h)
    # Cohort B (second hour): users 5-7 start, all finish — late, inside cohort A's window.
    feed(mon, *[answer(3700 + 10 * u, u, movies=("b",)) for u in range(5, 8)],
         *[watch(3800 + 10 * u, u, "b", 0) for u in range(5, 8)],
         watch(3900, 1, "a", 60), watch(4000, 2, "a", 60),
         *[watch(7300 + 10 * u, u, "b", 60) for u in range(5, 8)], histories=h)
    assert metric(mon, "recstream_recommended_completions_total") == 5
    # The old ratio (completions in the last hour / starts in the last hour) read 5 / 3 → 1.
    feed(mon, answer(7200 + 3600, 99), histories=h)  # stream time T0+3h: cohort A is read
    assert mon.values()["watch_through_1h"] == pytest.approx(2 / 4)
    feed(mon, answer(7200 + 7200, 99), histories=h)  # T0+4h: cohort B
    assert mon.values()["watch_through_1h"] == pytest.approx(3 / 3)


def test_drift_alarms_are_calibrated_and_exported():
    """#12: alarm() with calibrate()d thresholds; no alarm on a same-distribution window,
    nor on a small window's noise; an alarm on a real shift, exported as a 0/1 gauge."""
    rng = np.random.default_rng(12)
    ref = list(rng.choice([1, 2, 3, 4, 5], size=600, p=[.1, .15, .3, .3, .15]))
    same = drift_monitor(ref, list(rng.choice([1, 2, 3, 4, 5], size=600,
                                              p=[.1, .15, .3, .3, .15])))
    assert same.drift_alarms()["rating"] == 0
    shifted = drift_monitor(ref, list(rng.choice([1, 2, 3, 4, 5], size=600,
                                                 p=[.3, .3, .2, .1, .1])))
    assert shifted.drift_alarms()["rating"] == 1
    assert shifted.drift_alarms()["latency_ms"] == 0  # no data: never an alarm
    shifted.publish()
    assert metric(shifted, "recstream_drift_alarm", feature="rating") == 1
    assert metric(shifted, "recstream_drift_alarm", feature="event_kind") == 0
    # a shift too small to matter (PSI under the floor) on big windows does not alarm
    big_ref = [3] * 5000 + [4] * 5000
    trivial = drift_monitor(big_ref, [3] * 4800 + [4] * 5200)
    psi_value, p = trivial.drift_values()["rating"]
    assert p < 0.01 and psi_value < 0.01
    assert trivial.drift_alarms()["rating"] == 0


def test_drift_alarm_false_alarm_rate_holds_on_clean_windows():
    """Same-distribution windows: the stated rate per test is not exceeded (3x slack)."""
    rng = np.random.default_rng(7)
    probs = [.1, .15, .3, .3, .15]
    fired = 0
    trials = 300
    for _ in range(trials):
        mon = drift_monitor(list(rng.choice([1, 2, 3, 4, 5], size=200, p=probs)),
                            list(rng.choice([1, 2, 3, 4, 5], size=200, p=probs)))
        fired += mon.drift_alarms()["rating"]
    # per-test rate = 1 / (144 tests a day x 4 features) ~ 0.0017: expect ~0.5 in 300
    assert fired <= 3
