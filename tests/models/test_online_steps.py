"""Online MF halves, the river-style OnlineMF, and top-k selection against a sort oracle."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from models.online import MAX_NORM, OnlineMF, grow, init_vector, item_step, predict, user_step
from models.popularity import add_event, decay_to, decayed_scores, popularity_prior
from models.ranking import mask_rows, score_users, top_k, top_k_rows

LR, REG = 0.05, 0.02


def vec(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


# -- init_vector --------------------------------------------------------------------------

def test_init_vector_is_deterministic_and_keyed():
    a = init_vector(("u", 42), 16, scale=0.05, seed=7)
    assert a.dtype == np.float32 and a.shape == (16,)
    np.testing.assert_array_equal(a, init_vector(("u", 42), 16, scale=0.05, seed=7))
    assert not np.array_equal(a, init_vector(("u", 43), 16, scale=0.05, seed=7))
    assert not np.array_equal(a, init_vector(("i", 42), 16, scale=0.05, seed=7))
    assert not np.array_equal(a, init_vector(("u", 42), 16, scale=0.05, seed=8))
    assert 0 < np.abs(a).max() < 0.05 * 6


def test_init_vector_is_equal_in_another_process():
    import os
    import subprocess
    import sys
    code = ("from models.online import init_vector; "
            "print(init_vector(('i', 'up+2009'), 4, scale=0.1, seed=3).tobytes().hex())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONHASHSEED": "123"}).stdout.strip()
    assert out == init_vector(("i", "up+2009"), 4, scale=0.1, seed=3).tobytes().hex()


# -- the two halves -----------------------------------------------------------------------

def test_repeated_steps_reduce_the_error():
    p, bu = init_vector("u", 8, scale=0.1, seed=1), 0.0
    q, bi = init_vector("i", 8, scale=0.1, seed=2), 0.0
    errors = []
    for _ in range(200):
        old_p = p.copy()
        p, bu, err = user_step(p, bu, q, bi, 3.5, 5.0, lr=LR, reg=REG)
        q, bi = item_step(q, bi, old_p, err, lr=LR, reg=REG)
        errors.append(abs(err))
    assert errors[0] == pytest.approx(1.5, abs=0.05)
    assert errors[-1] < 0.1 * errors[0]
    # Monotone while far from the optimum (near it, regularisation leaves a small residual).
    assert all(b < a for a, b in zip(errors[:50], errors[1:51]))
    assert predict(p, bu, q, bi, 3.5) == pytest.approx(5.0, abs=0.15)


def test_user_step_returns_the_error_before_the_step():
    p, q = vec(0.1, 0.2), vec(0.3, -0.1)
    new_p, new_b, err = user_step(p, 0.5, q, -0.2, 3.0, 4.0, lr=0.1, reg=0.0)
    assert err == pytest.approx(4.0 - (3.0 + 0.5 - 0.2 + 0.01))
    np.testing.assert_allclose(new_p, p + 0.1 * err * q, rtol=1e-6)
    assert new_b == pytest.approx(0.5 + 0.1 * err)
    assert new_p is not p and p[0] == np.float32(0.1)  # inputs are not mutated


def test_weight_scales_the_step():
    p, q = vec(0.1, 0.2), vec(0.3, -0.1)
    full, _, _ = user_step(p, 0.0, q, 0.0, 3.0, 5.0, lr=0.1, reg=0.0, weight=1.0)
    third, _, _ = user_step(p, 0.0, q, 0.0, 3.0, 5.0, lr=0.1, reg=0.0, weight=0.3)
    np.testing.assert_allclose(third - p, 0.3 * (full - p), rtol=1e-5)


BAD = [np.nan, np.inf, -np.inf]


@pytest.mark.parametrize("bad", BAD)
def test_non_finite_inputs_leave_state_unchanged(bad):
    p, q = vec(0.1, 0.2), vec(0.3, -0.1)
    for kwargs in ({"rating": bad}, {"weight": bad}, {"user_bias": bad}, {"item_bias": bad},
                   {"user_vec": vec(bad, 0)}, {"item_vec": vec(0, bad)}):
        args = dict(user_vec=p, user_bias=0.1, item_vec=q, item_bias=0.2, global_mean=3.0,
                    rating=4.0) | kwargs
        weight = args.pop("weight", 1.0)
        out_p, out_b, err = user_step(args.pop("user_vec"), args.pop("user_bias"),
                                      args.pop("item_vec"), args.pop("item_bias"),
                                      args.pop("global_mean"), args.pop("rating"), lr=LR,
                                      reg=REG, weight=weight)
        assert err == 0.0
        np.testing.assert_equal(out_b, bad if "user_bias" in kwargs else 0.1)
        np.testing.assert_equal(out_p, kwargs.get("user_vec", p))
    for kwargs in ({"error": bad}, {"weight": bad}, {"user_vec": vec(bad, 1)},
                   {"item_bias": bad}):
        q2, b2 = item_step(q, kwargs.get("item_bias", 0.2), kwargs.get("user_vec", p),
                           kwargs.get("error", 1.0), lr=LR, reg=REG,
                           weight=kwargs.get("weight", 1.0))
        assert q2 is q


WEIGHTS = st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 0.0, 1e-9, 0.3, 1.0])


RATINGS = st.one_of(st.floats(-1e300, 1e300), st.sampled_from([np.nan, np.inf, -np.inf]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True), WEIGHTS),
                max_size=60))
@example([(1.7e308, 1.0), (-1.7e308, 1.0)] * 20)
def test_adversarial_steps_keep_the_halves_finite_and_bounded(stream):
    """The service's path: the user half then the item half with its error (agents.user_writer,
    agents.movies); the global mean is the service's own, from validated ratings."""
    p, bu = init_vector("u", 4, scale=0.1, seed=1), 0.0
    q, bi = init_vector("i", 4, scale=0.1, seed=2), 0.0
    for rating, weight in stream:
        old_p = p.copy()
        p, bu, err = user_step(p, bu, q, bi, 3.0, rating, lr=0.9, reg=0.0, weight=weight)
        q, bi = item_step(q, bi, old_p, err, lr=0.9, reg=0.0, weight=weight)
        assert np.isfinite(err) and abs(err) <= 4.0
        assert np.isfinite(p).all() and np.isfinite(q).all() and np.isfinite([bu, bi]).all()
        assert np.linalg.norm(p) <= MAX_NORM * (1 + 1e-5) and abs(bu) <= 4.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(RATINGS, WEIGHTS, st.sampled_from([0, 1, 2]),
                          st.sampled_from([0, 1, 2])), max_size=60))
@example([(1e300, 1.0, 0, 0)] * 50)
@example([(-1e300, 1.0, 1, 1), (np.nan, 1.0, 1, 1), (np.inf, 1.0, 1, 1)] * 20)
def test_adversarial_streams_keep_state_finite_and_bounded(stream):
    mf = OnlineMF(n_factors=4, learning_rate=0.9, regularization=0.0, seed=1)
    for rating, weight, user, item in stream:
        err = mf.learn_one(user, item, rating, weight)
        assert np.isfinite(err) and abs(err) <= 4.0
    n_users, n_items = len(mf._users), len(mf._items)
    assert np.isfinite(mf._P[:n_users]).all() and np.isfinite(mf._Q[:n_items]).all()
    assert np.isfinite(mf._bu[:n_users]).all() and np.isfinite(mf._bi[:n_items]).all()
    assert (np.linalg.norm(mf._P[:n_users], axis=1) <= MAX_NORM * (1 + 1e-5)).all()
    assert (np.abs(mf._bu[:n_users]) <= 4.0 + 1e-9).all()
    assert np.isfinite(mf.global_mean)
    if n_users and n_items:
        assert np.isfinite(mf.predict_one(0, 0))


def test_huge_finite_weight_leaves_state_finite():
    mf = OnlineMF(n_factors=4, seed=1)
    with np.errstate(all="ignore"):
        mf.learn_one(1, "a", 5.0, 1e300)
        mf.learn_one(1, "a", 5.0, 1.0)
    assert np.isfinite(mf._P[0]).all() and np.isfinite(mf._Q[0]).all()


def test_extreme_finite_ratings_leave_online_mf_finite():
    mf = OnlineMF(n_factors=4, seed=1)
    with np.errstate(all="ignore"):
        mf.learn_one(0, 0, 1.5e301)
        mf.learn_one(0, 0, -1.7976931348623157e308)
        err = mf.learn_one(0, 0, 3.0)
    assert np.isfinite(err) and np.isfinite(mf.global_mean)
    assert np.isfinite(mf._P[0]).all() and np.isfinite(mf._Q[0]).all()


def test_huge_error_is_clipped():
    p, q = vec(0.1, 0.2), vec(0.3, -0.1)
    _, _, err = user_step(p, 0.0, q, 0.0, 3.0, 1e12, lr=LR, reg=REG, clip=4.0)
    assert err == 4.0
    q2, b2 = item_step(q, 0.0, p, 1e12, lr=0.1, reg=0.0, clip=4.0)
    np.testing.assert_allclose(q2, q + 0.1 * 4.0 * p, rtol=1e-6)
    assert b2 == pytest.approx(0.4)


# -- OnlineMF -----------------------------------------------------------------------------

def test_online_mf_learns_who_likes_what():
    mf = OnlineMF(n_factors=8, learning_rate=0.05, regularization=0.01, seed=3)
    rng = np.random.default_rng(0)
    # Two groups of users, two groups of items: each group loves its own items.
    triples = []
    for _ in range(4000):
        u, i = int(rng.integers(40)), int(rng.integers(20))
        triples.append((u, f"m{i}", 5.0 if (u < 20) == (i < 10) else 1.0))
    for u, i, r in triples[:3500]:
        mf.learn_one(u, i, r)
    held_out = triples[3500:]
    rmse = np.sqrt(np.mean([(mf.predict_one(u, i) - r) ** 2 for u, i, r in held_out]))
    baseline = np.sqrt(np.mean([(3.0 - r) ** 2 for _, _, r in held_out]))
    assert rmse < 0.5 * baseline
    top = mf.recommend(3, k=5)
    assert len(top) == 5 and all(int(m[1:]) < 10 for m in top)
    top = mf.recommend(33, k=5, exclude=["m10", "m11"])
    assert len(top) == 5 and all(12 <= int(m[1:]) < 20 for m in top)  # m10, m11 excluded


def test_reads_never_mutate_and_cold_start_is_popularity():
    mf = OnlineMF(n_factors=4, seed=1)
    assert mf.recommend("nobody") == []
    for u, i in [(1, "a"), (2, "a"), (3, "a"), (1, "b"), (2, "b"), (1, "c")]:
        mf.learn_one(u, i, 4.0)
    before = (dict(mf._users), dict(mf._items), mf._P.copy())
    assert mf.recommend("nobody", k=2) == ["a", "b"]
    assert mf.predict_one("nobody", "zzz") == pytest.approx(mf.global_mean)
    assert mf.predict_one("nobody", "a") == pytest.approx(mf.global_mean + mf._bi[0])
    mf.predict_many(["x", 1], ["y", "a"])
    assert (dict(mf._users), dict(mf._items)) == before[:2]
    np.testing.assert_array_equal(mf._P, before[2])


def test_learn_many_and_fit_are_learn_one_in_order():
    data = [(1, "a", 5.0), (2, "b", 1.0), (1, "b", 2.0), (3, "a", 4.0)] * 3
    one = OnlineMF(n_factors=4, seed=5)
    for u, i, r in data:
        one.learn_one(u, i, r)
    many = OnlineMF(n_factors=4, seed=5)
    many.learn_many(*zip(*data))
    fitted = OnlineMF(n_factors=4, seed=5)
    times = np.arange(len(data))[::-1]
    users, items, ratings = zip(*data[::-1])
    fitted.fit(list(users), list(items), list(ratings), timestamps=times)
    for other in (many, fitted):
        assert other.predict_one(1, "a") == pytest.approx(one.predict_one(1, "a"), abs=1e-6)
        assert other.predict_one(3, "b") == pytest.approx(one.predict_one(3, "b"), abs=1e-6)


def test_grow_doubles_and_keeps_contents():
    a = np.arange(4, dtype=np.float32)
    assert grow(a, 3) is a
    b = grow(a, 4)
    assert b.shape == (8,) and (b[:4] == a).all() and (b[4:] == 0).all()
    assert grow(np.zeros((2, 3)), 10).shape == (11, 3)


# -- popularity ---------------------------------------------------------------------------

def test_popularity_decay():
    assert decay_to(8.0, 0.0, 20.0, 10.0) == pytest.approx(2.0)
    assert decay_to(8.0, 5.0, 1.0, 10.0) == 8.0
    assert add_event(8.0, 0.0, 10.0, 1.0, 10.0) == (pytest.approx(5.0), 10.0)
    assert add_event(8.0, 10.0, 0.0, 2.0, 10.0) == (pytest.approx(9.0), 10.0)  # late event
    scores = decayed_scores(np.array([8.0, 8.0]), np.array([0.0, 20.0]), 20.0, 10.0)
    np.testing.assert_allclose(scores, [2.0, 8.0])
    prior = popularity_prior(np.array([0.0, np.e - 1, -5.0]), 0.5)
    assert prior.dtype == np.float32
    np.testing.assert_allclose(prior, [0.0, 0.5, 0.0], atol=1e-6)


# -- top-k against a slow sort oracle -----------------------------------------------------

def oracle(scores: np.ndarray, k: int) -> list[int]:
    """Every finite score, best first, ties by lower index: the documented contract."""
    finite = [i for i in range(len(scores)) if np.isfinite(scores[i])]
    return sorted(finite, key=lambda i: (-scores[i], i))[:k]


SCORES = st.lists(st.one_of(st.integers(-3, 3).map(float),
                            st.sampled_from([-np.inf, np.nan]),
                            st.floats(-1e6, 1e6)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(SCORES, st.integers(0, 45))
def test_top_k_selects_the_best_scores(values, k):
    scores = np.array(values, np.float64)
    got = top_k(scores, k)
    want = oracle(scores, k)
    # Same scores in the same order (which of several tied items is picked is checked below).
    assert [scores[i] for i in got] == [scores[i] for i in want]
    assert len(set(got)) == len(got)


def test_top_k_breaks_ties_by_lower_index():
    scores = np.array([2, 0, 2, 2, 1, 2, 2, 1, 0, 2, 1, 2, 1, 1, 2, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0,
                       0], np.float64)
    assert top_k(scores, 7) == oracle(scores, 7) == [0, 2, 3, 5, 6, 9, 11]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5), st.integers(0, 25), st.integers(0, 30), st.data())
def test_top_k_rows_matches_the_oracle_row_by_row(n_rows, n_cols, k, data):
    flat = data.draw(st.lists(st.one_of(st.integers(-3, 3).map(float), st.just(-np.inf),
                                        st.floats(-1e3, 1e3)),
                              min_size=n_rows * n_cols, max_size=n_rows * n_cols))
    scores = np.array(flat, np.float32).reshape(n_rows, n_cols)
    out = top_k_rows(scores, k)
    assert out.shape == (n_rows, k) and out.dtype == np.int32
    for r in range(n_rows):
        want = oracle(scores[r], k)
        got = [int(i) for i in out[r] if i >= 0]
        assert [scores[r, i] for i in got] == [scores[r, i] for i in want]
        assert len(set(got)) == len(got)
        assert (out[r, len(got):] == -1).all()


def test_score_users_and_mask_rows():
    U = np.array([[1, 0], [0, 2]], np.float32)
    V = np.array([[1, 1], [2, 0], [0, 3]], np.float32)
    scores = score_users(U, V, np.array([0.5, 0, 0], np.float32), np.array([0, 0, 1], np.float32))
    np.testing.assert_allclose(scores, [[1.5, 2, 1], [2.5, 0, 7]])
    mask_rows(scores, [np.array([1]), np.array([], np.int64)])
    assert scores[0, 1] == -np.inf and np.isfinite(scores[1]).all()
    assert top_k_rows(scores, 2).tolist() == [[0, 2], [2, 0]]


@pytest.mark.parametrize("k", [1, 5, 20])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_rows_block_path_matches_a_full_sort(k, seed):
    """Wide rows take the block-max path: same items as a full stable sort, ties to lower index."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(-5, 6, size=(40, 128 * 3 * k + 77)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    scores[3, :] = -np.inf                       # everything excluded
    scores[4, :] = -np.inf
    scores[4, rng.integers(0, scores.shape[1], k // 2 + 1)] = 1.0  # fewer than k left
    scores[5, -3:] = 99.0                        # the best are in the tail past the last block
    out = top_k_rows(scores, k)
    for r in range(scores.shape[0]):
        order = np.lexsort((np.arange(scores.shape[1]), -scores[r]))
        want = [int(i) for i in order[:k] if np.isfinite(scores[r, i])]
        assert [int(i) for i in out[r] if i >= 0] == want
        assert (out[r, len(want):] == -1).all()
