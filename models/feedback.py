"""Feedback-loop measures and a mitigation re-rank.

A recommender that learns from what it showed narrows what gets shown:
exposure concentrates on a few titles (Gini, top-1% share), the catalogue
covered shrinks, more watches come from our lists than from browsing, and
titles we push collect better ratings than the same titles found organically
(inflation).  The measures are pure functions of exposure counts and event
arrays; the mitigation is a pure re-rank of one ranked list.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def gini(counts) -> float:
    """Gini of exposure over all items (zeros included): 0 even, → 1 all on one item."""
    x = np.sort(np.asarray(counts, np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2 * ranks - n - 1) @ x / (n * total))


def top_share(counts, share: float = 0.01) -> float:
    """Share of all exposure that the top ``share`` of items (at least one) get."""
    x = np.sort(np.asarray(counts, np.float64))[::-1]
    total = x.sum()
    if total <= 0:
        return 0.0
    k = max(1, int(round(share * len(x))))
    return float(x[:k].sum() / total)


def coverage(counts) -> float:
    """Share of the catalogue exposed at least once."""
    x = np.asarray(counts)
    return float((x > 0).mean()) if len(x) else 0.0


def exposure(lists: Iterable[Sequence[int]], n_items: int) -> np.ndarray:
    """Exposure count per item row from served lists of item rows."""
    rows = [np.asarray(r, np.int64) for r in lists]
    flat = np.concatenate(rows) if rows else np.empty(0, np.int64)
    return np.bincount(flat[(flat >= 0) & (flat < n_items)], minlength=n_items)


def from_lists(watches: Iterable[tuple[float, int, str]], served: Iterable[tuple[float, int, Sequence[str]]],
               *, horizon_s: float = 3600.0) -> np.ndarray:
    """For each watch start ``(t, user, movie)``, whether the movie was in that user's last
    list served within ``horizon_s`` before it.  Both inputs sorted by time."""
    served = iter(served)
    last: dict[int, tuple[float, frozenset]] = {}
    pending = next(served, None)
    out = []
    for t, user, movie in watches:
        while pending is not None and pending[0] <= t:
            last[pending[1]] = (pending[0], frozenset(pending[2]))
            pending = next(served, None)
        shown = last.get(user)
        out.append(shown is not None and t - shown[0] <= horizon_s and movie in shown[1])
    return np.asarray(out, bool)


def rating_inflation(movies, ratings, recommended) -> tuple[float, int]:
    """Mean over movies (rated both ways) of mean rating when recommended − when found
    organically, weighted by the smaller count; ``(inflation, movies compared)``.
    Comparing within a movie keeps "we recommend good movies" out of the number."""
    movies = np.asarray(movies)
    ratings = np.asarray(ratings, np.float64)
    rec = np.asarray(recommended, bool)
    keys, inv = np.unique(movies, return_inverse=True)
    k = len(keys)
    n_rec = np.bincount(inv[rec], minlength=k)
    n_org = np.bincount(inv[~rec], minlength=k)
    both = (n_rec > 0) & (n_org > 0)
    if not both.any():
        return 0.0, 0
    mean_rec = np.bincount(inv[rec], ratings[rec], minlength=k)[both] / n_rec[both]
    mean_org = np.bincount(inv[~rec], ratings[~rec], minlength=k)[both] / n_org[both]
    weight = np.minimum(n_rec[both], n_org[both])
    return float(np.average(mean_rec - mean_org, weights=weight)), int(both.sum())


def rerank(items, scores, popularity, *, k: int = 20, weight: float = 0.3,
           explore_slots: int = 0, explore_pool: int = 200, seed: int = 0) -> np.ndarray:
    """A long-tail-aware top-``k`` over candidate ``items`` (best first).

    Scores are standardised and lowered by ``weight`` × the standardised log
    popularity (a calibration towards the tail that keeps relevance first);
    then ``explore_slots`` of the last positions go to random picks among the
    next ``explore_pool`` candidates (seeded, e.g. by user id: the same user
    sees the same list).  ``weight=0, explore_slots=0`` is the plain top-k.
    """
    items = np.asarray(items)
    scores = np.asarray(scores, np.float64)
    pop = np.log1p(np.maximum(np.asarray(popularity, np.float64), 0.0))
    if len(items) == 0:
        return items[:0]
    z = (scores - scores.mean()) / (scores.std() or 1.0)
    zp = (pop - pop.mean()) / (pop.std() or 1.0)
    order = np.argsort(-(z - weight * zp), kind="stable")
    slots = min(explore_slots, k)
    head = order[:k - slots]
    if slots:
        pool = order[k - slots:k - slots + explore_pool]
        rng = np.random.default_rng(seed)
        head = np.concatenate([head, rng.choice(pool, size=min(slots, len(pool)), replace=False)])
    return items[head]
