"""Live fairness monitor: conversion of our answers and ratings of their picks, by group.

The requirement (docs/responsible-operation.md F1): no group's conversion (the
user started a listed movie within ``convert_s`` of our answer) falls more than
``bound`` (relative) below the rest of the users', and the same for the mean
rating of the movies picked from our lists.  Live, both are kept over a sliding
window of stream time from the platform's own log (answers, watches, ratings),
and the decision is taken on evidence: the **lower** confidence bound of the
group's relative shortfall against everyone else must exceed ``bound``
(:func:`shortfall_bound`), so a small or noisy group does not alarm by itself.
The offline audit (``recstream audit fairness``) uses the bootstrap of
:mod:`models.fairness`; live, a normal approximation keeps it O(groups).

Everything here is pure: events in, counts out, bounded memory (one pending
answer per user, at most ``max_pending`` of them).
"""
from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(slots=True)
class _Answer:
    t: float
    movies: frozenset
    groups: tuple           # (attribute, group) pairs of the user at answer time
    picked: str = ""


@dataclass(slots=True)
class GroupStats:
    answers: int = 0
    conversions: int = 0
    ratings: int = 0
    rating_sum: float = 0.0
    rating_sq: float = 0.0

    @property
    def conversion(self) -> float:
        return self.conversions / self.answers if self.answers else math.nan

    @property
    def rating(self) -> float:
        return self.rating_sum / self.ratings if self.ratings else math.nan


class GroupConversion:
    """Feed :meth:`answered`, :meth:`watched`, :meth:`rated` in (roughly) stream-time order."""

    def __init__(self, *, convert_s: float = 3_600.0, window_s: float = 6 * 3_600.0,
                 rate_s: float = 6 * 3_600.0, max_pending: int = 200_000) -> None:
        self.convert_s, self.window_s, self.rate_s = convert_s, window_s, rate_s
        self.max_pending = max_pending
        self.pending: OrderedDict[int, _Answer] = OrderedDict()   # user -> newest answer
        self.picks: OrderedDict[tuple, tuple] = OrderedDict()     # (user, movie) -> (t, groups)
        self.done: deque = deque()   # (t, groups, converted) of answers judged
        self.rated_log: deque = deque()  # (t, groups, rating) of picks rated
        self.now = -math.inf

    def answered(self, t: float, user: int, movies, groups: tuple) -> None:
        self._tick(t)
        old = self.pending.pop(user, None)
        if old is not None:
            self._judge(old)
        self.pending[user] = _Answer(t, frozenset(movies), tuple(groups))
        if len(self.pending) > self.max_pending:
            self._judge(self.pending.popitem(last=False)[1])

    def watched(self, t: float, user: int, movie: str) -> None:
        self._tick(t)
        a = self.pending.get(user)
        if a is not None and not a.picked and movie in a.movies and 0 <= t - a.t <= self.convert_s:
            a.picked = movie
            self.picks[(user, movie)] = (t, a.groups)
            if len(self.picks) > self.max_pending:
                self.picks.popitem(last=False)

    def rated(self, t: float, user: int, movie: str, rating: float) -> None:
        self._tick(t)
        pick = self.picks.pop((user, movie), None)
        if pick is not None and t - pick[0] <= self.rate_s:
            self.rated_log.append((t, pick[1], float(rating)))

    def advance(self, t: float) -> None:
        """Judge answers older than ``convert_s`` and forget what left the window."""
        self._tick(t)
        now, pending = self.now, self.pending
        while pending:
            user, a = next(iter(pending.items()))
            if now - a.t <= self.convert_s:
                break
            pending.popitem(last=False)
            self._judge(a)
        for log in (self.done, self.rated_log):
            while log and now - log[0][0] > self.window_s:
                log.popleft()
        while self.picks and now - next(iter(self.picks.values()))[0] > self.rate_s:
            self.picks.popitem(last=False)

    def stats(self) -> dict[tuple, GroupStats]:
        """``{(attribute, group): GroupStats}`` over the window (answers already judged)."""
        out: dict[tuple, GroupStats] = {}
        for _, groups, converted in self.done:
            for key in groups:
                s = out.setdefault(key, GroupStats())
                s.answers += 1
                s.conversions += converted
        for _, groups, rating in self.rated_log:
            for key in groups:
                s = out.setdefault(key, GroupStats())
                s.ratings += 1
                s.rating_sum += rating
                s.rating_sq += rating * rating
        return out

    def _judge(self, a: _Answer) -> None:
        self.done.append((a.t, a.groups, bool(a.picked)))

    def _tick(self, t: float) -> None:
        if t > self.now:
            self.now = t


def shortfall_bound(stats: dict[tuple, GroupStats], attribute: str, group: str, *,
                    measure: str = "conversion", z: float = 2.576, min_n: int = 30) -> float:
    """Lower confidence bound of ``group``'s relative shortfall against the rest of ``attribute``.

    ``(rest − group) / rest`` for conversion (proportions) or the mean rating of picks
    (means), minus ``z`` standard errors; NaN when either side has fewer than ``min_n``.
    A value above the requirement's bound (0.2) is evidence that the group is served worse.
    """
    mine = stats.get((attribute, group))
    rest = GroupStats()
    for (attr, g), s in stats.items():
        if attr == attribute and g != group:
            rest.answers += s.answers
            rest.conversions += s.conversions
            rest.ratings += s.ratings
            rest.rating_sum += s.rating_sum
            rest.rating_sq += s.rating_sq
    if mine is None:
        return math.nan
    if measure == "conversion":
        n1, n0 = mine.answers, rest.answers
        if n1 < min_n or n0 < min_n:
            return math.nan
        p1, p0 = mine.conversion, rest.conversion
        se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
        base = p0
    else:
        n1, n0 = mine.ratings, rest.ratings
        if n1 < min_n or n0 < min_n:
            return math.nan
        p1, p0 = mine.rating, rest.rating
        v1 = max(mine.rating_sq / n1 - p1 * p1, 0.0)
        v0 = max(rest.rating_sq / n0 - p0 * p0, 0.0)
        se = math.sqrt(v1 / n1 + v0 / n0)
        base = p0
    if not base > 0:
        return math.nan
    return ((p0 - p1) - z * se) / base
