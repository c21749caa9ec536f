"""`make run`'s first minutes, on free ports: how /recommend answers split by source.

Starts an embedded Tansu broker, a ``recstream worker`` and, once it is ready, the
platform simulator (``recstream sim``, default world and rate, optionally with
``--backfill-days D``), all as ``recstream run`` does but on free ports and
private directories.  Every ``--every`` seconds it reads the worker's
``/metrics`` and prints one JSON line: lines consumed and answers by source
(fallback / popular / personal).  Everything it starts is stopped at the end.

    .venv/bin/python bench/first_minutes.py [--backfill-days 30] [--seconds 240]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procs import free_port  # noqa: E402
from recstream.broker import start_tansu, stop, wait_for_port  # noqa: E402

DEMO_RETRAIN_EVERY_H = "0.07"   # as `recstream run` sets it


def read_metrics(port: int) -> tuple[dict[str, float], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    answers = {m.group(1): float(m.group(2))
               for m in re.finditer(r'recstream_requests_total\{source="(\w+)"\} ([0-9.e+]+)', text)}
    lines = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("recstream_lines_total"))
    return answers, lines


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited with {proc.returncode}")
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("worker not ready in time")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backfill-days", default="0")
    p.add_argument("--backfill-lines", default="400000")
    p.add_argument("--seconds", type=float, default=240.0, help="how long to watch after the simulator starts")
    p.add_argument("--every", type=float, default=30.0)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="first-minutes-"))
    broker_port, web_port, api_port = free_port(), free_port(), free_port()
    tansu = start_tansu(broker_port, log_path=work / "tansu.log")
    env = {**os.environ, "RECSTREAM_BROKER": f"tansu://127.0.0.1:{broker_port}",
           "RECSTREAM_WEB_PORT": str(web_port), "RECSTREAM_WEB_HOST": "127.0.0.1",
           "RECSTREAM_CANONICAL_URL": f"http://127.0.0.1:{web_port}",
           "RECSTREAM_DATA_DIR": str(work / "data"), "RECSTREAM_REGISTRY_DIR": str(work / "models"),
           "RECSTREAM_API_URL": f"http://127.0.0.1:{api_port}", "RECSTREAM_RETRAIN_EVERY_H": DEMO_RETRAIN_EVERY_H}
    exe = [sys.executable, "-m", "recstream.cli"]
    children: list[subprocess.Popen] = []
    try:
        started = time.monotonic()
        worker = subprocess.Popen([*exe, "worker", "-l", "warn"], env=env, cwd=ROOT, start_new_session=True,
                                  stdout=open(work / "worker.log", "wb"), stderr=subprocess.STDOUT)
        children.append(worker)
        wait_for_port("127.0.0.1", web_port, 120, worker)
        wait_ready(web_port, worker)
        ready_s = time.monotonic() - started
        sim = subprocess.Popen([*exe, "sim", "--api-port", str(api_port), "--quiet", "--backfill-days",
                                args.backfill_days, "--backfill-lines", args.backfill_lines],
                               env=env, cwd=ROOT, start_new_session=True,
                               stdout=open(work / "sim.log", "wb"), stderr=subprocess.STDOUT)
        children.append(sim)
        sim_started = time.monotonic()
        while time.monotonic() - sim_started < args.seconds:
            time.sleep(args.every)
            answers, lines = read_metrics(web_port)
            print(json.dumps({"backfill_days": float(args.backfill_days), "worker_ready_s": round(ready_s, 1),
                              "since_sim_s": round(time.monotonic() - sim_started), "lines_consumed": lines,
                              "answers": answers}), flush=True)
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(2)
        for child in reversed(children):
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        stop(tansu)
        print(f"logs in {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
