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
Arms act on every answer their ranker can make, the fallback of a user the worker
does not know yet included (a random or noisy ranker answers them; the cost arm has
no row to rank and keeps the fallback); an interleaving arm whose two rankers
return the same list serves it without teams (it carries no preference).
:meth:`ArmRanker.answer_now` (what the view awaits) adds the cold start's request-time
path: a user without a vector (unknown, or created but not yet profiled) is ranked
from the vector ``cold_now`` returns within its bounded wait (agents/profiles.py),
else keeps the fallback.
"""
from __future__ import annotations

import os
from typing import Awaitable, Callable, Optional

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
        # (vector, bias, minor) of a cold user, or None; set by the composition root.
        self.cold_now: Optional[Callable[[int, Optional[float]], Awaitable[Optional[tuple]]]] = None

    async def answer_now(self, user: int, started: Optional[float] = None
                         ) -> tuple[str, Source, list[str], str, float, str]:
        """:meth:`answer`, or for a user without a vector the cold start's answer
        (``started``: the handler's ``time.perf_counter()``, bounds the cold start's wait)."""
        out = self.answer(user)
        line, source, guardrails, label, delay, _ = out
        if self.cold_now is None or source not in ("fallback", "popular") or \
                "empty_personal" in guardrails:
            return out
        cold = await self.cold_now(user, started)
        if cold is None:
            return out
        vector, _, minor = cold
        ranker = self.book.ranker_of(user) if label else None
        policy = ranker[1].policy if ranker is not None else {"ranker": "baseline"}
        teams = ""
        if policy["ranker"] == "interleave":  # both rankers over the cold vector, drafted
            a, b = (self.cold_line(user, vector, minor, policy[k]).split(",") for k in "ab")
            if a == b:  # the rankers agree: nothing to interleave
                cold_line = ",".join(m for m in a if m)
            else:
                drafted = team_draft(a, b, k=self.recommender.settings.top_k,
                                     seed=os.urandom(8).hex())
                cold_line = ",".join(m for m in drafted.items if m)
                teams = "".join("AB"[t] for t, m in zip(drafted.teams, drafted.items) if m)
        else:
            cold_line = self.cold_line(user, vector, minor, policy)
        if not cold_line:
            return out
        return (cold_line, "personal", ["minor_safe" if minor else "no_adult", "cold_start_now"],
                label, delay, teams)

    def cold_line(self, user: int, vector: np.ndarray, minor: bool, policy: dict) -> str:
        """One plain ranker policy over a vector not (yet) in the user index."""
        if policy["ranker"] == "random":
            return self.random_line(user, minor)
        if policy["ranker"] == "noisy":
            return self.noisy_line(user, float(policy["noise"]), vector, minor)
        weight = float(policy["cost_weight"]) if policy["ranker"] == "cost" else 0.0
        return self.vector_line(user, vector, minor, weight)

    def vector_line(self, user: int, vector: np.ndarray, minor: bool, weight: float, *,
                    bias: Optional[np.ndarray] = None, prior: Optional[np.ndarray] = None) -> str:
        """Top-k for a vector not (yet) in the user index; guardrails and exclusions as usual."""
        rec, items = self.recommender, self.recommender.items
        n = len(items)
        if n == 0 or vector.shape[0] != items.factors.shape[1]:
            return ""
        history = rec.history_of(user) if rec.settings.exclude_watched else None
        seen = np.fromiter((items.row_of[m] for m in (history.seen() if history else ())
                            if m in items.row_of), np.int64)
        if bias is None:
            bias = items.bias[:n] - self.penalty(weight) if weight else items.bias[:n]
        ranked = rec.score_and_rank(
            vector[None, :], np.array([minor]), [seen], items.factors[:n], bias,
            rec.prior()[:n] if prior is None else prior, items.safe_for_all[:n],
            items.safe_for_minors[:n],
            rec.settings.top_k)[0]
        return ",".join(items.ids[i] for i in ranked.tolist() if i >= 0)

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
        if source not in ("personal", "popular", "fallback") or "empty_personal" in guardrails:
            return line, source, guardrails, label, delay, ""
        if policy["ranker"] == "interleave":
            a = self.ranked(user, policy["a"], line)
            b = self.ranked(user, policy["b"], line)
            if a == b:  # the rankers agree: one list, and no preference to read from it
                return a, source, guardrails, label, delay, ""
            drafted = team_draft(a.split(","), b.split(","), k=rec.settings.top_k,
                                 seed=os.urandom(8).hex())
            return (",".join(drafted.items), source, guardrails, label, delay,
                    "".join("AB"[t] for t in drafted.teams))
        return self.ranked(user, policy, line), source, guardrails, label, delay, ""

    def ranked(self, user: int, policy: dict, baseline: str) -> str:
        """The line of one plain ranker policy (``baseline`` is the service's own answer)."""
        if policy["ranker"] == "cost":
            return self.cost_line(user, float(policy["cost_weight"])) or baseline
        if policy["ranker"] == "random":
            row = self.recommender.users.get_row(user)
            minor = bool(self.recommender.users.minor[row]) if row >= 0 else True
            return self.random_line(user, minor) or baseline
        if policy["ranker"] == "noisy":
            return self.noisy_line(user, float(policy["noise"])) or baseline
        return baseline

    def noisy_line(self, user: int, noise: float, vector: Optional[np.ndarray] = None,
                   minor: Optional[bool] = None) -> str:
        """The service's scores for the user plus N(0, (noise · their spread)²): a degraded
        model, for every user the service answers: a known user without a vector yet is
        scored by item bias and popularity prior (a zero row, as the service ranks them), an
        unknown user by the fallback's popularity (safe for minors, as the fallback is)."""
        rec, items, users = self.recommender, self.recommender.items, self.recommender.users
        n = len(items)
        base, prior = items.bias[:n], None
        if vector is None:
            row = users.get_row(user)
            if row >= 0:
                vector, minor = users.factors[row], bool(users.minor[row])
            else:
                vector, minor = np.zeros(items.factors.shape[1], np.float32), True
                base = np.zeros(n, np.float32)
                prior = items.popularity(rec.stream_time, rec.half_life_s)[:n].astype(np.float32)
        if n == 0 or vector.shape[0] != items.factors.shape[1]:
            return ""
        scores = items.factors[:n] @ vector + base + (rec.prior()[:n] if prior is None else prior)
        jitter = np.random.default_rng().standard_normal(n).astype(np.float32)
        bias = base + noise * float(np.std(scores)) * jitter
        return self.vector_line(user, vector, bool(minor), 0.0, bias=bias, prior=prior)

    def random_line(self, user: int, minor: bool) -> str:
        """Random safe, unseen titles: a deliberately bad ranker for canary drills."""
        rec, n = self.recommender, len(self.recommender.items)
        noise = np.random.default_rng().standard_normal(n).astype(np.float32)
        return self.vector_line(user, np.zeros(rec.items.factors.shape[1], np.float32), minor,
                                0.0, bias=noise, prior=np.zeros(n, np.float32))

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
