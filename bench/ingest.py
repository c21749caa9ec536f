"""Ingest throughput: full path vs a raw Faust passthrough, same lines, same run.

1. Starts an embedded Tansu broker (or uses ``--broker``).
2. Produces K movielog lines (simulated by default, ``--source FILE`` for a
   real file) into two fresh topics, keyed by user id as the platform
   simulator and ``recstream replay`` do.
3. Baseline: a bare Faust app whose one agent takes events in batches and
   counts them (no parsing, no tables) — the ceiling of Faust on this box.
4. Full path: a ``recstream worker`` (parse → quarantine → user tables → online
   MF → movie tables → broadcast) on the other topic; its rate is read from its
   own ``/metrics``.
Prints one JSON line with both rates and their ratio.

    .venv/bin/python bench/ingest.py [--lines 200000] [--source FILE] [--broker HOST:PORT]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recstream.ops.replay import replay_file  # noqa: E402
from recstream.broker import running_tansu  # noqa: E402

PASSTHROUGH = '''
import os, sys, time, faust
app = faust.App("bench-pass-" + os.environ["BENCH_ID"], broker="kafka://" + os.environ["BENCH_BROKER"],
                datadir=os.environ["BENCH_DIR"], topic_partitions=8, web_enabled=False)
topic = app.topic(os.environ["BENCH_TOPIC"], key_type=bytes, value_type=bytes,
                  key_serializer="raw", value_serializer="raw", partitions=8)
N = int(os.environ["BENCH_N"]); state = {"n": 0, "t0": None}
@app.agent(topic)
async def passthrough(stream):
    async for events in stream.take_events(1000, 0.05):
        if state["t0"] is None: state["t0"] = time.perf_counter()
        state["n"] += len(events)
        if state["n"] >= N:
            print(f"PASSTHROUGH={state['n'] / (time.perf_counter() - state['t0']):.1f}", flush=True)
            os._exit(0)
if __name__ == "__main__":
    app.main()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def simulate(lines: int, path: Path, users: int) -> None:
    from recstream.sim.cli import main as sim_main
    code = sim_main(["--fast", "--no-kafka", "--no-api", "--quiet", "--users", str(users),
                     "--recommender", "builtin:popularity", "--max-lines", str(lines),
                     "--out", str(path), "--rate", "200"])
    if code:
        raise SystemExit(f"simulator failed with {code}")


def lines_consumed(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("recstream_lines_total"))


def run_passthrough(broker: str, topic: str, n: int, work: Path) -> float:
    script = work / "passthrough.py"
    script.write_text(PASSTHROUGH)
    env = {**os.environ, "BENCH_ID": str(os.getpid()), "BENCH_BROKER": broker,
           "BENCH_DIR": str(work / "pass-data"), "BENCH_TOPIC": topic, "BENCH_N": str(n)}
    out = subprocess.run([sys.executable, str(script), "worker", "-l", "warn"], env=env,
                         capture_output=True, text=True, timeout=900)
    found = re.search(r"PASSTHROUGH=([0-9.]+)", out.stdout + out.stderr)
    if found:
        return float(found.group(1))
    raise SystemExit("passthrough failed:\n" + out.stderr[-3000:])


def run_worker(broker: str, topic: str, n: int, work: Path) -> dict:
    port = free_port()
    scheme = "kafka" if os.environ.get("BENCH_KAFKA") else "tansu"
    env = {**os.environ, "RECSTREAM_BROKER": f"{scheme}://{broker}", "RECSTREAM_TOPIC": topic,
           "RECSTREAM_APP_ID": f"bench-{os.getpid()}", "RECSTREAM_WEB_PORT": str(port),
           "RECSTREAM_DATA_DIR": str(work / "worker-data"),
           "RECSTREAM_API_URL": "http://127.0.0.1:9"}  # no API: metadata fetches fail fast
    log = open(work / "worker.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "recstream.cli", "worker", "-l", "warn"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    profiler = None
    try:
        first = last = None
        seen = 0.0
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            try:
                seen = lines_consumed(port)
            except OSError:
                continue
            now = time.monotonic()
            if seen and first is None:
                first = (now, seen)
                if os.environ.get("BENCH_PROFILE"):  # py-spy over the ingest phase only
                    profiler = subprocess.Popen(
                        ["py-spy", "record", "-p", str(proc.pid), "-o",
                         os.environ["BENCH_PROFILE"], "-f", "raw", "-r", "200"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if seen >= n:
                last = (now, seen)
                break
        if first is None or last is None:
            raise SystemExit(f"worker consumed {seen} of {n} lines; see {work / 'worker.log'}")
        rate = (last[1] - first[1]) / max(last[0] - first[0], 1e-9)
        rss = int(open(f"/proc/{proc.pid}/status").read().split("VmRSS:")[1].split()[0]) // 1024
        return {"rate": rate, "rss_mb": rss}
    finally:
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(30)
        proc.terminate()
        proc.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=200_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--source", default="", help="a movielog file instead of simulated lines")
    p.add_argument("--broker", default="", help="host:port of a running broker")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = Path(args.source) if args.source else work / "movielog.txt"
        if not args.source:
            simulate(args.lines, source, args.users)
        n = sum(1 for line in open(source, "rb") if line.strip())
        port = free_port()
        broker = args.broker or f"127.0.0.1:{port}"
        ctx = running_tansu(port) if not args.broker else _nullcontext()
        with ctx:
            t_pass, t_full = f"bench-pass-{os.getpid()}", f"bench-full-{os.getpid()}"
            for topic in (t_pass, t_full):
                asyncio.run(replay_file([broker], topic, 8, source))
            baseline = run_passthrough(broker, t_pass, n, work)
            full = run_worker(broker, t_full, n, work)
        print(json.dumps({
            "lines": n, "source": str(args.source or f"simulated ({args.users} users)"),
            "passthrough_events_per_s": round(baseline), "full_events_per_s": round(full["rate"]),
            "ratio_full_to_passthrough": round(full["rate"] / baseline, 3),
            "worker_rss_mb": full["rss_mb"],
        }), flush=True)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
