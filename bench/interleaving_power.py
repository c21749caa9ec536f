"""Requests an interleaving test and a user-split A/B test need, from one live run's numbers.

Used by ``bench/interleaving_live.py``.  Both designs are charged the same way: the
requests their arms serve per unit the test counts (an A/B test counts every user of
its two arms; the interleaving test counts the users with at least one interleaved
answer, but its arm serves all its users, so its requests per unit are the arm's
answers over the counted users).  Units needed for 80% power at two-sided alpha 0.05
come from the run's measured effects and spreads (normal approximation): A/B
``2 · 2(z+z)² σ²/Δ²`` users in all, interleaving ``(z+z)² σ²/μ²`` users (one-sample
t-test of per-user mean credit).  The ratio's 95% interval is the delta method on
``log ratio`` with the effects' standard errors (the spreads' own error is ignored).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Optional

Z95 = 1.959964
Z = Z95 + 0.841621  # two-sided alpha 0.05, power 0.8
# An A/B metric counts as evidence only if the degraded arm moves it the bad way.
WORSE = {"conversion": -1, "watch_through_min": -1, "rec_rating": -1}


def _se(ci: list[float]) -> float:
    return (ci[1] - ci[0]) / (2 * Z95)


def units_ab(effect: Optional[dict]) -> Optional[float]:
    """Users (both arms) an A/B test needs for this effect and spread."""
    if not effect or not effect.get("effect") or min(effect["n_control"], effect["n_treatment"]) < 2:
        return None
    var = _se(effect["ci"]) ** 2 / (1 / effect["n_control"] + 1 / effect["n_treatment"])
    return 2 * 2 * Z ** 2 * var / effect["effect"] ** 2


def units_il(summary: Optional[dict]) -> Optional[float]:
    """Users with an interleaved answer the per-user credit t-test needs."""
    if not summary or not summary.get("mean_credit") or summary.get("users", 0) < 2:
        return None
    sd = _se(summary["ci"]) * math.sqrt(summary["users"])
    return Z ** 2 * sd ** 2 / summary["mean_credit"] ** 2


def compare(ab: dict[str, Optional[dict]], il: Optional[dict], ab_answers: int,
            il_answers: int) -> dict:
    """Per A/B metric: units and requests needed, the ratio A/B ÷ interleaving and its CI."""
    n_il = units_il(il)
    per_il = il_answers / il["users"] if il and il.get("users") else None
    req_il = n_il * per_il if n_il and per_il else None
    rel_il = _se(il["ci"]) / abs(il["mean_credit"]) if n_il else None
    rows = {}
    for metric, e in ab.items():
        n_ab = units_ab(e)
        per_ab = ab_answers / (e["n_control"] + e["n_treatment"]) if n_ab else None
        req_ab = n_ab * per_ab if n_ab else None
        row = {"effect": e and e.get("effect"), "ci": e and e.get("ci"),
               "units_needed": n_ab, "requests_per_unit": per_ab, "requests_needed": req_ab,
               "right_direction": bool(e and e.get("effect") and metric in WORSE and
                                       e["effect"] * WORSE[metric] > 0),
               "ratio": None, "ratio_ci": None}
        if req_ab and req_il:
            ratio = req_ab / req_il
            se_log = 2 * math.hypot(_se(e["ci"]) / abs(e["effect"]), rel_il)
            row["ratio"] = ratio
            row["ratio_ci"] = [ratio * math.exp(-Z95 * se_log), ratio * math.exp(Z95 * se_log)]
        rows[metric] = row
    observable = {m: r for m, r in rows.items() if m in WORSE and r["right_direction"]
                  and r["requests_needed"]}
    best = min(observable, key=lambda m: observable[m]["requests_needed"]) if observable else None
    return {"interleaving": {"units_needed": n_il, "requests_per_unit": per_il,
                             "requests_needed": req_il},
            "ab": rows, "best_observable_ab_metric": best,
            "ratio_best_observable": rows[best]["ratio"] if best else None,
            "ratio_best_observable_ci": rows[best]["ratio_ci"] if best else None}


def answer_breakdown(records: Iterable[dict], experiment: str, new_users: set[int]) -> dict:
    """Per arm: answers by source and whether interleaved; the arm's un-interleaved answers
    by why (an unknown user's first answer, a new account's, a later answer, no vector…)."""
    from recstream.experiments import parse_label
    out: dict[str, Counter] = {}
    answered: set[int] = set()
    for r in sorted(records, key=lambda r: r.get("time", 0.0)):
        arm = parse_label(r.get("arm") or "").get(experiment)
        user = r.get("user", -1)
        if arm is None or user < 0:
            continue
        c = out.setdefault(arm, Counter())
        source = r.get("source", "")
        c["answers"] += 1
        c[f"source:{source}"] += 1
        if r.get("teams"):
            c["interleaved"] += 1
            c[f"interleaved:{source}"] += 1
        else:
            why = source
            if source == "fallback":
                why = "fallback, new account" if user in new_users else (
                    "fallback, first answer" if user not in answered else "fallback, later answer")
            c[f"plain:{why}"] += 1
        answered.add(user)
    return {arm: dict(sorted(c.items())) for arm, c in out.items()}
