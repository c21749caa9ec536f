"""Fold-in equals the batch user half-step; EASE ranks a planted structure."""
import numpy as np

from models.als import ImplicitALS
from models.ease import EASE
from models.foldin import fold_in_implicit, fold_in_users, interaction_confidence, item_gram


def test_fold_in_equals_the_batch_user_half_step():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 60, 1500)
    items = rng.integers(0, 80, 1500).astype(str)
    model = ImplicitALS(n_factors=8, regularization=2.0, alpha=3.0, iterations=4,
                        half_life_days=None, seed=1).fit(users, items, np.ones(users.size))
    y = model.item_factors.astype(np.float64)
    u, i = np.searchsorted(model.user_ids, users), np.searchsorted(model.item_ids, items)
    conf = model.interaction_weights(u, i, np.ones(users.size)) * model.alpha
    # One more user half-step on fixed items is exactly what the batch fit ends with.
    expected = model._half_step((conf.indptr.astype(np.int64), conf.indices.astype(np.int64),
                                 conf.data / model.alpha), y, np.full(8, 2.0))
    batched = fold_in_users(y, conf, 2.0)
    gram = item_gram(y)
    row = conf.getrow(7)
    single = fold_in_implicit(y, gram, row.indices, row.data, 2.0)
    np.testing.assert_allclose(batched, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(single, expected[7], rtol=1e-4, atol=1e-5)


def test_fold_in_without_items_is_zero_and_order_free():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(30, 4))
    gram = item_gram(y)
    assert not fold_in_implicit(y, gram, np.array([], np.int64), np.array([]), 1.0).any()
    a = fold_in_implicit(y, gram, np.array([3, 9, 1]), np.array([1.0, 2.0, 3.0]), 1.0)
    b = fold_in_implicit(y, gram, np.array([1, 3, 9]), np.array([3.0, 1.0, 2.0]), 1.0)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_interaction_confidence_combines_watch_and_rating():
    got = interaction_confidence(np.array([0, 90, 45, 10]), np.array([np.nan, 5, 1, 4]),
                                 alpha=2.0, watch_weight=1.0, rating_weight=0.5)
    np.testing.assert_allclose(got, [2.0, 2.0 * (1 + 1 + 1.0), 2.0 * 1.5, 2.0 * (1 + 1 / 9 + 0.5)])
    binary = interaction_confidence(np.array([5, 90]), np.array([1, 5]), alpha=3.0)
    np.testing.assert_allclose(binary, [3.0, 3.0])


def test_ease_recommends_the_co_watched_cluster_and_excludes_seen():
    # Two taste clusters: users 0-49 watch items 0-9, users 50-99 items 10-19.
    users, items = [], []
    rng = np.random.default_rng(2)
    for u in range(100):
        base = 0 if u < 50 else 10
        for i in rng.choice(10, 6, replace=False):
            users.append(u)
            items.append(str(base + i))
    model = EASE(reg=5.0).fit(users, items)
    seen = [i for uu, i in zip(users, items) if uu == 3]
    top = model.recommend(3, k=4, exclude=seen)
    assert len(top) == 4 and not set(top) & set(seen)
    assert all(int(i) < 10 for i in top)
    assert np.allclose(np.diag(model.weights), 0.0)
    assert model.recommend(10_000, k=3) == model.item_ids[np.argsort(-model.popularity,
                                                                      kind="stable")[:3]].tolist()


def test_recency_by_rank_halves_per_half_life_of_newer_interactions():
    from models.foldin import recency_by_rank
    np.testing.assert_allclose(recency_by_rank(4, 2.0), [2 ** -1.5, 0.5, 2 ** -0.5, 1.0])
    np.testing.assert_array_equal(recency_by_rank(3, None), np.ones(3))
    np.testing.assert_array_equal(recency_by_rank(3, 0), np.ones(3))
    assert recency_by_rank(0, 10.0).size == 0
