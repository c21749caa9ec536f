"""bench/serve.py ``--mode worker``: a real worker on Tansu, ingest replayed during the load."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from serve_proc import (BACKGROUND, SERVE, free_port, measure, metric_sum, metrics_text, pin,
                        proc_status, stop)

# ``--stalls FILE`` (worker mode): time every event-loop callback in the worker and
# write the ones over 5 ms, by task (and garbage collections over 1 ms), to FILE
# every 2 s — what holds the loop.
STALL_HOOK = r'''
import asyncio.events, collections, json, os, sys, threading, time
_run, clock, stalls = asyncio.events.Handle._run, time.perf_counter, collections.defaultdict(list)
def _timed(self):
    t = clock(); _run(self); ms = (clock() - t) * 1000
    if ms > 5.0:
        cb = self._callback; owner = getattr(cb, "__self__", None)
        coro = owner.get_coro() if hasattr(owner, "get_coro") else None
        name = getattr(coro, "__qualname__", None) or getattr(cb, "__qualname__", repr(cb))
        chain = []  # the awaited coroutines under the task's own: names which agent or timer
        while coro is not None and len(chain) < 12:
            chain.append(getattr(coro, "__qualname__", "?"))
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        frame = getattr(getattr(owner, "get_coro", lambda: None)(), "cr_frame", None)
        agent = frame.f_locals.get("self") if frame is not None else None
        if agent is not None and chain[:1] == ["Agent._execute_actor"]:  # which agent
            chain[1:] = [str(getattr(agent, "name", "?"))]
        name = " > ".join(chain) if chain else name
        stalls[name].append((round(time.time(), 3), round(ms, 1)))
asyncio.events.Handle._run = _timed
import gc
_gc_start = [0.0]
def _gc(phase, info):
    if phase == "start":
        _gc_start[0] = clock()
    elif (clock() - _gc_start[0]) > 0.001:  # collections over 1 ms, by generation
        stalls["gc gen%d" % info["generation"]].append(
            (round(time.time(), 3), round((clock() - _gc_start[0]) * 1000, 1)))
gc.callbacks.append(_gc)
def _dump():
    while True:
        time.sleep(2)
        with open(os.environ["BENCH_STALLS"] + ".tmp", "w") as f:
            json.dump({k: sorted(v) for k, v in list(stalls.items())}, f)
        os.replace(os.environ["BENCH_STALLS"] + ".tmp", os.environ["BENCH_STALLS"])
threading.Thread(target=_dump, daemon=True).start()
from recstream.cli import main
sys.exit(main(sys.argv[1:]))
'''

def run_worker_mode(args, work: Path) -> dict:
    from recstream.ops.replay import replay_file
    from recstream.broker import running_tansu
    from recstream.sim.cli import main as sim_main

    lines = work / "movielog.txt"
    t0 = time.perf_counter()
    code = sim_main(["--fast", "--no-kafka", "--no-api", "--quiet", "--users", str(args.users),
                     "--recommender", "builtin:popularity", "--rate", "200", "--out",
                     str(lines), "--max-lines", str(args.warm_lines + args.ingest_lines)])
    if code:
        raise SystemExit(f"simulator failed with {code}")
    sim_s = time.perf_counter() - t0
    raw = [x for x in lines.read_bytes().splitlines() if x.strip()]
    warm, live = work / "warm.txt", work / "live.txt"
    warm.write_bytes(b"\n".join(raw[: args.warm_lines]) + b"\n")
    live.write_bytes(b"\n".join(raw[args.warm_lines:]) + b"\n")
    users = sorted({int(p[1]) for p in (x.split(b",", 2) for x in raw) if len(p) > 1
                    and p[1].isdigit() and int(p[1]) <= args.max_user_id})
    ids = work / "ids.npy"
    np.save(ids, np.array(users, np.int64))

    broker_port, web_port, api_port = free_port(), free_port(), free_port()
    broker = f"127.0.0.1:{broker_port}"
    # Guardrails fail closed (#14): a worker serves only movies the movie API confirmed.
    # The same world (same seed and size) serves its movie API, slowly, beside the worker.
    api = subprocess.Popen([sys.executable, "-m", "recstream.cli", "sim", "--no-kafka",
                            "--quiet", "--users", str(args.users), "--recommender",
                            "builtin:popularity", "--rate", "0.01", "--api-port",
                            str(api_port), "--out", os.devnull], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    BACKGROUND.append(api)
    topic = f"bench-serve-{os.getpid()}"
    env = {**os.environ, "RECSTREAM_BROKER": f"tansu://{broker}", "RECSTREAM_TOPIC": topic,
           "RECSTREAM_APP_ID": f"bench-serve-{os.getpid()}", "RECSTREAM_WEB_PORT": str(web_port),
           "RECSTREAM_WEB_HOST": "127.0.0.1", "RECSTREAM_DATA_DIR": str(work / "worker-data"),
           "RECSTREAM_API_URL": f"http://127.0.0.1:{api_port}",
           **dict(kv.split("=", 1) for kv in args.worker_env)}
    with running_tansu(broker_port):
        asyncio.run(replay_file([broker], topic, 8, warm))
        log = open(work / "worker.log", "w")
        cmd = [sys.executable, "-m", "recstream.cli", "worker", "-l", "warn"]
        if args.stalls:
            env["BENCH_STALLS"] = args.stalls
            cmd[1:3] = ["-c", STALL_HOOK]
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 600
            consumed = 0.0
            while consumed < args.warm_lines:
                if time.monotonic() > deadline or proc.poll() is not None:
                    log.flush()
                    tail = Path(log.name).read_text()[-3000:]
                    raise SystemExit(f"worker consumed {consumed} warm lines:\n{tail}")
                time.sleep(0.5)
                try:
                    consumed = sum(metric_sum(metrics_text(web_port), "recstream_lines_total")
                                   .values())
                except OSError:
                    continue
            time.sleep(2.0)  # let the refresher catch up with the warm users
            if args.pin and os.cpu_count() >= 2:
                pin(proc.pid, 0)
            loaded = proc_status(proc.pid)
            replay = None
            if args.ingest_lines:
                # A separate process, so the orchestrator's wait does not slow the producer.
                replay = subprocess.Popen([sys.executable, str(SERVE), "--role", "replay",
                                           "--broker", broker, "--topic", topic,
                                           "--file", str(live), "--ingest-rate",
                                           str(args.ingest_rate)])
            t_load = time.monotonic()
            before = sum(metric_sum(metrics_text(web_port), "recstream_lines_total").values())
            window = [time.time()]
            result = measure(args, web_port, proc.pid, ids)
            window.append(time.time())
            text = metrics_text(web_port)
            during = sum(metric_sum(text, "recstream_lines_total").values()) - before
            ingest_rate = during / (time.monotonic() - t_load)
            if replay is not None:
                replay.wait(600)
            after = proc_status(proc.pid)
        finally:
            stop(proc)
            stop(api)
    return {**result, "sim_s": round(sim_s, 1), "known_users": len(users),
            "lines_ingested_during_load": int(during),
            "ingest_lines_per_s_during_load": round(ingest_rate),
            "server_rss_mb_loaded": loaded["VmRSS"], "server_rss_mb_after": after["VmRSS"],
            "server_peak_rss_mb": after["VmHWM"],
            "sources": metric_sum(text, "recstream_requests_total"), "ids": ids,
            **({"stalls_window": [round(t, 3) for t in window]} if args.stalls else {})}


def run_replay(args) -> None:
    from recstream.ops.replay import replay_file
    asyncio.run(replay_file([args.broker], args.topic, 8, Path(args.file),
                            rate=args.ingest_rate))


