"""``recstream experiment start|status|ramp|stop|report``: experiments from the Faust CLI.

Every change is a new version of the experiment's spec on ``<app>-experiments``
(compacted by id), which every worker follows; nothing here talks to a worker.
``ramp ID --auto`` is the canary controller (:mod:`recstream.ops.experiment_canary`):
it watches the guardrails (latency, failed answers and, with ``--quality-window-s``,
conversion) with the anytime-valid test, ramps the treatment 1% → 5% → 25% → 50%
after ``--min-units`` clean answers per step and rolls it back to 0% the moment a
guardrail is conclusively worse.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

from faust.cli import argument, option

from models.experiments.assignment import CANARY_RAMP
from models.experiments.spec import ExperimentSpec, parse_arm
from models.experiments.telemetry import interleaving_winners, join
from recstream.experiments import publish, read_all
from recstream.ops.experiment_canary import control_loop, with_share
from recstream.ops.experiment_analysis import analyse, interleaving_summary
from recstream.ops.experiment_report import write
from recstream.ops.experiment_data import load
from recstream.settings import Settings


def new_spec(exp_id: str, kind: str, arms: list[str], weights: Optional[str],
             exposure: float, canary: bool) -> ExperimentSpec:
    parsed = tuple(parse_arm(a) for a in arms)
    if canary:
        if len(parsed) != 2:
            raise ValueError("a canary has two arms: treatment first, then control")
        w = (CANARY_RAMP[0], 1.0 - CANARY_RAMP[0])
    else:
        w = tuple(float(x) for x in weights.split(",")) if weights else (1.0,) * len(parsed)
    return ExperimentSpec(exp_id, kind, parsed, w, exposure=exposure, canary=canary)


def register(app, s: Settings) -> None:

    @app.command(
        argument("action", type=str),
        argument("experiment_id", required=False, default=""),
        option("--kind", default="ranker", help="ranker | coldstart"),
        option("--arm", "arms", multiple=True,
               help="NAME=POLICY: baseline, cost:W, describe:on|off, slow:MS (repeatable)"),
        option("--weights", default=None, help="comma-separated relative weights"),
        option("--exposure", type=float, default=None, help="share of users in the experiment"),
        option("--canary", is_flag=True, help="start: treatment first at 1%, ramped by `ramp`"),
        option("--share", type=float, default=None, help="ramp: the canary's treatment share"),
        option("--auto", is_flag=True, help="ramp: run the canary controller until done"),
        option("--interval", type=float, default=10.0, help="ramp --auto: seconds per look"),
        option("--min-units", type=int, default=500, help="ramp --auto: answers per step"),
        option("--quality-window-s", type=float, default=0.0,
               help="ramp --auto: conversion guardrail's window (stream s; 0 = off)"),
        option("--rollback", is_flag=True, help="stop: mark as rolled back"),
        option("--out", default="docs/experiments", help="report: output folder"),
        option("--window-s", type=float, default=3600.0, help="report: conversion window"),
        name="experiment",
    )
    async def experiment(self, action: str, experiment_id: str, kind: str, arms: tuple,
                         weights: Optional[str], exposure: Optional[float], canary: bool,
                         share: Optional[float], auto: bool, interval: float, min_units: int,
                         quality_window_s: float, rollback: bool, out: str,
                         window_s: float) -> None:
        """Experiments: start | status | ramp | stop | report (docs/experiments.md)."""
        try:
            result = await _run(action, experiment_id, kind=kind, arms=list(arms),
                                weights=weights, exposure=exposure, canary=canary, share=share,
                                auto=auto, interval=interval, min_units=min_units,
                                quality_window_s=quality_window_s, rollback=rollback, out=out, window_s=window_s, say=self.say)
        except (ValueError, KeyError) as exc:
            print(f"recstream experiment: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        self.say(json.dumps(result, sort_keys=True, default=str))

    async def _run(action: str, exp_id: str, *, kind: str, arms: list[str],
                   weights: Optional[str], exposure: Optional[float], canary: bool,
                   share: Optional[float], auto: bool, interval: float, min_units: int,
                   quality_window_s: float, rollback: bool, out: str, window_s: float,
                   say) -> Any:
        if action == "status":
            specs = await read_all(s)
            chosen = [specs[exp_id]] if exp_id else list(specs.values())
            return [json.loads(x.to_json()) for x in chosen]
        if not exp_id:
            raise ValueError(f"{action} needs an experiment id")
        specs = await read_all(s)
        if action == "start":
            held = specs.get(exp_id)
            spec = new_spec(exp_id, kind, arms, weights,
                            1.0 if exposure is None else exposure, canary)
            if held is not None:  # a restart is a new version of the same id (same salt)
                spec = held.replace(**{k: getattr(spec, k) for k in
                                       ("kind", "arms", "weights", "exposure", "canary")},
                                    state="running")
            return json.loads((await publish(s, spec)).to_json())
        spec = specs.get(exp_id)
        if spec is None:
            raise ValueError(f"no experiment {exp_id!r} on the topic")
        if action == "stop":
            state = "rolled_back" if rollback else "stopped"
            return json.loads((await publish(s, spec.replace(state=state))).to_json())
        if action == "ramp":
            if auto:
                final = await control_loop(s, spec, interval_s=interval, min_units=min_units,
                                           quality_window_s=quality_window_s, say=say)
                return json.loads(final.to_json())
            changes: dict[str, Any] = {}
            if exposure is not None:
                changes["exposure"] = exposure
            if share is not None:
                return json.loads((await publish(s, with_share(spec, share, **changes))).to_json())
            if not changes:
                raise ValueError("ramp needs --share, --exposure or --auto")
            return json.loads((await publish(s, spec.replace(**changes))).to_json())
        if action == "report":
            data = await load(s, exp_id)
            per_arm, contaminated = join(data.served, data.watches, data.ratings, data.costs,
                                         window_s=window_s)
            result = analyse(spec, per_arm, contaminated)
            midpoint = (s.rating_min + s.rating_max) / 2.0
            result["interleaving"] = {
                arm.name: interleaving_summary(*interleaving_winners(
                    [x for x in data.served if x.arm == arm.name], data.watches,
                    {k: (data.rated_at[k], v) for k, v in data.ratings.items()},
                    window_s=window_s, rating_midpoint=midpoint))
                for arm in spec.arms if arm.policy.get("ranker") == "interleave"}
            return str(write(result, Path(out)))
        raise ValueError(f"unknown action {action!r}: start | status | ramp | stop | report")
