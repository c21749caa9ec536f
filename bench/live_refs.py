"""The lists the live service is measured against, all fitted on the same training lines.

* ``popularity``: the 20 most-interacted training movies the user has not seen.
* ``implicit-als``: the ``implicit`` package's ALS (external yardstick; benchmark-only
  dependency) -- or our own ``models.als.ImplicitALS`` when it is not installed.
* ``ease``: :class:`models.ease.EASE`.
* ``live-path``: the proposed live path simulated offline (:func:`live_path_lists`):
  item factors from a batch iALS fit on a time prefix of the training events (the last
  retrain), every user's vector by exact fold-in over *all* their training interactions
  (what the worker would hold after the user's last event), all seen movies excluded.

Every method's hyperparameters are chosen on the validation cut (:func:`tune`).
"""
from __future__ import annotations

import itertools
import time
from typing import Callable

import numpy as np
import scipy.sparse as sp

from bench.live_data import K, Split, per_user_split, score_lists
from models.als import ImplicitALS
from models.datasets import Interactions
from models.ease import EASE
from models.foldin import fold_in_users
from models.popularity import popularity_prior
from models.ranking import top_k_rows

Lists = dict[int, list[str]]


def _matrix(train: Interactions):
    users, u = np.unique(train.users, return_inverse=True)
    items, i = np.unique(train.items, return_inverse=True)
    x = sp.csr_matrix((np.ones(u.size, np.float32), (u, i)), shape=(users.size, items.size))
    x.data[:] = 1.0
    return users, items, x


def _top(scores: np.ndarray, x: sp.csr_matrix, users: np.ndarray, items: np.ndarray,
         wanted: list[int]) -> Lists:
    rows = np.searchsorted(users, wanted)
    s = np.array(scores[rows], np.float64, copy=True)
    sub = x[rows]
    s[sub.nonzero()] = -np.inf
    top = top_k_rows(s, K)
    return {u: [items[j] for j in row if j >= 0] for u, row in zip(wanted, top)}


def popularity_lists(train: Interactions, wanted: list[int]) -> Lists:
    users, items, x = _matrix(train)
    counts = np.asarray(x.sum(axis=0)).ravel()
    wanted = [u for u in wanted if u in set(users.tolist())]
    return _top(np.broadcast_to(counts, (users.size, items.size)), x, users, items, wanted)


def implicit_lists(train: Interactions, wanted: list[int], *, factors: int = 64,
                   regularization: float = 0.05, alpha: float = 1.0, iterations: int = 15,
                   seed: int = 0) -> Lists:
    """The ``implicit`` package's CPU ALS (binary matrix; confidence ``1 + alpha``)."""
    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError:
        return own_ials_lists(train, wanted, factors=factors, alpha=alpha,
                              regularization=regularization, seed=seed)
    users, items, x = _matrix(train)
    model = AlternatingLeastSquares(factors=factors, regularization=regularization,
                                    alpha=alpha, iterations=iterations, random_state=seed,
                                    num_threads=1, calculate_training_loss=False)
    model.fit(x, show_progress=False)
    scores = np.asarray(model.user_factors) @ np.asarray(model.item_factors).T
    return _top(scores, x, users, items, [u for u in wanted if u in set(users.tolist())])


def own_ials_lists(train: Interactions, wanted: list[int], *, factors: int = 64,
                   regularization: float = 10.0, alpha: float = 1.0, seed: int = 0) -> Lists:
    model = ImplicitALS(n_factors=factors, regularization=regularization, alpha=alpha,
                        seed=seed, half_life_days=None, popularity_half_life_days=None)
    model.fit(train.users, train.items, np.ones(len(train)))
    seen = Split(train, train, "").seen()
    return {u: model.recommend(u, K, exclude=seen.get(u, ())) for u in wanted}


def ease_lists(train: Interactions, wanted: list[int], *, reg: float = 300.0,
               max_items: int = 6000) -> Lists:
    model = EASE(reg=reg, max_items=max_items).fit(train.users, train.items)
    seen = Split(train, train, "").seen()
    return {u: model.recommend(u, K, exclude=seen.get(u, ())) for u in wanted}


def live_path_lists(train: Interactions, wanted: list[int], *, factors: int = 64,
                    regularization: float = 10.0, alpha: float = 10.0,
                    popularity_weight: float = 0.0, iterations: int = 10,
                    recent_half_life: float | None = None, retrain_at: float = 1.0,
                    seed: int = 0) -> Lists:
    """The proposed live path: batch item factors at ``retrain_at`` of the training events
    (by event time), then exact fold-in of every user's complete interaction set.

    Fold-in is exact and memoryless, so a user's vector after their last event is this
    one solve whatever order the events came in: replaying events one by one would give
    the same lists (bench/live_offline.py measures that cost per event).
    ``recent_half_life`` (in the user's own interactions, None: off) halves an item's
    confidence per that many newer interactions of the same user: tastes drift, and the
    newest watches say most about the next one.
    """
    ordered = train.time_ordered()
    prefix = ordered.subset(np.arange(len(ordered)) < max(1, int(len(ordered) * retrain_at)))
    model = ImplicitALS(n_factors=factors, regularization=regularization, alpha=alpha,
                        iterations=iterations, seed=seed, half_life_days=None,
                        popularity_weight=0.0, popularity_half_life_days=None)
    model.fit(prefix.users, prefix.items, np.ones(len(prefix)))
    users, items, x = _matrix(train)
    known = np.searchsorted(model.item_ids, items)
    known = np.where(known < model.item_ids.size, known, 0)
    has = model.item_ids[known] == items           # movies the last retrain knows
    factors_full = np.zeros((items.size, factors), np.float32)
    factors_full[has] = model.item_factors[known[has]]
    conf = x.multiply(has[None, :].astype(np.float32)).tocsr() * alpha
    if recent_half_life:
        conf = conf.multiply(_recency(train, users, items, recent_half_life)).tocsr()
    conf.eliminate_zeros()
    vectors = fold_in_users(factors_full, conf, regularization)
    counts = np.asarray(x.sum(axis=0)).ravel()
    scores = vectors @ factors_full.T + popularity_prior(counts, popularity_weight)[None, :]
    scores[:, ~has] = -np.inf  # no factors yet: not rankable until the next retrain
    return _top(scores, x, users, items, [u for u in wanted if u in set(users.tolist())])


def _recency(train: Interactions, users: np.ndarray, items: np.ndarray, half_life: float
             ) -> sp.csr_matrix:
    """``2^(-n / half_life)`` per (user, item), ``n`` = the user's interactions after it."""
    order = np.lexsort((train.timestamps, train.users))
    u = np.searchsorted(users, train.users[order])
    i = np.searchsorted(items, train.items[order])
    ends = np.r_[np.flatnonzero(u[1:] != u[:-1]), u.size - 1]
    last = np.repeat(ends, np.diff(np.r_[-1, ends]))
    newer = last - np.arange(u.size)
    w = sp.csr_matrix((np.exp2(-newer / half_life), (u, i)), shape=(users.size, items.size))
    w.sum_duplicates()  # a repeated (user, item) sums; capped at 1 below
    w.data = np.minimum(w.data, 1.0)
    return w


GRIDS: dict[str, dict[str, list]] = {  # the same factor/alpha/reg ranges for both iALS
    "implicit-als": {"factors": [64, 128], "regularization": [0.01, 1.0, 3.0, 10.0, 30.0],
                     "alpha": [0.5, 1.0, 2.0]},
    "ease": {"reg": [100.0, 300.0, 1000.0]},
    "live-path": {"factors": [64, 128], "regularization": [3.0, 10.0, 30.0], "alpha": [1.0],
                  "popularity_weight": [0.0], "recent_half_life": [None, 10.0]},
}
METHODS: dict[str, Callable[..., Lists]] = {
    "implicit-als": implicit_lists, "ease": ease_lists, "live-path": live_path_lists}


def tune(name: str, split: Split, *, log: Callable[[str], None] = print) -> dict:
    """Best grid point by validation Recall@20 (validation cut from ``split.train`` only)."""
    val = per_user_split(split.train, 0.8, "validation")
    wanted = val.test_users()
    grid = GRIDS[name]
    best, best_recall = {}, -1.0
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        start = time.perf_counter()
        recall = score_lists(METHODS[name](val.train, wanted, **params), val,
                             resamples=10)["recall"]
        log(f"  tune {name} {params}: validation Recall@20 {recall:.4f} "
            f"({time.perf_counter() - start:.1f}s)")
        if recall > best_recall:
            best, best_recall = params, recall
    return best
