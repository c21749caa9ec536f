"""Installing a promoted model in a worker, and refitting the users it left behind.

:func:`swap` installs a loaded model in one synchronous step on the event loop: no request
can run between its first and last line, so none sees a half-swapped model.  A user whose
vector belongs to the replaced model has it cleared (zero factors, ``UserIndex.pending``):
until refit they are ranked by item bias and popularity without the movies they saw, never
by an old vector against the new item factors (the generation rule, docs/live-path.md).

Refits then recompute queued users' vectors from their history: for an implicit-ALS
version with recency weights at fold-in, *every* user, by the exact fold-in the user writer
applies on each event, so a user who stays quiet after a swap is served the same vector as
one who just acted (the batch fit's own user factors are binary); otherwise the users the
new model never saw.  Implicit-ALS refits are batched (issue #11): :func:`take_refits`
gathers a slice of users' interactions on the loop, :func:`solve_refits` solves all their
``k x k`` systems in one call of ``models.normal_equations.solve_rows`` (off the loop, in an
executor), :func:`apply_refits` installs the vectors of users nobody changed meanwhile.
A request for a queued user does not wait for its turn: :func:`refit_user_now` folds them
in on the spot (one solve).  Biased-MF stragglers are refit one by one (``refit_user``).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from models.normal_equations import solve_rows
from models.foldin import recency_by_rank
from models.refit import refit_user
from recstream.modelupdates import CurrentModel, ServingModel
from recstream.settings import Settings
from tables.memory import ItemIndex, UserIndex
from tables.serving import Recommender
from tables.users import UserStore

REFIT_BATCH = 256  # users gathered per loop turn (history reads: ~30 µs each on the loop)
REFIT_SOLVE = 4096  # users per batched solve in the executor
BIAS_REGULARIZATION = 0.02


def swap(model: ServingModel, *, items: ItemIndex, users: UserIndex,
         current_model: CurrentModel, recommender: Recommender) -> None:
    """Install ``model`` as the base of every vector this worker serves (synchronous)."""
    items.base = model.item_vector
    for movie in model.item_row:
        if movie not in items.row_of:
            items.row(movie)
    n = len(items)
    art = np.fromiter((model.item_row.get(m, -1) for m in items.ids), np.int64, n)
    known = np.flatnonzero(art >= 0)
    items.factors[known] = model.item_factors[art[known]]
    items.bias[known] = model.item_bias[art[known]]
    for row in np.flatnonzero(art < 0):  # the model never saw it: back to its init vector
        items.bias[row], items.factors[row] = items.start_vector(items.ids[row])
    items.version += 1

    m = users.count
    rows = model.user_rows(users.user_ids[:m])
    seen = np.flatnonzero(rows >= 0)
    had_vector = users.has_vector[:m].copy()
    users.set_vectors(seen, model.user_factors[rows[seen]], model.user_bias[rows[seen]])
    left_behind = np.flatnonzero(had_vector & (rows < 0))
    users.clear_vectors(left_behind)  # an old model's vector: not served with new items
    refold_all = model.implicit and bool(model.recent_half_life)  # the fit's are binary
    stragglers = np.flatnonzero(had_vector | (rows >= 0)) if refold_all else left_behind
    users.pending[stragglers] = True
    current_model.install(model, (int(u) for u in users.user_ids[stragglers]))
    recommender.popularity_blend = 0.0 if model.implicit else \
        recommender.settings.popularity_blend
    # Every answer is stale; the refresher re-ranks those not queued for a refit now (a
    # refit marks its user stale again), a request ranks any stale user on the spot.
    users.invalidate_all(skip_pending=True)
    recommender.refresh_fallback()


@dataclasses.dataclass
class RefitSlice:
    """Users taken off the refit queue with their interactions, for one batched solve."""

    generation: int
    users: list[int]
    rows: np.ndarray  # user index rows
    stamps: np.ndarray  # UserIndex.stamp of each row when taken
    indptr: np.ndarray
    indices: np.ndarray  # item rows of the model
    weights: np.ndarray  # alpha * recency weight (c - 1) per interaction


def take_refits(*, current_model: CurrentModel, users: UserIndex, user_store: UserStore,
                limit: int = REFIT_BATCH, only: Optional[int] = None) -> RefitSlice:
    """Pop up to ``limit`` queued users (or just user ``only``) and read their interactions."""
    model = current_model.model
    taken, rows, indptr, indices, weights = [], [], [0], [], []

    def add(user: int) -> None:
        row = users.get_row(user)
        if row < 0 or not users.needs_refit(row):
            return  # gone, or given a vector of this model since (the writer's fold-in)
        history = user_store.peek(user)
        if history is None:
            return
        movies = history.interacted()
        every = np.fromiter((model.item_row.get(mv, -1) for mv in movies), np.int64,
                            len(movies))
        w = model.alpha * recency_by_rank(every.size, model.recent_half_life)
        keep = every >= 0
        taken.append(user), rows.append(row)
        indices.append(every[keep]), weights.append(w[keep])
        indptr.append(indptr[-1] + int(keep.sum()))

    if only is not None:
        add(only)
    else:
        for _ in range(min(limit, current_model.pending_refits)):  # bounded per loop turn
            add(current_model.next_refit())
    rows_arr = np.asarray(rows, np.int64)
    return RefitSlice(current_model.generation, taken, rows_arr, users.stamp[rows_arr].copy(),
                      np.asarray(indptr, np.int64),
                      np.concatenate(indices) if indices else np.zeros(0, np.int64),
                      np.concatenate(weights) if weights else np.zeros(0))


def merge_refits(parts: list[RefitSlice]) -> RefitSlice:
    """Slices taken over several loop turns as one (those of the newest generation)."""
    parts = [p for p in parts if p.generation == parts[-1].generation]
    if len(parts) == 1:
        return parts[0]
    starts = np.cumsum([0] + [int(p.indptr[-1]) for p in parts[:-1]])
    return RefitSlice(parts[-1].generation, [u for p in parts for u in p.users],
                      np.concatenate([p.rows for p in parts]),
                      np.concatenate([p.stamps for p in parts]),
                      np.concatenate([[0]] + [p.indptr[1:] + s for p, s in zip(parts, starts)]
                                     ).astype(np.int64),
                      np.concatenate([p.indices for p in parts]),
                      np.concatenate([p.weights for p in parts]))


def solve_refits(model: ServingModel, taken: RefitSlice) -> np.ndarray:
    """Every taken user's exact fold-in in one batched solve (pure numpy: executor-safe)."""
    k = model.item_factors.shape[1]
    if not taken.users:
        return np.zeros((0, k), np.float32)
    # Rows without a known movie solve to zero, as models.foldin.fold_in_implicit does.
    return solve_rows(taken.indptr, taken.indices, 1.0 + taken.weights, model.item_factors,
                      np.full(k, model.regularization), gram_weights=taken.weights,
                      base=model.gram).astype(np.float32)


def apply_refits(taken: RefitSlice, vectors: np.ndarray, *, current_model: CurrentModel,
                 users: UserIndex) -> int:
    """Install the vectors of users whose row nobody changed since :func:`take_refits`."""
    if taken.generation != current_model.generation or not taken.users:
        return 0  # a newer swap re-queued everyone it left behind
    same = users.stamp[taken.rows] == taken.stamps
    for i in np.flatnonzero(same).tolist():
        row = users.set_vector(taken.users[i], 0.0, vectors[i])
        users.invalidate(row)
    return int(same.sum())


def refit_user_now(user: int, *, current_model: CurrentModel, users: UserIndex,
                   user_store: UserStore) -> bool:
    """Fold a queued user in on the spot (a request for them came before their turn)."""
    row = users.get_row(user)
    if row < 0 or not current_model.model.implicit or not users.pending[row]:
        return False
    taken = take_refits(current_model=current_model, users=users, user_store=user_store,
                        only=user)
    if not taken.users or taken.indptr[-1] == 0:
        return False  # nothing of theirs is in the model: the refit queue decides
    return apply_refits(taken, solve_refits(current_model.model, taken),
                        current_model=current_model, users=users) > 0


def refit_some(*, settings: Settings, current_model: CurrentModel, users: UserIndex,
               items: ItemIndex, user_store: UserStore, limit: int = REFIT_BATCH) -> int:
    """Refit up to ``limit`` queued users from their history, all on the calling thread."""
    if current_model.model.implicit:
        taken = take_refits(current_model=current_model, users=users, user_store=user_store,
                            limit=limit)
        apply_refits(taken, solve_refits(current_model.model, taken),
                     current_model=current_model, users=users)
        return len(taken.users)
    return refit_biased(settings=settings, current_model=current_model, users=users,
                        items=items, user_store=user_store, limit=limit)


def refit_biased(*, settings: Settings, current_model: CurrentModel, users: UserIndex,
                 items: ItemIndex, user_store: UserStore, limit: int) -> int:
    """Biased-MF stragglers, one ``refit_user`` each (~50 µs) on the loop."""
    s = settings
    pseudo = s.rating_min + 0.8 * (s.rating_max - s.rating_min)
    done = 0
    while current_model.pending_refits and done < limit:
        user = current_model.next_refit()
        done += 1
        row = users.get_row(user)
        history = user_store.peek(user)
        if row < 0 or history is None or users.has_vector[row]:
            continue
        movies, targets, weights = [], [], []
        for movie, (rating, _) in history.ratings.items():
            movies.append(movie), targets.append(float(rating)), weights.append(1.0)
        for movie, entry in history.watches.items():
            if movie not in history.ratings and entry[0] >= s.watch_complete_minutes:
                movies.append(movie), targets.append(pseudo), weights.append(s.implicit_weight)
        item_rows = [items.row_of.get(mv, -1) for mv in movies]
        keep = [i for i, r in enumerate(item_rows) if r >= 0]
        if not keep:
            continue
        idx = np.array([item_rows[i] for i in keep])
        bias, vec = refit_user(items.factors[idx], items.bias[idx],
                               np.array([targets[i] for i in keep]),
                               np.array([weights[i] for i in keep]), current_model.global_mean,
                               regularization=s.regularization * len(keep),
                               bias_regularization=BIAS_REGULARIZATION * len(keep))
        users.set_vector(user, bias, vec)
        users.invalidate(row)
    return done
