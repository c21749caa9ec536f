"""Scale-out on one broker: ingest per added worker, and no failed request from 1 to N and back.

Issue #11 item 4.  An embedded Tansu broker, the simulated world's movie API, and a
backlog of ``--lines`` simulated movielog lines produced before any worker starts (so
ingest is never starved).  Phases of ``--phase-s`` seconds each: 1 worker, then 2 (…
up to ``--workers``), then back down to 1 (workers stopped with SIGTERM, newest
first).  In each phase the lines/s the group ingests (the sum of every live worker's
``recstream_lines_total``) is measured once every worker of the phase has ingested
(the rebalance is over).  Throughout, a client asks ``--rate`` req/s the way the
front does (deploy/nginx: round robin over the live workers, the next one once on
an error, a timeout or a 503): a request fails when no worker gave a 200 with a
non-empty line.  Worker start-up and shutdown are inside the client's run.

    .venv/bin/python bench/scale.py [--workers 2] [--lines 400000] [--phase-s 40]

On a larger machine: raise ``--workers`` up to the cores (a worker is one Python
process and uses one core at most; the broker needs its own) and ``--lines`` so
the backlog outlasts every phase; ``--partitions`` bounds the useful workers.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import serve as sb  # noqa: E402


class Front:
    """deploy/nginx's policy over the live workers' ports; records every request."""

    def __init__(self, users: np.ndarray, rate: float, attempt_s: float) -> None:
        self.users, self.rate, self.attempt_s = users, rate, attempt_s
        self.ports: list[int] = []
        self.results: list[tuple[float, bool, float, str]] = []  # t, ok, seconds, phase
        self.phase = ""
        self.stopped = threading.Event()

    def ask(self, i: int, phase: str) -> None:
        started = time.perf_counter()
        ports = list(self.ports)
        ok = False
        for attempt in range(min(2, len(ports))):
            port = ports[(i + attempt) % len(ports)]
            user = int(self.users[i % len(self.users)])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/recommend/{user}",
                                            timeout=self.attempt_s) as r:
                    ok = r.status == 200 and bool(r.read().strip())
                if ok:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                continue
        self.results.append((time.time(), ok, time.perf_counter() - started, phase))

    def run(self) -> None:
        with ThreadPoolExecutor(32) as pool:
            t0, i = time.perf_counter(), 0
            while not self.stopped.is_set():
                delay = t0 + i / self.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self.ask, i, self.phase)
                i += 1


def lines_total(ports: list[int]) -> float:
    """Lines ingested by these workers (retried: a loaded worker's /metrics can be slow)."""
    total = 0.0
    for port in ports:
        for attempt in range(5):
            try:
                text = sb.metrics_text(port)
                break
            except OSError:
                time.sleep(1.0)
        else:
            raise SystemExit(f"no /metrics from the worker on :{port}")
        total += sum(sb.metric_sum(text, "recstream_lines_total").values())
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--lines", type=int, default=400_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--phase-s", type=float, default=40.0)
    p.add_argument("--rate", type=float, default=100.0, help="client requests per second")
    p.add_argument("--attempt-s", type=float, default=1.0, help="client timeout per attempt")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--broker", choices=("kafka", "tansu"), default="kafka",
                   help="a real Apache Kafka broker (deploy/kafka/kafka.sh), or embedded Tansu")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop children in finally
    from million import running_broker
    from recstream.ops.replay import replay_file
    from recstream.sim.cli import main as sim_main

    out: dict = {"workers": args.workers, "loadavg_start": os.getloadavg()}
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    lines = work / "movielog.txt"
    sim_main(["--fast", "--no-kafka", "--no-api", "--quiet", "--users", str(args.users),
              "--recommender", "builtin:popularity", "--rate", "200", "--out", str(lines),
              "--max-lines", str(args.lines)])
    raw = lines.read_bytes().splitlines()
    users = np.array(sorted({int(x.split(b",", 2)[1]) for x in raw
                             if x.count(b",") >= 2 and x.split(b",", 2)[1].isdigit()}), np.int64)
    broker_port, api_port = sb.free_port(), sb.free_port()
    app_id = f"bench-scale-{os.getpid()}"
    scheme = "kafka" if args.broker == "kafka" else "tansu"
    env = {**os.environ, "RECSTREAM_BROKER": f"{scheme}://127.0.0.1:{broker_port}",
           "RECSTREAM_APP_ID": app_id, "RECSTREAM_TOPIC": app_id,
           "RECSTREAM_PARTITIONS": str(args.partitions), "RECSTREAM_WEB_HOST": "127.0.0.1",
           "RECSTREAM_API_URL": f"http://127.0.0.1:{api_port}",
           "RECSTREAM_REGISTRY_DIR": str(work / "models"), "RECSTREAM_RETRAIN_EVERY_H": "0"}
    api = subprocess.Popen([sys.executable, "-m", "recstream.cli", "sim", "--no-kafka", "--quiet",
                            "--users", str(args.users), "--recommender", "builtin:popularity",
                            "--rate", "0.01", "--api-port", str(api_port), "--out", os.devnull],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[tuple[subprocess.Popen, int]] = []
    front = Front(np.random.default_rng(7).permutation(users), args.rate, args.attempt_s)
    client = threading.Thread(target=front.run, daemon=True)
    phases = []

    def start_worker(n: int) -> None:
        port = sb.free_port()
        wenv = {**env, "RECSTREAM_WEB_PORT": str(port),
                "RECSTREAM_DATA_DIR": str(work / f"data{n}"),
                "RECSTREAM_CANONICAL_URL": f"http://127.0.0.1:{port}"}
        proc = subprocess.Popen([sys.executable, "-m", "recstream.cli", "worker", "-l", "warn"],
                                env=wenv, stdout=open(work / f"worker{n}.log", "w"),
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while sb.proc_status(proc.pid) and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit((work / f"worker{n}.log").read_text()[-3000:])
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz",
                                          timeout=2).status == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        workers.append((proc, port))
        front.ports = [q for _, q in workers]

    def measure(label: str) -> None:
        front.phase = label
        ports = [q for _, q in workers]
        settle = time.monotonic() + 120  # until every worker of the phase ingests
        first = {q: lines_total([q]) for q in ports}
        while time.monotonic() < settle:
            time.sleep(2.0)
            if all(lines_total([q]) > first[q] for q in ports):
                break
        t0, n0 = time.monotonic(), lines_total(ports)
        time.sleep(args.phase_s)
        rate = (lines_total(ports) - n0) / (time.monotonic() - t0)
        phases.append({"phase": label, "workers": len(ports), "lines_per_s": round(rate),
                       "loadavg_1m": os.getloadavg()[0]})
        print(json.dumps(phases[-1]), flush=True)

    try:
        with running_broker(args.broker, broker_port, work):
            asyncio.run(replay_file([f"127.0.0.1:{broker_port}"], app_id, args.partitions, lines))
            start_worker(0)
            client.start()
            measure("1 up")
            for n in range(1, args.workers):
                start_worker(n)
                measure(f"{n + 1} up")
            while len(workers) > 1:
                proc, _ = workers.pop()
                front.ports = [q for _, q in workers]  # the front stops sending first
                front.phase = f"stopping to {len(workers)}"
                proc.send_signal(signal.SIGTERM)
                proc.wait(120)
                measure(f"{len(workers)} again")
            front.stopped.set()
            client.join(30)
    finally:
        for proc, _ in workers:
            sb.stop(proc)
        sb.stop(api)
        shutil.rmtree(work, ignore_errors=True)
    res = front.results
    one = phases[0]["lines_per_s"] or 1
    out.update(phases=phases, scaling=[round(ph["lines_per_s"] / one, 2) for ph in phases],
               requests=len(res), failed=sum(1 for r in res if not r[1]),
               over_600ms=sum(1 for r in res if r[2] > 0.6),
               p99_ms=round(float(np.percentile([r[2] for r in res], 99)) * 1000, 1),
               failed_by_phase={ph: sum(1 for r in res if r[3] == ph and not r[1])
                                for ph in sorted({r[3] for r in res})},
               loadavg_end=os.getloadavg())
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
