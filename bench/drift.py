"""Drift alarms (models.drift.calibrate/alarm) on the simulator's drifts: delay and false alarms.

Stream features per 5-minute window of event time — rating values (1..10,
KS), line kinds (watch/rate/account/recommendation/rejected, chi-square) and
redelivered lines (first/repeat, chi-square) — against a reference taken from
the first 6 simulated hours of a clean run, thresholds calibrated to 1 false
alarm a day over 288 windows × 3 features.  Runs (same seed, same world):

* clean: 24 h with 1% malformed lines → false alarms over hours 6–24, per day;
* rating-scale-10: the simulator switches to 1–10 at hour 12 → delay;
* duplicates: hours 0–12 of the clean run spliced to hours 12–24 of a run with
  the ``duplicates`` scenario (the scenario cannot start mid-run) → delay.

API objects: movie-schema violations (``recstream.schemas``) per window of 200
real course objects, reference = 5,000 of them; field loss applies the
simulator's ``extra-fields`` rule (20% of objects lose one of runtime, budget,
vote_count, overview, release_date, genres) from window 20 on.

    .venv/bin/python bench/drift.py [--users 20000] [--seed 42]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import deque
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.drift import alarm, calibrate  # noqa: E402
from recstream.parsing import parse_line  # noqa: E402
from recstream.records import AccountCreated, Rating, RecommendationOutcome, WatchMinute  # noqa: E402
from recstream.schemas import validate_movie  # noqa: E402
from recstream.sim.options import SimOptions  # noqa: E402
from recstream.sim.recommenders import builtin  # noqa: E402
from recstream.sim.sinks import MemorySink  # noqa: E402
from recstream.sim.traffic import Platform  # noqa: E402
from recstream.sim.world import build_synthetic  # noqa: E402

WINDOW_S, REF_H, CHANGE_H, DAY = 300.0, 6, 12, 86_400.0
KINDS = {WatchMinute: 0, Rating: 1, AccountCreated: 2, RecommendationOutcome: 3}
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlip-stream-samples"


async def run_sim(users: int, seed: int, scenarios: dict) -> list[str]:
    options = SimOptions(users=users, seed=seed, fast=True, duration=DAY, kafka=False, api=False,
                         truth_oracle=False, scenarios=scenarios)
    world = build_synthetic(options)
    sink = MemorySink()
    await Platform(world, options, builtin("popularity", world), [sink]).run()
    return sink.lines


def windows(lines: list[str], start: float) -> dict[int, dict[str, np.ndarray]]:
    """Per window index: the three feature histograms."""
    out: dict[int, dict[str, np.ndarray]] = {}
    recent: deque = deque()
    seen: set[str] = set()
    t = start
    for line in lines:
        rec = parse_line(line, rating_min=1, rating_max=10)
        t = getattr(rec, "time", t)
        w = int((t - start) // WINDOW_S)
        if w < 0 or t - start >= DAY:
            continue
        h = out.setdefault(w, {"rating": np.zeros(10), "kind": np.zeros(5), "dup": np.zeros(2)})
        h["kind"][KINDS.get(type(rec), 4)] += 1
        if isinstance(rec, Rating):
            h["rating"][min(max(rec.rating, 1), 10) - 1] += 1
        h["dup"][int(line in seen)] += 1
        seen.add(line)
        recent.append((t, line))
        while recent and t - recent[0][0] > 2 * WINDOW_S:
            seen.discard(recent.popleft()[1])
    return out


def evaluate(ref: dict[int, dict], run: dict[int, dict], first: int, change: int | None) -> dict:
    ref_w = [w for w in ref if w < REF_H * 3600 / WINDOW_S]
    reference = {f: sum(ref[w][f] for w in ref_w) for f in ("rating", "kind", "dup")}
    sizes = {f: float(np.median([ref[w][f].sum() for w in ref_w])) for f in reference}
    th = {f: calibrate(reference[f], max(int(sizes[f]), 1), alarms_per_day=1.0, windows_per_day=288,
                       tests=3) for f in reference}
    alarms = []
    for w in sorted(run):
        if w < first:
            continue
        for f in reference:
            if alarm(reference[f], run[w][f], th[f], ordinal=(f == "rating")).fired:
                alarms.append((w, f))
    before = [a for a in alarms if change is None or a[0] < change]
    tested_h = ((change if change is not None else max(run) + 1) - first) * WINDOW_S / 3600
    out = {"false_alarms": len(before), "false_alarms_per_day": round(len(before) * 24 / tested_h, 2),
           "hours_tested_clean": round(tested_h, 1),
           "median_window_events": {f: int(sizes[f]) for f in sizes},
           "min_psi": {f: round(th[f].min_psi, 3) for f in th}}
    if change is not None:
        after = [a for a in alarms if a[0] >= change]
        out["detected_by"] = sorted({f for _, f in after})
        out["delay_min"] = (after[0][0] - change + 1) * WINDOW_S / 60 if after else None
    return out


def api_objects(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    objs = [json.loads(line) for line in open(SAMPLES / "movies.jsonl", encoding="utf-8")]
    order = rng.permutation(len(objs))
    fields = ("genres", "runtime", "release_date")
    droppable = ("runtime", "budget", "vote_count", "overview", "release_date", "genres")

    def hist(batch: list[dict]) -> np.ndarray:
        h = np.zeros(len(fields) + 2)
        for obj in batch:
            _, violations = validate_movie(obj)
            bad = [fields.index(f) for f, _ in violations if f in fields]
            h[bad[0] if bad else (len(fields) if not violations else len(fields) + 1)] += 1
        return h

    reference = hist([objs[i] for i in order[:5000]])
    th = calibrate(reference, 200, alarms_per_day=1.0, windows_per_day=288, tests=1)
    rest = [objs[i] for i in order[5000:]]
    results = {"windows_clean": 0, "false_alarms": 0, "field_loss_delay_windows": None}
    for k in range(len(rest) // 200):
        batch = [dict(o) for o in rest[k * 200:(k + 1) * 200]]
        if k >= 20:
            for obj in batch:
                if rng.random() < 0.2:
                    obj.pop(droppable[int(rng.integers(len(droppable)))], None)
        fired = alarm(reference, hist(batch), th).fired
        if k < 20:
            results["windows_clean"] += 1
            results["false_alarms"] += fired
        elif fired and results["field_loss_delay_windows"] is None:
            results["field_loss_delay_windows"] = k - 20 + 1
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    start = SimOptions().start
    from recstream.sim.lines import parse_start
    t0 = parse_start(start)
    change = int(CHANGE_H * 3600 / WINDOW_S)
    first = int(REF_H * 3600 / WINDOW_S)
    clean = windows(asyncio.run(run_sim(args.users, args.seed, {"malformed": {}})), t0)
    print(json.dumps({"clean": evaluate(clean, clean, first, None)}), flush=True)
    scale = windows(asyncio.run(run_sim(args.users, args.seed, {
        "malformed": {}, "rating-scale-10": {"switch_after_s": CHANGE_H * 3600}})), t0)
    print(json.dumps({"rating-scale-10": evaluate(clean, scale, first, change)}), flush=True)
    dups = windows(asyncio.run(run_sim(args.users, args.seed, {"malformed": {}, "duplicates": {}})), t0)
    spliced = {w: (clean if w < change else dups)[w] for w in set(clean) | set(dups)
               if w in (clean if w < change else dups)}
    print(json.dumps({"duplicates": evaluate(clean, spliced, first, change)}), flush=True)
    print(json.dumps({"api_field_loss": api_objects(args.seed)}), flush=True)


if __name__ == "__main__":
    main()
