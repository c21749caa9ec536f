"""Issue #14: no unsafe title to minors or unknown age through the real worker, API outages included.

Starts the embedded Tansu broker, one ``recstream worker`` and the simulator
(its movie and user API, the platform calling the worker's ``/recommend``)
with the ``api-outage`` scenario stretched to one hour down in every four, for a
simulated day; then reads the worker's own counters
(``recstream_unsafe_exposures_total``, ``recstream_served_titles_total``,
answers by source) and runs ``recstream audit safety`` over the topics.

Both of those judge with the worker's own flags.  Phase 4 adds a check against the
simulator's truth, independent of our guardrails: every list the platform logged
(its outcome lines in the movielog) is checked title by title against the seeded
world's own ``adult`` flags and minors-unsafe set (adult or R/NC-17), for the
user's true age — titles unsafe for minors shown to true minors, adult titles
shown to anyone.

    .venv/bin/python bench/safety_live.py [--speed 360] [--hours 24] [--users 3000]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recstream.broker import start_tansu, stop  # noqa: E402
from recstream.ops.provenance import scan  # noqa: E402
from recstream.parsing import parse_raw  # noqa: E402
from recstream.records import RecommendationOutcome  # noqa: E402
from recstream.settings import Settings  # noqa: E402
from recstream.sim.options import SimOptions  # noqa: E402
from recstream.sim.world import build_synthetic  # noqa: E402
from tests.brokers import free_port  # noqa: E402
from tests.integration.conftest import Worker  # noqa: E402

MOVIES = 800


async def outcome_lists(settings: Settings) -> list[tuple[int, list[str]]]:
    out = []
    for _, _, raw in await scan(settings, settings.topic, lambda k, v: True, timeout_s=600):
        rec = parse_raw(raw, rating_min=1, rating_max=10, max_user_id=settings.max_user_id,
                        max_minute=settings.max_minute)
        if isinstance(rec, RecommendationOutcome) and rec.status == 200:
            out.append((rec.user, list(rec.movies)))
    return out


def against_truth(lists: list[tuple[int, list[str]]], args: argparse.Namespace) -> dict:
    """The platform's logged lists against the seeded world's own flags and ages."""
    world = build_synthetic(SimOptions(users=args.users, movies=MOVIES, seed=args.seed))
    index = {m: i for i, m in enumerate(world.catalog.ids)}
    unsafe, adult = world.taste.unsafe_for_minor, world.catalog.adult
    counts = {"lists": len(lists), "titles": 0, "titles_to_minors": 0, "lists_to_minors": 0,
              "unsafe_to_minors": 0, "adult_to_anyone": 0, "unknown_titles": 0,
              "minors_unsafe_in_catalogue": int(unsafe.sum()), "adult_in_catalogue": int(adult.sum())}
    for user, movies in lists:
        i = world.population.index_of(user)
        minor = i is not None and world.population.age[i] < 18
        counts["lists_to_minors"] += bool(minor and movies)
        for movie in movies:
            counts["titles"] += 1
            m = index.get(movie)
            if m is None:
                counts["unknown_titles"] += 1
                continue
            counts["adult_to_anyone"] += bool(adult[m])
            if minor:
                counts["titles_to_minors"] += 1
                counts["unsafe_to_minors"] += bool(unsafe[m])
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speed", type=float, default=360.0)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="safety-live-"))
    port, api_port = free_port(), free_port()
    tansu = start_tansu(port, log_path=tmp / "tansu.log")
    run = uuid.uuid4().hex[:8]
    worker = Worker(f"tansu://127.0.0.1:{port}", f"safe-{run}", f"movielog-{run}", tmp / "data",
                    tmp / "worker.log", api_url=f"http://127.0.0.1:{api_port}")
    worker.env.update({"RECSTREAM_API_RETRY_S": "2", "RECSTREAM_API_TIMEOUT_S": "1"})
    scenario = tmp / "scenarios.json"
    scenario.write_text(json.dumps({"scenarios": {"api-outage": {"period_s": 14400.0,
                                                                 "down_s": 3600.0}}}))
    sim = None
    started = time.monotonic()
    try:
        worker.start()
        with open(tmp / "sim.log", "wb") as out:
            sim = subprocess.Popen(
                [sys.executable, "-m", "recstream.sim", "--users", str(args.users), "--movies",
                 str(MOVIES), "--seed", str(args.seed), "--speed", str(args.speed), "--rate", str(args.rate),
                 "--duration", str(args.hours * 3600), "--no-oracle", "--quiet",
                 "--api-port", str(api_port), "--recommender", f"http://127.0.0.1:{worker.port}",
                 "--topic", worker.env["RECSTREAM_TOPIC"], "--scenario-file", str(scenario)],
                env=worker.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        sim.wait(timeout=args.hours * 3600 / args.speed * 3 + 300)
        time.sleep(5)  # the last answers' provenance records
        names = ("recstream_unsafe_exposures_total", "recstream_served_titles_total")
        result = {n: worker.metric(n) for n in names}
        _, body = worker.get("/metrics")
        result["lines"] = {line.split(" ")[0]: float(line.split(" ")[1]) for line in
                           body.decode().splitlines()
                           if line.startswith(("recstream_unsafe_exposures_total{",
                                               "recstream_served_titles_total{",
                                               "recstream_requests_total{",
                                               "recstream_api_calls_total{"))}
        result["wall_s"] = round(time.monotonic() - started, 1)
        audit = subprocess.run([sys.executable, "-m", "recstream.cli", "audit", "safety"],
                               env=worker.env, cwd=ROOT, capture_output=True, text=True,
                               timeout=600)
        result["against_simulator_truth"] = against_truth(
            asyncio.run(outcome_lists(Settings.from_env(worker.env))), args)
        result["load"] = [round(x, 1) for x in os.getloadavg()]
        print(json.dumps(result, indent=2))
        print(audit.stdout or audit.stderr[-3000:])
    finally:
        if sim is not None and sim.poll() is None:
            os.killpg(sim.pid, signal.SIGTERM)
            sim.wait(15)
        worker.stop()
        stop(tansu)


if __name__ == "__main__":
    main()
