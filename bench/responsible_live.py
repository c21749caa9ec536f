"""Issue #14 phase 4: the fairness audit and the feedback-loop mitigation through the real worker.

One arm = one embedded Tansu broker, one ``recstream worker`` and ``recstream sim``
(its movie/user API and its graders' loop calling ``/recommend`` over HTTP) on free
ports, same seed; after the simulator's traffic the bench waits until the worker
has counted every line, then reads the topics as ``recstream audit`` does:

* ``bias-on`` / ``bias-off``: the population-bias scenario on (the operator's group
  file names the simulator's group, as ``recstream audit fairness --groups`` takes
  it) or off (an equally sized random label); the report is the command's own
  output (``recstream audit fairness --groups FILE``);
* ``plain`` / ``mitigated``: no scenario; the worker with
  ``RECSTREAM_FEEDBACK_RERANK_WEIGHT`` / ``RECSTREAM_FEEDBACK_EXPLORE_SLOTS`` off or on;
  the audit's feedback measures (exposure Gini, top-1% share, coverage) and
  conversion over the answers the worker logged, the answers by source.

Arms given together run at the same time (one same-run baseline each).

    .venv/bin/python bench/responsible_live.py --arms plain,mitigated [--hours 6]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fairness_live import gauges as fairness_gauges  # noqa: E402
from bench.live_watch import LagSampler, sim_lines, wait_ingested  # noqa: E402
from recstream.broker import start_tansu, stop  # noqa: E402
from recstream.ops.audit import collect  # noqa: E402
from recstream.ops.audit_report import conversions, feedback_measures  # noqa: E402
from recstream.ops.fit import Progress  # noqa: E402
from recstream.settings import Settings  # noqa: E402
from recstream.sim.options import SimOptions  # noqa: E402
from recstream.sim.world import build_synthetic  # noqa: E402
from tests.brokers import free_port  # noqa: E402
from tests.integration.conftest import Worker  # noqa: E402

ARMS = {
    "bias-on": {"scenarios": ["population-bias"], "env": {}},
    "bias-off": {"scenarios": [], "env": {}},
    "plain": {"scenarios": [], "env": {}},
    "mitigated": {"scenarios": [], "env": {"RECSTREAM_FEEDBACK_RERANK_WEIGHT": "0.5",
                                           "RECSTREAM_FEEDBACK_EXPLORE_SLOTS": "4"}},
}


def bias_params(args: argparse.Namespace) -> dict:
    """The population-bias scenario's parameters: its defaults but the group's share of users
    (the per-member effect — activity, genres, dislike of the mainstream — is unchanged)."""
    return {"share": args.group_share}


def group_file(arm: str, args: argparse.Namespace, path: Path) -> int:
    """The simulator's group (bias-on) or a random 15% label: ``user,group`` lines."""
    scenarios = {"population-bias": bias_params(args)} if arm == "bias-on" else {}
    world = build_synthetic(SimOptions(users=args.users, movies=args.movies, seed=args.seed,
                                       scenarios=scenarios))
    ids = np.asarray(world.population.ids)
    if arm == "bias-on":
        members = ids[np.asarray(world.population.group) == 1]
    else:
        members = ids[np.random.default_rng(args.seed + 1).random(len(ids)) < args.group_share]
    path.write_text("user,group\n" + "".join(f"{int(u)},group\n" for u in members))
    return len(members)


def sources(worker: Worker) -> dict:
    _, body = worker.get("/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("recstream_requests_total{"):
            out[line.split('source="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
    return out


def run_arm(arm: str, args: argparse.Namespace, tmp: Path) -> dict:
    spec = ARMS[arm]
    port, api_port = free_port(), free_port()
    tansu = start_tansu(port, log_path=tmp / f"tansu-{arm}.log")
    run = uuid.uuid4().hex[:8]
    worker = Worker(f"tansu://127.0.0.1:{port}", f"resp-{arm}-{run}", f"movielog-{run}",
                    tmp / f"data-{arm}", tmp / f"worker-{arm}.log",
                    api_url=f"http://127.0.0.1:{api_port}")
    worker.env.update({"RECSTREAM_API_RETRY_S": "2", "RECSTREAM_API_TIMEOUT_S": "1",
                       **spec["env"]})
    groups = tmp / f"groups-{arm}.csv"
    group_size = group_file(arm, args, groups) if arm.startswith("bias") else 0
    if group_size:   # the live monitor watches the same group over the whole run
        worker.env.update({"RECSTREAM_FAIRNESS_GROUPS_FILE": str(groups),
                           "RECSTREAM_FAIRNESS_WINDOW_S": str(args.hours * 3600 + 86_400)})
    base = [sys.executable, "-m", "recstream.sim", "--users", str(args.users), "--movies",
            str(args.movies), "--seed", str(args.seed)]
    if spec["scenarios"]:
        scenario_file = tmp / f"scenarios-{arm}.json"
        scenario_file.write_text(json.dumps({"scenarios": {
            name: bias_params(args) if name == "population-bias" else {}
            for name in spec["scenarios"]}}))
        base += ["--scenario-file", str(scenario_file)]
    sim = api = None
    load_before, started = os.getloadavg(), time.monotonic()
    try:
        # The movie/user API from its own simulator process (same seeded world, no traffic):
        # it stays up while the worker catches up after the traffic ends.
        with open(tmp / f"api-{arm}.log", "wb") as out:
            api = subprocess.Popen(base + ["--rate", "0.001", "--duration", "0", "--no-kafka",
                                           "--no-oracle", "--quiet", "--recommender",
                                           "builtin:popularity", "--api-port", str(api_port)],
                                   env=worker.env, cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        worker.start()
        with open(tmp / f"sim-{arm}.log", "wb") as out:
            sim = subprocess.Popen(
                base + ["--speed", str(args.speed), "--rate", str(args.rate), "--duration",
                        str(args.hours * 3600), "--backfill-days", "7", "--backfill-lines",
                        str(args.backfill_lines), "--no-oracle", "--quiet", "--no-api",
                        "--recommender", f"http://127.0.0.1:{worker.port}",
                        "--topic", worker.env["RECSTREAM_TOPIC"]],
                env=worker.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        with LagSampler(worker) as lag:   # the worker must keep up while the traffic runs
            sim.wait(timeout=args.hours * 3600 / args.speed * 4 + 600)
        sim_wall = round(time.monotonic() - started, 1)
        # The answers (our log) and the platform's movielog are complete once the simulator
        # stops; the worker's own ingest may lag behind them on a loaded box (reported).
        caught_up = wait_ingested(worker, tmp / f"sim-{arm}.log", args.catch_up_s)
        by_source = sources(worker)
        if group_size:
            time.sleep(31.0)   # one more export of the live monitor after the last answers
            monitor = fairness_gauges(worker)
        _, body = worker.get("/metrics")
        gauges = {line.split('"')[1]: float(line.rsplit(" ", 1)[1])
                  for line in body.decode().splitlines()
                  if line.startswith("recstream_exposure{")}
        settings = Settings.from_env(worker.env)
        t = asyncio.run(collect(settings, Progress()))
        users, conv = conversions(t)
        lagged = lag.summary(sim_lines(tmp / f"sim-{arm}.log"), sim_wall)
        result = {"arm": arm, "sim_wall_s": sim_wall, "caught_up": caught_up,
                  "consumer_lag": lagged,
                  "answers_logged": len(t.served),
                  "answers_non_empty": sum(bool(m) for _, _, m in t.served),
                  "conversion": round(float(conv.mean()), 4) if len(conv) else None,
                  "requests_by_source": by_source, "live_exposure_gauges": gauges,
                  **{k: round(v, 4) for k, v in feedback_measures(t).items()}}
        if arm.startswith("bias"):
            report = tmp / f"fairness-{arm}.md"
            cli = subprocess.run([sys.executable, "-m", "recstream.cli", "audit", "fairness",
                                  "--groups", str(groups), "--out", str(report)],
                                 env=worker.env, cwd=ROOT, capture_output=True, text=True,
                                 timeout=900)
            text = report.read_text() if report.exists() else cli.stderr[-2000:]
            result["group_size"] = group_size
            result["live_monitor"] = {k: v for k, v in monitor.items() if k.startswith("operator=")}
            result["audit_by_group"] = text.split("## By group", 1)[-1].strip()
    finally:
        for proc in (sim, api):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)
        worker.stop()
        stop(tansu)
    result.update(wall_s=round(time.monotonic() - started, 1),
                  load_before=[round(x, 1) for x in load_before],
                  load_after=[round(x, 1) for x in os.getloadavg()])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arms", default="plain,mitigated", help=",".join(ARMS))
    p.add_argument("--speed", type=float, default=120.0)
    p.add_argument("--hours", type=float, default=6.0)
    p.add_argument("--users", type=int, default=6_000)
    p.add_argument("--movies", type=int, default=2_000)
    p.add_argument("--rate", type=float, default=6.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--backfill-lines", type=int, default=20_000)
    p.add_argument("--catch-up-s", type=float, default=60.0,
                   help="wait at most this long for the worker to ingest every line")
    p.add_argument("--group-share", type=float, default=0.15,
                   help="population-bias: the group's share of users (the scenario's default "
                        "0.15); bias-off labels the same share at random")
    p.add_argument("--sequential", action="store_true",
                   help="run the arms one after the other (each gets the whole box)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="responsible-live-"))
    arms = args.arms.split(",")
    with ThreadPoolExecutor(1 if args.sequential else len(arms)) as pool:
        results = list(pool.map(lambda a: run_arm(a, args, tmp), arms))
    for result in results:
        print(json.dumps(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"logs in {tmp}")


if __name__ == "__main__":
    main()
