"""Issue #14 phase 3: the live fairness monitor's code over the simulator's movielog, bias on vs off.

The platform runs in process (fast clock, built-in popularity recommender, as in
bench/responsible.py) with ``population-bias`` on, then off; its movielog lines
are parsed (:mod:`recstream.parsing`) and fed in time order to
:class:`agents.fairness_watch.FairnessWatch` — the class the worker runs — with
demographics from the world (what the user API serves) and the operator group
file's content: the simulator's group (on) or an equally sized random label
(off).  Every simulated ``--export-min`` minutes the monitor exports, as its
timer does in the worker; reported: how often each group's lower bound was
above the 0.2 requirement (what ``RecstreamFairnessShortfall`` alerts on).

Not through a worker: bench/fairness_live.py does that, but on the shared box
the worker served empty lists (movies not yet confirmed) for most of each run.

    .venv/bin/python bench/fairness_replay.py [--users 10000] [--hours 12] [--seed 42]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.fairness_watch import FairnessWatch  # noqa: E402
from models.fairness_live import GroupConversion  # noqa: E402
from recstream.parsing import parse_line  # noqa: E402
from recstream.prometheus import Metrics  # noqa: E402
from recstream.records import Rating, RecommendationOutcome, WatchMinute  # noqa: E402
from recstream.sim.options import SimOptions  # noqa: E402
from recstream.sim.population import GENDERS  # noqa: E402
from recstream.sim.recommenders import builtin  # noqa: E402
from recstream.sim.sinks import MemorySink  # noqa: E402
from recstream.sim.traffic import Platform  # noqa: E402
from recstream.sim.world import build_synthetic  # noqa: E402

BOUND = 0.2


async def simulate(args: argparse.Namespace, scenarios: dict):
    options = SimOptions(users=args.users, seed=args.seed, fast=True, duration=args.hours * 3600,
                         kafka=False, api=False, truth_oracle=False, scenarios=scenarios)
    world = build_synthetic(options)
    sink = MemorySink()
    await Platform(world, options, builtin(args.recommender, world), [sink]).run()
    return world, sink.lines


def run(arm: str, args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    world, lines = asyncio.run(simulate(args, {"population-bias": {}} if arm == "on" else {}))
    pop = world.population
    ids = np.asarray(pop.ids)
    if arm == "on":
        members = ids[np.asarray(pop.group) == 1]
    else:
        members = ids[np.random.default_rng(args.seed + 1).random(len(ids)) < 0.15]
    groups = {int(u): "group" for u in members}
    profiles = {int(u): SimpleNamespace(age=int(a), gender=GENDERS[int(g)])
                for u, a, g in zip(ids, np.asarray(pop.age), np.asarray(pop.gender))}
    watch = FairnessWatch(monitor=GroupConversion(window_s=args.window_h * 3600),
                          profile_of=profiles.get, metrics=Metrics())
    watch.groups = groups  # the operator's file, already read
    kinds = (Rating, RecommendationOutcome, WatchMinute)
    records = [r for r in (parse_line(line, rating_min=1, rating_max=10) for line in lines)
               if isinstance(r, kinds)]
    records.sort(key=lambda r: r.time)
    step, next_export, polls = args.export_min * 60.0, None, []
    for rec in records:
        if next_export is None:
            next_export = rec.time + args.window_h * 3600 / 2   # half a window of history first
        while rec.time >= next_export:
            watch.monitor.advance(next_export)
            polls.append(watch.export())
            next_export += step
        watch.observe([(None, rec)])
    stats = watch.monitor.stats()
    out = {}
    for key in sorted(stats):
        s = stats[key]
        bounds = [p.get(key, math.nan) for p in polls]
        out["=".join(key)] = {"answers": s.answers, "conversion": round(s.conversion, 4),
                              "pick_rating": round(s.rating, 3) if s.ratings else None,
                              "max_bound_conversion": round(max((b for b in bounds
                                                                 if not math.isnan(b)),
                                                                default=math.nan), 3),
                              "polls_over": sum(b > BOUND for b in bounds)}
    rating_flags = {"=".join(k): round(v, 3) for k, v in (
        (k, _rating_bound(watch, stats, k)) for k in stats) if v > BOUND}
    return {"arm": arm, "lines": len(lines), "polls": len(polls),
            "wall_s": round(time.perf_counter() - started, 1),
            "load": [round(x, 1) for x in os.getloadavg()], "groups": out,
            "rating_bounds_over_at_end": rating_flags}


def _rating_bound(watch, stats, key) -> float:
    from models.fairness_live import shortfall_bound
    return shortfall_bound(stats, key[0], key[1], measure="rating", min_n=watch.min_n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--hours", type=float, default=12.0)
    p.add_argument("--window-h", type=float, default=6.0)
    p.add_argument("--export-min", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--recommender", default="popularity")
    args = p.parse_args()
    for arm in ("on", "off"):
        print(json.dumps(run(arm, args)), flush=True)


if __name__ == "__main__":
    main()
