"""Conjugate-gradient half steps against the exact batched solve (the oracle)."""
import numpy as np
import scipy.sparse as sp

from models.conjugate_gradient import implicit_cg
from models.datasets import planted_ratings
from models.ials import ImplicitALS
from models.normal_equations import solve_rows


def _problem(seed=0, rows=300, cols=120, k=8):
    rng = np.random.default_rng(seed)
    m = sp.random(rows, cols, density=0.08, random_state=seed, format="csr")
    m.data[:] = rng.uniform(0.5, 3.0, m.nnz)
    m.sort_indices()
    y = rng.normal(0, 0.3, (cols, k))
    return m, y


def test_cg_converges_to_the_exact_solve():
    m, y = _problem()
    indptr, idx = m.indptr.astype(np.int64), m.indices.astype(np.int64)
    exact = solve_rows(indptr, idx, 1.0 + m.data, y, np.full(y.shape[1], 2.0),
                       gram_weights=m.data, base=y.T @ y)
    start = np.zeros_like(exact)
    few = implicit_cg(indptr, idx, m.data, y, 2.0, start, steps=1)
    many = implicit_cg(indptr, idx, m.data, y, 2.0, start, steps=y.shape[1] + 2, chunk=97)
    assert np.max(np.abs(many - exact)) < 1e-4
    assert np.max(np.abs(few - exact)) > 1e-3  # one step is not the answer: the test can fail
    assert np.all(start == 0)  # the start is not modified


def test_cg_fit_ranks_like_the_exact_fit():
    data = planted_ratings(400, 150, 8000, seed=3)
    fits = [ImplicitALS(n_factors=8, seed=0, cg_steps=steps).fit(
        data.users, data.items, np.ones(len(data))) for steps in (3, 0)]
    scores = [f.user_factors @ f.item_factors.T for f in fits]
    top = [np.argsort(-s, axis=1)[:, :10] for s in scores]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(*top)])
    assert overlap > 0.8
    assert fits[0].get_params()["cg_steps"] == 3
