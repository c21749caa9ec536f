"""The training window: per-user histories read from Kafka → the rows a model fits on.

Both sources (the ``user_history`` changelog, the raw movielog) end as per-user
:class:`~tables.codecs.UserHistory` rows, so one function applies the event-time window
and derives the rows whichever the source; the holdout is the newest 10 % of the window.
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any, Iterable, Mapping

import numpy as np

from models import evaluation
from models.datasets import Interactions
from recstream.ops.suspects import exclude, read_suspects
from recstream.ops.training_data import TopicRange, read_changelog, read_movielog
from recstream.settings import Settings
from tables.codecs import UserHistory

HOLDOUT_FRACTION = 0.1
SOURCES = ("state", "movielog")


class NoData(Exception):
    """Nothing to train on in the window (the command exits non-zero with this line)."""


async def load(settings: Settings, source: str, hours: float, progress: Any
               ) -> tuple[dict[int, UserHistory], TopicRange]:
    if source == "state":
        histories, read = await read_changelog(settings, progress)
    elif source == "movielog":
        histories, read = await read_movielog(settings, hours, progress)
    else:
        raise ValueError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")
    # Issue #14: suspected sybil ratings never reach a batch model (recstream/ops/suspects.py).
    suspected, _ = await read_suspects(settings, progress)
    histories, dropped = exclude(histories, suspected)
    read.stats = {**read.stats, "suspected_accounts": len(suspected),
                  "suspected_ratings_dropped": dropped}
    return histories, read



@dataclasses.dataclass(frozen=True)
class WindowData:
    """The window's rows; each table sorted by (user, item) so hashes are reproducible."""

    ratings: Interactions   # explicit: the latest rating per (user, movie), time in window
    watches: Interactions   # value = furthest minute, time = last watch time, in window
    pseudo: Interactions    # completed watches the user never rated → pseudo-rating
    start: float
    end: float
    hours: float
    # Every (user, movie) watched or rated, from the complete per-user set (issue #10):
    # value 1, time = last watch / rating time, or (trimmed from the bounded history) the
    # user's oldest held time -- older than anything held.  What the ials model fits on.
    interactions: Interactions = dataclasses.field(
        default_factory=lambda: Interactions(np.zeros(0, np.int64), np.zeros(0, "<U1"),
                                             np.zeros(0), np.zeros(0)))

    def as_dict(self) -> dict[str, Any]:
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        return {"start": self.start, "end": self.end, "hours": self.hours,
                "start_utc": iso(self.start), "end_utc": iso(self.end),
                "clock": "event time; ends at the newest event read"}


def pseudo_rating(settings: Settings) -> float:
    """What the online updater learns from a completed, unrated watch (agents.user_writer)."""
    return settings.rating_min + 0.8 * (settings.rating_max - settings.rating_min)


def window_data(histories: Mapping[int, UserHistory], *, hours: float,
                settings: Settings) -> WindowData:
    """The rows of the ``hours`` before the newest event time held in ``histories``.

    ``hours`` 0 (the default ``retrain_window_h``) takes every row held.
    """
    ratings, watches = _Columns(), _Columns()
    rated: list[bool] = []
    for user, history in histories.items():
        held = history.ratings
        ratings.extend(user, held.keys(), list(held.values()))
        watches.extend(user, history.watches.keys(), list(history.watches.values()))
        rated.extend([movie in held for movie in history.watches])
    every = _complete_sets(histories)
    r, w = ratings.table(0, 1), watches.table(0, 2)  # [rating, time]; [max minute, _, last, _]
    end = float(max(r.timestamps.max(initial=0.0), w.timestamps.max(initial=0.0)))
    if hours > 0:
        start = end - hours * 3600.0
    else:  # no window: every interaction held (issue #10: no silent truncation)
        start = float(min(r.timestamps.min(initial=end), w.timestamps.min(initial=end)))
    in_window = w.timestamps >= start
    completed = in_window & (w.values >= settings.watch_complete_minutes) & ~np.asarray(rated,
                                                                                       bool)
    pseudo = w.subset(completed)
    pseudo = Interactions(pseudo.users, pseudo.items,
                          np.full(len(pseudo), pseudo_rating(settings)), pseudo.timestamps)
    return WindowData(_canonical(r.subset(r.timestamps >= start)),
                      _canonical(w.subset(in_window)), _canonical(pseudo), start, end, hours,
                      _canonical(every.subset(every.timestamps >= start)))


def _complete_sets(histories: Mapping[int, UserHistory]) -> Interactions:
    """One row per (user, movie) in each user's complete set (see :class:`WindowData`)."""
    users: list[int] = []
    items: list[str] = []
    times: list[float] = []
    for user, history in histories.items():
        known = {m: e[1] for m, e in history.ratings.items()}
        for movie, entry in history.watches.items():
            known[movie] = max(entry[2], known.get(movie, entry[2]))
        oldest = min(known.values(), default=0.0)
        movies = list(dict.fromkeys([*history.items, *known]))
        users.extend([user] * len(movies))
        items.extend(movies)
        times.extend(known.get(m, oldest) for m in movies)
    return Interactions(np.asarray(users, np.int64),
                        np.asarray(items, dtype=str) if items else np.zeros(0, "<U1"),
                        np.ones(len(users)), np.asarray(times, np.float64))


class _Columns:
    """Rows gathered column-wise (one Python pass over the histories, then numpy)."""

    def __init__(self) -> None:
        self.users: list[int] = []
        self.items: list[str] = []
        self.entries: list[list] = []

    def extend(self, user: int, items: Iterable[str], entries: list[list]) -> None:
        self.users.extend([user] * len(entries))
        self.items.extend(items)
        self.entries.extend(entries)

    def table(self, value: int, time_at: int) -> Interactions:
        """Fields ``value`` and ``time_at`` of the entries as values and timestamps.

        Built with ``fromiter`` over the flattened entries and item codes: converting a
        million small lists or strings one by one with ``np.asarray`` took ~5 s.
        """
        widths = set(map(len, self.entries))
        if len(widths) == 1:
            width = widths.pop()
            flat = np.fromiter(itertools.chain.from_iterable(self.entries), np.float64,
                               count=width * len(self.entries))
            grid = flat.reshape(-1, width)[:, [value, time_at]]
        else:  # none, or ragged: gather the two fields one by one
            grid = np.asarray([(e[value], e[time_at]) for e in self.entries], np.float64)
            grid = grid.reshape(-1, 2)
        codes: dict[str, int] = {}
        index = np.fromiter((codes.setdefault(m, len(codes)) for m in self.items), np.int64,
                            count=len(self.items))
        names = np.asarray(list(codes), dtype=str) if codes else np.zeros(0, "<U1")
        return Interactions(np.asarray(self.users, np.int64), names[index], grid[:, 0].copy(),
                            grid[:, 1].copy())


def _canonical(table: Interactions) -> Interactions:
    """Sorted by (user, item): the same rows give the same arrays and hash from any source."""
    return table.subset(np.lexsort((table.items, table.users)))


def _concat(*tables: Interactions) -> Interactions:
    return Interactions(np.concatenate([t.users for t in tables]),
                        np.concatenate([t.items.astype(str) for t in tables]),
                        np.concatenate([t.values for t in tables]),
                        np.concatenate([t.timestamps for t in tables]))


def training_rows(data: WindowData, model: str) -> Interactions:
    """What a model of kind ``model`` fits on: ratings + pseudo-ratings, or every movie
    each user watched or rated (the complete set: binary confidence)."""
    return _concat(data.ratings, data.pseudo) if model == "als" else data.interactions


# -- holdout -------------------------------------------------------------------------------
def holdout_split(data: WindowData, model: str, fraction: float = HOLDOUT_FRACTION
                  ) -> tuple[evaluation.Split, dict[str, Any]]:
    """Train on the window before the cutoff, test on the explicit ratings at or after it.

    The cutoff is the ``1 - fraction`` quantile of every event time in the window (ratings
    and watches, the rule of :func:`models.evaluation.time_split`).  Pseudo-ratings are
    never test rows (they are not what the user said).  For ``ials`` the watches of the
    test's (user, movie) pairs are left out of training too, or every test item would be
    excluded from the lists as already seen.

    ``ials`` (what serves) is held out per user instead (:func:`_per_user_holdout`): the
    newest 10 % of the window's times held few users (23 of 200 on an ml-100k replay), too
    few for the paired gate to ever conclude.
    """
    times = np.sort(np.concatenate([data.ratings.timestamps, data.watches.timestamps]))
    if times.size == 0:
        raise NoData("no ratings or watches in the window")
    if model == "ials":
        return _per_user_holdout(data, fraction)
    cutoff = float(times[min(int(times.size * (1.0 - fraction)), times.size - 1)])
    test = data.ratings.subset(data.ratings.timestamps >= cutoff)
    rows = training_rows(data, model)
    train = rows.subset(rows.timestamps < cutoff)
    if model != "als" and len(test):
        held = set(zip(test.users.tolist(), test.items.tolist()))
        keep = np.fromiter(((u, i) not in held for u, i in
                            zip(train.users.tolist(), train.items.tolist())), bool, len(train))
        train = train.subset(keep)
    info = {"rule": f"newest {fraction:.0%} of the window's event times", "cutoff": cutoff,
            "fraction": fraction, "test": "explicit ratings at or after the cutoff",
            "train_rows": len(train), "test_rows": len(test)}
    return evaluation.Split(train, test, f"holdout:{fraction:g}"), info


MIN_RATINGS_FOR_TEST = 5


def _per_user_holdout(data: WindowData, fraction: float
                      ) -> tuple[evaluation.Split, dict[str, Any]]:
    """Each user's newest ``fraction`` of ratings (≥ 1, users with ≥ 5 ratings) is the test;
    training is every interaction of theirs before their own cutoff, minus the test pairs
    (the live protocol of docs/live-path.md, and how the gate pairs users)."""
    r = data.ratings
    order = np.lexsort((r.timestamps, r.users))
    users = r.users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1] if users.size else np.zeros(0, int)
    ends = np.r_[starts[1:], users.size].astype(int)
    is_test = np.zeros(len(r), bool)
    cut: dict[int, float] = {}
    for lo, hi in zip(starts.tolist(), ends.tolist()):
        if hi - lo < MIN_RATINGS_FOR_TEST:
            continue
        k = max(1, int(round((hi - lo) * fraction)))
        is_test[order[hi - k:hi]] = True
        cut[int(users[lo])] = float(r.timestamps[order[hi - k]])
    test = r.subset(is_test)
    rows = data.interactions
    before = np.fromiter((t < cut.get(u, np.inf) for u, t in
                          zip(rows.users.tolist(), rows.timestamps.tolist())), bool, len(rows))
    held = set(zip(test.users.tolist(), test.items.tolist()))
    keep = before & np.fromiter(((u, i) not in held for u, i in
                                 zip(rows.users.tolist(), rows.items.tolist())), bool, len(rows))
    train = rows.subset(keep)
    info = {"rule": f"each user's newest {fraction:.0%} of ratings (users with >= "
                    f"{MIN_RATINGS_FOR_TEST})", "per_user": True,
            "cutoff": min(cut.values(), default=float(data.end)), "fraction": fraction,
            "test": "each user's newest ratings", "test_users": len(cut),
            "train_rows": len(train), "test_rows": len(test)}
    return evaluation.Split(train, test, f"holdout:per-user:{fraction:g}"), info


def relevance_threshold(settings: Settings) -> float:
    """Ratings ≥ 75 % of the scale count as relevant (4 on 1–5, as the offline reports)."""
    return settings.rating_min + 0.75 * (settings.rating_max - settings.rating_min)
