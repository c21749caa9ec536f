"""Promotion gate that cannot promote a worse model (issue #10, part 4).

The gate in ``models.registry`` compares aggregate metrics and lets an inconclusive
ranking comparison fall through to RMSE; issue #10 measured it promoting a model fitted
on 1,362 of ~80,000 ratings whose live Recall@20 was a third lower.  This gate decides on
one question only -- is the candidate *conclusively no worse* for the users both
versions know? -- and says no, with a reason, whenever it cannot tell:

1. a candidate fitted on less than ``min_data_fraction`` of the serving version's
   interactions is refused before any metric is read (a truncated read is a bug, not a
   model);
2. per-user metric values are paired on the users both sides scored; fewer than
   ``min_users`` of them is inconclusive, and refused;
3. for every metric the 95% percentile bootstrap interval (over users) of the mean
   paired difference ``candidate - serving`` must lie at or above
   ``-tolerance * mean(serving)``: lower bound below it and upper bound above it is
   inconclusive (refused), the whole interval below it is a regression (refused).

Inputs are plain per-user numbers, so the trainer, ``models promote`` and the live
benchmark feed it the same way (:func:`per_user_metrics` builds them from lists).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from models.metrics import ndcg_at_k, recall_at_k

K = 20
METRICS = (f"recall_at_{K}", f"ndcg_at_{K}")


@dataclasses.dataclass(frozen=True)
class GateDecision:
    """Whether to promote, every reason for the answer, and the numbers behind it."""

    passed: bool
    reasons: list[str]
    compared: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": list(self.reasons),
                "compared": dict(self.compared)}


def per_user_metrics(lists: Mapping[int, Sequence], relevant: Mapping[int, Collection], *,
                     k: int = K) -> dict[str, dict[int, float]]:
    """``{metric: {user: value}}`` for every user with relevant items and a list."""
    out: dict[str, dict[int, float]] = {f"recall_at_{k}": {}, f"ndcg_at_{k}": {}}
    for user, items in relevant.items():
        if not items or user not in lists:
            continue
        out[f"recall_at_{k}"][user] = recall_at_k(lists[user], items, k)
        out[f"ndcg_at_{k}"][user] = ndcg_at_k(lists[user], items, k)
    return out


def bootstrap_mean_ci(values: np.ndarray, *, resamples: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling users)."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 256):  # bounded memory at 100k users
        stop = min(resamples, start + 256)
        means[start:stop] = values[rng.integers(0, values.size, (stop - start, values.size))
                                   ].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def promotion_gate(candidate: Mapping[str, Mapping[int, float]],
                   serving: Mapping[str, Mapping[int, float]] | None, *,
                   candidate_interactions: int, serving_interactions: int | None,
                   tolerance: float = 0.02, min_users: int = 100,
                   min_data_fraction: float = 0.5, resamples: int = 2000,
                   seed: int = 0) -> GateDecision:
    """Promote only a candidate conclusively no worse than the serving version.

    ``candidate`` / ``serving``: ``{metric: {user: value}}`` measured on the same holdout
    with the same exclusions.  ``tolerance`` is relative to the serving mean (0.02: the
    candidate may be at most 2% worse at the interval's lower end).  With nothing serving
    (``serving`` None) the candidate passes if it was scored on ``min_users`` users.
    """
    reasons: list[str] = []
    compared: dict[str, Any] = {"tolerance": tolerance, "min_users": min_users,
                                "candidate_interactions": int(candidate_interactions),
                                "serving_interactions": serving_interactions}
    if serving is None:
        n = min((len(candidate.get(m, {})) for m in METRICS), default=0)
        compared["users"] = n
        if n < min_users:
            return GateDecision(False, [f"candidate scored on {n} users (< {min_users}): "
                                        "inconclusive"], compared)
        return GateDecision(True, ["nothing serving; candidate scored on "
                                   f"{n} users"], compared)
    if serving_interactions:
        share = candidate_interactions / serving_interactions
        compared["data_fraction"] = share
        if share < min_data_fraction:
            return GateDecision(False, [
                f"candidate trained on {candidate_interactions:,} interactions, "
                f"{share:.1%} of the serving version's {serving_interactions:,} "
                f"(< {min_data_fraction:.0%}): a truncated read, refused"], compared)
    for metric in METRICS:
        cand, serv = candidate.get(metric, {}), serving.get(metric, {})
        users = sorted(set(cand) & set(serv))
        entry: dict[str, Any] = {"users": len(users)}
        compared[metric] = entry
        if len(users) < min_users:
            reasons.append(f"{metric}: {len(users)} users in common (< {min_users}): "
                           "inconclusive")
            continue
        a = np.fromiter((cand[u] for u in users), np.float64, len(users))
        b = np.fromiter((serv[u] for u in users), np.float64, len(users))
        lo, hi = bootstrap_mean_ci(a - b, resamples=resamples, seed=seed)
        floor = -tolerance * float(b.mean())
        entry.update(candidate=float(a.mean()), serving=float(b.mean()),
                     mean_difference=float((a - b).mean()), ci95=[lo, hi], floor=floor)
        if hi < floor:
            reasons.append(f"{metric}: worse, paired difference CI95 {lo:+.4f}..{hi:+.4f} "
                           f"below {floor:+.4f}")
        elif lo < floor:
            reasons.append(f"{metric}: inconclusive, paired difference CI95 "
                           f"{lo:+.4f}..{hi:+.4f} crosses {floor:+.4f}")
    if reasons:
        return GateDecision(False, reasons, compared)
    return GateDecision(True, [f"{m}: paired CI95 lower bound {compared[m]['ci95'][0]:+.4f} "
                               f">= {compared[m]['floor']:+.4f} on {compared[m]['users']} users"
                               for m in METRICS], compared)
