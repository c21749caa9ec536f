"""The gate ranks implicit versions as the worker serves them, recency weights included."""
from __future__ import annotations

import numpy as np

from models.als import ImplicitALS
from models.datasets import planted_ratings
from recstream.modelupdates import ServingModel
from recstream.ops.as_served import AsServed, Fitted


def test_gate_fold_in_with_recency_equals_the_worker_fold_in():
    data = planted_ratings(60, 40, 900, seed=3)
    model = ImplicitALS(n_factors=6, iterations=3, recent_half_life=4.0,
                        half_life_days=None).fit(data.users, data.items, data.values)
    # A repeated pair (a later watch of an earlier movie) must not move its rank.
    users = np.r_[data.users, data.users[:50]]
    items = np.r_[data.items, data.items[:50]]
    times = np.r_[data.timestamps, data.timestamps[:50] + 1e9]
    served = AsServed(Fitted(model), 0.0).fit(users, items, np.ones(users.size),
                                              timestamps=times)
    worker = ServingModel(implicit=True, item_factors=model.item_factors,
                          gram=model.item_factors.astype(np.float64).T
                          @ model.item_factors.astype(np.float64),
                          item_row={str(m): r for r, m in enumerate(model.item_ids.tolist())},
                          regularization=model.regularization, alpha=model.alpha,
                          recent_half_life=4.0)
    ids, vectors = served.folded
    checked = 0
    for row, user in enumerate(ids.tolist()):
        mine = np.flatnonzero(users == user)
        order = mine[np.lexsort((mine, times[mine]))]
        first_seen = list(dict.fromkeys(items[order].tolist()))
        np.testing.assert_allclose(vectors[row], worker.fold_in(first_seen), rtol=1e-4,
                                   atol=1e-5)
        checked += 1
    assert checked == np.unique(data.users).size
    # Binary (no recency) differs: the test can fail.
    binary = AsServed(Fitted(ImplicitALS(**{**model.get_params(), "recent_half_life": None})),
                      0.0)
    binary.model.model.__dict__.update({k: v for k, v in model.__dict__.items()
                                        if k != "recent_half_life"})
    binary.fit(users, items, np.ones(users.size), timestamps=times)
    assert not np.allclose(binary.folded[1], vectors, atol=1e-3)
