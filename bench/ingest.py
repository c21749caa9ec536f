"""Ingest throughput: full path vs a raw Faust passthrough, same lines, same run.

1. Starts an embedded Tansu broker (or uses ``--broker``).
2. Produces K movielog lines (simulated by default, ``--source FILE`` for a
   real file) into two fresh topics, keyed by user id as the platform
   simulator and ``recstream replay`` do.
3. Baseline: a bare Faust app whose one agent takes events in batches and
   counts them (no parsing, no tables) — the ceiling of Faust on this box.
4. Full path: a ``recstream worker`` (parse → quarantine → user tables → online
   MF → movie tables → broadcast) on the other topic.  Its clock starts at the
   first line counted and stops when the *last effect* is applied, read from its
   ``/metrics`` (``recstream_pipeline_messages``): every line consumed and its
   users' state written, every changelog record acknowledged, every movie update
   applied by the movie writer, every changed movie broadcast and applied by the
   item follower.  (Polled every ``--poll`` s: the error is at most one poll.)
Prints one JSON line with both rates, their ratio, each side's CPU time per event
(worker and broker processes: less sensitive to a loaded machine than wall time)
and the load average before and after.

    .venv/bin/python bench/ingest.py [--lines 200000] [--source FILE] [--broker HOST:PORT]
        [--loop aio|uvloop] [--compare DIR [--compare-loop L]] [--concurrent]

``--loop`` picks the event loop of both sides (the passthrough is Faust's ceiling on the
same loop; ``--compare-loop`` the compared worker's).  ``--compare DIR`` also runs a worker
from the code checked out in ``DIR`` (e.g. a ``git worktree`` of main) on a third topic
holding the same lines, with its own app id: a before/after of the code in one run, beside
one passthrough.  ``--concurrent`` runs the sides at the same time instead of one after the
other, so on a loaded box each meets the same load (the broker's CPU per event is then
shared by the workers).  ``--autogroup-nice N`` weights the bench's and the broker's
scheduler autogroups (root only).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procs import autogroup_nice, cpu_seconds, free_port  # noqa: E402
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
        if state["t0"] is None:
            state["t0"], state["c0"] = time.perf_counter(), time.process_time()
        state["n"] += len(events)
        if state["n"] >= N:
            cpu = (time.process_time() - state["c0"]) / state["n"] * 1e6
            print(f"PASSTHROUGH={state['n'] / (time.perf_counter() - state['t0']):.1f} "
                  f"CPU_US={cpu:.1f}", flush=True)
            os._exit(0)
if __name__ == "__main__":
    app.main()
'''


def simulate(lines: int, path: Path, users: int) -> None:
    from recstream.sim.cli import main as sim_main
    code = sim_main(["--fast", "--no-kafka", "--no-api", "--quiet", "--users", str(users),
                     "--recommender", "builtin:popularity", "--max-lines", str(lines),
                     "--out", str(path), "--rate", "200"])
    if code:
        raise SystemExit(f"simulator failed with {code}")


def scrape(port: int) -> dict[str, float]:
    """The worker's ``/metrics`` → {name or name{stage=…}: value} for what the bench reads."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text = r.read().decode()
    out: dict[str, float] = {"lines": 0.0}
    for line in text.splitlines():
        if line.startswith("recstream_lines_total"):
            out["lines"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("recstream_rekeyed_total"):
            out["rekeyed"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("recstream_pipeline_messages_total{"):
            stage = line.split('stage="', 1)[1].split('"', 1)[0]
            out[stage] = float(line.rsplit(" ", 1)[1])
    return out


def all_applied(m: dict[str, float], n: int) -> bool:
    """Every effect of the ``n`` lines applied (see the module docstring)."""
    get = m.get
    return (m["lines"] >= n and get("movielog_written", 0) >= n
            and get("events_written", 0) >= get("rekeyed", 0)
            and get("changelog_acked", 0) >= get("changelog_sent", 0)
            and get("movie_updates_applied", 0) >= get("movie_updates_sent", 0)
            and get("broadcast_sent", 0) >= get("broadcast_queued", 0)
            and get("broadcast_applied", 0) >= get("broadcast_sent", 0))


def run_passthrough(broker: str, topic: str, n: int, work: Path,
                    loop: str = "aio") -> tuple[float, float]:
    """→ (events/s, CPU µs per event) of a bare Faust agent over ``n`` lines."""
    script = work / "passthrough.py"
    script.write_text(PASSTHROUGH)
    env = {**os.environ, "BENCH_ID": str(os.getpid()), "BENCH_BROKER": broker,
           "BENCH_DIR": str(work / "pass-data"), "BENCH_TOPIC": topic, "BENCH_N": str(n)}
    out = subprocess.run([sys.executable, str(script), "--loop", loop, "worker", "-l", "warn"],
                         env=env,
                         capture_output=True, text=True, timeout=900)
    found = re.search(r"PASSTHROUGH=([0-9.]+) CPU_US=([0-9.]+)", out.stdout + out.stderr)
    if found:
        return float(found.group(1)), float(found.group(2))
    raise SystemExit("passthrough failed:\n" + out.stderr[-3000:])


def run_worker(broker: str, topic: str, n: int, work: Path, *, poll: float,
               broker_pid: int | None, loop: str = "aio", code: Path = ROOT,
               counting: threading.Event | None = None) -> dict:
    port = free_port()
    scheme = "kafka" if os.environ.get("BENCH_KAFKA") else "tansu"
    env = {**os.environ, "RECSTREAM_BROKER": f"{scheme}://{broker}", "RECSTREAM_TOPIC": topic,
           # One app id per worker: its own group, tables and internal topics (a compared
           # worker sharing them would recover the first one's state and see duplicates).
           "RECSTREAM_APP_ID": f"app-{topic}", "RECSTREAM_WEB_PORT": str(port),
           "RECSTREAM_DATA_DIR": str(work / f"worker-data-{topic}"),
           "RECSTREAM_API_URL": "http://127.0.0.1:9"}  # no API: metadata fetches fail fast
    log = open(work / f"worker-{topic}.log", "w")
    # ``-m`` puts the working directory first on sys.path: ``code``'s modules are the ones run.
    proc = subprocess.Popen([sys.executable, "-m", "recstream.cli", "--loop", loop, "worker",
                             "-l", "warn"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=str(code))
    profiler = None
    try:
        first = last = None
        metrics: dict[str, float] = {"lines": 0.0}
        parsed_at = None  # when the last line was counted (the old clock's stop)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(poll)
            try:
                metrics = scrape(port)
            except OSError:
                continue
            now = time.monotonic()
            if metrics["lines"] and first is None:
                first = (now, metrics["lines"], cpu_seconds(proc.pid),
                         cpu_seconds(broker_pid) if broker_pid else 0.0)
                if counting is not None:
                    counting.set()
                if os.environ.get("BENCH_PROFILE") and code == ROOT:  # py-spy, ingest phase
                    profiler = subprocess.Popen(
                        ["py-spy", "record", "-p", str(proc.pid), "-o",
                         os.environ["BENCH_PROFILE"], "-f", "raw", "-r", "200"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if parsed_at is None and metrics["lines"] >= n:
                parsed_at = now
            if first is not None and all_applied(metrics, n):
                last = (now, metrics["lines"], cpu_seconds(proc.pid),
                        cpu_seconds(broker_pid) if broker_pid else 0.0)
                break
        if first is None or last is None:
            raise SystemExit(f"worker stopped short: {metrics} of {n} lines; "
                             f"see {work / f'worker-{topic}.log'}")
        counted = last[1] - first[1]
        rate = counted / max(last[0] - first[0], 1e-9)
        rss = int(open(f"/proc/{proc.pid}/status").read().split("VmRSS:")[1].split()[0]) // 1024
        return {"rate": rate, "rss_mb": rss,
                "parsed_rate": counted / max((parsed_at or last[0]) - first[0], 1e-9),
                "cpu_us": (last[2] - first[2]) / counted * 1e6,
                "broker_cpu_us": (last[3] - first[3]) / counted * 1e6 if broker_pid else None,
                "last_effect_after_parse_s": round(last[0] - (parsed_at or last[0]), 2),
                "pipeline": metrics}
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
    p.add_argument("--poll", type=float, default=0.2, help="seconds between /metrics reads")
    p.add_argument("--loop", choices=("aio", "uvloop"), default="aio",
                   help="event loop of the passthrough and the worker")
    p.add_argument("--compare", default="",
                   help="also run a worker from the code in this directory (before/after)")
    p.add_argument("--compare-loop", choices=("aio", "uvloop"), default="",
                   help="event loop of the compared worker (default: --loop)")
    p.add_argument("--concurrent", action="store_true",
                   help="run the passthrough and the worker(s) at the same time (a loaded box: "
                        "every side meets the same load; the broker's CPU is then shared)")
    p.add_argument("--autogroup-nice", type=int, default=None,
                   help="weight this run's and the broker's scheduler autogroups (root only)")
    args = p.parse_args()
    load_before = os.getloadavg()
    if args.autogroup_nice is not None:
        autogroup_nice(os.getpid(), args.autogroup_nice)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = Path(args.source) if args.source else work / "movielog.txt"
        if not args.source:
            simulate(args.lines, source, args.users)
        n = sum(1 for line in open(source, "rb") if line.strip())
        port = free_port()
        broker = args.broker or f"127.0.0.1:{port}"
        ctx = running_tansu(port) if not args.broker else nullcontext()
        with ctx as tansu:
            if tansu is not None and args.autogroup_nice is not None:
                autogroup_nice(tansu.pid, args.autogroup_nice)
            t_pass, t_full = f"bench-pass-{os.getpid()}", f"bench-full-{os.getpid()}"
            t_other = f"bench-compare-{os.getpid()}"
            for topic in (t_pass, t_full) + ((t_other,) if args.compare else ()):
                asyncio.run(replay_file([broker], topic, 8, source))
            broker_pid = tansu.pid if tansu is not None else None
            runs = {
                "pass": partial(run_passthrough, broker, t_pass, n, work, args.loop),
                "full": partial(run_worker, broker, t_full, n, work, poll=args.poll,
                                broker_pid=broker_pid, loop=args.loop)}
            if args.compare:
                runs["other"] = partial(run_worker, broker, t_other, n, work, poll=args.poll,
                                        broker_pid=broker_pid, loop=args.compare_loop or args.loop,
                                        code=Path(args.compare))
            if args.concurrent:  # all at once: each side sees the same machine
                counting = threading.Event()  # the passthrough starts once a worker counts
                runs["full"] = partial(runs["full"], counting=counting)
                runs["pass"] = partial(_after, counting, runs["pass"])
                with ThreadPoolExecutor(len(runs)) as pool:
                    done = {name: pool.submit(run) for name, run in runs.items()}
                    results = {name: future.result() for name, future in done.items()}
            else:
                results = {name: run() for name, run in runs.items()}
            (baseline, baseline_cpu), full = results["pass"], results["full"]
            other = results.get("other")
        print(json.dumps({
            "lines": n, "source": str(args.source or f"simulated ({args.users} users)"),
            "passthrough_events_per_s": round(baseline), "full_events_per_s": round(full["rate"]),
            "ratio_full_to_passthrough": round(full["rate"] / baseline, 3),
            "full_events_per_s_to_last_parse": round(full["parsed_rate"]),
            "last_effect_after_parse_s": full["last_effect_after_parse_s"],
            "passthrough_cpu_us_per_event": round(baseline_cpu, 1),
            "worker_cpu_us_per_event": round(full["cpu_us"], 1),
            "cpu_ratio_passthrough_to_full": round(baseline_cpu / full["cpu_us"], 3),
            "broker_cpu_us_per_event_full": (round(full["broker_cpu_us"], 1)
                                             if full["broker_cpu_us"] is not None else None),
            "worker_rss_mb": full["rss_mb"],
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "pipeline": full["pipeline"],
            "loop": args.loop, "autogroup_nice": args.autogroup_nice,
            "concurrent": args.concurrent,
            **({"compare": _summary(other, baseline, args.compare,
                                    args.compare_loop or args.loop)} if other else {}),
        }), flush=True)


def _after(event: threading.Event, run):
    event.wait(600)
    return run()


def _summary(run: dict, baseline: float, code: str, loop: str) -> dict:
    """The compared code's worker, as the same fields."""
    return {"code": code, "loop": loop, "full_events_per_s": round(run["rate"]),
            "ratio_full_to_passthrough": round(run["rate"] / baseline, 3),
            "full_events_per_s_to_last_parse": round(run["parsed_rate"]),
            "last_effect_after_parse_s": run["last_effect_after_parse_s"],
            "worker_cpu_us_per_event": round(run["cpu_us"], 1),
            "broker_cpu_us_per_event_full": (round(run["broker_cpu_us"], 1)
                                             if run["broker_cpu_us"] is not None else None),
            "worker_rss_mb": run["rss_mb"]}


if __name__ == "__main__":
    main()
