"""Drift alarms (models.drift.calibrate/alarm) on the simulator's drifts: delay and false alarms.

Stream features per 5-minute window of event time — rating values (1..10, KS), line
kinds (watch/rate/account/recommendation/rejected, chi-square), redelivered lines
(first/repeat, chi-square), lines out of time (more than 2 minutes behind the stream clock
or an hour ahead of it, per arrival window: a rate, ``models.drift.rate_alarm``), time
order (the gap to the previous line's time; computed, not alarmed since #12 phase 5)
and the popularity profile of what users
start or rate (rank of the movie in the reference window: top 10, 11-100, 101-1000,
beyond, never seen; computed, not alarmed: see FEATURES) — against a reference taken from
the first 6 simulated hours of a clean run, thresholds calibrated to 1 false alarm a day
over 288 windows x 4 features.

Runs (same seed, same world, 24 simulated hours each): a clean one (1% malformed lines)
and one per scenario with the scenario on from the start (rating-scale-10 switches at
hour 1).  A scenario cannot start mid-run, so each is measured by splicing: the clean
run up to a change point, the scenario run after it; change points at hours 8, 10, ..., 18
give six delays per scenario, of which the median is reported.  False alarms per day: the
clean run's alarms over hours 6-24.  Scenarios: rating-scale-10, duplicates, out-of-order,
population-bias (a population shift: a group with other tastes and lower activity).

API objects: movie-schema violations (``recstream.schemas``) per window of 200
real course objects, reference = 5,000 of them; field loss applies the
simulator's ``extra-fields`` rule (20% of objects lose one of runtime, budget,
vote_count, overview, release_date, genres) from window 20 on.

    .venv/bin/python bench/drift.py [--users 20000] [--seed 42]
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import multiprocessing
import os
import pickle
import sys
from collections import deque
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.drift import alarm, calibrate, calibrate_rate, rate_alarm  # noqa: E402
from recstream.clock import StreamClock  # noqa: E402
from recstream.parsing import parse_line  # noqa: E402
from recstream.records import AccountCreated, Rating, RecommendationOutcome, WatchMinute  # noqa: E402
from recstream.schemas import validate_movie  # noqa: E402
from recstream.sim.options import SimOptions  # noqa: E402
from recstream.sim.recommenders import builtin  # noqa: E402
from recstream.sim.sinks import MemorySink  # noqa: E402
from recstream.sim.traffic import Platform  # noqa: E402
from recstream.sim.world import build_synthetic  # noqa: E402

WINDOW_S, REF_H, DAY = 300.0, 6, 86_400.0
CHANGE_HOURS = (8, 10, 12, 14, 16, 18)
# "popularity" (the reference-window rank profile of started/rated movies) is computed but
# not alarmed: on a clean simulated day it fired 186 times in 18 h (248/day, 2026-12-01) —
# the reference's rank list ages as the day goes on; a population-shift feature needs a
# stationary reference (e.g. a sliding one) before it can alarm.
FEATURES = ("rating", "kind", "dup", "late")
ORDINAL = {"rating", "order", "popularity"}
# "late" (a rate, models.drift.rate_alarm): lines more than LATE_S behind the stream clock or
# more than AHEAD_S ahead of it, by arrival window — a clean stream (almost) never has one;
# it replaces "order" (the gap to the previous line, kept as a histogram, not alarmed),
# whose shift under the out-of-order scenario was far below any PSI floor (phase 4).
RATES = {"late"}
LATE_S, AHEAD_S = 120.0, 3600.0  # twice the watch-minute cadence: a clean stream has batches ~60 s late
RATE_FLOOR_SHARE = 0.001  # practical effect: one line in a thousand, and 3x the reference
GAP_EDGES_S = (-3600.0, -300.0, -60.0, -1.0, 1.0, 60.0, 300.0, 3600.0)  # 9 ordered bins
RANK_EDGES = (10, 100, 1000)  # + "beyond" + "never seen in the reference"
KINDS = {WatchMinute: 0, Rating: 1, AccountCreated: 2, RecommendationOutcome: 3}
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlip-stream-samples"


def sim_lines(name: str, users: int, seed: int, scenarios: dict, cache: str) -> list[str]:
    """One simulated day's lines; with ``cache``, kept as ``<cache>/<name>-<users>-<seed>.pkl``
    (the same function and arguments give the same lines: the simulator is seeded)."""
    path = Path(cache) / f"{name}-{users}-{seed}.pkl" if cache else None
    if path is not None and path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    lines = asyncio.run(run_sim(users, seed, scenarios))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            pickle.dump(lines, f)
    return lines


async def run_sim(users: int, seed: int, scenarios: dict) -> list[str]:
    options = SimOptions(users=users, seed=seed, fast=True, duration=DAY, kafka=False, api=False,
                         truth_oracle=False, scenarios=scenarios)
    world = build_synthetic(options)
    sink = MemorySink()
    await Platform(world, options, builtin("popularity", world), [sink]).run()
    return sink.lines


def reference_ranks(lines: list[str], start: float) -> dict[str, int]:
    """Movie -> popularity rank (0 = most started or rated) in the reference hours."""
    counts: dict[str, int] = {}
    for line in lines:
        rec = parse_line(line, rating_min=1, rating_max=10)
        t = getattr(rec, "time", None)
        if t is None or t - start >= REF_H * 3600:
            continue
        if isinstance(rec, Rating) or (isinstance(rec, WatchMinute) and rec.minute == 0):
            counts[rec.movie] = counts.get(rec.movie, 0) + 1
    return {m: i for i, m in enumerate(sorted(counts, key=counts.get, reverse=True))}


def windows(lines: list[str], start: float, ranks: dict[str, int]) -> dict[int, dict[str, np.ndarray]]:
    """Per window index: the five feature histograms."""
    out: dict[int, dict[str, np.ndarray]] = {}
    recent: deque = deque()
    seen: set[str] = set()
    t = prev = start
    clock = StreamClock(max_jump_s=AHEAD_S)  # a far-future line does not move it
    for line in lines:
        rec = parse_line(line, rating_min=1, rating_max=10)
        if hasattr(rec, "time"):
            now = clock.now
            late = bool(now) and (now - rec.time > LATE_S or rec.time - now > AHEAD_S)
            arrival = _window(out, int((clock.observe(rec.time) - start) // WINDOW_S))
            if arrival is not None:
                arrival["late"][int(late)] += 1
        t = getattr(rec, "time", t)
        w = int((t - start) // WINDOW_S)
        gap, prev = t - prev, t
        h = _window(out, w)
        if h is None:
            continue
        h["kind"][KINDS.get(type(rec), 4)] += 1
        h["order"][bisect.bisect_right(GAP_EDGES_S, gap)] += 1
        if isinstance(rec, Rating):
            h["rating"][min(max(rec.rating, 1), 10) - 1] += 1
        if isinstance(rec, Rating) or (isinstance(rec, WatchMinute) and rec.minute == 0):
            rank = ranks.get(rec.movie)
            h["popularity"][len(RANK_EDGES) + 1 if rank is None
                            else bisect.bisect_right(RANK_EDGES, rank)] += 1
        h["dup"][int(line in seen)] += 1
        seen.add(line)
        recent.append((t, line))
        while recent and t - recent[0][0] > 2 * WINDOW_S:
            seen.discard(recent.popleft()[1])
    return out


def _window(out: dict[int, dict[str, np.ndarray]], w: int) -> dict[str, np.ndarray] | None:
    if w < 0 or w >= DAY / WINDOW_S:
        return None
    h = out.get(w)
    if h is None:
        h = out[w] = {"rating": np.zeros(10), "kind": np.zeros(5), "dup": np.zeros(2),
                      "order": np.zeros(len(GAP_EDGES_S) + 1), "late": np.zeros(2),
                      "popularity": np.zeros(len(RANK_EDGES) + 2)}
    return h


def thresholds(ref: dict[int, dict]) -> tuple[dict, dict, dict]:
    ref_w = [w for w in ref if w < REF_H * 3600 / WINDOW_S]
    reference = {f: sum(ref[w][f] for w in ref_w) for f in FEATURES}
    sizes = {f: float(np.median([ref[w][f].sum() for w in ref_w])) for f in reference}
    th = {f: calibrate_rate(reference[f][1], reference[f].sum(), alarms_per_day=1.0,
                            windows_per_day=288, tests=len(FEATURES),
                            floor_share=RATE_FLOOR_SHARE) if f in RATES else
          calibrate(reference[f], max(int(sizes[f]), 1), alarms_per_day=1.0,
                    windows_per_day=288, tests=len(FEATURES)) for f in reference}
    return reference, sizes, th


def fires(reference: dict, th: dict, h: dict, f: str) -> bool:
    if f in RATES:
        return rate_alarm(h[f][1], h[f].sum(), th[f]).fired
    return alarm(reference[f], h[f], th[f], ordinal=f in ORDINAL).fired


def alarms(reference: dict, th: dict, run: dict[int, dict], first: int) -> list[tuple[int, str]]:
    return [(w, f) for w in sorted(run) if w >= first for f in FEATURES
            if fires(reference, th, run[w], f)]


def clean_report(ref: dict[int, dict]) -> dict:
    reference, sizes, th = thresholds(ref)
    first = int(REF_H * 3600 / WINDOW_S)
    found = alarms(reference, th, ref, first)
    tested_h = (max(ref) + 1 - first) * WINDOW_S / 3600
    return {"false_alarms": len(found), "false_alarms_per_day": round(len(found) * 24 / tested_h, 2),
            "by_feature": sorted({f for _, f in found}), "hours_tested_clean": round(tested_h, 1),
            "median_window_events": {f: int(sizes[f]) for f in sizes},
            "min_psi": {f: round(th[f].min_psi, 3) for f in th if f not in RATES},
            "min_share": {f: th[f].min_share for f in th if f in RATES}}


def scenario_report(clean: dict[int, dict], drifted: dict[int, dict]) -> dict:
    """Splice clean → drifted at each change point; delay = first alarm at or after it."""
    reference, _, th = thresholds(clean)
    clean_alarms = {w for w, _ in alarms(reference, th, clean, 0)}
    drift_alarms: dict[int, set[str]] = {}
    for w, f in alarms(reference, th, drifted, 0):
        drift_alarms.setdefault(w, set()).add(f)
    delays, features = [], set()
    for hour in CHANGE_HOURS:
        change = int(hour * 3600 / WINDOW_S)
        hit = next((w for w in sorted(drift_alarms) if w >= change), None)
        delays.append(None if hit is None else (hit - change + 1) * WINDOW_S / 60)
        if hit is not None:
            features |= drift_alarms[hit]
    found = [d for d in delays if d is not None]
    return {"detected": len(found) == len(delays), "detected_at": f"{len(found)}/{len(delays)}",
            "median_delay_min": float(np.median(found)) if found else None,
            "delays_min": delays, "first_alarm_features": sorted(features),
            "clean_alarms_before_change": sum(1 for w in clean_alarms
                                              if int(REF_H * 3600 / WINDOW_S) <= w
                                              < int(CHANGE_HOURS[0] * 3600 / WINDOW_S))}


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


SCENARIOS = {
    "rating-scale-10": {"rating-scale-10": {"switch_after_s": 3600.0}},
    "duplicates": {"duplicates": {}},
    "out-of-order": {"out-of-order": {}},
    "population-bias": {"population-bias": {}},
}


def run_windows(name: str, args: argparse.Namespace, t0: float, ranks: dict | None) -> tuple:
    """(windows, ranks) of one run; with ``--cache`` the windows are kept beside the lines."""
    path = Path(args.cache) / f"{name}-{args.users}-{args.seed}.win.pkl" if args.cache else None
    if path is not None and path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    scenarios = {"malformed": {}, **SCENARIOS.get(name, {})}
    lines = sim_lines(name, args.users, args.seed, scenarios, args.cache)
    ranks = reference_ranks(lines, t0) if ranks is None else ranks
    out = (windows(lines, t0, ranks), ranks)
    if path is not None:
        with open(path.with_suffix(".tmp"), "wb") as f:
            pickle.dump(out, f)
        path.with_suffix(".tmp").replace(path)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--cache", default="", help="keep each run's lines and windows here, reuse them")
    p.add_argument("--only", action="append", default=[], choices=sorted(SCENARIOS))
    p.add_argument("--jobs", type=int, default=1, help="runs' windows in this many processes "
                   "(the alarmed features are the same; only the unalarmed popularity profile "
                   "then ranks movies by each run's own first hours)")
    p.add_argument("--no-api", action="store_true", help="leave out the API field-loss part")
    args = p.parse_args()
    from recstream.sim.lines import parse_start
    t0 = parse_start(SimOptions().start)
    print(json.dumps({"load": os.getloadavg(), "users": args.users, "seed": args.seed}), flush=True)
    names = [n for n in SCENARIOS if not args.only or n in args.only]
    if args.jobs > 1:  # each run's windows in its own process (popularity ranks from each run)
        with multiprocessing.Pool(min(args.jobs, len(names) + 1)) as pool:
            done = pool.starmap(run_windows, [(n, args, t0, None) for n in ["clean"] + names])
    else:
        done = [run_windows("clean", args, t0, None)]
        done += [run_windows(n, args, t0, done[0][1]) for n in names]
    clean = done[0][0]
    print(json.dumps({"clean": clean_report(clean)}), flush=True)
    for name, (drifted, _) in zip(names, done[1:]):
        print(json.dumps({name: scenario_report(clean, drifted)}), flush=True)
    if not args.no_api:
        print(json.dumps({"api_field_loss": api_objects(args.seed)}), flush=True)


if __name__ == "__main__":
    main()
