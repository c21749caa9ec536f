"""Live fairness monitor (issue #14 phase 3): conversion and pick ratings by user group.

Looks on as the user writer applies each batch (beside the attack detectors,
agents.attack_watch.WatchedWriter), so it reads the platform's own log of our
answers, its watches and ratings — no second consumer — and feeds
:class:`models.fairness_live.GroupConversion`.  A user's groups are read once
from their stored profile (gender, age band from the user API) and from the
operator's group file (``RECSTREAM_FAIRNESS_GROUPS_FILE``: ``user,group`` lines,
e.g. a segment known to the business); a user with no profile yet is
``unknown``.  Every ``interval_s`` a timer exports, per (attribute, group), the
windowed answers, conversion, mean pick rating and the lower bound of the
relative shortfall against the rest (``recstream_fairness_*``); the alert
``RecstreamFairnessShortfall`` (deploy/prometheus/rules) fires on the bound.

A worker sees its own partitions only; the gauges are per worker (sum the
counts across workers for the whole service).
"""
from __future__ import annotations

import logging
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

from models.fairness import age_band
from models.fairness_live import GroupConversion, shortfall_bound
from recstream.records import Rating, RecommendationOutcome, WatchMinute

log = logging.getLogger(__name__)
MAX_CACHED_USERS = 100_000


def read_groups_file(path: str) -> dict[int, str]:
    """``user,group`` lines (a header or bad lines are skipped) → {user: group}."""
    out: dict[int, str] = {}
    if not path:
        return out
    for line in Path(path).read_text().splitlines():
        user, _, group = line.partition(",")
        if user.strip().isdigit() and group.strip():
            out[int(user)] = group.strip()[:40]
    return out


class FairnessWatch:
    def __init__(self, *, monitor: GroupConversion, profile_of: Callable[[int], Any],
                 metrics: Any, groups_file: str = "", bound: float = 0.2,
                 min_n: int = 30) -> None:
        self.monitor, self.profile_of, self.metrics = monitor, profile_of, metrics
        self.groups_file = groups_file
        self.groups: dict[int, str] | None = None  # read on first use, not at import
        self.bound, self.min_n = bound, min_n
        self.cache: OrderedDict[int, tuple] = OrderedDict()
        self.exported: set[tuple] = set()

    def groups_of(self, user: int) -> tuple:
        cached = self.cache.get(user)
        if cached is not None and cached[0][1] != "unknown":
            return cached
        if self.groups is None:
            self.groups = read_groups_file(self.groups_file)
        profile = self.profile_of(user)
        age = getattr(profile, "age", None)
        gender = (getattr(profile, "gender", "") or "unknown")[:12]
        band = str(age_band([age if isinstance(age, int) else -1])[0])
        out = (("gender", gender), ("age", band))
        if self.groups:
            out += (("operator", self.groups.get(user, "rest")),)
        self.cache[user] = out
        if len(self.cache) > MAX_CACHED_USERS:
            self.cache.popitem(last=False)
        return out

    def observe(self, batch: list) -> None:
        m = self.monitor
        for _, rec in batch:
            kind = type(rec)
            if kind is WatchMinute:
                m.watched(rec.time, rec.user, rec.movie)
            elif kind is Rating:
                m.rated(rec.time, rec.user, rec.movie, rec.rating)
            elif kind is RecommendationOutcome and rec.status == 200 and rec.movies:
                m.answered(rec.time, rec.user, rec.movies, self.groups_of(rec.user))

    def export(self) -> dict[tuple, float]:
        """Judge what is due, set the gauges → {(attribute, group): conversion shortfall bound}."""
        m = self.monitor
        m.advance(m.now)
        stats = m.stats()
        g = self.metrics
        bounds = {}
        for key, s in stats.items():
            attribute, group = key
            conv = shortfall_bound(stats, attribute, group, min_n=self.min_n)
            rating = shortfall_bound(stats, attribute, group, measure="rating", min_n=self.min_n)
            bounds[key] = conv
            g.fairness_answers.labels(attribute, group).set(s.answers)
            g.fairness_conversion.labels(attribute, group).set(s.conversion)
            g.fairness_pick_rating.labels(attribute, group).set(s.rating)
            g.fairness_shortfall.labels(attribute, group, "conversion").set(conv)
            g.fairness_shortfall.labels(attribute, group, "rating").set(rating)
            if conv > self.bound or rating > self.bound:
                log.warning("fairness: %s=%s shortfall lower bound conversion %.3f rating %.3f "
                            "(bound %.2f)", attribute, group, conv, rating, self.bound)
        for key in self.exported - stats.keys():  # groups that left the window
            g.fairness_answers.labels(*key).set(0)
            for measure in ("conversion", "rating"):
                g.fairness_shortfall.labels(*key, measure).set(math.nan)
        self.exported = set(stats)
        return bounds


def register(app, watch: FairnessWatch, *, interval_s: float = 30.0) -> None:
    @app.timer(interval_s, name="fairness_gauges")
    async def fairness_gauges() -> None:
        watch.export()
