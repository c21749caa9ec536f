"""Item-kNN: similarities and predictions against a plain per-pair oracle, and the API rules
(reads never mutate, unknown users get popularity, artifact round trip)."""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from models import datasets, metrics
from models.knn import ItemKNN


def small(seed: int = 0, n_users: int = 30, n_items: int = 25, n: int = 300):
    return datasets.planted_ratings(n_users, n_items, n, rank=3, seed=seed)


def oracle(data, model: ItemKNN):
    """Dense textbook computation of the same model from the same biases."""
    users = sorted(set(data.users.tolist()))
    items = sorted(set(data.items.tolist()))
    ratings = {(u, i): r for u, i, r in zip(data.users.tolist(), data.items.tolist(),
                                             data.values.tolist())}
    mu = float(np.mean(list(ratings.values())))
    bu = dict(zip(model.user_ids.tolist(), model.user_bias.tolist()))
    bi = dict(zip(model.item_ids.tolist(), model.item_bias.tolist()))
    raters = defaultdict(set)
    for u, i in ratings:
        raters[i].add(u)
    z = {(u, i): r - mu - bu[u] - bi[i] for (u, i), r in ratings.items()}
    sim = {}
    for a in items:
        for b in items:
            common = raters[a] & raters[b]
            n = len(common)
            if a == b or n == 0:
                sim[a, b] = 0.0
                continue
            if model.similarity == "cosine":
                s = n / math.sqrt(len(raters[a]) * len(raters[b])) * n / (n + model.shrinkage)
            else:
                num = sum(z[u, a] * z[u, b] for u in common)
                den = math.sqrt(sum(z[u, a] ** 2 for u in common)
                                * sum(z[u, b] ** 2 for u in common))
                s = (num / den if den > 0 else 0.0) * (n - 1) / (n - 1 + model.shrinkage)
            sim[a, b] = max(s, 0.0)
    return users, items, ratings, mu, bu, bi, z, sim


@pytest.mark.parametrize("similarity", ["cosine", "pearson_baseline"])
def test_neighbours_match_the_dense_oracle(similarity):
    data = small(1)
    model = ItemKNN(n_neighbors=6, shrinkage=5.0, similarity=similarity, block_size=7,
                    rating_range=None).fit(data.users, data.items, data.values)
    _, items, *_, sim = oracle(data, model)
    assert model.item_ids.tolist() == items
    for row, a in enumerate(items):
        expected = sorted(((sim[a, b], -col) for col, b in enumerate(items) if sim[a, b] > 0),
                          reverse=True)[:6]
        got = [(float(s), int(n)) for s, n in zip(model.similarities[row], model.neighbors[row])
               if n >= 0]
        assert [n for _, n in got] == [-c for _, c in expected]
        np.testing.assert_allclose([s for s, _ in got], [s for s, _ in expected], rtol=1e-5)
        assert (model.neighbors[row][len(got):] == -1).all()


def test_predictions_match_the_oracle_and_the_user_bias_fallback():
    data = small(2)
    model = ItemKNN(n_neighbors=8, k_predict=3, shrinkage=2.0, rating_range=None).fit(
        data.users, data.items, data.values)
    users, items, ratings, mu, bu, bi, z, sim = oracle(data, model)
    nbr = {a: [items[n] for n in model.neighbors[r] if n >= 0] for r, a in enumerate(items)}
    q_users = [users[0], users[3], users[5], 999]
    q_items = [items[2], items[7], "unknown", items[1]]
    got = model.predict_many(q_users, q_items)
    for value, u, i in zip(got, q_users, q_items):
        base = mu + bu.get(u, 0.0) + bi.get(i, 0.0)
        rated = [j for j in nbr.get(i, []) if (u, j) in ratings][:3]
        total = sum(sim[i, j] for j in rated)
        if total > 0:
            base += sum(sim[i, j] * z[u, j] for j in rated) / total
        assert value == pytest.approx(base, abs=1e-5)


def test_recommend_scores_sum_of_similarities_and_excludes():
    data = small(3)
    model = ItemKNN(n_neighbors=25, shrinkage=1.0).fit(data.users, data.items, data.values)
    user = int(data.users[0])
    rated = [i for u, i in zip(data.users.tolist(), data.items.tolist()) if u == user]
    row = {a: r for r, a in enumerate(model.item_ids.tolist())}
    scores = defaultdict(float)
    for j in rated:
        for n, s in zip(model.neighbors[row[j]], model.similarities[row[j]]):
            if n >= 0:
                scores[model.item_ids[n]] += float(s)
    answer = model.recommend(user, k=5, exclude=rated)
    assert len(answer) == 5 and not set(answer) & set(rated)
    best = sorted((v for i, v in scores.items() if i not in rated), reverse=True)[:5]
    np.testing.assert_allclose([scores[i] for i in answer], best, rtol=1e-6, atol=1e-8)


def test_reads_never_mutate_and_unknown_user_gets_popularity():
    data = small(4)
    model = ItemKNN().fit(data.users, data.items, data.values)
    before = {k: v.copy() for k, v in model.to_arrays().items()}
    popular = model.item_ids[np.lexsort((np.arange(model.item_ids.size),
                                         -model.item_counts))][:5].tolist()
    assert model.recommend(10**9, k=5) == popular
    model.predict_many([10**9, 10**9 + 1], ["nope", model.item_ids[0]])
    for key, value in model.to_arrays().items():
        np.testing.assert_array_equal(value, before[key])
    assert model.user_ids.size == before["user_ids"].size


def test_artifact_round_trip_answers_the_same():
    data = small(5)
    model = ItemKNN(n_neighbors=10, similarity="pearson_baseline").fit(
        data.users, data.items, data.values)
    copy = ItemKNN.from_arrays(model.to_arrays(), model.get_params())
    pairs = (data.users[:50], data.items[:50])
    np.testing.assert_array_equal(copy.predict_many(*pairs), model.predict_many(*pairs))
    user = int(data.users[7])
    assert copy.recommend(user, k=10) == model.recommend(user, k=10)
    with pytest.raises(KeyError):
        ItemKNN.from_arrays({"user_ids": model.user_ids})


def test_pearson_neighbours_learn_planted_ratings():
    data = datasets.planted_ratings(400, 300, 16_000, rank=4, noise=0.4, seed=3)
    rng = np.random.default_rng(0)
    test = rng.random(len(data)) < 0.2
    train, held = data.subset(~test), data.subset(test)
    knn = ItemKNN(similarity="pearson_baseline").fit(train.users, train.items, train.values)
    base = ItemKNN(k_predict=1, n_neighbors=1, shrinkage=1e12).fit(
        train.users, train.items, train.values)  # similarities ~0: the baseline alone
    rmse_knn = metrics.rmse(knn.predict_many(held.users, held.items), held.values)
    rmse_base = metrics.rmse(base.predict_many(held.users, held.items), held.values)
    assert rmse_knn < rmse_base - 0.05


def test_duplicate_pairs_keep_the_last_rating_and_bad_arguments_fail():
    model = ItemKNN(rating_range=None, user_bias_regularization=0,
                    item_bias_regularization=0, bias_iterations=1)
    model.fit([1, 1, 2], ["a", "a", "b"], [1.0, 5.0, 3.0])
    assert model.item_counts.tolist() == [1, 1]
    assert model.global_mean == pytest.approx(4.0)
    with pytest.raises(ValueError):
        ItemKNN(similarity="jaccard")
    with pytest.raises(ValueError):
        ItemKNN().fit([1, 2], ["a"], [1.0, 2.0])
