"""Availability, online quality, licence cost and drift, measured from the stream.

The user writer calls :meth:`Monitor.observe` for every event it applies (in
its user's partition) and :meth:`Monitor.watched` / :meth:`Monitor.rated` for
the watch minutes and ratings that changed the user's state; the monitoring
timers publish the gauges and persist the drift slices.  Per event the cost is
a few dict and list operations; memory is bounded by the caps below.

All windows are over stream (event) time, the clock being a
:class:`recstream.clock.StreamClock` (one far-future line cannot empty every
window; a stream that really moves on is followed).  Late events count in their own bucket while it
is still in the window; events outside it still count in the counters.
docs/monitoring.md defines every series (metric, data, operationalisation).
"""
from __future__ import annotations

import math
import sys
from collections import OrderedDict
from typing import Callable

from models.drift import alarm, calibrate, chi2_pvalue, ks_binned, psi
from recstream.records import AccountCreated, Rating, RecommendationOutcome, WatchMinute
from recstream.clock import StreamClock
from recstream.cohorts import Cohorts
from recstream.lag import consumer_lag  # noqa: F401 - its old home, still imported from here
from recstream.settings import Settings
from recstream.windows import (EVENT_KIND, FEATURES, KINDS, SLICES, DriftWindows, Slice,
                               SlidingCounts)

DEADLINE_MS = 600
MIN_DRIFT_COUNT = 50  # observations each window needs before a drift value is published
# fields of the one-hour ring
OK, SLOW, ERROR, ANSWERS, CONVERTED, REC_VIEWS, REC_DONE, RATING_SUM, RATINGS, VIEWS, \
    COSTED_VIEWS, COST = range(12)
RESULTS = ("ok", "slow", "error")
COHORT_S = 3600.0  # the gauge reads one hour of starts (in 10-minute persisted buckets)
COHORT_BUCKET_S = 600.0
_KIND = {cls: KINDS.index(cls.__name__)
         for cls in (WatchMinute, Rating, AccountCreated, RecommendationOutcome)}
_intern = sys.intern
NAN = float("nan")


class _Recent:
    """One user's recent answers ``[time, movies, converted]`` and attributed views."""

    __slots__ = ("answers", "watched")

    def __init__(self) -> None:
        self.answers: list[list] = []
        self.watched: dict[str, float] = {}  # movie -> start time of the attributed view


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else NAN


class Monitor:
    def __init__(self, settings: Settings, metrics, cost_of: Callable[[str], float], *,
                 max_users: int = 100_000, answers_per_user: int = 4,
                 watched_per_user: int = 16, dedupe: int = 100_000) -> None:
        self.metrics = metrics
        self.cost_of = cost_of
        self.drift_alarms_per_day = settings.drift_alarms_per_day
        self.drift_window_s = settings.drift_window_s
        self.attribution_s = settings.attribution_window_s
        self.max_users, self.answers_per_user = max_users, answers_per_user
        self.watched_per_user, self.dedupe = watched_per_user, dedupe
        self.clock = StreamClock()
        self.now = 0.0
        self.first = math.inf
        self.short = SlidingCounts(3, span_s=300.0, width_s=10.0)
        self.hour = SlidingCounts(12, span_s=3600.0, width_s=60.0)
        # #12: watch-through per cohort.  A view completes >= watch_complete_minutes after
        # it starts, so the gauge reads the hour of starts that ended cohort_lag_s ago:
        # each of its views had at least that long to complete.
        self.cohort_lag_s = 2 * 60.0 * settings.watch_complete_minutes
        self.cohorts = Cohorts(bucket_s=COHORT_BUCKET_S,  # persisted by the DriftStore
                               keep_s=self.cohort_lag_s + COHORT_S + COHORT_BUCKET_S)
        self._partition = 0
        self.drift = DriftWindows(settings.drift_window_s, settings.rating_min,
                                  settings.rating_max)
        self.recent: OrderedDict[int, _Recent] = OrderedDict()
        self.evicted = 0  # users dropped from ``recent`` by the cap (attribution lost)
        self.events: dict[int, object] = {}  # partition -> latest event (for table writes)
        self._seen: OrderedDict[tuple, None] = OrderedDict()  # FIFO: O(1) to drop the oldest
        self._slice: Slice | None = None
        self._requests = [metrics.platform_requests.labels(r) for r in RESULTS]
        self._cost = {True: metrics.licence_cost.labels("recommended"),
                      False: metrics.licence_cost.labels("other")}
        self.experiments = None  # issue #13: ExperimentMetrics (per-arm views, cost, ratings)

    # -- the writer path ---------------------------------------------------------------
    def observe(self, record, partition: int = 0, event=None) -> None:
        """Every applied event, duplicates included, before its kind-specific call."""
        t = record.time
        now = self.now = self.clock.observe(t)
        if t < self.first:
            self.first = t
        self._partition = partition
        if event is not None:
            self.events[partition] = event
        sl = self._slice = self.drift.slice_for(partition, t, now)
        cls = record.__class__
        kind = _KIND.get(cls)
        if sl is not None and kind is not None:  # platform events only
            sl.dirty = True
            sl.counts[EVENT_KIND][kind] += 1
            sl.active(record.user)
        if cls is RecommendationOutcome:
            self._outcome(record, t, now, sl)

    def _outcome(self, rec: RecommendationOutcome, t: float, now: float,
                 sl: Slice | None) -> None:
        key = (rec.user, t, rec.status, rec.latency_ms)
        seen = self._seen
        if key in seen:
            return  # the same platform line redelivered
        seen[key] = None
        if len(seen) > self.dedupe:
            seen.popitem(last=False)
        latency = rec.latency_ms
        # An empty status-200 answer gave the user nothing to watch: not available.
        result = (OK if latency <= DEADLINE_MS else SLOW) if rec.status == 200 and rec.movies \
            else ERROR
        self._requests[result].inc()
        self.short.add(t, result, 1, now)
        row = self.hour.row(t, now)
        if row is not None:
            row[result] += 1
        if sl is not None and latency >= 0:
            self.drift.latency(sl, latency)
        if rec.status != 200 or not rec.movies:
            return
        if row is not None:
            row[ANSWERS] += 1
        recent = self.recent
        entry = recent.get(rec.user)
        if entry is None:
            entry = recent[rec.user] = _Recent()
            if len(recent) > self.max_users:
                recent.popitem(last=False)
                self.evicted += 1
        else:
            recent.move_to_end(rec.user)
        answers = entry.answers
        answers.append([t, tuple(map(_intern, rec.movies)), False])
        horizon = now - self.attribution_s
        while len(answers) > self.answers_per_user or answers[0][0] < horizon:
            answers.pop(0)
            if not answers:
                break

    def watched(self, rec: WatchMinute, started: bool, completed: bool) -> None:
        """A watched minute that changed the user's history (after :meth:`observe`)."""
        sl = self._slice
        if sl is not None:
            self.drift.watch_minute(sl, rec.minute)
        if started:
            self._start(rec)
        # in its start's cohort (persisted, so also a view started before a restart)
        if completed and self.cohorts.complete(rec.user, rec.movie) is not None:
            self.metrics.recommended_completions.inc()
            self.hour.add(rec.time, REC_DONE, 1, self.now)

    def _start(self, rec: WatchMinute) -> None:
        t, now, movie, hour = rec.time, self.now, rec.movie, self.hour
        attributed = False
        entry = self.recent.get(rec.user)
        if entry is not None:
            window = self.attribution_s
            for answer in entry.answers:
                if 0.0 <= t - answer[0] <= window and movie in answer[1]:
                    attributed = True
                    if not answer[2]:
                        answer[2] = True
                        hour.add(answer[0], CONVERTED, 1, now)
            if attributed:
                watched = entry.watched
                watched[movie] = t
                if len(watched) > self.watched_per_user:
                    del watched[next(iter(watched))]
                self.metrics.recommended_views.inc()
                self.cohorts.start(self._partition, rec.user, movie, t, now)
        row = hour.row(t, now)
        cost = self.cost_of(movie)
        known = cost >= 0.0  # NaN (no metadata yet) is not counted
        if self.experiments is not None:
            self.experiments.viewed(rec.user, attributed, cost)
        if known:
            self._cost[attributed].inc(cost)
        if row is not None:
            row[VIEWS] += 1
            row[REC_VIEWS] += attributed
            if known:
                row[COSTED_VIEWS] += 1
                row[COST] += cost

    def rated(self, rec: Rating, new: bool) -> None:
        """A rating that changed the user's history (after :meth:`observe`)."""
        sl = self._slice
        if sl is not None:
            self.drift.rating(sl, rec.rating)
        if new:
            entry = self.recent.get(rec.user)
            if entry is not None and rec.movie in entry.watched:
                if self.experiments is not None:
                    self.experiments.rated(rec.user, rec.rating)
                row = self.hour.row(rec.time, self.now)
                if row is not None:
                    row[RATING_SUM] += rec.rating
                    row[RATINGS] += 1

    # -- what the timers publish -------------------------------------------------------
    def values(self) -> dict[str, float]:
        """Every windowed value at the current stream time (NaN when it has no data)."""
        now = self.now
        ok, slow, error = self.short.totals(now)
        h = self.hour.totals(now)
        head = self.hour.bucket(now)
        minutes = min(self.hour.n, head - self.hour.bucket(self.first) + 1) \
            if self.first <= now else 0
        per_view = _ratio(h[COST], h[COSTED_VIEWS])
        return {
            "availability_5m": _ratio(ok, ok + slow + error),
            "availability_1h": _ratio(h[OK], h[OK] + h[SLOW] + h[ERROR]),
            "conversion_1h": _ratio(h[CONVERTED], h[ANSWERS]),
            "watch_through_1h": self.watch_through(now),
            "rating_mean_1h": _ratio(h[RATING_SUM], h[RATINGS]),
            "cost_per_view_1h": per_view,
            "cost_per_hour_1h": (per_view * h[VIEWS] / (minutes / 60.0)
                                 if minutes > 0 and h[COSTED_VIEWS] > 0 else NAN),
        }

    def watch_through(self, now: float) -> float:
        """Completed / started recommended views of one cohort: the hour of starts that
        ended ``cohort_lag_s`` ago (NaN without starts)."""
        hi = now - self.cohort_lag_s
        starts, done = self.cohorts.totals_between(hi - COHORT_S, hi)
        return _ratio(done, starts)

    def drift_values(self) -> dict[str, tuple[float, float]]:
        """feature -> (PSI, p-value): last window of complete slices vs the one before."""
        reference, recent = self.drift.windows(self.now)
        out = {}
        for (name, test), ref, cur in zip(FEATURES.items(), reference, recent):
            if ref.sum() < MIN_DRIFT_COUNT or cur.sum() < MIN_DRIFT_COUNT:
                out[name] = (NAN, NAN)
                continue
            p = (chi2_pvalue if test == "chi2" else ks_binned)(ref, cur)[1]
            out[name] = (psi(ref, cur), p)
        return out

    def drift_alarms(self) -> dict[str, int]:
        """feature -> 1 if its alarm fires, else 0 (too little data: 0).

        Thresholds come from :func:`models.drift.calibrate` for each window pair:
        ``settings.drift_alarms_per_day`` false alarms a day spread over every
        feature and every slice step of the sliding comparison (one new test per
        slice), so the stated rate holds for the whole detector, not per test.
        """
        reference, recent = self.drift.windows(self.now)
        tests_per_day = max(int(86400.0 / (self.drift_window_s / SLICES)), 1)
        out = {}
        for (name, test), ref, cur in zip(FEATURES.items(), reference, recent):
            if ref.sum() < MIN_DRIFT_COUNT or cur.sum() < MIN_DRIFT_COUNT:
                out[name] = 0
                continue
            thresholds = calibrate(ref, int(cur.sum()), alarms_per_day=self.drift_alarms_per_day,
                                   windows_per_day=tests_per_day, tests=len(FEATURES))
            out[name] = int(alarm(ref, cur, thresholds, ordinal=test != "chi2",
                                  min_events=MIN_DRIFT_COUNT).fired)
        return out

    def publish(self) -> None:
        m = self.metrics
        v = self.values()
        m.availability.labels("5m").set(v["availability_5m"])
        m.availability.labels("1h").set(v["availability_1h"])
        m.online_conversion.labels("1h").set(v["conversion_1h"])
        m.online_watch_through.labels("1h").set(v["watch_through_1h"])
        m.online_rating.labels("1h").set(v["rating_mean_1h"])
        m.licence_cost_per_view.labels("1h").set(v["cost_per_view_1h"])
        m.licence_cost_per_hour.labels("1h").set(v["cost_per_hour_1h"])
        for name, (value, p) in self.drift_values().items():
            m.drift.labels(name).set(value)
            m.drift_p.labels(name).set(p)
        for name, fired in self.drift_alarms().items():
            m.drift_alarm.labels(name).set(fired)
