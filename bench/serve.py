"""Serving latency: ``/recommend`` under an open-loop load, and a trivial-handler baseline.

Three processes: a server, a load client and this orchestrator.  On a 2-core
box the server is pinned to core 0 and the client to core 1 (``--no-pin`` to
let them float).

* ``--mode state`` (default): the server builds a real WorkerParts with
  ``create_app`` (never started: no Kafka), fills its ItemIndex with M movies
  and its UserIndex with N users (random factors, a deterministic short history
  for a third of them, 5% minors), precomputes every answer with
  ``Recommender.score_and_rank`` in refresher-sized batches (the cost of a full
  refresh after a model swap) and serves ``web.views.make_routes`` on a plain
  aiohttp app.  ``--stale-rate R`` invalidates R random users a second and runs
  the refresher's ``refresh_once`` loop, as ingest would.
* ``--mode worker``: a real ``recstream worker`` on an embedded Tansu broker;
  ``--warm-lines`` simulated lines are ingested before the load, then
  ``--ingest-lines`` more are replayed at ``--ingest-rate`` while the load runs
  (ingest and serving share one event loop).

The client sends at a fixed rate (``--rate`` for ``--duration`` s after a
``--warmup`` that is not counted) on a keep-alive pool of 64 connections and
measures each latency from the request's *scheduled* send time, so a stalled
server shows in the tail (no coordinated omission).  95% of requests ask for a
known user (uniform), 5% for unknown or malformed ids.  The same client is then
run against a constant-line aiohttp handler: its p99 is the floor of this
client + aiohttp on this box.  Prints one JSON line; never pass/fail.

    .venv/bin/python bench/serve.py [--users 100000] [--movies 27000] [--rate 1000]
    .venv/bin/python bench/serve.py --mode worker --ingest-lines 180000 --ingest-rate 3000
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# The roles live beside this file; what other benchmarks use is re-exported here.
from serve_client import run_client  # noqa: E402
from serve_proc import (free_port, measure, metric_sum, metrics_text, pin,  # noqa: E402,F401
                        proc_status, read_ready, run_baseline, spawn_server, stop)
from serve_servers import run_const_server, run_state_server  # noqa: E402
from serve_worker import run_replay, run_worker_mode  # noqa: E402


def run_state(args, work: Path) -> dict:
    ids = work / "ids.npy"
    server = spawn_server(args, "state-server", [
        "--users", str(args.users), "--movies", str(args.movies), "--ids-out", str(ids),
        "--max-user-id", str(args.max_user_id), "--seed", str(args.seed),
        "--stale-rate", str(args.stale_rate)])
    try:
        info = read_ready(server, 3600)
        if args.pin and os.cpu_count() >= 2:
            pin(server.pid, 0)
        loaded = proc_status(server.pid)
        result = measure(args, info["port"], server.pid, ids)
        after = proc_status(server.pid)
        sources = metric_sum(metrics_text(info["port"]), "recstream_requests_total")
        with urllib.request.urlopen(f"http://127.0.0.1:{info['port']}/bench/gc") as r:
            gc_stats = json.loads(r.read())
    finally:
        stop(server)
    return {**result, **{k: v for k, v in info.items() if k != "port"},
            "server_rss_mb_loaded": loaded["VmRSS"], "server_rss_mb_after": after["VmRSS"],
            "server_peak_rss_mb": after["VmHWM"], "sources": sources, "gc": gc_stats,
            "ids": ids}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("state", "worker"), default="state")
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--movies", type=int, default=27_000)
    p.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    p.add_argument("--duration", type=float, default=60.0, help="counted seconds of load")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load not counted")
    p.add_argument("--baseline-duration", type=float, default=30.0)
    p.add_argument("--timeout", type=float, default=2.0, help="client timeout per request")
    p.add_argument("--stale-rate", type=float, default=0.0,
                   help="state mode: users invalidated per second (refreshed as in the worker)")
    p.add_argument("--warm-lines", type=int, default=20_000)
    p.add_argument("--ingest-lines", type=int, default=0,
                   help="worker mode: lines replayed while the load runs")
    p.add_argument("--ingest-rate", type=float, default=3000.0)
    p.add_argument("--profile", default="", help="py-spy raw output of the server under load")
    p.add_argument("--worker-env", action="append", default=[], metavar="RECSTREAM_X=V",
                   help="worker mode: extra environment for the worker (repeatable)")
    p.add_argument("--stalls", default="",
                   help="worker mode: write event-loop callbacks over 5 ms, by task, to FILE")
    p.add_argument("--no-pin", dest="pin", action="store_false")
    p.add_argument("--no-baseline", dest="baseline", action="store_false")
    p.add_argument("--max-user-id", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=7)
    # Subprocess roles.
    p.add_argument("--role", default="main", help=argparse.SUPPRESS)
    for name in ("--port", "--ids", "--ids-out", "--broker", "--topic", "--file"):
        p.add_argument(name, default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.port:
        args.port = int(args.port)
    roles = {"state-server": run_state_server, "const-server": run_const_server,
             "client": run_client, "replay": run_replay}
    if args.role in roles:
        return roles[args.role](args)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop children in finally
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = run_state(args, work) if args.mode == "state" else run_worker_mode(args, work)
        ids = result.pop("ids")
        out = {"mode": args.mode, "users": args.users if args.mode == "state"
               else result.pop("known_users"), "movies": args.movies if args.mode == "state"
               else None, "rate": args.rate, "duration_s": args.duration, **result}
        if args.baseline:
            base = run_baseline(args, ids)
            out["baseline"] = {k: base[k] for k in (
                "requests", "rate_achieved", "errors", "p50_ms", "p99_ms", "p999_ms", "max_ms",
                "server_cpu_share", "machine_busy_cores")}
            out["p99_ratio_to_baseline"] = round(out["p99_ms"] / base["p99_ms"], 2)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
