"""An experiment's numbers: per-arm metrics, effects with CIs, SRM, CI over time.

Pure given the joined per-user data (:mod:`models.experiments.telemetry`), so
the report command and the course benchmark compute exactly the same thing.
Every effect is treatment − control on per-user values, with Welch's
fixed-horizon CI (valid when read once, at the end) and the anytime-valid
confidence sequence (valid however often the dashboard was watched).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from models.experiments.interleaving import (per_user_scores, per_user_winners,
                                             preference_test, score_test)
from models.experiments.sequential import sequential_diff
from models.experiments.spec import ExperimentSpec
from models.experiments.stats import Moments, srm_check, welch
from models.experiments.telemetry import METRICS, ArmData

LOOKS = 12


def control_arm(spec: ExperimentSpec, control: Optional[str] = None) -> str:
    names = [a.name for a in spec.arms]
    if control:
        if control not in names:
            raise ValueError(f"no arm {control!r} in {names}")
        return control
    return "control" if "control" in names else names[-1]


def per_user_metrics(arm: ArmData, extra: Mapping[str, Mapping[int, float]]) -> dict[str, np.ndarray]:
    out = dict(arm.per_user)
    for name, values in extra.items():
        out[name] = np.array([values.get(int(u), np.nan) for u in arm.users], np.float64)
    return out


def compare(control: np.ndarray, treatment: np.ndarray, *, alpha: float,
            n_star: float) -> Optional[dict[str, Any]]:
    c, t = control[np.isfinite(control)], treatment[np.isfinite(treatment)]
    if len(c) < 2 or len(t) < 2:
        return None
    w = welch(c, t, alpha=alpha)
    s = sequential_diff(Moments.of(c), Moments.of(t), alpha=alpha, n_star=n_star)
    return {"n_control": len(c), "n_treatment": len(t), "control_mean": float(c.mean()),
            "treatment_mean": float(t.mean()), "effect": w.effect, "ci": list(w.ci),
            "p_value": w.p_value, "relative": w.relative, "seq_ci": list(s.ci),
            "seq_p": s.p_value}


def analyse(spec: ExperimentSpec, arms: Mapping[str, ArmData], contaminated: int, *,
            control: Optional[str] = None, extra: Mapping[str, Mapping[int, float]] = {},
            metrics: Sequence[str] = METRICS, latency: bool = True,
            alpha: float = 0.05, n_star: float = 2_000) -> dict[str, Any]:
    """Per-arm table, effects vs control, SRM and CI over time; ``metrics`` name the arms'
    ``per_user`` columns (telemetry by default; ground-truth columns in the course bench)."""
    base = control_arm(spec, control)
    names = [a.name for a in spec.arms]
    counts = [len(arms[n].users) if n in arms else 0 for n in names]
    srm = srm_check(counts, spec.weights) if sum(counts) > 0 else None
    metrics = list(metrics) + (["latency_ms"] if latency else []) + list(extra)
    table: dict[str, dict[str, Any]] = {}
    values: dict[str, dict[str, np.ndarray]] = {}
    for n in names:
        if n not in arms:
            continue
        a = arms[n]
        v = per_user_metrics(a, extra)
        if latency:
            v["latency_ms"] = a.latency_ms  # per request (a guardrail), not per user
        values[n] = v
        table[n] = {"users": len(a.users), "answers": int(len(a.latency_ms)),
                    "views": a.views, "cost_per_hour": a.cost_per_hour,
                    "latency_p99_ms": float(np.percentile(a.latency_ms, 99)) if len(a.latency_ms) else None,
                    **{m: _mean(v[m]) for m in metrics}}
    effects: dict[str, dict[str, Any]] = {}
    over_time: dict[str, list] = {}
    for n in names:
        if n == base or n not in values or base not in values:
            continue
        effects[n] = {m: compare(values[base][m], values[n][m], alpha=alpha, n_star=n_star)
                      for m in metrics}
        over_time[n] = _over_time(arms[base], arms[n], values[base], values[n], metrics,
                                  alpha=alpha, n_star=n_star)
    return {"experiment": spec.id, "version": spec.version, "state": spec.state,
            "kind": spec.kind, "arms": {a.name: a.policy for a in spec.arms},
            "weights": list(spec.weights), "exposure": spec.exposure, "control": base,
            "table": table, "effects": effects, "over_time": over_time,
            "contaminated": contaminated, "alpha": alpha, "metrics": metrics,
            "srm": None if srm is None else {"observed": list(srm.observed),
                                             "expected": list(srm.expected),
                                             "p_value": srm.p_value, "flagged": srm.flagged}}


def _mean(x: np.ndarray) -> Optional[float]:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else None


def _over_time(c: ArmData, t: ArmData, cv: dict, tv: dict, metrics: list[str], *,
               alpha: float, n_star: float) -> list[dict[str, Any]]:
    """The anytime-valid CI of each metric on the users who had arrived by each look."""
    start = np.concatenate([c.first_seen, t.first_seen])
    if len(start) < 4:
        return []
    cuts = np.quantile(start, np.linspace(0.2, 1.0, LOOKS))
    out = []
    for cut in cuts:
        row: dict[str, Any] = {"time": float(cut)}
        for m in metrics:
            if m == "latency_ms":
                continue
            x, y = cv[m][c.first_seen <= cut], tv[m][t.first_seen <= cut]
            row[m] = compare(x, y, alpha=alpha, n_star=n_star)
        out.append(row)
    return out


def interleaving_summary(users: np.ndarray, winners: np.ndarray, *, alpha: float = 0.05
                         ) -> Optional[dict[str, Any]]:
    """Per-user credit t-test and per-user sign test (A = the policy's ``a`` ranker)."""
    if len(users) == 0:
        return None
    scores = per_user_scores(users, winners)
    t = score_test(scores, alpha=alpha)
    sign = preference_test(per_user_winners(users, winners), alpha=alpha)
    decision = {0: "A", 1: "B", -1: "no decision"}
    return {"impressions": int(len(winners)), "users": int(len(scores)),
            "mean_credit": t.mean, "ci": list(t.ci), "p_value": t.p_value,
            "decision": decision[t.decision], "user_wins_a": sign.wins_a,
            "user_wins_b": sign.wins_b, "user_ties": sign.ties, "sign_p": sign.p_value}
