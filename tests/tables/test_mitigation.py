"""The feedback-loop mitigation (issue #14): towards the tail, still safe, off by default."""
from __future__ import annotations

import numpy as np

from recstream.settings import Settings
from tables.memory import ItemIndex, UserIndex
from tables.mitigation import MitigatedRanker
from tables.serving import Recommender

N_ITEMS, N_USERS, K = 600, 50, 20


def build(**extra) -> Recommender:
    cfg = Settings.from_mapping({"n_factors": 4, "top_k": K, "max_user_id": 1000,
                                 "popularity_blend": 0.0, **extra})
    rng = np.random.default_rng(0)
    items = ItemIndex(4, init_scale=cfg.init_scale, seed=cfg.seed)
    for i in range(N_ITEMS):
        plays = int(1e5 / (i + 1))  # Zipf: low rows are the head
        # The head also scores a little higher: a popularity loop already at work.
        items.update(f"m+{i}", bias=float(2.0 / np.sqrt(i + 1)),
                     factors=rng.standard_normal(4).astype(np.float32) * 0.3, plays=plays)
        items.set_flags(f"m+{i}", adult=False, minors_ok=i % 7 != 0)  # every 7th: not for minors
    users = UserIndex(4, K, cfg.max_user_id)
    for u in range(N_USERS):
        row = users.set_vector(u, 0.0, rng.standard_normal(4).astype(np.float32))
        users.minor[row] = u % 2 == 0
    return Recommender(cfg, items, users, lambda user: None)


def answers(rec: Recommender) -> np.ndarray:
    return rec.compute(np.arange(N_USERS))


def test_off_by_default_and_on_moves_exposure_to_the_tail_safely():
    plain = build()
    assert not isinstance(plain.ranker, MitigatedRanker)
    mitigated = build(feedback_rerank_weight=1.0, feedback_explore_slots=4)
    assert isinstance(mitigated.ranker, MitigatedRanker)
    a, b = answers(plain), answers(mitigated)
    assert (a >= 0).all() and (b >= 0).all()
    assert len(np.unique(b)) > len(np.unique(a))                       # coverage up
    plays = plain.items.plays
    assert np.median(plays[b]) < np.median(plays[a])                   # towards the tail
    for u in range(0, N_USERS, 2):                                     # minors stay safe
        assert plain.items.safe_for_minors[b[u]].all()
    assert all(len(set(row)) == K for row in b)                        # no duplicates
    np.testing.assert_array_equal(b, answers(mitigated))               # deterministic
