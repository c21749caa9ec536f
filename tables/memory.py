"""In-memory mirrors of the tables that serving reads on every request.

RocksDB is the durable copy; these are the numpy projections that make an
answer O(1) (a precomputed row) and a batch refresh one matrix product:

* :class:`ItemIndex` — every movie this worker knows: factors, bias,
  decayed popularity and guardrail flags.  Fed by the item broadcast, so every
  worker holds the whole item model.
* :class:`UserIndex` — users of this worker's partitions: factors, bias and
  their precomputed top-k answer with a freshness flag.

Mutated only on the event loop; the refresher reads array snapshots from an
executor thread (growth swaps in a new array, so a reader never sees a
half-grown one).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from models.online import grow, init_vector
from models.popularity import decayed_scores, popularity_prior


class ItemIndex:
    def __init__(self, n_factors: int, *, init_scale: float, seed: int) -> None:
        self.n_factors = n_factors
        self.init_scale = init_scale
        self.seed = seed
        self.ids: list[str] = []
        self.row_of: dict[str, int] = {}
        cap = 1024
        self.factors = np.zeros((cap, n_factors), np.float32)
        self.bias = np.zeros(cap, np.float32)
        self.pop_score = np.zeros(cap, np.float64)
        self.pop_time = np.zeros(cap, np.float64)
        self.plays = np.zeros(cap, np.int64)
        # Fail closed (issue #14): a movie is unsafe for everyone until the movie API
        # confirmed it (models/guardrails.py on its object, see agents/item_follower).
        self.safe_for_all = np.zeros(cap, bool)  # confirmed, not adult
        self.safe_for_minors = np.zeros(cap, bool)  # confirmed and age-appropriate
        self.cost = np.full(cap, np.nan)  # licence cost per play from metadata; NaN: unknown
        self.version = 0
        # The promoted model's vector of a movie (None: not in it), used for new rows
        # instead of the init vector; set by agents.model_follower on a swap.
        self.base: Callable[[str], Optional[tuple[float, np.ndarray]]] = lambda movie: None

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, movie: str) -> int:
        """The row of ``movie``, adding it (with its deterministic init vector) if new."""
        row = self.row_of.get(movie)
        if row is not None:
            return row
        row = len(self.ids)
        self.ids.append(movie)
        self.row_of[movie] = row
        for name in ("factors", "bias", "pop_score", "pop_time", "plays",
                     "safe_for_all", "safe_for_minors"):  # new rows: unconfirmed, unsafe
            setattr(self, name, grow(getattr(self, name), row))
        if row >= self.cost.shape[0]:
            cost = np.full(2 * row + 1, np.nan)
            cost[: self.cost.shape[0]] = self.cost
            self.cost = cost
        self.bias[row], self.factors[row] = self.start_vector(movie)
        self.version += 1
        return row

    def start_vector(self, movie: str) -> tuple[float, np.ndarray]:
        """Where a movie's vector starts: the promoted model's, else its init vector."""
        base = self.base(movie)
        if base is not None:
            return base
        return 0.0, init_vector(("i", movie), self.n_factors, scale=self.init_scale,
                                seed=self.seed)

    def vector(self, movie: str) -> tuple[float, np.ndarray]:
        """(bias, factors) of ``movie``; an unknown movie gets its start vector (no insert)."""
        row = self.row_of.get(movie)
        if row is None:
            return self.start_vector(movie)
        return float(self.bias[row]), self.factors[row]

    def update(self, movie: str, *, bias: float | None = None, factors: np.ndarray | None = None,
               pop_score: float | None = None, pop_time: float | None = None,
               plays: int | None = None) -> int:
        row = self.row(movie)
        if factors is not None and factors.shape == (self.n_factors,):
            self.factors[row] = factors
        if bias is not None:
            self.bias[row] = bias
        if pop_score is not None:
            self.pop_score[row] = pop_score
        if pop_time is not None:
            self.pop_time[row] = pop_time
        if plays is not None:
            self.plays[row] = plays
        self.version += 1
        return row

    def set_flags(self, movie: str, *, adult: bool, minors_ok: bool) -> None:
        row = self.row(movie)
        self.safe_for_all[row] = not adult
        self.safe_for_minors[row] = (not adult) and minors_ok

    def set_cost(self, movie: str, cost) -> None:
        """The licence cost per play from catalogue metadata (None or invalid: unknown)."""
        try:
            value = float(cost)
        except (TypeError, ValueError):
            value = float("nan")
        self.cost[self.row(movie)] = value if 0.0 <= value < float("inf") else float("nan")

    def cost_of(self, movie: str) -> float:
        """Licence cost per play of ``movie``; NaN while its metadata is unknown."""
        row = self.row_of.get(movie)
        return float("nan") if row is None else float(self.cost[row])

    def popularity(self, now: float, half_life_s: float) -> np.ndarray:
        n = len(self.ids)
        return decayed_scores(self.pop_score[:n], self.pop_time[:n], now, half_life_s)

    def prior(self, now: float, half_life_s: float, blend: float) -> np.ndarray:
        return popularity_prior(self.popularity(now, half_life_s), blend)


class UserIndex:
    """Users of this worker, addressed by row; ``row_of[user_id]`` is -1 when unknown."""

    def __init__(self, n_factors: int, top_k: int, max_user_id: int) -> None:
        self.n_factors = n_factors
        self.top_k = top_k
        self.row_of = np.full(max_user_id + 1, -1, np.int32)
        cap = 1024
        self.user_ids = np.zeros(cap, np.int64)
        self.factors = np.zeros((cap, n_factors), np.float32)
        self.bias = np.zeros(cap, np.float32)
        self.has_vector = np.zeros(cap, bool)
        # Waiting for a refit against the serving model (set by a swap, cleared by any new
        # vector): its factors are zero meanwhile, never the replaced model's (issue #11).
        self.pending = np.zeros(cap, bool)
        self.stamp = np.zeros(cap, np.uint32)  # bumped on every vector change of a row
        # "Gets the minors' rules": True until the user API gave a plausible adult age
        # (fail closed, issue #14; models.guardrails.audience).
        self.minor = np.ones(cap, bool)
        self.answers = np.full((cap, top_k), -1, np.int32)
        self.fresh = np.zeros(cap, bool)
        self.count = 0
        self.dirty: set[int] = set()

    def __len__(self) -> int:
        return self.count

    def get_row(self, user: int) -> int:
        if 0 <= user < self.row_of.shape[0]:
            return int(self.row_of[user])
        return -1

    def row(self, user: int) -> int:
        row = self.get_row(user)
        if row >= 0:
            return row
        row = self.count
        self.count += 1
        self.row_of[user] = row
        for name in ("user_ids", "factors", "bias", "has_vector", "pending", "stamp", "minor",
                     "fresh"):
            arr = grow(getattr(self, name), row)
            if name == "minor" and arr.shape[0] > self.minor.shape[0]:
                arr[self.minor.shape[0]:] = True
            setattr(self, name, arr)
        if row >= self.answers.shape[0]:
            bigger = np.full((2 * self.answers.shape[0], self.top_k), -1, np.int32)
            bigger[: self.answers.shape[0]] = self.answers
            self.answers = bigger
        self.user_ids[row] = user
        return row

    def set_vector(self, user: int, bias: float, factors: np.ndarray) -> int:
        row = self.row(user)
        self.factors[row] = factors
        self.bias[row] = bias
        self.has_vector[row] = True
        self.pending[row] = False
        self.stamp[row] += 1
        return row

    def set_vectors(self, rows: np.ndarray, factors: np.ndarray, bias: np.ndarray) -> None:
        """:meth:`set_vector` for many existing ``rows`` at once (a model swap)."""
        self.factors[rows] = factors
        self.bias[rows] = bias
        self.has_vector[rows] = True
        self.pending[rows] = False
        self.stamp[rows] += 1

    def clear_vectors(self, rows: np.ndarray) -> None:
        """Forget ``rows``' vectors (learnt under a replaced model) until they are refit.

        Zero factors and bias score every movie by its own bias and the popularity
        prior: the user's known-user answer without a personal part, instead of an old
        model's vector against new item factors.
        """
        self.factors[rows] = 0.0
        self.bias[rows] = 0.0
        self.has_vector[rows] = False
        self.pending[rows] = True
        self.stamp[rows] += 1

    def needs_refit(self, row: int) -> bool:
        """Whether ``row`` holds no vector of the serving model yet (queued or never set)."""
        return bool(self.pending[row] or not self.has_vector[row])

    def invalidate(self, row: int) -> None:
        """The user's state changed: their answer is stale until recomputed."""
        self.fresh[row] = False
        self.dirty.add(row)

    def invalidate_all(self, *, skip_pending: bool = False) -> None:
        """Every answer is stale; ``skip_pending``: rows queued for a refit are left out of
        the refresher's set (their refit marks them again), ranked on request meanwhile."""
        self.fresh[: self.count] = False
        if skip_pending:
            pending = self.pending[: self.count]
            self.dirty.update(np.flatnonzero(~pending).tolist())
            self.dirty.difference_update(np.flatnonzero(pending).tolist())
        else:
            self.dirty.update(range(self.count))

    def store_answers(self, rows: np.ndarray, answers: np.ndarray) -> None:
        self.answers[rows] = answers
        self.fresh[rows] = True
