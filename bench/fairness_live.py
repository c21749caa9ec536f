"""Issue #14 phase 3: the live fairness monitor on the real worker, population-bias on vs off.

For each arm, one embedded Tansu broker, one ``recstream worker`` and ``recstream
sim`` (its movie/user API and its graders' loop over HTTP) on free ports, same
seed.  The operator's group file (``RECSTREAM_FAIRNESS_GROUPS_FILE``) names:

* **on**: the simulator's population-bias group (the same seeded world built here;
  checked afterwards against the ``group`` the truth file records per session);
* **off**: the scenario off and an equally sized random label (the monitor must
  stay quiet: nothing real separates the label from the rest).

Every ``--poll-s`` wall seconds it reads the worker's ``recstream_fairness_*``
gauges; at the end it reports, per (attribute, group), the last values, the
largest lower bound of the shortfall, and how many polls were above the
requirement's 0.2 (what ``RecstreamFairnessShortfall`` alerts on).

    .venv/bin/python bench/fairness_live.py [--speed 120] [--hours 8] [--rate 10]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recstream.broker import start_tansu, stop  # noqa: E402
from recstream.sim.options import SimOptions  # noqa: E402
from recstream.sim.world import build_synthetic  # noqa: E402
from tests.brokers import free_port  # noqa: E402
from tests.integration.conftest import Worker  # noqa: E402

BOUND = 0.2
GAUGES = ("recstream_fairness_answers", "recstream_fairness_conversion",
          "recstream_fairness_pick_rating", "recstream_fairness_shortfall_lower")


def group_file(arm: str, args: argparse.Namespace, path: Path) -> set[int]:
    scenarios = {"population-bias": {}} if arm == "on" else {}
    world = build_synthetic(SimOptions(users=args.users, movies=args.movies, seed=args.seed,
                                       scenarios=scenarios))
    ids = np.asarray(world.population.ids)
    if arm == "on":
        members = ids[np.asarray(world.population.group) == 1]
    else:
        rng = np.random.default_rng(args.seed + 1)
        members = ids[rng.random(len(ids)) < 0.15]
    path.write_text("user,group\n" + "".join(f"{int(u)},group\n" for u in members))
    return {int(u) for u in members}


def gauges(worker: Worker) -> dict:
    _, body = worker.get("/metrics")
    out: dict = defaultdict(dict)
    for line in body.decode().splitlines():
        name = line.split("{", 1)[0]
        if name not in GAUGES:
            continue
        labels = dict(kv.split("=", 1) for kv in line.split("{", 1)[1].split("}", 1)[0].split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        key = f'{labels["attribute"]}={labels["group"]}'
        field = name.replace("recstream_fairness_", "")
        if "measure" in labels:
            field += ":" + labels["measure"]
        out[key][field] = float(line.rsplit(" ", 1)[1])
    return out


def truth_groups(path: Path) -> dict[int, int]:
    seen: dict[int, int] = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("kind") == "session":
                seen[int(rec["user"])] = int(rec["group"])
    return seen


def run_arm(arm: str, args: argparse.Namespace, tmp: Path) -> dict:
    groups_path = tmp / f"groups-{arm}.csv"
    members = group_file(arm, args, groups_path)
    port, api_port = free_port(), free_port()
    tansu = start_tansu(port, log_path=tmp / f"tansu-{arm}.log")
    run = uuid.uuid4().hex[:8]
    worker = Worker(f"tansu://127.0.0.1:{port}", f"fair-{arm}-{run}", f"movielog-{run}",
                    tmp / f"data-{arm}", tmp / f"worker-{arm}.log",
                    api_url=f"http://127.0.0.1:{api_port}")
    worker.env.update({"RECSTREAM_API_RETRY_S": "2", "RECSTREAM_API_TIMEOUT_S": "1",
                       "RECSTREAM_FAIRNESS_GROUPS_FILE": str(groups_path),
                       "RECSTREAM_FAIRNESS_WINDOW_S": str(args.window_h * 3600)})
    truth = tmp / f"truth-{arm}.jsonl"
    cmd = [sys.executable, "-m", "recstream.sim", "--users", str(args.users), "--movies",
           str(args.movies), "--speed", str(args.speed), "--rate", str(args.rate), "--seed",
           str(args.seed), "--duration", str(args.hours * 3600), "--backfill-days", "7",
           "--backfill-lines", str(args.backfill_lines), "--no-oracle", "--quiet",
           "--truth", str(truth), "--api-port", str(api_port),
           "--recommender", f"http://127.0.0.1:{worker.port}",
           "--topic", worker.env["RECSTREAM_TOPIC"]]
    if arm == "on":
        cmd += ["--scenario", "population-bias"]
    sim, polls = None, []
    load_before = os.getloadavg()
    started = time.monotonic()
    try:
        worker.start()
        with open(tmp / f"sim-{arm}.log", "wb") as out:
            sim = subprocess.Popen(cmd, env=worker.env, cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + args.hours * 3600 / args.speed * 4 + 600
        quiet_since, last_lines = None, -1.0
        while time.monotonic() < deadline:
            time.sleep(args.poll_s)
            polls.append((round(time.monotonic() - started, 1), gauges(worker)))
            if sim.poll() is None:
                continue
            lines = worker.metric("recstream_lines_total")   # the sim is done: until ingested
            if lines != last_lines:
                last_lines, quiet_since = lines, time.monotonic()
            elif time.monotonic() - quiet_since > 3 * args.poll_s:
                break
        time.sleep(35)  # one more export after the last answers were judged
        polls.append((round(time.monotonic() - started, 1), gauges(worker)))
    finally:
        if sim is not None and sim.poll() is None:
            os.killpg(sim.pid, signal.SIGTERM)
            sim.wait(15)
        worker.stop()
        stop(tansu)
    seen = truth_groups(truth)
    agree = (sum((u in members) == bool(g) for u, g in seen.items()) / len(seen)) if seen else None
    summary = {}
    for key in sorted({k for _, p in polls for k in p}):
        bounds = {m: [p[key].get(f"shortfall_lower:{m}", math.nan) for _, p in polls if key in p]
                  for m in ("conversion", "rating")}
        last = polls[-1][1].get(key, {})
        summary[key] = {
            "answers": last.get("answers"), "conversion": last.get("conversion"),
            "pick_rating": last.get("pick_rating"),
            **{f"last_bound_{m}": last.get(f"shortfall_lower:{m}") for m in bounds},
            **{f"max_bound_{m}": max((b for b in v if not math.isnan(b)), default=None)
               for m, v in bounds.items()},
            **{f"polls_over_{m}": sum(b > BOUND for b in v) for m, v in bounds.items()},
        }
    return {"arm": arm, "wall_s": round(time.monotonic() - started, 1),
            "load_before": [round(x, 1) for x in load_before],
            "load_after": [round(x, 1) for x in os.getloadavg()], "polls": len(polls),
            "group_size": len(members), "truth_users": len(seen),
            "group_file_agrees_with_truth": agree, "groups": summary}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speed", type=float, default=120.0)
    p.add_argument("--hours", type=float, default=8.0)
    p.add_argument("--window-h", type=float, default=6.0)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--movies", type=int, default=2_000)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--backfill-lines", type=int, default=20_000)
    p.add_argument("--poll-s", type=float, default=15.0)
    p.add_argument("--arms", default="on,off")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fairness-live-"))
    results = []
    for arm in args.arms.split(","):
        result = run_arm(arm, args, tmp)
        results.append(result)
        print(json.dumps(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"logs in {tmp}")


if __name__ == "__main__":
    main()
