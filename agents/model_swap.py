"""Installing a promoted model in a worker, and refitting the users it left behind.

:func:`swap` installs a loaded model in one synchronous step on the event loop: no request
can run between its first and last line, so none sees a half-swapped model.
:func:`refit_some` then recomputes queued users' vectors from their history, a few hundred
per loop turn: for an implicit-ALS version with recency weights at fold-in, *every* user, by
the exact fold-in the user writer applies on each event, so a user who stays quiet after a
swap is served the same vector as one who just acted (the batch fit's own user factors are
binary); otherwise the users the new model never saw (fold-in for implicit ALS,
:func:`models.refit.refit_user` for biased MF).
"""
from __future__ import annotations

import numpy as np

from models.refit import refit_user
from recstream.modelupdates import CurrentModel, ServingModel
from recstream.settings import Settings
from tables.memory import ItemIndex, UserIndex
from tables.serving import Recommender
from tables.users import UserStore

REFIT_BATCH = 256
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
    users.factors[seen] = model.user_factors[rows[seen]]
    users.bias[seen] = model.user_bias[rows[seen]]
    users.has_vector[:m] = rows >= 0
    refold_all = model.implicit and bool(model.recent_half_life)  # the fit's are binary
    stragglers = np.flatnonzero((had_vector | (rows >= 0)) if refold_all
                                else had_vector & (rows < 0))
    current_model.install(model, (int(u) for u in users.user_ids[stragglers]))
    recommender.popularity_blend = 0.0 if model.implicit else \
        recommender.settings.popularity_blend
    users.invalidate_all()
    recommender.refresh_fallback()


def refit_some(*, settings: Settings, current_model: CurrentModel, users: UserIndex,
               items: ItemIndex, user_store: UserStore, limit: int = REFIT_BATCH) -> int:
    """Refit up to ``limit`` queued users from their history (on the loop; ~50 µs each)."""
    s = settings
    pseudo = s.rating_min + 0.8 * (s.rating_max - s.rating_min)
    done = 0
    while current_model.pending_refits and done < limit:
        user = current_model.next_refit()
        done += 1
        row = users.get_row(user)
        history = user_store.peek(user)
        if row < 0 or history is None:
            continue
        if current_model.model.implicit:  # exact fold-in of every movie they touched
            users.set_vector(user, 0.0, current_model.model.fold_in(history.interacted()))
            users.invalidate(row)
            continue
        if users.has_vector[row]:
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
