"""Interleaving vs A/B through the real worker and the graders' loop, on the same traffic.

Tansu + ``recstream worker`` + ``recstream sim`` on free ports; one ranker experiment
with three arms, declared before the traffic: ``control=baseline`` (the service),
``degraded=noisy:S`` (the service's scores plus Gaussian noise of S times their
spread: a known-worse model) and ``il=interleave:baseline/noisy:S`` (team draft of the
two, teams recorded per answer).  So the A/B test (control vs degraded users) and the
interleaving test (il users, credit from their later watches, completions, ratings)
run on the same arrivals at the same time.

After the run: ``recstream experiment report il`` (telemetry joined from the
recommendations topic and movielog) and the simulator's ground truth (the true
quality gap: mean true rating of the served lists, control vs degraded).  The users an
experiment needs for 80% power at alpha 0.05 are estimated from the measured effects
and spreads (normal approximation): A/B ``2 · 2(z+z)² σ²/Δ²`` users, interleaving
``(z+z)² σ²/μ²`` users (one-sample test of per-user mean credit); the ratio is A/B
users ÷ interleaving users.

    .venv/bin/python bench/interleaving_live.py [--noise 1.0] [--sim-seconds 1200]

Writes the report ``docs/experiments/ID.md`` and the run's numbers ``ID-live.json``
(units and requests needed per design, their ratio with a 95% interval, the truth's
gap, answers per arm by source and whether interleaved: ``bench/interleaving_power.py``).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.course_experiments import cli, mean_of, truth_arms  # noqa: E402
from bench.first_minutes import read_metrics, wait_ready  # noqa: E402
from bench.interleaving_power import answer_breakdown, compare  # noqa: E402
from bench.procs import free_port  # noqa: E402
from models.experiments.spec import ExperimentSpec  # noqa: E402
from recstream.broker import start_tansu, stop, wait_for_port  # noqa: E402
from recstream.ops.provenance import scan  # noqa: E402
from recstream.settings import Settings  # noqa: E402
from recstream.topics import topic_names  # noqa: E402

OUT = ROOT / "docs" / "experiments"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--noise", default="1.0")
    p.add_argument("--degraded", default="",
                   help="the degraded ranker's arm policy (e.g. random, noisy:3.0); default noisy:NOISE")
    p.add_argument("--sim-seconds", type=float, default=1200.0)
    p.add_argument("--speed", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--movies", type=int, default=3_000)
    p.add_argument("--backfill-lines", default="30000")
    p.add_argument("--seed", default="13")
    p.add_argument("--experiment", default="il", help="experiment id (names the report)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="il-live-"))
    load_start = os.getloadavg()
    broker_port, web_port, api_port = free_port(), free_port(), free_port()
    tansu = start_tansu(broker_port, log_path=work / "tansu.log")
    env = {**os.environ, "RECSTREAM_BROKER": f"tansu://127.0.0.1:{broker_port}",
           "RECSTREAM_WEB_PORT": str(web_port), "RECSTREAM_WEB_HOST": "127.0.0.1",
           "RECSTREAM_CANONICAL_URL": f"http://127.0.0.1:{web_port}",
           "RECSTREAM_DATA_DIR": str(work / "data"), "RECSTREAM_REGISTRY_DIR": str(work / "models"),
           "RECSTREAM_API_URL": f"http://127.0.0.1:{api_port}", "RECSTREAM_APP_ID": "illive"}
    exe = [sys.executable, "-m", "recstream.cli"]
    children: list[subprocess.Popen] = []
    bad = args.degraded or f"noisy:{args.noise}"
    arms = ["control=baseline", f"degraded={bad}", f"il=interleave:baseline/{bad}"]
    try:
        worker = subprocess.Popen([*exe, "worker", "-l", "warn"], env=env, cwd=ROOT, start_new_session=True,
                                  stdout=open(work / "worker.log", "wb"), stderr=subprocess.STDOUT)
        children.append(worker)
        wait_for_port("127.0.0.1", web_port, 180, worker)
        wait_ready(web_port, worker)
        spec = ExperimentSpec.from_json(json.dumps(json.loads(cli(
            env, "experiment", "start", args.experiment, *sum((["--arm", a] for a in arms), [])))))
        time.sleep(3)
        truth = work / "truth.jsonl"
        started = time.monotonic()
        sim = subprocess.Popen([*exe, "sim", "--api-port", str(api_port), "--quiet", "--seed", args.seed,
                                "--users", str(args.users), "--movies", str(args.movies),
                                "--speed", str(args.speed), "--rate", str(args.rate),
                                "--duration", str(args.sim_seconds), "--new-user-share", "0.05",
                                "--backfill-days", "7", "--backfill-lines", args.backfill_lines,
                                "--truth", str(truth), "--no-oracle",
                                "--recommender", f"http://127.0.0.1:{web_port}"],
                               env=env, cwd=ROOT, start_new_session=True,
                               stdout=open(work / "sim.log", "wb"), stderr=subprocess.STDOUT)
        children.append(sim)
        while sim.poll() is None:
            time.sleep(15)
            try:
                answers, lines = read_metrics(web_port)
            except OSError:
                continue
            print(json.dumps({"real_s": round(time.monotonic() - started), "lines": lines,
                              "answers": answers}), flush=True)
        time.sleep(3)
        report = cli(env, "experiment", "report", args.experiment, "--out", str(OUT))
        result = json.load(open(OUT / f"{args.experiment}.json"))
        sessions: dict[int, list[dict]] = {}
        for line in open(truth):
            r = json.loads(line)
            if r.get("kind") == "session":
                sessions.setdefault(r["user"], []).append(r)
        served_true = truth_arms(spec, sessions, {"served_true_mean": mean_of("served_true_mean")})
        gap = {arm: float(np.nanmean(d.per_user["served_true_mean"])) for arm, d in served_true.items()}
        c, d = served_true["control"].per_user["served_true_mean"], served_true["degraded"].per_user["served_true_mean"]
        c, d = c[np.isfinite(c)], d[np.isfinite(d)]
        if min(len(c), len(d)) < 2:
            raise SystemExit("too few answered users per arm for the ground-truth comparison")
        se = float(np.sqrt(c.var(ddof=1) / len(c) + d.var(ddof=1) / len(d)))
        oracle = {"effect": float(d.mean() - c.mean()), "n_control": len(c), "n_treatment": len(d),
                  "ci": [float(d.mean() - c.mean() - 1.959964 * se), float(d.mean() - c.mean() + 1.959964 * se)]}
        il = (result.get("interleaving") or {}).get("il")
        ab = {m: (result["effects"].get("degraded") or {}).get(m) for m in
              ("conversion", "watch_through_min", "rec_rating")}
        ab["served_true_mean (oracle)"] = oracle
        table = result.get("table") or {}
        ab_answers = sum(table.get(a, {}).get("answers") or 0 for a in ("control", "degraded"))
        power = compare(ab, il, ab_answers, table.get("il", {}).get("answers") or 0)
        settings = Settings.from_env(env)
        tag = f"{args.experiment}:".encode()
        records = asyncio.run(scan(settings, topic_names(settings)["recommendations"],
                                   lambda k, v: tag in v))
        new_users = {u for u, rows in sessions.items() if any(r.get("new_user") for r in rows)}
        breakdown = answer_breakdown((json.loads(v) for _, _, v in records), args.experiment,
                                     new_users)
        truth_ci = oracle["ci"]
        out = {
            "command": " ".join(sys.argv), "report": report, "degraded": bad,
            "load_start": load_start, "load_end": os.getloadavg(),
            "sim_real_s": round(time.monotonic() - started),
            "true_mean_of_served_lists": gap, "truth_gap": oracle,
            "truth_confirms_gap": truth_ci[1] < 0,
            "interleaving": il,
            "decision_correct": bool(il and il.get("decision") == "A" and truth_ci[1] < 0),
            "power": power, "answers": breakdown, "srm": result.get("srm"),
            "uptime": os.popen("uptime").read().strip()}
        json.dump(out, open(OUT / f"{args.experiment}-live.json", "w"), indent=1, default=float)
        print(json.dumps(out, default=float), flush=True)
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(2)
        for child in reversed(children):
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        stop(tansu)
        print(f"logs in {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
