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
import asyncio
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

BACKGROUND: list = []  # tasks the in-process server keeps alive
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
MALFORMED = ["abc", "-1", "1.5", "", "%20", "12a", "0x1f", "9999999999999", "..%2F..%2Fetc"]
WORDS = ("the lost city night star river dark love war king last man black house blue girl "
         "dead road time heart fire moon iron ghost secret summer winter game dream wild "
         "silent golden empire shadow storm angel sun island street bridge hunter").split()


# -- helpers -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of ``pid`` in MB."""
    text = open(f"/proc/{pid}/status").read()
    return {k: int(text.split(k + ":")[1].split()[0]) // 1024 for k in ("VmRSS", "VmHWM")}


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def pin(pid: int, cpu: int) -> None:
    """Pin every thread of ``pid`` to ``cpu`` (sched_setaffinity is per thread)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            pass


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def metric_sum(text: str, name: str) -> dict[str, float]:
    """``name{label="x"} v`` lines → {x: v} (first label value), summed per value."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = re.search(r'="([^"]*)"', line)
            key = found.group(1) if found else ""
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def read_ready(proc: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"server exited ({proc.poll()}) before it was ready")
        if line.startswith("READY "):
            return json.loads(line[6:])
    raise SystemExit("server not ready in time")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- servers (subprocess roles) ----------------------------------------------------------
def build_state(args) -> tuple[object, dict]:
    """A real, never-started WorkerParts filled with random users and movies."""
    from recstream.app import create_app, parts_of
    from recstream.settings import Settings
    from tables.codecs import UserHistory

    tmp = tempfile.mkdtemp(prefix="bench-serve-")
    import atexit
    import shutil
    atexit.register(shutil.rmtree, tmp, True)
    settings = Settings.from_mapping({"app_id": f"bench-serve-{os.getpid()}", "data_dir": tmp,
                                      "max_user_id": args.max_user_id})
    rt = parts_of(create_app(settings))
    rng = np.random.default_rng(args.seed)
    f, m, n = settings.n_factors, args.movies, args.users
    now = time.time()
    t_fill = time.perf_counter()
    items = rt.items
    seen: set[str] = set()
    for i in range(m):
        slug = "+".join(rng.choice(WORDS, 1 + i % 3)) + f"+{1920 + i % 104}"
        if slug in seen:
            slug += f"+{i}"
        seen.add(slug)
        items.row(slug)
        if i % 100 == 0:
            items.set_flags(slug, adult=True, minors_ok=False)  # 1% adult
        elif i % 7 == 0:
            items.set_flags(slug, adult=False, minors_ok=False)  # ~14% R / NC-17
        else:  # confirmed by the movie API, fine for minors (unconfirmed is unsafe: #14)
            items.set_flags(slug, adult=False, minors_ok=True)
    items.factors[:m] = rng.normal(0, 0.1, (m, f)).astype(np.float32)
    items.bias[:m] = rng.normal(0, 0.3, m).astype(np.float32)
    items.pop_score[:m] = rng.permutation(1000.0 / np.arange(1, m + 1) ** 0.8)
    items.pop_time[:m] = now - rng.uniform(0, 3 * 86400, m)
    items.plays[:m] = rng.integers(0, 5000, m)
    rt.recommender.observe_time(now)

    user_ids = rng.permutation(np.arange(1, args.max_user_id + 1))[:n].astype(np.int64)
    vectors = rng.normal(0, 0.1, (n, f)).astype(np.float32)
    biases = rng.normal(0, 0.2, n).astype(np.float32)
    users = rt.users
    for i, u in enumerate(user_ids.tolist()):
        if i % 10 == 9:
            users.row(u)  # known (rated/watched) but no vector yet: "popular" answers
        else:
            users.set_vector(u, float(biases[i]), vectors[i])
    users.minor[:n] = rng.random(n) < 0.05
    ids = items.ids

    def history_of(user: int):
        if user % 3:
            return None
        h = UserHistory(created=now - 86400)
        for j in range(3 + user % 12):
            h.watches[ids[(user * 7919 + j * 104729) % m]] = [60, now, now, 60]
        return h

    rt.recommender.history_of = history_of
    rt.recommender.refresh_fallback()
    rt.readiness.items_loaded.set()  # the view answers 503 until the item model is loaded
    fill_s = time.perf_counter() - t_fill

    # A full refresh, as after a model swap: refresher-sized batches, like refresh_once.
    rec, batch = rt.recommender, settings.refresh_batch
    excl_s = rank_s = 0.0
    for start in range(0, n, batch):
        rows = np.arange(start, min(n, start + batch))
        t0 = time.perf_counter()
        exclusions = rec.exclusions(rows)
        t1 = time.perf_counter()
        users.store_answers(rows, rec.compute(rows, exclusions))
        excl_s += t1 - t0
        rank_s += time.perf_counter() - t1
    users.dirty.clear()
    np.save(args.ids_out, user_ids)
    return rt, {"fill_s": round(fill_s, 2), "precompute_s": round(excl_s + rank_s, 2),
                "precompute_exclusions_s": round(excl_s, 2),
                "precompute_rank_s": round(rank_s, 2), "batch": batch}


def gc_pauses() -> dict:
    """Record every garbage collection's pause; read back at ``/bench/gc``."""
    import gc
    stats = {g: [0, 0.0, 0.0] for g in range(3)}  # count, total ms, max ms
    started = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            ms = (time.perf_counter() - started[0]) * 1000
            s = stats[info["generation"]]
            s[0] += 1
            s[1] += ms
            s[2] = max(s[2], ms)

    gc.callbacks.append(callback)
    return stats


def serve(routes, info: dict, setup=None) -> None:
    from aiohttp import web

    async def main() -> None:
        stats = gc_pauses()

        async def gc_view(request: web.Request) -> web.Response:
            return web.json_response({f"gen{g}": {"count": c, "total_ms": round(t, 1),
                                                  "max_ms": round(m, 2)}
                                      for g, (c, t, m) in stats.items()})

        app = web.Application()
        app.add_routes(list(routes) + [web.get("/bench/gc", gc_view)])
        runner = web.AppRunner(app, access_log=None)  # as Faust's aiohttp driver
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        if setup is not None:
            setup()
        print("READY " + json.dumps({**info, "port": sock.getsockname()[1]}), flush=True)
        stopped = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
        await stopped.wait()
        await runner.cleanup()

    asyncio.run(main())


def run_state_server(args) -> None:
    from web.views import make_routes

    rt, info = build_state(args)

    def churn() -> None:  # users changing state at --stale-rate, refreshed like the worker
        if args.stale_rate <= 0:
            return
        from agents.refresher import AnswerRefresher
        refresher = AnswerRefresher(users=rt.users, items=rt.items, recommender=rt.recommender,
                                    batch=rt.settings.refresh_batch, top_k=rt.settings.top_k,
                                    refreshed=rt.metrics.refreshed)
        rng = np.random.default_rng(args.seed + 1)

        async def invalidate() -> None:
            while True:
                await asyncio.sleep(0.01)
                for r in rng.integers(0, len(rt.users), max(1, int(args.stale_rate / 100))):
                    rt.users.invalidate(int(r))

        async def refresh() -> None:
            while True:
                if not await refresher.once():
                    await asyncio.sleep(rt.settings.refresh_interval_s)
        loop = asyncio.get_running_loop()
        BACKGROUND.extend([loop.create_task(invalidate()), loop.create_task(refresh())])

    serve(make_routes(settings=rt.settings, metrics=rt.metrics, recommender=rt.recommender,
                      readiness=rt.readiness, user_store=rt.user_store, users=rt.users),
          info, churn)


def run_const_server(args) -> None:
    from aiohttp import web
    line = ",".join(f"some+movie+title+{1990 + i}" for i in range(20))

    async def constant(request: web.Request) -> web.Response:
        return web.Response(text=line, content_type="text/plain")

    serve([web.get("/recommend/{user_id}", constant), web.get("/recommend/", constant)], {})


# -- load client (subprocess role) -------------------------------------------------------
def request_paths(known: np.ndarray, n: int, max_user_id: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    picks = known[rng.integers(0, len(known), n)]
    odd = np.flatnonzero(rng.random(n) < 0.05)
    known_set = set(known.tolist())
    out = [str(u) for u in picks.tolist()]
    for j, i in enumerate(odd.tolist()):
        if j % 2:
            out[i] = MALFORMED[j // 2 % len(MALFORMED)]
        else:  # a well-formed id we do not know (beyond max_user_id when all are known)
            u = int(rng.integers(1, max_user_id + 1))
            out[i] = str(u if u not in known_set else max_user_id + 1 + j)
    return out


async def load(args) -> dict:
    import aiohttp
    from yarl import URL

    known = np.load(args.ids)
    total = int(args.rate * (args.warmup + args.duration))
    base = f"http://127.0.0.1:{args.port}/recommend/"
    urls = [URL(base + p, encoded=True)
            for p in request_paths(known, total, args.max_user_id, args.seed)]
    latency = np.full(total, np.nan)
    ok = np.zeros(total, bool)
    connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    clock = time.perf_counter
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def one(i: int, scheduled: float) -> None:
            try:
                async with session.get(urls[i]) as resp:
                    body = await resp.read()
                    ok[i] = resp.status == 200 and bool(body.strip())
            except Exception:
                pass
            latency[i] = clock() - scheduled

        pending: set[asyncio.Task] = set()
        t0 = clock() + 0.05
        for i in range(total):
            scheduled = t0 + i / args.rate
            delay = scheduled - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            elif i % 16 == 0:
                await asyncio.sleep(0)
            task = asyncio.ensure_future(one(i, scheduled))
            pending.add(task)
            task.add_done_callback(pending.discard)
        sent_span = clock() - t0
        await asyncio.gather(*pending)
    counted = slice(int(args.rate * args.warmup), total)
    ms = latency[counted] * 1000.0
    bad = ~ok[counted]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    pct = np.percentile(ms, [50, 95, 99, 99.9])
    return {"requests": int(ms.size), "rate_achieved": round(total / sent_span, 1),
            "errors": int(bad.sum()), "p50_ms": round(pct[0], 3), "p95_ms": round(pct[1], 3),
            "p99_ms": round(pct[2], 3), "p999_ms": round(pct[3], 3),
            "max_ms": round(float(ms.max()), 3), "over_600ms": int((ms > 600).sum()),
            "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}


def run_client(args) -> None:
    if args.pin and os.cpu_count() >= 2:
        os.sched_setaffinity(0, {1})
    print("RESULT " + json.dumps(asyncio.run(load(args))), flush=True)


# -- orchestration -----------------------------------------------------------------------
def measure(args, port: int, server_pid: int, ids: Path) -> dict:
    """Run the client against ``port``; → its numbers plus the server's CPU over the run."""
    cmd = [sys.executable, __file__, "--role", "client", "--port", str(port), "--ids", str(ids),
           "--rate", str(args.rate), "--duration", str(args.duration), "--warmup",
           str(args.warmup), "--timeout", str(args.timeout), "--max-user-id",
           str(args.max_user_id), "--seed", str(args.seed)] + ([] if args.pin else ["--no-pin"])
    cpu0, t0, busy0 = cpu_seconds(server_pid), time.monotonic(), busy_jiffies()
    profiler = None
    if args.profile:
        profiler = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(server_pid),
             "-f", "raw", "-r", "200", "-o", args.profile], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=args.duration + args.warmup + 300)
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
    found = re.search(r"^RESULT (.*)$", out.stdout, re.M)
    if not found:
        raise SystemExit("client failed:\n" + out.stderr[-3000:])
    result = json.loads(found.group(1))
    wall = time.monotonic() - t0
    result["server_cpu_share"] = round((cpu_seconds(server_pid) - cpu0) / wall, 2)
    busy1 = busy_jiffies()  # noise check: other work on the box shows as busy cores
    result["machine_busy_cores"] = round(
        (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1) * (os.cpu_count() or 1), 2)
    result["loadavg_1m"] = float(open("/proc/loadavg").read().split()[0])
    return result


def spawn_server(args, role: str, extra: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--role", role] + extra,
                            stdout=subprocess.PIPE, text=True)


def run_baseline(args, ids: Path) -> dict:
    server = spawn_server(args, "const-server", [])
    try:
        port = read_ready(server, 60)["port"]
        if args.pin and os.cpu_count() >= 2:
            pin(server.pid, 0)
        saved, args.duration = args.duration, args.baseline_duration
        try:
            return measure(args, port, server.pid, ids)
        finally:
            args.duration = saved
    finally:
        stop(server)


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
                replay = subprocess.Popen([sys.executable, __file__, "--role", "replay",
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
