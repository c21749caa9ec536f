"""Canary guardrails: a broken treatment is rolled back early, a healthy one ramps, A/A rarely trips."""
from __future__ import annotations

import numpy as np

from models.experiments.assignment import CANARY_RAMP
from models.experiments.canary import Guardrail, breached, canary_step
from models.experiments.stats import Moments

LATENCY = Guardrail("p_latency_ms", higher_is_worse=True, tolerance=5.0)
CONVERSION = Guardrail("conversion", higher_is_worse=False, tolerance=0.0)


def run_canary(rng: np.random.Generator, extra_ms: float, *, min_units: int = 200,
               check_every: int = 50) -> tuple[str, float, int]:
    """Serve a canary through the ramp, checking the latency guardrail every ``check_every`` requests.

    A step advances once ``min_units`` treatment requests passed it cleanly.
    Returns the final action, the share it ended at and the treatment units served.
    """
    share = CANARY_RAMP[0]
    sums = np.zeros((2, 3))             # per arm: n, Σx, Σx² (what telemetry keeps)
    step_start = 0
    while True:
        arms = rng.random(check_every) < share
        latency = rng.gamma(2.0, 10.0, check_every) + extra_ms * arms
        for arm, x in ((0, latency[~arms]), (1, latency[arms])):
            sums[arm] += (x.size, x.sum(), (x * x).sum())
        control, treatment = (Moments.from_sums(int(n), s1, s2) if n else Moments(0, 0.0, 0.0)
                              for n, s1, s2 in sums)
        hit = breached(LATENCY, control, treatment)
        action, following = canary_step(share, {"latency": hit}, treatment.n - step_start, min_units=min_units)
        if action in ("rollback", "done"):
            return action, share, treatment.n
        if action == "ramp":
            share, step_start = following, treatment.n


def test_a_200ms_slower_canary_is_rolled_back_at_the_first_step():
    action, share, units = run_canary(np.random.default_rng(1), extra_ms=200.0)
    assert action == "rollback" and share == CANARY_RAMP[0] and units < 60


def test_a_healthy_canary_ramps_to_the_end():
    action, share, _ = run_canary(np.random.default_rng(2), extra_ms=0.0)
    assert action == "done" and share == CANARY_RAMP[-1]


def test_direction_and_tolerance():
    rng = np.random.default_rng(3)
    base = Moments.of(rng.binomial(1, 0.30, 20_000).astype(float))
    worse = Moments.of(rng.binomial(1, 0.25, 20_000).astype(float))
    better = Moments.of(rng.binomial(1, 0.35, 20_000).astype(float))
    assert breached(CONVERSION, base, worse) and not breached(CONVERSION, base, better)
    lax = Guardrail("conversion", higher_is_worse=False, tolerance=0.1)
    assert not breached(lax, base, worse)
    assert not breached(CONVERSION, Moments(29, 0.9, 0.09), worse)      # too few units to conclude


def test_false_rollbacks_of_an_aa_canary_stay_below_alpha_when_checked_continuously():
    rng = np.random.default_rng(4)
    rollbacks = sum(run_canary(rng, extra_ms=0.0, min_units=100)[0] == "rollback" for _ in range(40))
    assert rollbacks <= 4          # alpha = 5% per canary; each of the 40 is checked ~250 times


def test_canary_step_holds_until_enough_units_then_ramps():
    assert canary_step(0.01, {"x": False}, 10, min_units=500) == ("hold", 0.01)
    assert canary_step(0.01, {"x": False}, 600, min_units=500) == ("ramp", 0.05)
    assert canary_step(0.25, {"x": True}, 10_000) == ("rollback", 0.0)
    assert canary_step(0.50, {}, 10_000) == ("done", 0.50)
