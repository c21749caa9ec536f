"""Per-arm telemetry: answers joined with what users did next (pure, unit = user).

The unit of analysis is the user, because users (not requests) are assigned to
arms: one user's answers are correlated, so every metric below is first reduced
to one number per user and the tests compare those numbers between arms.

* **conversion** — share of a user's answers followed within ``window_s`` (stream
  time) by the start of a watch of one of the answer's titles;
* **watch-through** — minutes watched per recommended-then-watched title;
* **rating of recommended-then-watched** — the user's mean stated rating of them;
* **cost per view** — mean licence cost of the titles the user started after
  their first answer (any title: cost is what the platform pays, whatever the
  source of the pick); titles of unknown cost are left out;
* **latency** — per request (a guardrail; reported as mean and p99 per arm).

A user answered under two different arms of one experiment (a change of
assignment, a bug) is *contaminated*: counted, then left out of every metric.
"""
from __future__ import annotations

import bisect
import dataclasses
from typing import Iterable, Mapping

import numpy as np

from models.experiments.interleaving import Event, Interleaved, credit

METRICS = ("conversion", "watch_through_min", "rec_rating", "cost_per_view")


@dataclasses.dataclass(frozen=True, slots=True)
class Served:
    user: int
    time: float          # stream time of the answer
    arm: str
    movies: tuple[str, ...]
    latency_ms: float
    teams: str = ""      # interleaved answers: the ranker ("A"/"B") of each slot


@dataclasses.dataclass(frozen=True, slots=True)
class Watch:
    user: int
    movie: str
    time: float          # stream time of its first minute
    minutes: int         # minutes seen (max minute + 1)


@dataclasses.dataclass
class ArmData:
    users: np.ndarray                      # user ids, one row per user
    first_seen: np.ndarray                 # stream time of the user's first answer
    per_user: dict[str, np.ndarray]        # metric -> value per user (nan: undefined)
    latency_ms: np.ndarray                 # per request
    views: int = 0
    cost: float = 0.0
    hours: float = 0.0

    @property
    def cost_per_hour(self) -> float:
        return self.cost / self.hours if self.hours > 0 else float("nan")


def join(served: Iterable[Served], watches: Iterable[Watch], ratings: Mapping[tuple[int, str], int],
         costs: Mapping[str, float], *, window_s: float = 3600.0
         ) -> tuple[dict[str, ArmData], int]:
    """(arm → its users' metrics, number of contaminated users)."""
    by_user: dict[int, list[Served]] = {}
    for s in served:
        by_user.setdefault(s.user, []).append(s)
    watched: dict[int, list[Watch]] = {}
    for w in watches:
        watched.setdefault(w.user, []).append(w)
    rows: dict[str, list] = {}
    contaminated = 0
    for user, answers in by_user.items():
        if len({a.arm for a in answers}) > 1:
            contaminated += 1
            continue
        answers.sort(key=lambda a: a.time)
        first = answers[0].time
        own = sorted(watched.get(user, ()), key=lambda w: w.time)
        times = [w.time for w in own]
        converted_answers = 0
        picked: dict[str, Watch] = {}
        for a in answers:
            lo = bisect.bisect_left(times, a.time)
            hi = bisect.bisect_right(times, a.time + window_s)
            hits = [w for w in own[lo:hi] if w.movie in a.movies]
            if hits:
                converted_answers += 1
                for w in hits:
                    picked.setdefault(w.movie, w)
        after = [w for w in own if w.time >= first]
        known = [costs[w.movie] for w in after if np.isfinite(costs.get(w.movie, np.nan))]
        rated = [ratings[(user, m)] for m in picked if (user, m) in ratings]
        rows.setdefault(answers[0].arm, []).append((
            user, first, converted_answers / len(answers),
            np.mean([w.minutes for w in picked.values()]) if picked else np.nan,
            np.mean(rated) if rated else np.nan,
            np.mean(known) if known else np.nan,
            [a.latency_ms for a in answers], len(known), float(np.sum(known)),
            sum(w.minutes for w in after if np.isfinite(costs.get(w.movie, np.nan))) / 60.0))
    out = {}
    for arm, rs in rows.items():
        cols = list(zip(*rs))
        out[arm] = ArmData(
            users=np.asarray(cols[0], np.int64), first_seen=np.asarray(cols[1], np.float64),
            per_user={m: np.asarray(cols[2 + i], np.float64) for i, m in enumerate(METRICS)},
            latency_ms=np.concatenate([np.asarray(x, np.float64) for x in cols[6]]),
            views=int(sum(cols[7])), cost=float(sum(cols[8])), hours=float(sum(cols[9])))
    return out, contaminated


def watches_from_minutes(minutes: Iterable[tuple[int, str, float, int]]) -> list[Watch]:
    """``(user, movie, time, minute)`` lines → one :class:`Watch` per (user, movie)."""
    first: dict[tuple[int, str], list] = {}
    for user, movie, t, minute in minutes:
        held = first.get((user, movie))
        if held is None:
            first[(user, movie)] = [t, minute]
        else:
            held[0] = min(held[0], t)
            held[1] = max(held[1], minute)
    return [Watch(u, m, t, mx + 1) for (u, m), (t, mx) in first.items()]


def interleaving_winners(served: Iterable[Served], watches: Iterable[Watch],
                         rated: Mapping[tuple[int, str], tuple[float, int]], *, window_s: float,
                         rating_midpoint: float) -> tuple[np.ndarray, np.ndarray]:
    """(user, winner) per interleaved answer: a watch of a slot's title within the window is
    a pick for that slot's ranker; ratings (time, stars) break ties
    (:func:`models.experiments.interleaving.credit`)."""
    events: dict[int, list[Event]] = {}
    for w in watches:
        events.setdefault(w.user, []).append(Event(w.time, w.movie, "watch"))
    for (user, movie), (t, stars) in rated.items():
        events.setdefault(user, []).append(Event(t, movie, "rate", float(stars)))
    users, winners = [], []
    for s in served:
        if not s.teams or len(s.teams) != len(s.movies):
            continue
        impression = Interleaved(s.movies, tuple(0 if t == "A" else 1 for t in s.teams))
        c = credit(impression, s.time, events.get(s.user, ()), window_s=window_s,
                   rating_midpoint=rating_midpoint)
        users.append(s.user)
        winners.append(c.winner)
    return np.asarray(users, np.int64), np.asarray(winners, np.int64)
