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
import shutil
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


def truth_gap(served_true: dict, control: str, arm: str) -> dict | None:
    """Mean true rating of the served lists, ``arm`` − ``control``, per user (Welch 95% CI)."""
    if control not in served_true or arm not in served_true:
        return None
    c, d = (served_true[a].per_user["served_true_mean"] for a in (control, arm))
    c, d = c[np.isfinite(c)], d[np.isfinite(d)]
    if min(len(c), len(d)) < 2:
        return None
    se = float(np.sqrt(c.var(ddof=1) / len(c) + d.var(ddof=1) / len(d)))
    effect = float(d.mean() - c.mean())
    return {"effect": effect, "n_control": len(c), "n_treatment": len(d),
            "ci": [effect - 1.959964 * se, effect + 1.959964 * se]}


def analyse(work: Path) -> dict:
    """The run's numbers from what it saved in ``work`` (rerun: ``--analyse DIR``)."""
    run = json.loads((work / "run.json").read_text())
    spec = ExperimentSpec.from_json((work / "spec.json").read_text())
    result = json.loads((work / "result.json").read_text())
    sessions: dict[int, list[dict]] = {}
    with open(work / "truth.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "session":
                sessions.setdefault(r["user"], []).append(r)
    served_true = truth_arms(spec, sessions, {"served_true_mean": mean_of("served_true_mean")})
    table = result.get("table") or {}
    new_users = {u for u, rows in sessions.items() if any(r.get("new_user") for r in rows)}
    with open(work / "answers.jsonl") as f:
        records = [json.loads(line) for line in f]
    out = {**run, "true_mean_of_served_lists": {
               arm: float(np.nanmean(d.per_user["served_true_mean"])) for arm, d in served_true.items()},
           "srm": result.get("srm"),
           "answers": answer_breakdown(records, run["experiment"], new_users), "pairs": {}}
    for i, bad in enumerate(run["degraded"]):
        d_arm, il_arm = pair_arms(i, len(run["degraded"]))
        oracle = truth_gap(served_true, "control", d_arm)
        il = (result.get("interleaving") or {}).get(il_arm)
        ab = {m: (result["effects"].get(d_arm) or {}).get(m) for m in
              ("conversion", "watch_through_min", "rec_rating")}
        ab["served_true_mean (oracle)"] = oracle
        ab_answers = sum(table.get(a, {}).get("answers") or 0 for a in ("control", d_arm))
        confirmed = bool(oracle and oracle["ci"][1] < 0)
        out["pairs"][bad] = {
            "arms": [d_arm, il_arm], "truth_gap": oracle, "truth_confirms_gap": confirmed,
            "interleaving": il, "decision_correct": bool(il and il.get("decision") == "A" and confirmed),
            "power": compare(ab, il, ab_answers, table.get(il_arm, {}).get("answers") or 0)}
    (OUT / f"{run['experiment']}-live.json").write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps(out, default=float), flush=True)
    return out


def pair_arms(i: int, n: int) -> tuple[str, str]:
    return (f"degraded{i}", f"il{i}") if n > 1 else ("degraded", "il")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--noise", default="1.0")
    p.add_argument("--degraded", default="", help="the degraded rankers' arm policies, comma-separated "
                   "(e.g. random,noisy:2.0): pair i is arms degraded{i} and il{i} against the shared "
                   "control (one pair: degraded and il); default noisy:NOISE")
    p.add_argument("--sim-seconds", type=float, default=1200.0)
    p.add_argument("--speed", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--movies", type=int, default=3_000)
    p.add_argument("--backfill-lines", default="30000")
    p.add_argument("--seed", default="13")
    p.add_argument("--experiment", default="il", help="experiment id (names the report)")
    p.add_argument("--analyse", default="", help="only analyse a finished run's directory")
    args = p.parse_args()
    if args.analyse:
        analyse(Path(args.analyse))
        return
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
    bads = (args.degraded or f"noisy:{args.noise}").split(",")
    pairs = {pair_arms(i, len(bads)): bad for i, bad in enumerate(bads)}
    arms = ["control=baseline"] + sum(([f"{d}={bad}", f"{il}=interleave:baseline/{bad}"]
                                       for (d, il), bad in pairs.items()), [])
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
        settings = Settings.from_env(env)
        tag = f"{args.experiment}:".encode()
        records = asyncio.run(scan(settings, topic_names(settings)["recommendations"],
                                   lambda k, v: tag in v))
        with open(work / "answers.jsonl", "wb") as f:
            f.writelines(v.rstrip(b"\n") + b"\n" for _, _, v in records)
        (work / "spec.json").write_bytes(spec.to_json())
        (work / "run.json").write_text(json.dumps({
            "command": " ".join(sys.argv), "experiment": args.experiment, "degraded": bads,
            "load_start": load_start, "load_end": os.getloadavg(),
            "sim_real_s": round(time.monotonic() - started), "report": report,
            "uptime": os.popen("uptime").read().strip()}))
        shutil.copy(OUT / f"{args.experiment}.json", work / "result.json")
        analyse(work)
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
