"""Cold-start fold-in, demographic prior and segment popularity: known answers,
a planted-factor recovery check, and numerically safe edge cases."""
from __future__ import annotations

import numpy as np
import pytest

from models.coldstart import (AGE_BANDS, DemographicPrior, age_band, fold_in, gender_key,
                              relative_reg, segment_popularity)


def test_empty_inputs_give_the_prior():
    prior = np.array([0.3, -0.2, 0.1])
    for liked, disliked in (([], []), (None, None), (np.zeros((0, 3)), np.zeros((0, 3))),
                            ([[np.nan, 1, 2]], [])):
        vec, bias = fold_in(liked, disliked, prior, prior_bias=0.4)
        np.testing.assert_allclose(vec, prior, rtol=1e-6)
        assert bias == 0.4 and vec.dtype == np.float32


def test_moves_towards_liked_and_away_from_disliked():
    liked = np.array([[1.0, 0.0, 0.0]])
    disliked = np.array([[0.0, 1.0, 0.0]])
    prior = np.zeros(3)
    vec, _ = fold_in(liked, disliked, prior, global_mean=3.0, reg=0.5, bias_reg=50.0)
    assert vec @ liked[0] > 0 > vec @ disliked[0]
    assert abs(vec[2]) < 1e-9                     # untouched direction stays at the prior
    weak, _ = fold_in(liked, disliked, prior, global_mean=3.0, reg=50.0, bias_reg=50.0)
    assert 0 < weak @ liked[0] < vec @ liked[0]   # stronger regularisation: closer to the prior


def test_matches_the_closed_form_ridge_solution():
    rng = np.random.default_rng(0)
    Q = rng.normal(size=(6, 4))
    b = rng.normal(size=6)
    p0, b0, reg, bias_reg, mu = rng.normal(size=4), 0.2, 0.7, 2.0, 3.5
    t = np.r_[np.full(4, 5.0), np.full(2, 1.0)]
    X = np.hstack([Q, np.ones((6, 1))])
    lam = np.diag(np.r_[np.full(4, reg), bias_reg])
    want = np.linalg.solve(X.T @ X + lam, X.T @ (t - mu - b) + lam @ np.r_[p0, b0])
    vec, bias = fold_in(Q[:4], Q[4:], p0, liked_bias=b[:4], disliked_bias=b[4:], prior_bias=b0,
                        global_mean=mu, reg=reg, bias_reg=bias_reg)
    np.testing.assert_allclose(np.r_[vec, bias], want, rtol=1e-5, atol=1e-6)
    fixed, fixed_bias = fold_in(Q[:4], Q[4:], p0, fit_bias=False, prior_bias=b0, global_mean=mu)
    assert fixed_bias == b0 and fixed.shape == (4,)


def test_weights_zero_ignore_an_item():
    liked = np.array([[1.0, 0.0], [0.0, 1.0]])
    one, _ = fold_in(liked[:1], [], np.zeros(2), global_mean=3.0)
    weighted, _ = fold_in(liked, [], np.zeros(2), global_mean=3.0, liked_weight=[1.0, 0.0])
    np.testing.assert_allclose(one, weighted, atol=1e-6)


def test_planted_factor_recovery():
    """Liked = a user's true top items: the folded-in vector ranks held-out true-top items better."""
    rng = np.random.default_rng(42)
    n_items, d = 2000, 8
    Q = rng.normal(0, 1, size=(n_items, d))
    center = rng.normal(0, 0.3, size=d)            # what the population has in common
    hits_prior = hits_fold = 0
    for _ in range(50):
        p_true = center + rng.normal(0, 1, size=d)
        truth = Q @ p_true
        order = np.argsort(-truth)
        liked, held_out = order[:5], set(order[5:105].tolist())
        disliked = order[-3:]
        vec, _ = fold_in(Q[liked], Q[disliked], center, global_mean=0.0, like_rating=float(truth[liked].mean()),
                         dislike_rating=float(truth[disliked].mean()), reg=1.0, fit_bias=False)

        def hits(p):
            scores = Q @ p
            scores[np.r_[liked, disliked]] = -np.inf
            return len(set(np.argsort(-scores)[:100].tolist()) & held_out)

        hits_prior += hits(center)
        hits_fold += hits(vec.astype(np.float64))
    assert hits_fold > 2 * hits_prior


def test_age_bands_and_genders():
    assert [age_band(a) for a in (8, 17.9, 18, 24, 25, 34, 35, 44, 45, 54, 55, 90)] == \
        ["<18", "<18", "18-24", "18-24", "25-34", "25-34", "35-44", "35-44", "45-54", "45-54", "55+", "55+"]
    assert [age_band(a) for a in (None, "null", -3, 0, 200, float("nan"), "27")] == \
        ["unknown"] * 6 + ["25-34"]
    assert [gender_key(g) for g in ("M", "f", "female", None, "x", 1)] == ["M", "F", "F"] + ["unknown"] * 3
    assert len(AGE_BANDS) == 6


def test_demographic_prior_shrinks_small_cells():
    rng = np.random.default_rng(1)
    n = 2000
    ages = rng.choice([20, 30, 60], size=n, p=[0.5, 0.495, 0.005])
    genders = rng.choice(["M", "F"], size=n)
    V = rng.normal(0, 0.1, size=(n, 3))
    V[ages == 60] += np.array([5.0, 0.0, 0.0])       # the rare old users differ a lot
    V[(ages == 20) & (genders == "F")] += np.array([0.0, 1.0, 0.0])
    model = DemographicPrior(shrinkage=20.0).fit(V, ages.tolist(), genders.tolist())
    young_f, _ = model.prior(20, "F")
    assert young_f[1] == pytest.approx(1.0, abs=0.1)  # a big cell keeps its own mean
    old = V[ages == 60].mean(axis=0)
    old_prior, _ = model.prior(60, "M")
    assert 0 < old_prior[0] < 0.6 * old[0]           # a tiny cell is pulled towards the global mean
    glob, _ = model.prior(None, None)
    np.testing.assert_allclose(glob, V.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(model.prior("n/a", "?")[0], glob)
    vec, bias = model.prior(20, "F")
    vec[:] = 99                                       # callers get a copy
    assert model.prior(20, "F")[0][0] != 99
    again = DemographicPrior.from_arrays(model.to_arrays())
    np.testing.assert_allclose(again.prior(60, "M")[0], old_prior)
    assert again.prior(20, "F")[1] == pytest.approx(bias)


def test_demographic_prior_with_no_users():
    model = DemographicPrior().fit(np.zeros((0, 4)), [], [])
    vec, bias = model.prior(30, "F")
    np.testing.assert_array_equal(vec, np.zeros(4))
    assert bias == 0.0
    with pytest.raises(ValueError):
        DemographicPrior().fit(np.zeros((3, 4)), [20], ["M", "F", "M"])


def test_segment_popularity():
    glob = np.array([100.0, 80.0, 60.0, 5.0, 0.0])
    seg = np.array([0.0, 0.0, 0.0, 40.0, 0.0])
    assert segment_popularity(seg, glob, k=3, shrinkage=50).tolist() == [3, 0, 1]
    assert segment_popularity(np.zeros(5), glob, k=3).tolist() == [0, 1, 2]     # no plays: global order
    assert segment_popularity(None, glob, k=10, exclude=[0, 99, -1]).tolist() == [1, 2, 3, 4]
    assert segment_popularity([1, 1], glob, k=2).tolist() == [0, 1]            # wrong shape: ignored
    assert segment_popularity(np.ones(3), np.zeros(3), k=3).tolist() == [0, 1, 2]  # ties: lower index
    assert segment_popularity([], [], k=5).tolist() == []


def test_relative_reg_makes_fold_in_independent_of_the_factor_scale():
    """ALS factors (norm ~1) and online-MF factors (norm ~0.05) get the same scores Q p."""
    rng = np.random.default_rng(3)
    Q = rng.normal(size=(50, 6))
    b = rng.normal(0, 0.3, size=50)
    scores = []
    for s in (1.0, 0.05, 20.0):
        Qs = Q * s
        reg = relative_reg(Qs, 4.0)
        vec, _ = fold_in(Qs[:3], Qs[3:5], np.zeros(6), liked_bias=b[:3], disliked_bias=b[3:5],
                         global_mean=3.5, reg=reg, fit_bias=False)
        scores.append(Qs @ vec)
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores[2], scores[0], rtol=1e-4, atol=1e-5)
    assert relative_reg(Q, 2.0) == pytest.approx(2.0 * float((Q ** 2).sum(axis=1).mean()))
    assert relative_reg(Q, 2.0, rows=[0]) == pytest.approx(2.0 * float(Q[0] @ Q[0]))
    assert relative_reg(np.zeros((0, 6)), 2.0) == 2.0


def test_liked_titles_neighbours_rank_first_under_the_serving_score():
    """Three liked items of one planted taste cluster: ranked as the service ranks
    (p.q + b + popularity prior), their cluster-mates fill the top of the list,
    even with small online-MF-sized factors where a fixed penalty would barely move p."""
    rng = np.random.default_rng(11)
    n_clusters, per, d = 8, 100, 8
    centres = rng.normal(size=(n_clusters, d)) * 1.5
    cluster = np.repeat(np.arange(n_clusters), per)
    Q = (centres[cluster] + rng.normal(0, 0.4, size=(n_clusters * per, d))) * 0.05
    bias = rng.normal(0, 0.1, size=len(Q))
    prior = 0.15 * np.log1p(rng.pareto(1.5, size=len(Q)) * 10)   # blended popularity
    liked = np.flatnonzero(cluster == 2)[:3]
    disliked = np.flatnonzero(cluster == 5)[:2]

    def top_of(vec: np.ndarray) -> np.ndarray:
        scores = Q @ vec + bias + prior
        scores[np.r_[liked, disliked]] = -np.inf               # named titles are excluded
        return np.argsort(-scores)[:20]

    vec, _ = fold_in(Q[liked], Q[disliked], np.zeros(d), liked_bias=bias[liked],
                     disliked_bias=bias[disliked], global_mean=3.5,
                     reg=relative_reg(Q, 4.0), bias_reg=5.0)
    top = top_of(vec.astype(np.float64))
    share = (cluster[top] == 2).mean()
    unpersonalised = (cluster[top_of(np.zeros(d))] == 2).mean()
    assert share >= 0.6 and share >= 2 * unpersonalised
    assert not set(top) & set(np.r_[liked, disliked]) and (cluster[top] == 5).sum() == 0
    fixed, _ = fold_in(Q[liked], Q[disliked], np.zeros(d), liked_bias=bias[liked],
                       disliked_bias=bias[disliked], global_mean=3.5, reg=10.0, bias_reg=5.0)
    # A fixed penalty against tiny factors leaves the list as unpersonalised as before.
    assert (cluster[top_of(fixed.astype(np.float64))] == 2).mean() <= unpersonalised + 0.1
