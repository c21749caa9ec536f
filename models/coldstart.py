"""Cold start: a first user vector from a self-description and demographics.

A new account has no ratings, only what it says it likes and dislikes and its
age and gender.  ``fold_in`` turns matched titles into pseudo-ratings (liked →
high, disliked → low) and solves one ALS user step for them, regularised
towards a prior instead of towards zero, so a user who names nothing gets
exactly the prior and each named movie pulls the vector a bounded amount.
``DemographicPrior`` supplies that prior: the mean known-user vector of the
new user's age band × gender, shrunk towards the global mean where the cell is
small.  ``segment_popularity`` is the fallback ranking when no vector can be
made (no factor model yet): the segment's plays smoothed by global plays.

Two things decide whether a folded-in vector helps (bench/coldstart.py):

* **Rank it the way the service ranks.**  The service scores ``p.q_i + b_i +
  blend * log1p(popularity_i)``; explicit-rating MF alone (``p.q_i + b_i``)
  puts rarely-rated, highly-predicted titles first and loses to plain
  popularity even for known users.  A cold-start vector is only ever ranked
  by the serving ranker, so it must be judged (and tuned) with its prior.
* **Regularise relative to the item factors' scale.**  The ridge penalty
  competes with ``sum_j q_j q_j^T``; ``relative_reg`` expresses it in units of
  the mean squared item norm, so the same setting means the same pull for ALS
  factors (norm ~1) and for online-MF factors (norm ~0.1).

Everything is pure and deterministic: arrays in, new arrays out, no state grown.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Optional

import numpy as np

from models._ids import top_k

if TYPE_CHECKING:  # typing only: the matcher is passed in
    from models.titles import TitleIndex

AGE_BANDS = ("<18", "18-24", "25-34", "35-44", "45-54", "55+")
_AGE_EDGES = (18, 25, 35, 45, 55)
UNKNOWN = "unknown"
GENDERS = ("M", "F")


def _rows(vectors: Any, dim: int) -> np.ndarray:
    """``vectors`` as a finite float64 ``(n, dim)`` array (empty and ragged inputs → 0 rows)."""
    arr = np.asarray(vectors if vectors is not None else [], dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, dim))
    arr = arr.reshape(-1, dim)
    return arr[np.isfinite(arr).all(axis=1)]


def _per_row(values: Any, n: int, default: float) -> np.ndarray:
    if values is None:
        return np.full(n, default)
    arr = np.broadcast_to(np.asarray(values, dtype=np.float64), (n,)).copy()
    arr[~np.isfinite(arr)] = default
    return arr


def fold_in(liked_vectors: Any, disliked_vectors: Any, prior_vector: Any, *,
            liked_bias: Any = None, disliked_bias: Any = None,
            liked_weight: Any = None, disliked_weight: Any = None,
            prior_bias: float = 0.0, global_mean: float = 0.0,
            like_rating: float = 5.0, dislike_rating: float = 1.0,
            reg: float = 1.0, bias_reg: float | None = None,
            fit_bias: bool = True) -> tuple[np.ndarray, float]:
    """One ridge user step on pseudo-ratings, centred on the prior.

    Minimises ``sum_j w_j (t_j - mu - b_j - b_u - p.q_j)^2 + reg |p - p0|^2
    + bias_reg (b_u - b0)^2`` with ``t_j = like_rating`` for liked and
    ``dislike_rating`` for disliked items (``b_j`` = item biases, ``w_j`` =
    e.g. title-match confidence).  With ``fit_bias=False`` (or an implicit
    model: ``global_mean=0, like_rating=1, dislike_rating=0``) only ``p`` moves.
    A large ``bias_reg`` keeps an all-liked description from being absorbed
    by the user bias, which would leave the ranking unchanged.

    Returns ``(user_vector float32, user_bias)``; with nothing usable, the prior.
    """
    p0 = np.nan_to_num(np.asarray(prior_vector, dtype=np.float64).ravel())
    d = p0.size
    b0 = float(prior_bias) if math.isfinite(prior_bias) else 0.0
    liked, disliked = _rows(liked_vectors, d), _rows(disliked_vectors, d)
    n_l, n_d = len(liked), len(disliked)
    if n_l + n_d == 0 or d == 0:
        return p0.astype(np.float32), b0
    Q = np.vstack([liked, disliked])
    b_items = np.r_[_per_row(liked_bias, n_l, 0.0), _per_row(disliked_bias, n_d, 0.0)]
    w = np.clip(np.r_[_per_row(liked_weight, n_l, 1.0), _per_row(disliked_weight, n_d, 1.0)], 0, None)
    t = np.r_[np.full(n_l, like_rating), np.full(n_d, dislike_rating)] - global_mean - b_items
    reg = max(float(reg), 1e-6)
    if fit_bias:
        X = np.hstack([Q, np.ones((len(Q), 1))])
        theta0 = np.r_[p0, b0]
        penalty = np.r_[np.full(d, reg), max(float(reg if bias_reg is None else bias_reg), 1e-6)]
    else:
        X, theta0, penalty = Q, p0, np.full(d, reg)
        t = t - b0
    A = (X * w[:, None]).T @ X + np.diag(penalty)
    rhs = (X * w[:, None]).T @ t + penalty * theta0
    try:
        theta = np.linalg.solve(A, rhs)
    except np.linalg.LinAlgError:  # pragma: no cover - A is positive definite by construction
        return p0.astype(np.float32), b0
    if not np.all(np.isfinite(theta)):
        return p0.astype(np.float32), b0
    if fit_bias:
        return theta[:d].astype(np.float32), float(theta[d])
    return theta.astype(np.float32), b0


def relative_reg(item_factors: Any, reg: float, *, rows: Any = None) -> float:
    """``reg`` times the mean squared norm of (the ``rows`` of) ``item_factors``.

    Scaling every item vector by ``s`` scales this penalty by ``s**2``, so the
    fold-in's scores ``Q p`` do not change: one setting fits every model.
    """
    Q = np.asarray(item_factors, dtype=np.float64)
    if rows is not None:
        Q = Q[np.asarray(rows)]
    if Q.ndim != 2 or Q.shape[0] == 0:
        return max(float(reg), 1e-6)
    sq = np.einsum("ij,ij->i", Q, Q)
    scale = float(sq[np.isfinite(sq)].mean()) if np.isfinite(sq).any() else 0.0
    return max(float(reg) * scale, 1e-6)


def age_band(age: Any) -> str:
    """``"<18"``, ``"18-24"``, …, ``"55+"``; missing or implausible ages → ``"unknown"``."""
    try:
        value = float(age)
    except (TypeError, ValueError):
        return UNKNOWN
    if not math.isfinite(value) or value <= 0 or value > 120:
        return UNKNOWN
    return AGE_BANDS[sum(value >= edge for edge in _AGE_EDGES)]


def gender_key(gender: Any) -> str:
    g = gender.strip().upper()[:1] if isinstance(gender, str) else ""
    return g if g in GENDERS else UNKNOWN


def segment_of(age: Any, gender: Any) -> tuple[str, str]:
    return age_band(age), gender_key(gender)


class DemographicPrior:
    """Mean user vector (and bias) per age band × gender, shrunk to coarser means.

    A cell with ``n`` users gets ``(sum + shrinkage * parent) / (n + shrinkage)``
    where the parent is the age band's mean (itself shrunk to the global mean):
    small cells borrow strength instead of being noise.  Unknown age or gender
    fall back to the gender-only / band-only / global mean.
    """

    def __init__(self, *, shrinkage: float = 20.0) -> None:
        self.shrinkage = shrinkage
        self.global_vector = np.zeros(0, np.float32)
        self.global_bias = 0.0
        self.cells: dict[tuple[str, str], tuple[np.ndarray, float, int]] = {}

    def fit(self, vectors: Any, ages: Iterable, genders: Iterable, biases: Any = None) -> "DemographicPrior":
        V = np.asarray(vectors, dtype=np.float64)
        if V.ndim != 2:
            raise ValueError("vectors must be a (n_users, n_factors) array")
        n, d = V.shape
        b = _per_row(biases, n, 0.0)
        ok = np.isfinite(V).all(axis=1)
        bands = np.asarray([age_band(a) for a in ages], dtype=object)
        gens = np.asarray([gender_key(g) for g in genders], dtype=object)
        if len(bands) != n or len(gens) != n:
            raise ValueError("vectors, ages and genders must have one row per user")
        V, b, bands, gens = V[ok], b[ok], bands[ok], gens[ok]
        k = float(self.shrinkage)
        g_vec = V.mean(axis=0) if len(V) else np.zeros(d)
        g_bias = float(b.mean()) if len(b) else 0.0
        self.global_vector, self.global_bias = g_vec.astype(np.float32), g_bias
        self.cells = {(UNKNOWN, UNKNOWN): (self.global_vector, g_bias, len(V))}

        def shrunk(mask: np.ndarray, parent: tuple[np.ndarray, float, int]):
            m = int(mask.sum())
            vec = (V[mask].sum(axis=0) + k * parent[0]) / (m + k) if m + k > 0 else parent[0]
            bias = (float(b[mask].sum()) + k * parent[1]) / (m + k) if m + k > 0 else parent[1]
            return np.asarray(vec, np.float32), float(bias), m

        root = self.cells[(UNKNOWN, UNKNOWN)]
        for g in GENDERS:
            self.cells[(UNKNOWN, g)] = shrunk(gens == g, root)
        for band in AGE_BANDS:
            parent = self.cells[(band, UNKNOWN)] = shrunk(bands == band, root)
            for g in GENDERS:
                self.cells[(band, g)] = shrunk((bands == band) & (gens == g), parent)
        return self

    def prior(self, age: Any = None, gender: Any = None) -> tuple[np.ndarray, float]:
        """``(vector float32, bias)`` for a new user; before ``fit``: an empty vector and 0."""
        vec, bias, _ = self.cells.get(segment_of(age, gender),
                                      (self.global_vector, self.global_bias, 0))
        return vec.copy(), bias

    def to_arrays(self) -> dict[str, np.ndarray]:
        """For an npz artifact: cell names, vectors, biases, counts (no pickle)."""
        keys = sorted(self.cells)
        return {"prior_cells": np.asarray([f"{a}|{g}" for a, g in keys]),
                "prior_vectors": np.asarray([self.cells[c][0] for c in keys], np.float32),
                "prior_bias": np.asarray([self.cells[c][1] for c in keys], np.float64),
                "prior_counts": np.asarray([self.cells[c][2] for c in keys], np.int64),
                "prior_shrinkage": np.asarray(self.shrinkage, np.float64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "DemographicPrior":
        model = cls(shrinkage=float(arrays["prior_shrinkage"]))
        for name, vec, bias, count in zip(arrays["prior_cells"].tolist(), arrays["prior_vectors"],
                                          arrays["prior_bias"], arrays["prior_counts"]):
            band, _, g = str(name).partition("|")
            model.cells[(band, g)] = (np.asarray(vec, np.float32), float(bias), int(count))
        model.global_vector, model.global_bias, _ = model.cells.get(
            (UNKNOWN, UNKNOWN), (np.zeros(0, np.float32), 0.0, 0))
        return model


def segment_popularity(segment_counts: Any, global_counts: Any, *, k: int = 20,
                       shrinkage: float = 50.0, exclude: Iterable[int] = ()) -> np.ndarray:
    """Item indices, best first, by the segment's plays smoothed towards global shares.

    ``score_i = c_seg,i + shrinkage * c_i / sum(c)``: a segment with few plays
    ranks like the whole population, a large one by its own taste.  Ties go to
    the lower index, so the answer is deterministic.
    """
    glob = np.nan_to_num(np.asarray(global_counts, dtype=np.float64).ravel()).clip(0)
    seg = np.nan_to_num(np.asarray(segment_counts if segment_counts is not None else np.zeros_like(glob),
                                   dtype=np.float64).ravel()).clip(0)
    if seg.size != glob.size:
        seg = np.zeros_like(glob)
    total = glob.sum()
    scores = seg + (shrinkage * glob / total if total > 0 else 0.0)
    excluded = np.asarray([i for i in exclude if isinstance(i, (int, np.integer)) and 0 <= i < scores.size],
                          dtype=np.int64)
    scores[excluded] = -np.inf
    return top_k(scores, k)


def make_profile(user: dict, *, titles: Optional[TitleIndex], row_of: dict[str, int],
                 factors: np.ndarray, bias: np.ndarray, supported: np.ndarray,
                 prior: Optional[tuple[np.ndarray, float]], global_mean: float,
                 like_rating: float, dislike_rating: float, reg: float, bias_reg: float) -> dict:
    """The ``UserProfile`` fields of one parsed user: titles matched, then folded in.

    ``user`` holds the self-description's ``likes`` / ``dislikes`` texts; only items marked
    ``supported`` anchor the fold-in.  No match: the demographic prior, or no vector.
    """
    named: list[str] = []
    sides: list[tuple[list[int], list[float]]] = []
    for text in (user["likes"], user["dislikes"]):
        rows, weights = [], []
        for movie, score in (titles.match(text) if titles is not None and text else []):
            named.append(movie)
            row = row_of.get(movie)
            if row is not None and row < len(supported) and supported[row]:
                rows.append(row)
                weights.append(score)
        sides.append((rows, weights))
    (liked, wl), (disliked, wd) = sides
    d = factors.shape[1]
    out = {"named": list(dict.fromkeys(named)), "vector": [], "bias": 0.0, "source": "none"}
    if liked or disliked:
        p0, b0 = prior if prior is not None else (np.zeros(d, np.float32), 0.0)
        vec, b_u = fold_in(factors[liked], factors[disliked], p0, liked_bias=bias[liked],
                           disliked_bias=bias[disliked], liked_weight=wl, disliked_weight=wd,
                           prior_bias=b0, global_mean=global_mean, like_rating=like_rating,
                           dislike_rating=dislike_rating, reg=reg, bias_reg=bias_reg)
        out.update(vector=vec.tolist(), bias=float(b_u), source="foldin")
    elif prior is not None:
        out.update(vector=prior[0].tolist(), bias=float(prior[1]), source="prior")
    return out
