"""Issue #14 phase 3: the feedback-loop mitigation through the real worker, off vs on.

For each arm, one embedded Tansu broker, one ``recstream worker`` (the mitigation
off, or ``RECSTREAM_FEEDBACK_RERANK_WEIGHT`` / ``RECSTREAM_FEEDBACK_EXPLORE_SLOTS``
on) and ``recstream sim`` (its APIs and graders' loop over HTTP) on free ports,
same seed and world.  Afterwards, from the platform's own outcome lines and
watches in the movielog (what users were really shown and did):

* exposure over the simulator's catalogue: Gini, top-1% share, coverage
  (:mod:`models.feedback`), for all answers and for personal ones (the lists the
  re-rank touches; the popularity fallback is the same in both arms);
* conversion: the user started a listed movie within an hour of the answer
  (:class:`models.fairness_live.GroupConversion`, the live monitor's rule).

    .venv/bin/python bench/feedback_live.py [--speed 120] [--hours 6] [--weight 0.5 --slots 4]
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.fairness_live import GroupConversion  # noqa: E402
from models.feedback import coverage, gini, top_share  # noqa: E402
from recstream.broker import start_tansu, stop  # noqa: E402
from recstream.ops.provenance import scan  # noqa: E402
from recstream.parsing import parse_raw  # noqa: E402
from recstream.records import RecommendationOutcome, WatchMinute  # noqa: E402
from recstream.settings import Settings  # noqa: E402
from tests.brokers import free_port  # noqa: E402
from tests.integration.conftest import Worker  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from attack_live import wait_ingested  # noqa: E402


async def read_log(settings: Settings) -> list:
    events = []
    for _, _, raw in await scan(settings, settings.topic, lambda k, v: True, timeout_s=600):
        rec = parse_raw(raw, rating_min=1, rating_max=10, max_user_id=settings.max_user_id,
                        max_minute=settings.max_minute)
        if isinstance(rec, (RecommendationOutcome, WatchMinute)):
            events.append(rec)
    return sorted(events, key=lambda r: r.time)


def measures(events: list, n_movies: int, start: float) -> dict:
    conv = GroupConversion(window_s=1e12, max_pending=10_000_000)
    counts: dict[str, int] = {}
    answers = 0
    for rec in events:
        if isinstance(rec, WatchMinute):
            conv.watched(rec.time, rec.user, rec.movie)
        elif rec.status == 200 and rec.movies and rec.time >= start:
            answers += 1
            conv.answered(rec.time, rec.user, rec.movies, (("all", "all"),))
            for m in rec.movies:
                counts[m] = counts.get(m, 0) + 1
    conv.advance(conv.now + 7200.0)
    s = conv.stats().get(("all", "all"))
    x = np.zeros(max(n_movies, len(counts)))
    x[: len(counts)] = sorted(counts.values(), reverse=True)
    return {"answers": answers, "distinct_movies_shown": len(counts),
            "gini": round(gini(x), 4), "top1_share": round(top_share(x), 4),
            "coverage": round(coverage(x), 4),
            "conversion": round(s.conversion, 4) if s else None,
            "conversion_n": s.answers if s else 0}


def run_arm(arm: str, args: argparse.Namespace, tmp: Path) -> dict:
    port, api_port = free_port(), free_port()
    tansu = start_tansu(port, log_path=tmp / f"tansu-{arm}.log")
    run = uuid.uuid4().hex[:8]
    worker = Worker(f"tansu://127.0.0.1:{port}", f"fb-{arm}-{run}", f"movielog-{run}",
                    tmp / f"data-{arm}", tmp / f"worker-{arm}.log",
                    api_url=f"http://127.0.0.1:{api_port}")
    if arm == "on":
        worker.env.update({"RECSTREAM_FEEDBACK_RERANK_WEIGHT": str(args.weight),
                           "RECSTREAM_FEEDBACK_EXPLORE_SLOTS": str(args.slots)})
    cmd = [sys.executable, "-m", "recstream.sim", "--users", str(args.users), "--movies",
           str(args.movies), "--speed", str(args.speed), "--rate", str(args.rate), "--seed",
           str(args.seed), "--duration", str(args.hours * 3600), "--backfill-days", "7",
           "--backfill-lines", str(args.backfill_lines), "--no-oracle", "--quiet",
           "--api-port", str(api_port), "--recommender", f"http://127.0.0.1:{worker.port}",
           "--topic", worker.env["RECSTREAM_TOPIC"]]
    sim = None
    load_before = os.getloadavg()
    started = time.monotonic()
    try:
        worker.start()
        with open(tmp / f"sim-{arm}.log", "wb") as out:
            sim = subprocess.Popen(cmd, env=worker.env, cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        sim.wait(timeout=args.hours * 3600 / args.speed * 4 + 600)
        caught_up = wait_ingested(worker, tmp / f"sim-{arm}.log")
        _, body = worker.get("/metrics")
        sources = {line.split('"')[1]: float(line.rsplit(" ", 1)[1])
                   for line in body.decode().splitlines()
                   if line.startswith('recstream_requests_total{source="')}
        settings = Settings.from_env(worker.env)
        events = asyncio.run(read_log(settings))
    finally:
        if sim is not None and sim.poll() is None:
            os.killpg(sim.pid, signal.SIGTERM)
            sim.wait(15)
        worker.stop()
        stop(tansu)
    outcomes = [e for e in events if isinstance(e, RecommendationOutcome)]
    start = outcomes[0].time + args.warmup_h * 3600 if outcomes else 0.0
    return {"arm": arm, "wall_s": round(time.monotonic() - started, 1),
            "ingest_caught_up": caught_up, "load_before": [round(x, 1) for x in load_before],
            "load_after": [round(x, 1) for x in os.getloadavg()], "answers_by_source": sources,
            "after_warmup": measures(events, args.movies, start)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speed", type=float, default=120.0)
    p.add_argument("--hours", type=float, default=6.0)
    p.add_argument("--warmup-h", type=float, default=1.0)
    p.add_argument("--users", type=int, default=3_000)
    p.add_argument("--movies", type=int, default=2_000)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--backfill-lines", type=int, default=60_000)
    p.add_argument("--weight", type=float, default=0.5)
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--arms", default="off,on")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="feedback-live-"))
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
