"""Team-draft interleaving: compare two rankers inside one answer, judged by the user's picks.

An A/B test compares different users, so user-to-user variation (how much
anyone watches) drowns a small ranking difference.  Interleaving shows each
user one list drafted from both rankers and asks which ranker's movies they
pick: every impression is a within-user comparison (Radlinski, Kurup &
Joachims 2008; Chapelle et al. 2012; Netflix reports ~100× fewer users).

Team draft: like picking teams in a schoolyard, the team with fewer picks so
far (a coin flip on a tie) adds its best movie not yet in the list, and the
slot is labelled with that team.  The coin flips come from the request id, so
the same request always gets the same list and labels.
Credit: a watch of a movie within the window after the list was shown is a
*pick* for the team that contributed it; completions, then ratings, break ties
between equal pick counts.  The decision is a two-sided sign (binomial) test
on the impressions or users that preferred one side.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Hashable, Iterable, Literal, Sequence

import numpy as np
from scipy import stats

A, B, TIE = 0, 1, -1


def _rng(seed: int | str) -> np.random.Generator:
    """A generator from an int or a request id, stable across processes."""
    if isinstance(seed, str):
        seed = int.from_bytes(hashlib.blake2b(seed.encode(), digest_size=8).digest(), "big")
    return np.random.default_rng(seed)


@dataclasses.dataclass(frozen=True, slots=True)
class Interleaved:
    items: tuple[Hashable, ...]
    teams: tuple[int, ...]      # A or B per slot

    def team_of(self) -> dict[Hashable, int]:
        return dict(zip(self.items, self.teams))


def team_draft(ranking_a: Sequence[Hashable], ranking_b: Sequence[Hashable], *, k: int = 20,
               seed: int | str = 0) -> Interleaved:
    """Interleave two rankings into at most ``k`` distinct items, recording each slot's team."""
    rng = _rng(seed)
    rankings = (list(ranking_a), list(ranking_b))
    cursor = [0, 0]
    taken: set[Hashable] = set()
    items: list[Hashable] = []
    teams: list[int] = []
    counts = [0, 0]

    def next_of(team: int) -> Hashable | None:
        ranking = rankings[team]
        while cursor[team] < len(ranking) and ranking[cursor[team]] in taken:
            cursor[team] += 1
        return ranking[cursor[team]] if cursor[team] < len(ranking) else None

    while len(items) < k:
        heads = (next_of(A), next_of(B))
        if heads[A] is None and heads[B] is None:
            break
        if heads[A] is None or heads[B] is None:
            team = B if heads[A] is None else A
        elif counts[A] != counts[B]:
            team = A if counts[A] < counts[B] else B
        else:
            team = A if rng.random() < 0.5 else B
        item = heads[team]
        taken.add(item)
        items.append(item)
        teams.append(team)
        counts[team] += 1
    return Interleaved(tuple(items), tuple(teams))


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """A user's later event about one movie: a watch, a completed watch, or a rating."""

    time: float
    movie: Hashable
    kind: Literal["watch", "complete", "rate"]
    value: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Credit:
    picks: tuple[int, int]         # distinct movies watched, per team
    completions: tuple[int, int]   # distinct movies completed, per team
    rating: tuple[float, float]    # sum of (rating − midpoint) of rated movies, per team
    winner: int                    # A, B or TIE


def credit(impression: Interleaved, shown_at: float, events: Iterable[Event], *,
           window_s: float, rating_midpoint: float = 3.0) -> Credit:
    """Which team this impression favoured, from the events of the same user.

    Only events in ``[shown_at, shown_at + window_s]`` about movies in the list
    count; each movie counts once per kind (a watch logs one line per minute,
    and lines are redelivered).  The winner has more picks; equal picks are
    decided by completions, then by the summed rating above the midpoint.
    """
    team_of = impression.team_of()
    end = shown_at + window_s
    watched: set[Hashable] = set()
    completed: set[Hashable] = set()
    rated: dict[Hashable, float] = {}
    for e in events:
        if e.movie not in team_of or not shown_at <= e.time <= end:
            continue
        if e.kind == "watch":
            watched.add(e.movie)
        elif e.kind == "complete":
            completed.add(e.movie)
            watched.add(e.movie)
        elif e.kind == "rate":
            rated[e.movie] = e.value
    picks = _per_team(watched, team_of)
    completions = _per_team(completed, team_of)
    rating = [0.0, 0.0]
    for movie, value in rated.items():
        rating[team_of[movie]] += value - rating_midpoint
    winner = TIE
    for a, b in ((picks[A], picks[B]), (completions[A], completions[B]), (rating[A], rating[B])):
        if a != b:
            winner = A if a > b else B
            break
    return Credit((picks[A], picks[B]), (completions[A], completions[B]), (rating[A], rating[B]), winner)


def _per_team(movies: set[Hashable], team_of: dict[Hashable, int]) -> list[int]:
    out = [0, 0]
    for movie in movies:
        out[team_of[movie]] += 1
    return out


def per_user_scores(users: np.ndarray, winners: np.ndarray) -> np.ndarray:
    """Mean credit per user in [-1, 1] (+1 an impression A won, −1 one B won, 0 a tie), by sorted user id."""
    users, winners = np.asarray(users), np.asarray(winners)
    score = np.where(winners == A, 1.0, np.where(winners == B, -1.0, 0.0))
    _, inverse, counts = np.unique(users, return_inverse=True, return_counts=True)
    return np.bincount(inverse, weights=score) / counts


def per_user_winners(users: np.ndarray, winners: np.ndarray) -> np.ndarray:
    """Collapse impressions to one vote per user (sign of A wins − B wins): users are the independent units."""
    users, winners = np.asarray(users), np.asarray(winners)
    score = np.where(winners == A, 1, np.where(winners == B, -1, 0))
    _, inverse = np.unique(users, return_inverse=True)
    total = np.bincount(inverse, weights=score)
    return np.where(total > 0, A, np.where(total < 0, B, TIE))


@dataclasses.dataclass(frozen=True, slots=True)
class Preference:
    wins_a: int
    wins_b: int
    ties: int
    delta: float        # (wins_a − wins_b) / all units: > 0 means A is preferred
    p_value: float      # two-sided sign test on the non-tied units
    decision: int       # A, B or TIE (not significant)


def preference_test(winners: np.ndarray, *, alpha: float = 0.05) -> Preference:
    """Sign test on per-impression (or per-user) winners; ties carry no information."""
    winners = np.asarray(winners)
    wa, wb = int(np.sum(winners == A)), int(np.sum(winners == B))
    ties = int(winners.size - wa - wb)
    p = float(stats.binomtest(wa, wa + wb, 0.5).pvalue) if wa + wb else 1.0
    decision = TIE if p >= alpha else (A if wa > wb else B)
    delta = (wa - wb) / winners.size if winners.size else 0.0
    return Preference(wa, wb, ties, delta, p, decision)


@dataclasses.dataclass(frozen=True, slots=True)
class ScoreTest:
    mean: float                 # mean per-user credit: > 0 means A is preferred
    ci: tuple[float, float]
    p_value: float
    decision: int               # A, B or TIE (not significant)


def score_test(scores: np.ndarray, *, alpha: float = 0.05) -> ScoreTest:
    """One-sample t-test of mean per-user credit against 0 (users are the independent units)."""
    scores = np.asarray(scores, dtype=np.float64)
    mean = float(scores.mean())
    if scores.size < 2 or np.all(scores == scores[0]):
        p = 1.0 if mean == 0 else 0.0
        return ScoreTest(mean, (mean, mean), p, TIE if p >= alpha else (A if mean > 0 else B))
    res = stats.ttest_1samp(scores, 0.0)
    ci = res.confidence_interval(1 - alpha)
    p = float(res.pvalue)
    return ScoreTest(mean, (float(ci.low), float(ci.high)), p, TIE if p >= alpha else (A if mean > 0 else B))
