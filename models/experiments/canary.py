"""Canary guardrails: roll a treatment back as soon as a guardrail is conclusively worse.

A canary is watched continuously, so the verdict uses the anytime-valid
confidence sequence (:func:`models.experiments.sequential.sequential_diff`):
checking after every request does not raise the false-rollback rate above
alpha.  A guardrail is breached when the whole sequence lies beyond the
tolerated degradation, in the direction that is worse for that metric
(latency and errors up, availability and quality down).  A step of the ramp
advances only after enough treatment units passed without a breach.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Mapping

from models.experiments.assignment import CANARY_RAMP, next_ramp_step
from models.experiments.sequential import sequential_diff
from models.experiments.stats import Moments

Action = Literal["rollback", "ramp", "hold", "done"]


@dataclasses.dataclass(frozen=True, slots=True)
class Guardrail:
    name: str
    higher_is_worse: bool       # latency, error rate: True; availability, conversion: False
    tolerance: float = 0.0      # absolute degradation accepted before calling it worse


def breached(guardrail: Guardrail, control: Moments, treatment: Moments, *, alpha: float = 0.05,
             n_star: float = 2_000, min_units: int = 30) -> bool:
    """The treatment is worse than control by more than the tolerance, at any-time confidence 1 − alpha.

    The sequence is asymptotic (it leans on the CLT and on a variance estimate),
    so nothing is concluded before ``min_units`` per arm.
    """
    if min(control.n, treatment.n) < max(min_units, 2):
        return False
    lo, hi = sequential_diff(control, treatment, alpha=alpha, n_star=n_star).ci
    return lo > guardrail.tolerance if guardrail.higher_is_worse else hi < -guardrail.tolerance


def canary_step(share: float, breaches: Mapping[str, bool], treatment_units: int, *,
                min_units: int = 500, schedule: tuple[float, ...] = CANARY_RAMP) -> tuple[Action, float]:
    """(action, share to serve next): any breach rolls back to 0; ramp after ``min_units`` clean units."""
    if any(breaches.values()):
        return "rollback", 0.0
    if treatment_units < min_units:
        return "hold", share
    following = next_ramp_step(share, schedule)
    return ("done", share) if following is None else ("ramp", following)
