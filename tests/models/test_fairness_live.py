"""The live fairness monitor's maths against a slow oracle and constructed groups."""
from __future__ import annotations

import math

import numpy as np

from models.fairness_live import GroupConversion, GroupStats, shortfall_bound


def oracle(answers, watches, convert_s):
    """Per answer: converted iff the user watched a listed movie within convert_s of it
    and before their next answer (a newer answer takes over)."""
    out = []
    by_user = {}
    for t, user, movies, group in answers:
        by_user.setdefault(user, []).append((t, movies, group))
    for user, rows in by_user.items():
        for i, (t, movies, group) in enumerate(rows):
            until = min(t + convert_s, rows[i + 1][0] if i + 1 < len(rows) else math.inf)
            hit = any(u == user and m in movies and t <= tw <= until for tw, u, m in watches)
            out.append((group, hit))
    return out


def test_conversion_by_group_matches_the_oracle():
    rng = np.random.default_rng(7)
    movies = [f"m{i}" for i in range(30)]
    answers, watches = [], []
    for _ in range(600):
        t, user = float(rng.uniform(0, 50_000)), int(rng.integers(0, 80))
        answers.append((t, user, frozenset(rng.choice(movies, 5, replace=False)),
                        (("g", "a" if user % 3 else "b"),)))
    for _ in range(1500):
        watches.append((float(rng.uniform(0, 54_000)), int(rng.integers(0, 80)),
                        str(rng.choice(movies))))
    events = [(a[0], 0, a) for a in answers] + [(w[0], 1, w) for w in watches]
    m = GroupConversion(convert_s=1_800.0, window_s=1e9, max_pending=10_000)
    for t, kind, e in sorted(events, key=lambda x: x[0]):
        if kind == 0:
            m.answered(t, e[1], e[2], e[3])
        else:
            m.watched(t, e[1], e[2])
    m.advance(1e9)
    expected = oracle(sorted(answers, key=lambda a: a[0]), watches, 1_800.0)
    stats = m.stats()
    for group in ("a", "b"):
        hits = [h for g, h in expected if g == (("g", group),)]
        assert stats[("g", group)].answers == len(hits)
        assert stats[("g", group)].conversions == sum(hits)
    assert 0 < sum(h for _, h in expected) < len(expected)  # both outcomes occur


def test_the_window_forgets_old_answers_and_picks_are_rated_once():
    m = GroupConversion(convert_s=100.0, window_s=1_000.0, rate_s=500.0)
    g = (("gender", "F"),)
    m.answered(0.0, 1, ["x", "y"], g)
    m.watched(10.0, 1, "y")
    m.rated(50.0, 1, "y", 4)
    m.rated(60.0, 1, "y", 1)     # a second rating of the same pick is not counted
    m.answered(20.0, 2, ["x"], g)
    m.watched(500.0, 2, "x")     # too late: not a conversion
    m.advance(600.0)
    s = m.stats()[("gender", "F")]
    assert (s.answers, s.conversions, s.ratings, s.rating) == (2, 1, 1, 4.0)
    m.advance(1_200.0)           # the answers at 0 and 20 left the window
    assert m.stats() == {}


def stats_of(conv: dict, n: int = 400) -> dict:
    return {("a", g): GroupStats(answers=n, conversions=int(round(p * n)), ratings=n,
                                 rating_sum=p * 5 * n, rating_sq=(p * 5) ** 2 * n + n)
            for g, p in conv.items()}


def test_the_shortfall_bound_needs_evidence():
    worse = stats_of({"x": 0.3, "y": 0.6, "z": 0.6})
    assert shortfall_bound(worse, "a", "x") > 0.2               # half the rest's conversion
    assert shortfall_bound(worse, "a", "y") < 0                 # better than the rest
    assert shortfall_bound(worse, "a", "x", measure="rating") > 0.2
    equal = stats_of({"x": 0.55, "y": 0.6, "z": 0.6})
    assert shortfall_bound(equal, "a", "x") < 0.2               # within noise of the bound
    few = stats_of({"x": 0.0, "y": 0.6}, n=10)
    assert math.isnan(shortfall_bound(few, "a", "x"))
    assert math.isnan(shortfall_bound(worse, "a", "missing"))
