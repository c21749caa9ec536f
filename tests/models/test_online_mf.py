"""Online MF: one-pass quality on ml-100k, count-based bias steps, adversarial input,
and the split steps on two owners (agents.user_writer → agents.movies) against ``learn_one``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models.datasets import load_ml100k
from models.online import MAX_NORM, OnlineMF, init_vector, item_step, user_step

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "movielens"
ML100K = DATA / "ml-100k"


def vec(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


# -- quality: the target --------------------------------------------------------

def one_pass_rmse(fold: int) -> float:
    """Defaults, one time-ordered pass started at the train mean (as ``recstream evaluate
    --model online-mf`` does), predictions clipped to the 1..5 scale."""
    train = load_ml100k(ML100K / f"u{fold}.base")
    test = load_ml100k(ML100K / f"u{fold}.test")
    mf = OnlineMF(global_mean=float(train.values.mean()), rating_range=4.0)
    mf.fit(train.users, train.items, train.values, timestamps=train.timestamps)
    predicted = np.clip(mf.predict_many(test.users.tolist(), test.items.tolist()), 1.0, 5.0)
    return float(np.sqrt(np.mean((predicted - test.values) ** 2)))


@pytest.mark.skipif(not all((ML100K / f"u{n}.base").exists() for n in range(1, 6)),
                    reason="ml-100k not available")
@pytest.mark.slow  # real data or a full report: more than a few seconds
def test_one_time_ordered_pass_on_ml100k_folds_reaches_rmse_095():
    """The issue's target: mean RMSE over u1..u5 <= 0.95 (a quality check, not a timing
    test).  u1 is the hardest fold (0.958 here; no setting tried gets it under 0.955), so
    each fold gets only a regression guard."""
    rmses = [one_pass_rmse(n) for n in range(1, 6)]
    assert float(np.mean(rmses)) <= 0.95, rmses
    assert max(rmses) <= 0.965, rmses


# -- counts vs no counts ----------------------------------------------------------------

P, Q = vec(0.1, 0.2, -0.3), vec(0.3, -0.1, 0.2)


@pytest.mark.parametrize("n", [0, 1, 7, 10_000])
@pytest.mark.parametrize("weight", [1.0, 0.3])
def test_counts_change_only_the_biases(n, weight):
    plain = user_step(P, 0.2, Q, -0.1, 3.5, 5.0, lr=0.05, reg=0.02, weight=weight)
    counted = user_step(P, 0.2, Q, -0.1, 3.5, 5.0, lr=0.05, reg=0.02, weight=weight, n_user=n)
    np.testing.assert_array_equal(counted[0], plain[0])
    assert counted[2] == plain[2]
    q_plain, _ = item_step(Q, -0.1, P, plain[2], lr=0.05, reg=0.02, weight=weight)
    q_counted, _ = item_step(Q, -0.1, P, plain[2], lr=0.05, reg=0.02, weight=weight, n_item=n)
    np.testing.assert_array_equal(q_counted, q_plain)


@pytest.mark.parametrize("n, damping", [(0, 4.0), (1, 3.0), (3, 1.0)])
def test_count_step_equals_lr_step_when_one_over_n_plus_damping_is_lr(n, damping):
    lr = 1.0 / (n + damping)
    for weight in (1.0, 0.3):
        _, b_plain, err = user_step(P, 0.2, Q, -0.1, 3.5, 5.0, lr=lr, reg=0.02, weight=weight)
        _, b_count, _ = user_step(P, 0.2, Q, -0.1, 3.5, 5.0, lr=lr, reg=0.02, weight=weight,
                                  n_user=n, bias_damping=damping)
        assert b_count == pytest.approx(b_plain, rel=1e-12)
        _, c_plain = item_step(Q, -0.1, P, err, lr=lr, reg=0.02, weight=weight)
        _, c_count = item_step(Q, -0.1, P, err, lr=lr, reg=0.02, weight=weight, n_item=n,
                               bias_damping=damping)
        assert c_count == pytest.approx(c_plain, rel=1e-12)


def test_count_based_bias_step_by_hand():
    _, bias, err = user_step(P, 0.2, Q, -0.1, 3.5, 5.0, lr=0.05, reg=0.02, weight=0.5,
                             n_user=6, bias_damping=4.0, bias_reg=0.1)
    assert err == pytest.approx(5.0 - (3.5 + 0.2 - 0.1 + float(np.dot(P, Q))))
    assert bias == pytest.approx(0.2 + 0.5 * (err - 0.1 * 0.2) / (6 + 4))
    _, item_bias = item_step(Q, -0.1, P, err, lr=0.05, reg=0.02, n_item=6, bias_damping=4.0)
    assert item_bias == pytest.approx(-0.1 + (err + 0.02 * 0.1) / 10)  # bias_reg defaults to reg
    # A nonsense count is treated as 0; the step never exceeds the whole residual.
    _, b_neg, _ = user_step(P, 0.0, Q, 0.0, 3.5, 4.0, lr=0.05, reg=0.0, n_user=-5,
                            bias_damping=0.0)
    assert b_neg == pytest.approx(4.0 - 3.5 - float(np.dot(P, Q)))


def test_running_bias_is_a_damped_mean_of_the_residual():
    """With fixed factors and no regularisation the count step gives
    b_n = (sum of residuals so far) / (n + damping - 1)-ish: it converges in one pass."""
    zeros = np.zeros(3, np.float32)
    bias = 0.0
    for n in range(1, 201):
        _, bias, _ = user_step(zeros, bias, zeros, 0.0, 3.0, 4.0, lr=0.01, reg=0.0, n_user=n,
                               bias_damping=4.0, bias_reg=0.0)
    assert bias == pytest.approx(1.0, abs=0.03)
    slow = 0.0
    for _ in range(200):
        _, slow, _ = user_step(zeros, slow, zeros, 0.0, 3.0, 4.0, lr=0.01, reg=0.0)
    assert slow < 0.9  # the lr step is still far away after the same 200 ratings


def test_online_mf_without_damping_is_the_old_lr_step():
    data = [(1, "a", 5.0), (2, "b", 1.0), (1, "b", 2.0), (3, "a", 4.0)] * 3
    mf = OnlineMF(n_factors=4, seed=5, bias_damping=None)
    for u, i, r in data:
        mf.learn_one(u, i, r)
    p = {u: init_vector(("u", u), 4, scale=mf.init_scale, seed=5) for u in (1, 2, 3)}
    q = {i: init_vector(("i", i), 4, scale=mf.init_scale, seed=5) for i in "ab"}
    bu, bi, mean, n = {u: 0.0 for u in p}, {i: 0.0 for i in q}, 3.5, 0
    for u, i, r in data:
        n += 1
        mean += (r - mean) / (n + 10)
        old = p[u].copy()
        p[u], bu[u], err = user_step(old, bu[u], q[i], bi[i], mean, r, lr=mf.learning_rate,
                                     reg=mf.regularization)
        q[i], bi[i] = item_step(q[i], bi[i], old, err, lr=mf.learning_rate,
                                reg=mf.regularization)
    assert mf.predict_one(1, "a") == pytest.approx(
        mean + bu[1] + bi["a"] + float(np.dot(p[1], q["a"])), abs=1e-6)


# -- the split steps on two owners ------------------------------------------------------

class UserOwner:
    """What agents.user_writer does per rating: the user half, then a MovieUpdate step
    ``[error, weight, *user_vec_before]`` (floats, as they travel in JSON)."""

    def __init__(self, mf: OnlineMF) -> None:
        self.mf, self.vectors, self.ratings = mf, {}, {}
        self.mean, self.n = mf.global_mean, 0

    def rate(self, user, item_state, rating, weight=1.0) -> list[float]:
        mf = self.mf
        clip = mf.max_step * mf.rating_range
        self.n += 1
        self.mean += float(np.clip(rating - self.mean, -clip, clip)) / (self.n + 10)
        self.ratings[user] = self.ratings.get(user, 0) + 1  # len(history.ratings)
        bias, before = self.vectors.get(user) or (
            0.0, init_vector(("u", user), mf.n_factors, scale=mf.init_scale, seed=mf.seed))
        item_bias, item_vec = item_state
        p, b, err = user_step(before, bias, item_vec, item_bias, self.mean, rating,
                              lr=mf.learning_rate, reg=mf.regularization, weight=weight,
                              clip=clip, n_user=self.ratings[user],
                              bias_damping=mf.bias_damping, bias_reg=mf.bias_regularization)
        self.vectors[user] = (b, p)
        return [err, weight, *before.tolist()]


class MovieOwner:
    """What agents.movies does per MovieUpdate: count the rating, then the item half."""

    def __init__(self, mf: OnlineMF) -> None:
        self.mf, self.vectors, self.ratings = mf, {}, {}

    def state(self, item):
        mf = self.mf
        return self.vectors.get(item) or (
            0.0, init_vector(("i", item), mf.n_factors, scale=mf.init_scale, seed=mf.seed))

    def apply(self, item, step: list[float]) -> None:
        mf = self.mf
        self.ratings[item] = self.ratings.get(item, 0) + 1  # stats.ratings
        bias, vec = self.state(item)
        user_vec = np.asarray(step[2:], np.float32)
        vec, bias = item_step(vec, bias, user_vec, float(step[0]), lr=mf.learning_rate,
                              reg=mf.regularization, weight=float(step[1]),
                              clip=mf.max_step * mf.rating_range, n_item=self.ratings[item],
                              bias_damping=mf.bias_damping, bias_reg=mf.bias_regularization)
        self.vectors[item] = (bias, vec)


def test_split_steps_on_two_owners_equal_learn_one():
    rng = np.random.default_rng(3)
    events = [(int(rng.integers(6)), f"m{rng.integers(5)}", float(rng.integers(1, 6)),
               float(rng.choice([1.0, 0.3]))) for _ in range(300)]
    mf = OnlineMF(n_factors=8, seed=11)
    users, movies = UserOwner(OnlineMF(n_factors=8, seed=11)), MovieOwner(mf)
    for user, item, rating, weight in events:
        err = mf.learn_one(user, item, rating, weight)
        step = users.rate(user, movies.state(item), rating, weight)
        # float32 dot products may round differently on a matrix row and a lone array
        assert step[0] == pytest.approx(err, abs=1e-5)
        movies.apply(item, step)
    assert users.mean == mf.global_mean
    for user, (bias, p) in users.vectors.items():
        row = mf._users[user]
        np.testing.assert_allclose(p, mf._P[row], rtol=1e-4, atol=1e-5)
        assert bias == pytest.approx(mf._bu[row], abs=1e-5)
    for item, (bias, q) in movies.vectors.items():
        row = mf._items[item]
        np.testing.assert_allclose(q, mf._Q[row], rtol=1e-4, atol=1e-5)
        assert bias == pytest.approx(mf._bi[row], abs=1e-5)


# -- adversarial input ------------------------------------------------------------------

HUGE = [np.nan, np.inf, -np.inf, 1e308, -1e308, 1.7976931348623157e308,
        -1.7976931348623157e308, 1e300, -1e300]
RATINGS = st.one_of(st.sampled_from(HUGE), st.sampled_from([1.0, 3.0, 5.0]),
                    st.floats(allow_nan=True, allow_infinity=True))
WEIGHTS = st.one_of(st.sampled_from([np.nan, np.inf, -np.inf, -1.0, -1e300, 0.0, 5e-324,
                                     1e-9, 0.3, 1.0, 1e300, 1.7976931348623157e308]),
                    st.floats(allow_nan=True, allow_infinity=True))
COUNTS = st.one_of(st.none(), st.sampled_from([-(2 ** 62), -1, 0, 1, 2 ** 62]),
                   st.integers(0, 1000))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(RATINGS, WEIGHTS, COUNTS, COUNTS), max_size=60))
@example([(1.7976931348623157e308, 1e300, 0, 0),
          (-1.7976931348623157e308, 1.7976931348623157e308, None, 1)] * 10)
def test_adversarial_split_steps_stay_finite_and_bounded(stream):
    p, bu = init_vector("u", 4, scale=0.1, seed=1), 0.0
    q, bi = init_vector("i", 4, scale=0.1, seed=2), 0.0
    for rating, weight, n_user, n_item in stream:
        old_p = p.copy()
        p, bu, err = user_step(p, bu, q, bi, 3.0, rating, lr=0.9, reg=0.0, weight=weight,
                               n_user=n_user, bias_damping=0.0)
        q, bi = item_step(q, bi, old_p, err, lr=0.9, reg=0.0, weight=weight, n_item=n_item,
                          bias_damping=0.0)
        assert np.isfinite(err) and abs(err) <= 4.0
        assert np.isfinite(p).all() and np.isfinite(q).all() and np.isfinite([bu, bi]).all()
        assert np.linalg.norm(p) <= MAX_NORM * (1 + 1e-5)
        assert np.linalg.norm(q) <= MAX_NORM * (1 + 1e-5)
        assert abs(bu) <= 4.0 and abs(bi) <= 4.0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(RATINGS, WEIGHTS, st.sampled_from([0, 1, 2]),
                          st.sampled_from(["a", "b"])), max_size=80))
@example([(1.7976931348623157e308, 1e300, 0, "a")] * 40 + [(3.0, 1.0, 0, "a")])
@example([(np.nan, 1.0, 0, "a"), (3.0, np.inf, 1, "b"), (-1e308, -1e300, 2, "a")] * 20)
def test_adversarial_streams_leave_all_online_mf_state_finite(stream):
    mf = OnlineMF(n_factors=4, seed=1)
    for rating, weight, user, item in stream:
        err = mf.learn_one(user, item, rating, weight)
        assert np.isfinite(err) and abs(err) <= 4.0
    nu, ni = len(mf._users), len(mf._items)
    for array in (mf._P[:nu], mf._Q[:ni], mf._bu[:nu], mf._bi[:ni]):
        assert np.isfinite(array).all()
    assert (np.linalg.norm(mf._P[:nu], axis=1) <= MAX_NORM * (1 + 1e-5)).all()
    assert (np.linalg.norm(mf._Q[:ni], axis=1) <= MAX_NORM * (1 + 1e-5)).all()
    # The running mean moves at most 4 / (n + 10) per event: bounded, whatever came in.
    assert np.isfinite(mf.global_mean)
    bound = 4.0 * sum(1 / (n + 10) for n in range(1, mf._n_seen + 1))
    assert abs(mf.global_mean - 3.5) <= bound * (1 + 1e-9)
    for user in range(3):
        for item in "ab":
            assert np.isfinite(mf.predict_one(user, item))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_global_mean_or_count_free_inputs_leave_state_unchanged(bad):
    out_p, out_b, err = user_step(P, 0.2, Q, -0.1, bad, 4.0, lr=0.05, reg=0.02, n_user=3)
    assert out_p is P and out_b == 0.2 and err == 0.0
    out_q, out_c = item_step(Q, -0.1, P, bad, lr=0.05, reg=0.02, n_item=3)
    assert out_q is Q and out_c == -0.1


def test_unusable_events_do_not_count():
    mf = OnlineMF(n_factors=4, seed=1)
    for rating, weight in [(np.nan, 1.0), (4.0, 0.0), (4.0, -1.0), (4.0, np.inf)]:
        assert mf.learn_one(1, "a", rating, weight) == 0.0
    assert mf._n_seen == 0 and mf._user_count[0] == 0 and mf._item_count[0] == 0
    assert mf.global_mean == 3.5 and mf._bu[0] == 0.0
    mf.learn_one(1, "a", 4.0)
    assert mf._n_seen == 1 and mf._user_count[0] == 1 and mf._item_count[0] == 1
