"""The feedback-loop mitigation in serving (issue #14), switched by settings.

``feedback_rerank_weight`` > 0 or ``feedback_explore_slots`` > 0 makes every
personal answer a :func:`models.feedback.rerank` of the user's top
``k + EXPLORE_POOL`` candidates: relevance lowered by the weight × standardised
log plays (towards the long tail), and the last slots given to seeded random
picks among the next candidates (seed = the best candidate's row, so a user's
list is stable while their candidates are).  The guardrail masks and
exclusions are applied before, by the plain ranker, so a mitigated list is as
safe as a plain one.  The popularity fallback is not re-ranked.
"""
from __future__ import annotations

import numpy as np

from models.feedback import rerank
from tables.memory import ItemIndex

EXPLORE_POOL = 200


class MitigatedRanker:
    """Same signature as :meth:`tables.serving.Recommender.score_and_rank`."""

    def __init__(self, items: ItemIndex, base, *, weight: float, explore_slots: int,
                 pool: int = EXPLORE_POOL) -> None:
        self.items, self.base = items, base
        self.weight, self.explore_slots, self.pool = weight, explore_slots, pool

    def __call__(self, user_factors, minor, exclusions, item_factors, item_bias, prior,
                 safe_for_all, safe_for_minors, k: int) -> np.ndarray:
        wide = self.base(user_factors, minor, exclusions, item_factors, item_bias, prior,
                         safe_for_all, safe_for_minors, k + self.pool)
        n = item_factors.shape[0]
        plays = self.items.plays[:n].astype(np.float64)
        out = np.full((wide.shape[0], k), -1, np.int32)
        for i, cand in enumerate(wide):
            cand = cand[cand >= 0]
            if not len(cand):
                continue
            scores = item_factors[cand] @ user_factors[i] + item_bias[cand] + prior[cand]
            picked = rerank(cand, scores, plays[cand], k=k, weight=self.weight,
                            explore_slots=self.explore_slots, explore_pool=self.pool,
                            seed=int(cand[0]))
            out[i, :len(picked)] = picked
        return out
