"""How a user reacts: what they pick, how long they watch, what they rate.

Picking from our list is a multinomial logit with position bias and an
outside option ("browse elsewhere"), so a better list is both accepted more
often and yields better picks.  Elsewhere means organic browsing: a
consideration set drawn by popularity, chosen among by true taste.  Watching
stops early with a per-minute hazard that grows as the match gets worse.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from recstream.sim.films import Catalog
from recstream.sim.taste import Taste

BETA = 1.6               # sensitivity of choice to true rating
REFERENCE = 3.5          # a movie rated this is as attractive as one position-1 slot
OUTSIDE = 3.0            # weight of ignoring the list
CONSIDER = 40            # organic consideration-set size
SEEN_PENALTY = 0.05      # re-watching is rare
HAZARD = 0.01            # per-minute stopping hazard at a true rating of 3
HAZARD_SLOPE = 0.9
RATING_NOISE = 0.75      # σ of a stated rating around the true one (1–5 units)
POSITION_BIAS = 1.0 / np.arange(1, 101) ** 0.7


@dataclasses.dataclass(slots=True, frozen=True)
class Pick:
    movie: int          # movie index
    position: int       # 0-based position in our list, -1 for organic
    true_rating: float


def pick_from_list(taste: Taste, rng: np.random.Generator, u: int, shown: np.ndarray,
                   seen: set[int] | None) -> Pick | None:
    """One choice among our list and the outside option; ``None`` = looks elsewhere."""
    if len(shown) == 0:
        return None
    r = taste.ratings(u, shown)
    w = POSITION_BIAS[: len(shown)] * np.exp(BETA * (r - REFERENCE))
    if seen:
        w = w * np.fromiter((SEEN_PENALTY if m in seen else 1.0 for m in shown.tolist()), float, len(shown))
    total = float(w.sum())
    x = rng.random() * (total + OUTSIDE)
    if x >= total:
        return None
    j = int(np.searchsorted(np.cumsum(w), x, side="right"))
    j = min(j, len(shown) - 1)
    return Pick(int(shown[j]), j, float(r[j]))


def pick_organic(taste: Taste, catalog: Catalog, rng: np.random.Generator, u: int,
                 seen: set[int] | None) -> Pick:
    """Browse: popularity brings candidates to mind, taste chooses among them."""
    cands = catalog.sample_popular(rng, CONSIDER)
    r = taste.ratings(u, cands)
    w = np.exp(BETA * (r - REFERENCE))
    if taste.minor[u]:
        w = w * ~taste.unsafe_for_minor[cands]
    if seen:
        w = w * np.fromiter((SEEN_PENALTY if m in seen else 1.0 for m in cands.tolist()), float, CONSIDER)
    c = np.cumsum(w)
    j = min(int(np.searchsorted(c, rng.random() * c[-1], side="right")), CONSIDER - 1)
    return Pick(int(cands[j]), -1, float(r[j]))


def minutes_watched(rng: np.random.Generator, true_rating: float, runtime: int) -> int:
    """Geometric stopping time, capped by the runtime; at least one minute."""
    hazard = min(0.9, HAZARD * float(np.exp(-HAZARD_SLOPE * (true_rating - 3.0))))
    return int(min(max(runtime, 1), rng.geometric(hazard)))


def rating_probability(fraction: float) -> float:
    """Those who finish rate more often."""
    return 0.1 + 0.4 * fraction


def stated_rating(rng: np.random.Generator, true_rating: float, lo: int, hi: int) -> int:
    """True rating (1–5 units) plus noise, mapped onto the scale ``lo..hi``."""
    x = true_rating + rng.normal(0.0, RATING_NOISE)
    scaled = lo + (x - 1.0) * (hi - lo) / 4.0
    return int(np.clip(np.rint(scaled), lo, hi))


def stated_ratings(rng: np.random.Generator, true_ratings: np.ndarray, lo: int = 1, hi: int = 5) -> np.ndarray:
    x = true_ratings + rng.normal(0.0, RATING_NOISE, size=true_ratings.shape)
    return np.clip(np.rint(lo + (x - 1.0) * (hi - lo) / 4.0), lo, hi).astype(np.int64)


def organic_many(taste: Taste, catalog: Catalog, rng: np.random.Generator, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`pick_organic` (no history): ``users`` → (movies, true ratings)."""
    cands = catalog.sample_popular(rng, (len(users), CONSIDER))
    r = taste.ratings_many(users, cands)
    w = np.exp(BETA * (r - REFERENCE))
    w *= ~(taste.minor[users, None] & taste.unsafe_for_minor[cands])
    c = np.cumsum(w, axis=1)
    x = rng.random(len(users)) * c[:, -1]
    j = np.minimum((c < x[:, None]).sum(1), CONSIDER - 1)
    rows = np.arange(len(users))
    return cands[rows, j], r[rows, j]


def minutes_watched_many(rng: np.random.Generator, true_ratings: np.ndarray, runtimes: np.ndarray) -> np.ndarray:
    """Vectorised :func:`minutes_watched`."""
    hazard = np.minimum(0.9, HAZARD * np.exp(-HAZARD_SLOPE * (true_ratings - 3.0)))
    return np.minimum(np.maximum(runtimes, 1), rng.geometric(hazard)).astype(np.int64)
