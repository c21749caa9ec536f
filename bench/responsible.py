"""Issue #14 on the simulator: the fairness audit and the feedback-loop mitigation.

Runs the platform in process (fast clock) against a recommender and turns its
movielog into the audit's :class:`~recstream.ops.audit_report.Telemetry`
exactly as ``recstream audit`` would read it (answers from the platform's
outcome lines, watch starts, ratings), with demographics from the world's
population (what the user API serves):

1. **fairness**, population-bias on vs off: the audit's "group" attribute is
   the simulator's group (on) or an equally sized random label (off);
2. **mitigation**: a personalised recommender with a popularity loop (true
   taste + noise + popularity), plain vs :func:`models.feedback.rerank` — the
   function serving's MitigatedRanker applies — compared on exposure Gini,
   top-1% share, coverage and conversion;
3. **security** (phase 5): sybil waves and 30% new accounts; the audit's offline
   replay of the sybil detector scored against the simulator's truth, as the
   audit reads the movielog now (each young account's first minutes) and as it
   did before (one minute per watch: every young rating looked shallow).

Not through the worker: the worker's own path is covered by tests; this measures
the policies and the audit on the simulator's ground truth.

    .venv/bin/python bench/responsible.py [--users 20000] [--hours 12] [--seed 42]
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.fairness import difference_ci  # noqa: E402
from models.feedback import rerank  # noqa: E402
from recstream.ops.audit import add_line  # noqa: E402
from recstream.ops.audit_report import (Telemetry, conversions, fairness,  # noqa: E402
                                        feedback_measures, replay_detector)
from recstream.parsing import parse_line  # noqa: E402
from recstream.records import RecommendationOutcome  # noqa: E402
from recstream.settings import Settings  # noqa: E402
from recstream.sim.options import SimOptions  # noqa: E402
from recstream.sim.recommenders import builtin  # noqa: E402
from recstream.sim.sinks import MemorySink, MemoryTruth  # noqa: E402
from recstream.sim.traffic import Platform  # noqa: E402
from recstream.sim.world import build_synthetic  # noqa: E402

GENDERS = ("M", "F")


class LoopRecommender:
    """True taste + noise + a popularity pull: what a model trained on its own exposure drifts to."""

    server = "loop:8082"

    def __init__(self, world, *, k: int = 20, noise: float = 0.7, pull: float = 0.8,
                 weight: float = 0.0, explore_slots: int = 0, seed: int = 0) -> None:
        self.world, self.k, self.noise, self.pull = world, k, noise, pull
        self.weight, self.explore_slots = weight, explore_slots
        w = np.log1p(world.catalog.weight.astype(np.float64))
        self.pop_z = (w - w.mean()) / (w.std() or 1.0)
        self.popularity = world.catalog.weight.astype(np.float64)
        self.seed = seed

    async def __call__(self, user_id: int) -> list[str]:
        world = self.world
        i = world.population.index_of(user_id)
        if i is None:
            top = np.argsort(-self.pop_z)[: self.k]
            return [world.catalog.ids[m] for m in top]
        rng = np.random.default_rng((self.seed, int(user_id)))
        scores = world.taste.ratings(i).astype(np.float64)
        scores += self.noise * rng.standard_normal(scores.shape) + self.pull * self.pop_z
        if world.taste.minor[i]:
            scores[world.taste.unsafe_for_minor] = -np.inf
        cand = np.argpartition(-scores, self.k + 200)[: self.k + 200]
        cand = cand[np.argsort(-scores[cand])]
        if self.weight > 0 or self.explore_slots > 0:
            top = rerank(cand, scores[cand], self.popularity[cand], k=self.k, weight=self.weight,
                         explore_slots=self.explore_slots, seed=int(user_id))
        else:
            top = cand[: self.k]
        return [world.catalog.ids[m] for m in top]


async def simulate(options: SimOptions, make_recommender, truth=None):
    world = build_synthetic(options)
    sink = MemorySink()
    platform = Platform(world, options, make_recommender(world), [sink], truth=truth)
    await platform.run()
    return world, sink.lines


def telemetry(world, lines: list[str], settings: Settings) -> Telemetry:
    t, started = Telemetry(), set()
    for line in lines:
        rec = parse_line(line, rating_min=settings.rating_min, rating_max=settings.rating_max)
        if isinstance(rec, RecommendationOutcome):
            if rec.status == 200 and rec.movies:
                t.served.append((rec.time, rec.user, list(rec.movies)))
        else:
            add_line(t, line.encode(), settings, started)
    cat, taste = world.catalog, world.taste  # the sim's movie API confirms every movie
    t.flags = {m: (not bool(cat.adult[i]), not bool(taste.unsafe_for_minor[i]))
               for i, m in enumerate(cat.ids)}
    pop = world.population
    for i, uid in enumerate(pop.ids.tolist()):
        t.demographics[int(uid)] = (int(pop.age[i]), GENDERS[int(pop.gender[i]) % 2])
    return t.sort()


def run(users: int, hours: float, seed: int, scenarios: dict, make) -> tuple:
    options = SimOptions(users=users, seed=seed, fast=True, duration=hours * 3600, kafka=False,
                         api=False, truth_oracle=False, scenarios=scenarios)
    started = time.perf_counter()
    world, lines = asyncio.run(simulate(options, make))
    return world, lines, time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--hours", type=float, default=12.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default="", help="also write the reports (markdown) to this dir")
    p.add_argument("--plot", default="", help="write the figure (PNG) to this path")
    p.add_argument("--parts", default="fairness,mitigation")
    args = p.parse_args()
    settings = Settings.from_mapping({"rating_max": 10})
    out: dict = {}
    reports = {}
    fair = (("bias_on", {"population-bias": {}}), ("bias_off", {}))
    loop = (("plain", 0.0, 0), ("mitigated", 0.5, 4))
    parts = args.parts.split(",")
    for name, scenarios in fair if "fairness" in parts else ():
        world, lines, secs = run(args.users, args.hours, args.seed, scenarios,
                                 lambda w: builtin("popularity", w))
        t = telemetry(world, lines, settings)
        if name == "bias_on":
            members = world.population.group.astype(bool)
        else:  # an equally sized random label: the audit must not see a difference
            members = np.random.default_rng(args.seed).random(len(world.population)) < 0.15
        t.groups = {int(u): ("group" if m else "rest")
                    for u, m in zip(world.population.ids.tolist(), members)}
        users, conv = conversions(t)
        report = fairness(t, n_boot=1000, seed=args.seed)
        labels = np.asarray([t.groups.get(int(u), "rest") for u in users], dtype=object)
        diff = difference_ci(conv, labels, "group", "rest", n_boot=1000, seed=args.seed,
                             clusters=users)
        reports[f"fairness_{name}"] = report
        section = report.split("## By group")[1]
        out[name] = {"answers": len(conv), "conversion": float(conv.mean()), "sim_s": round(secs, 1),
                     "group_section": section.strip().splitlines()[-1],
                     "group_diff": [100 * v for v in diff]}
        print(name, json.dumps(out[name]), flush=True)
    for name, weight, slots in loop if "mitigation" in parts else ():
        world, lines, secs = run(args.users, args.hours, args.seed, {},
                                 lambda w: LoopRecommender(w, weight=weight, explore_slots=slots,
                                                           seed=args.seed))
        t = telemetry(world, lines, settings)
        m = feedback_measures(t)
        _, conv = conversions(t)
        out[name] = {**{k: round(v, 4) for k, v in m.items()}, "answers": len(conv),
                     "conversion": round(float(conv.mean()), 4), "sim_s": round(secs, 1)}
        print(name, json.dumps(out[name]), flush=True)
    if "security" in parts:
        out["security"] = security_replay(args, settings)
        print("security", json.dumps(out["security"]), flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        for key, text in reports.items():
            Path(args.out, f"{key}.md").write_text(text + "\n")
    if args.plot:
        plot(out, Path(args.plot))
    print(json.dumps(out, indent=2))


def security_replay(args: argparse.Namespace, settings: Settings) -> dict:
    """The audit's offline sybil replay against the truth, now vs one minute per watch."""
    options = SimOptions(users=args.users, seed=args.seed, fast=True, duration=args.hours * 3600,
                         kafka=False, api=False, truth_oracle=False, new_user_share=0.3,
                         scenarios={"sybil": {"every_s": 10_800.0}})
    truth, started = MemoryTruth(), time.perf_counter()
    world, lines = asyncio.run(simulate(options, lambda w: builtin("popularity", w), truth))
    secs = time.perf_counter() - started
    t = telemetry(world, lines, settings)
    fake = {int(u) for rec in truth.records if rec.get("attack") == "sybil" for u in rec["users"]}
    real_new = {u for _, u in t.accounts} - fake
    out = {"sim_s": round(secs, 1), "sybil_accounts": len(fake), "real_new_accounts": len(real_new)}
    for name, early in (("now", t.early_minutes), ("one_minute_per_watch", [])):
        found = set(replay_detector(dataclasses.replace(t, early_minutes=early)).suspected_accounts)
        out[name] = {"recall": round(len(found & fake) / max(len(fake), 1), 4),
                     "false_positives": len(found & real_new)}
    return out


def plot(out: dict, path: Path) -> None:
    """Two panels: conversion by group (bias on/off, 95% CI) and the mitigation's measures."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    names = ["bias_on", "bias_off"]
    diffs = [out[n]["group_diff"] for n in names]
    a.errorbar(range(2), [d[0] for d in diffs],
               yerr=[[d[0] - d[1] for d in diffs], [d[2] - d[0] for d in diffs]], fmt="o",
               capsize=6)
    a.axhline(0, color="grey", lw=0.8)
    a.set_xticks(range(2), ["population-bias on\n(simulator's group)",
                            "off\n(random 15% label)"])
    a.set_ylabel("conversion: group − rest (points)")
    a.set_title("fairness audit: difference and 95% CI")
    keys = [("coverage", "coverage"), ("top1_share", "top-1% share"), ("gini", "Gini"),
            ("conversion", "conversion")]
    x = np.arange(len(keys))
    for i, name in enumerate(("plain", "mitigated")):
        b.bar(x + 0.38 * i, [out[name][k] for k, _ in keys], 0.38, label=name)
    b.set_xticks(x + 0.19, [label for _, label in keys])
    b.set_title("feedback loop: plain vs re-rank (w=0.5, 4 slots)")
    b.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
