"""Serving an experiment's arm: the ranker a user's arm names, over the same local state.

:meth:`ArmRanker.answer` is what the view calls instead of
``Recommender.answer_with_guardrails``.  Outside any ranker experiment (and in a
``baseline`` arm) it is exactly that call.  The cost-aware arm ranks the user's
row against every item once, with the item bias lowered by the licence-cost
penalty (:func:`models.costaware.cost_penalty`), through the same guardrails
and exclusions as the baseline (``Recommender.score_and_rank``), so it costs one
vector–matrix product per request (~0.1 ms for 10k items × 32 factors).
The penalty vector is cached per (weight, item-index version, item count).
The interleaving arm drafts the answers of its two rankers into one list
(:func:`models.experiments.interleaving.team_draft`, coin flips seeded per
request) and returns the team of every slot (``"ABBA…"``) for the provenance
record, from which the report credits each ranker with the user's later picks.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from models.costaware import cost_penalty
from models.experiments.interleaving import team_draft
from recstream.experiments import ExperimentBook
from tables.serving import Recommender, Source


class ArmRanker:
    def __init__(self, recommender: Recommender, book: ExperimentBook) -> None:
        self.recommender = recommender
        self.book = book
        self._penalties: dict[float, tuple[tuple[int, int], np.ndarray]] = {}

    def answer(self, user: int) -> tuple[str, Source, list[str], str, float, str]:
        """``(line, source, guardrails, arm label, fault delay in ms, interleaving teams)``."""
        rec = self.recommender
        label = self.book.label(user) if self.book.specs else ""
        ranker = self.book.ranker_of(user) if label else None
        line, source, guardrails = rec.answer_with_guardrails(user)
        if ranker is None:
            return line, source, guardrails, label, 0.0, ""
        policy = ranker[1].policy
        delay = float(policy.get("fault_delay_ms", 0.0))
        if source not in ("personal", "popular"):
            return line, source, guardrails, label, delay, ""
        if policy["ranker"] == "interleave":
            a = self.ranked(user, policy["a"], line)
            b = self.ranked(user, policy["b"], line)
            drafted = team_draft(a.split(","), b.split(","), k=rec.settings.top_k,
                                 seed=os.urandom(8).hex())
            return (",".join(drafted.items), source, guardrails, label, delay,
                    "".join("AB"[t] for t in drafted.teams))
        return self.ranked(user, policy, line), source, guardrails, label, delay, ""

    def ranked(self, user: int, policy: dict, baseline: str) -> str:
        """The line of one plain ranker policy (``baseline`` is the service's own answer)."""
        if policy["ranker"] == "cost":
            return self.cost_line(user, float(policy["cost_weight"])) or baseline
        return baseline

    def penalty(self, weight: float) -> np.ndarray:
        items = self.recommender.items
        key = (items.version, len(items), int(np.isfinite(items.cost[:len(items)]).sum()))
        held = self._penalties.get(weight)
        if held is None or held[0] != key:
            held = (key, cost_penalty(items.cost[:len(items)], weight=weight))
            self._penalties[weight] = held
        return held[1]

    def cost_line(self, user: int, weight: float) -> Optional[str]:
        """The user's top-k with the cost penalty, guardrails and exclusions applied."""
        rec, items, users = self.recommender, self.recommender.items, self.recommender.users
        row = users.get_row(user)
        if row < 0:
            return None
        n = len(items)
        rows = np.array([row], np.int64)
        ranked = rec.score_and_rank(
            users.factors[rows], users.minor[rows], rec.exclusions(rows), items.factors[:n],
            items.bias[:n] - self.penalty(weight), rec.prior()[:n], items.safe_for_all[:n],
            items.safe_for_minors[:n], rec.settings.top_k)[0]
        ids = items.ids
        return ",".join(ids[i] for i in ranked.tolist() if i >= 0) or None
