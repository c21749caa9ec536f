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
"""
from __future__ import annotations

import argparse
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
from bench.first_minutes import free_port, read_metrics, wait_ready  # noqa: E402
from models.experiments.spec import ExperimentSpec  # noqa: E402
from recstream.broker import start_tansu, stop, wait_for_port  # noqa: E402

OUT = ROOT / "docs" / "experiments"
Z = 1.959964 + 0.841621  # two-sided alpha 0.05, power 0.8


def users_ab(effect: dict) -> float | None:
    """Total users (both arms) an A/B test needs for this effect and spread."""
    if not effect or not effect.get("effect") or min(effect["n_control"], effect["n_treatment"]) < 2:
        return None
    se = (effect["ci"][1] - effect["ci"][0]) / (2 * 1.959964)
    var = se ** 2 / (1 / effect["n_control"] + 1 / effect["n_treatment"])
    return 2 * 2 * Z ** 2 * var / effect["effect"] ** 2


def users_il(summary: dict) -> float | None:
    if not summary or not summary.get("mean_credit"):
        return None
    sd = (summary["ci"][1] - summary["ci"][0]) / (2 * 1.959964) * np.sqrt(summary["users"])
    return Z ** 2 * sd ** 2 / summary["mean_credit"] ** 2


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
        exp_il = "il"
        il = (result.get("interleaving") or {}).get(exp_il)
        n_il = users_il(il)
        ab = {m: (result["effects"].get("degraded") or {}).get(m) for m in
              ("conversion", "watch_through_min", "rec_rating")}
        ab["served_true_mean (oracle)"] = oracle
        needed = {m: users_ab(e) for m, e in ab.items()}
        # Requests, not only users: the requests an arm serves per unit its test counts.  The
        # A/B tests count every user of both arms; the interleaving test counts only users
        # with an interleaved answer, but its arm serves all its users (fallbacks included),
        # so its requests per unit are the arm's answers over the counted users.
        table = result.get("table") or {}
        ab_answers = sum(table.get(a, {}).get("answers") or 0 for a in ("control", "degraded"))
        per_user_ab = {m: ab_answers / (e["n_control"] + e["n_treatment"]) if e else None
                       for m, e in ab.items()}
        il_answers = table.get(exp_il, {}).get("answers") or 0
        per_user_il = il_answers / il["users"] if il and il.get("users") else None
        req_il = n_il * per_user_il if n_il and per_user_il else None
        req_ab = {m: (n * per_user_ab[m] if n and per_user_ab[m] else None)
                  for m, n in needed.items()}
        print(json.dumps({
            "report": report, "degraded": bad, "load_start": load_start, "load_end": os.getloadavg(), "sim_real_s": round(time.monotonic() - started),
            "true_mean_of_served_lists": gap, "interleaving": il, "users_needed_interleaving": n_il,
            "ab_effects": {m: e and {k: e[k] for k in ("effect", "ci", "n_control", "n_treatment")}
                           for m, e in ab.items()},
            "users_needed_ab": needed,
            "ratio_ab_over_il": {m: (n / n_il if n and n_il else None) for m, n in needed.items()},
            "requests_per_user": {"ab": per_user_ab, "il": per_user_il},
            "requests_needed_interleaving": req_il, "requests_needed_ab": req_ab,
            "ratio_requests_ab_over_il": {m: (r / req_il if r and req_il else None)
                                          for m, r in req_ab.items()},
            "srm": result.get("srm"), "uptime": os.popen("uptime").read().strip()},
            default=float), flush=True)
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
