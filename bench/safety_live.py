"""Issue #14: no unsafe title to minors or unknown age through the real worker, API outages included.

Starts the embedded Tansu broker, one ``recstream worker`` and the simulator
(its movie and user API, the platform calling the worker's ``/recommend``)
with the ``api-outage`` scenario stretched to one hour down in every four, for a
simulated day; then reads the worker's own counters
(``recstream_unsafe_exposures_total``, ``recstream_served_titles_total``,
answers by source) and runs ``recstream audit safety`` over the topics.

    .venv/bin/python bench/safety_live.py [--speed 360] [--hours 24] [--users 3000]
"""
from __future__ import annotations

import argparse
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
from tests.brokers import free_port  # noqa: E402
from tests.integration.conftest import Worker  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speed", type=float, default=360.0)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--rate", type=float, default=30.0)
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
                 "800", "--speed", str(args.speed), "--rate", str(args.rate),
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
