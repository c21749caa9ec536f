"""The canary controller behind ``recstream experiment ramp ID --auto``.

Every ``interval_s`` it reads the answers' provenance (and, for quality, the
movielog) and tests each guardrail with the anytime-valid confidence sequence
(:mod:`models.experiments.canary`): watching continuously does not inflate the
false-rollback rate.  Guardrails:

* **latency** per answer (+20 ms tolerated) and **failed** answers (+1 point), on
  the answers of the current ramp step (a step changes who is served);
* **conversion** (issue #13, quality): per user, the share of the user's matured
  answers followed within ``quality_window_s`` of stream time by a watch of one of
  the answer's titles (``models.experiments.telemetry.join``); −``QUALITY_TOLERANCE``
  tolerated.  Only answers the arm's ranker shaped count (source ``personal`` or
  ``popular``: a fallback is the same list in every arm, and whether a user gets
  one does not depend on the arm), from the start of the canary (a user keeps
  their arm as the share grows), and only answers at least ``quality_window_s``
  older than the newest watch read (younger ones could still convert).

Any breach publishes a ``rolled_back`` version at 0%; otherwise the treatment is
ramped 1% → 5% → 25% → 50% after ``min_units`` clean treatment answers per step and,
with the quality guardrail on, only once ``min_units`` treatment users have matured
conversion (a canary is not ramped on quality nobody has measured yet).
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import numpy as np
from aiokafka.errors import KafkaError

from models.experiments.canary import Guardrail, breached, canary_step
from models.experiments.spec import ExperimentSpec
from models.experiments.stats import Moments
from models.experiments.telemetry import Served, Watch, join
from recstream.experiments import publish
from recstream.ops.experiment_data import shown_at
from recstream.ops.experiment_feed import CanaryFeed
from recstream.settings import Settings

QUALITY_TOLERANCE = 0.05  # conversion may drop by 5 points before the canary is called worse
GUARDRAILS = (Guardrail("latency_ms", higher_is_worse=True, tolerance=20.0),
              Guardrail("failed", higher_is_worse=True, tolerance=0.01))
QUALITY = Guardrail("conversion", higher_is_worse=False, tolerance=QUALITY_TOLERANCE)
# From this share on, a step also waits while conversion looks harmful (looks_harmful): 1%
# holds ~100 treated users in 10 minutes of a drill, too few for a conversion breach (~500),
# so 1% → 5% goes on the count and the fast guardrails; the step to a quarter of the traffic
# waits for quality evidence.
HOLD_FROM_SHARE = 0.05
FAILED_SOURCES = {"error", "owner_down"}
RANKED_SOURCES = {"personal", "popular"}


def with_share(spec: ExperimentSpec, share: float, **changes: Any) -> ExperimentSpec:
    """A canary's treatment (first arm) at ``share`` of the exposed traffic."""
    return spec.replace(weights=(share, 1.0 - share), **changes)


def guardrail_moments(answers: list[dict], since: float) -> dict[str, dict[str, Moments]]:
    """arm → latency / failed → Moments of its answers published after ``since`` (wall clock)."""
    sums: dict[str, dict[str, list[float]]] = {}
    for body in answers:
        if float(body.get("time", 0)) < since:
            continue
        per = sums.setdefault(body["arm"], {"latency_ms": [], "failed": []})
        per["latency_ms"].append(float(body.get("latency_ms", 0.0)))
        per["failed"].append(1.0 if body.get("source") in FAILED_SOURCES else 0.0)
    return {arm: {g: Moments.of(np.asarray(v)) for g, v in per.items()} for arm, per in sums.items()}


def looks_harmful(control: Moments | None, treatment: Moments | None) -> bool:
    """The treatment's conversion is below control's by more than half the tolerance.

    Applied from ``HOLD_FROM_SHARE`` on.
    Conversion is slow and noisy: the anytime-valid breach of a 13-point drop needs ~500
    treated users, while a step's count of matured users is reached with far fewer (at 50
    users the estimate's standard error is ~7 points), so a count alone would ramp a bad arm
    past 25% before its breach can show.  A step therefore also waits while its estimate
    looks harmful: a bad arm stays at its share until the breach is conclusive; a good arm's
    estimate sits near 0 and passes once its noise shrinks below the margin."""
    if control is None or treatment is None:
        return False
    return treatment.mean - control.mean < -QUALITY_TOLERANCE / 2


def conversion_by_arm(answers: list[dict], watches: list[Watch], window_s: float,
                      outcomes: dict[tuple[int, tuple], list[float]] | None = None
                      ) -> dict[str, Moments]:
    """arm → Moments of per-user conversion over the matured, ranker-shaped answers (pure).

    ``outcomes`` (the platform's log of each answer) re-time the answers to when users saw
    them: a worker behind the stream stamps its answers with an older stream time."""
    served = [Served(int(b["user"]), float(b.get("stream_time") or b["time"]), b["arm"],
                     tuple(b.get("movies") or ()), 0.0)
              for b in answers if b.get("source") in RANKED_SOURCES and b.get("user", -1) >= 0]
    if outcomes:
        served = shown_at(served, outcomes)
    if not served or not watches:
        return {}
    newest = max(w.time for w in watches)
    matured = [s for s in served if s.time + window_s <= newest]
    per_arm, _ = join(matured, watches, {}, {}, window_s=window_s)
    return {arm: Moments.of(data.per_user["conversion"]) for arm, data in per_arm.items()}


async def control_loop(settings: Settings, spec: ExperimentSpec, *, interval_s: float,
                       min_units: int, quality_window_s: float = 0.0, say=print
                       ) -> ExperimentSpec:
    """Ramp ``spec`` (a canary) to its last step or roll it back; → the final spec.

    ``quality_window_s`` > 0 adds the conversion guardrail.  The topics are read
    incrementally (:class:`recstream.ops.experiment_feed.CanaryFeed`): a look reads only
    what is new since the last one."""
    feed = CanaryFeed(settings, spec.id, quality=quality_window_s > 0)
    try:
        return await _control(feed, settings, spec, interval_s=interval_s, min_units=min_units,
                              quality_window_s=quality_window_s, say=say)
    finally:
        await feed.stop()


async def _control(feed: CanaryFeed, settings: Settings, spec: ExperimentSpec, *,
                   interval_s: float, min_units: int, quality_window_s: float, say
                   ) -> ExperimentSpec:
    treatment, control = spec.arms[0].name, spec.arms[1].name
    step_since = time.time()
    while True:
        await asyncio.sleep(interval_s)
        try:
            await feed.look()
        except (KafkaError, asyncio.TimeoutError, OSError) as exc:  # look again
            say(json.dumps({"experiment": spec.id, "look_failed": repr(exc)}))
            continue
        answers = feed.answers
        conv: dict[str, Moments] = {}
        if quality_window_s > 0:
            users = {int(b["user"]) for b in answers if b.get("source") in RANKED_SOURCES}
            conv = conversion_by_arm(answers, feed.watches(users), quality_window_s,
                                     feed.outcomes)
        moments = guardrail_moments(answers, step_since)
        t, c = moments.get(treatment), moments.get(control)
        if t is None or c is None:
            continue
        breaches = {g.name: breached(g, c[g.name], t[g.name]) for g in GUARDRAILS}
        quality: dict[str, Any] = {}
        if quality_window_s > 0:
            if treatment in conv and control in conv:
                breaches[QUALITY.name] = breached(QUALITY, conv[control], conv[treatment])
                quality = {arm: {"users": conv[arm].n, "mean": round(conv[arm].mean, 4)}
                           for arm in (treatment, control)}
        units = t["latency_ms"].n  # with a quality guardrail, a step also waits for its evidence
        if quality_window_s > 0:
            units = min(units, conv[treatment].n if treatment in conv else 0)
            if spec.weights[0] >= HOLD_FROM_SHARE and looks_harmful(conv.get(control),
                                                                     conv.get(treatment)):
                units = 0  # gather evidence at this share; do not expose more users yet
        action, share = canary_step(spec.weights[0], breaches, units, min_units=min_units)
        say(json.dumps({"experiment": spec.id, "share": spec.weights[0], "action": action,
                        "treatment_units": t["latency_ms"].n, "breaches": breaches,
                        "latency_ms": {"treatment": t["latency_ms"].mean,
                                       "control": c["latency_ms"].mean},
                        "conversion": quality}))
        if action == "rollback":
            return await publish(settings, with_share(spec, 0.0, state="rolled_back",
                                                      note=f"guardrails breached: {breaches}"))
        if action == "done":
            return spec
        if action == "ramp":
            spec = await publish(settings, with_share(spec, share))
            step_since = time.time()
