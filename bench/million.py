"""A worker holding 1M users for real: recovery from changelogs, RSS, full refresh, p99 meanwhile.

Issue #11 item 3.  Ingesting a million users' events takes longer than this benchmark
should (that is bench/ingest.py's job), so the users' state is written straight into
the tables' changelog topics, in exactly the records the user writer produces
(``tables.codecs``: history JSON and float32 vectors, keyed and partitioned as the
worker's own), and the item model into the item broadcast and movie-metadata topics
(every movie confirmed by the "movie API", 1% adult, ~14% not for minors).  Then:

1. a worker with an empty disk starts (a new host, or a restart after a crash: the
   worker discards its stores without a clean-shutdown marker) and restores every
   table from its changelog: the time to "tables recovered" and to ``/readyz``;
2. loading the vectors marks every user stale, exactly what a model swap does
   (``UserIndex.invalidate_all``): the refresher re-ranks all of them; the time until
   ``recstream_answers_refreshed_total`` reaches the user count is the full refresh;
3. meanwhile the open-loop client of bench/serve.py asks ``--rate`` req/s for
   ``--load-s`` seconds (95% known users): p99 *during* the refresh; then, if the
   refresh finished, once more at rest; then the constant-handler baseline;
4. with ``--swap``: an implicit-ALS version with fold-in recency is promoted and
   announced (bench/million_swap.py), so every user is refit from their history and
   re-ranked: the swap's refresh time and p99 during it, then at rest;
5. the worker's RSS is sampled every 0.5 s throughout (peak and at rest).

``--code-tree DIR`` runs the worker from another checkout (``git archive`` of a baseline
commit), the rest of the benchmark unchanged: a before/after in one session.

    .venv/bin/python bench/million.py [--users 1000000] [--movies 27000] [--load-s 30]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import serve as sb  # noqa: E402  (bench/serve.py: client, baseline, /proc helpers)
from million_swap import run_swap  # noqa: E402


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def wait_ready(port: int, proc: subprocess.Popen, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited with {proc.returncode}")
        if get(f"http://127.0.0.1:{port}/readyz", 2)[0] == 200:
            return time.monotonic()
        time.sleep(0.5)
    raise SystemExit("worker not ready in time")


def metric(port: int, name: str) -> float:
    status, text = get(f"http://127.0.0.1:{port}/metrics", 10)
    return sum(sb.metric_sum(text, name).values()) if status == 200 else float("nan")


async def produce_state(bootstrap: str, app_id: str, partitions: int, users: np.ndarray,
                        movies: list[str], n_factors: int, seed: int) -> dict:
    """The tables' and the item model's records, as the worker's writers would send them."""
    import orjson
    from recstream.kafka import producer
    from tables.broadcast import encode_item_state
    from tables.codecs import UserHistory, encode_history, encode_vector, user_key
    from tables.context import partition_for

    rng = np.random.default_rng(seed)
    prod = producer(bootstrap, linger_ms=50, max_batch_size=512 * 1024,
                    request_timeout_ms=300_000)  # a loaded box: slow acks are not failures
    await prod.start()
    t0, sent, pending = time.perf_counter(), 0, []

    async def send(topic: str, key: bytes, value: bytes) -> None:
        nonlocal sent, pending
        pending.append(await prod.send(topic, value, key=key,
                                       partition=partition_for(key, partitions)))
        sent += 1
        if len(pending) >= 20000:
            await asyncio.gather(*pending)
            pending = []

    now = time.time()
    m = len(movies)
    pop = rng.permutation(1000.0 / np.arange(1, m + 1) ** 0.8)
    for i, movie in enumerate(movies):
        key = movie.encode()
        vec = rng.normal(0, 0.1, n_factors)
        await send(f"{app_id}-item-broadcast", key, encode_item_state(
            float(rng.normal(0, 0.3)), vec, float(pop[i]), now - 3600.0, int(pop[i])))
        meta = {"id": movie, "safe_for_all": i % 100 != 0,
                "safe_for_minors": i % 100 != 0 and i % 7 != 0, "licence_cost": None}
        await send(f"{app_id}-movie-metadata", key, orjson.dumps(meta))
    weights = 1.0 / np.arange(1, m + 1) ** 0.9
    weights /= weights.sum()
    for j, user in enumerate(users.tolist()):
        key = user_key(user)
        seen = rng.choice(m, int(rng.integers(1, 16)), p=weights, replace=False)
        h = UserHistory(created=now - 86400.0)
        for k in seen.tolist():
            h.watches[movies[k]] = [90, now - 7200.0, now - 3600.0, 90]
            h.items.append(movies[k])
        if j % 3 == 0:
            h.ratings[movies[int(seen[0])]] = [4, now - 3000.0]
        await send(f"{app_id}-user_history-changelog", key, encode_history(h))
        await send(f"{app_id}-user_vectors-changelog", key, encode_vector(
            float(rng.normal(0, 0.2)), rng.normal(0, 0.1, n_factors).astype(np.float32)))
    await asyncio.gather(*pending)
    await prod.stop()
    return {"records": sent, "produce_s": round(time.perf_counter() - t0, 1)}


@contextlib.contextmanager
def running_broker(kind: str, port: int, work: Path):
    if kind == "tansu":
        from recstream.broker import running_tansu
        with running_tansu(port):
            yield
        return
    from tests.brokers import start_kafka, stop_kafka
    handle = start_kafka(port, work / "kafka")
    try:
        yield
    finally:
        stop_kafka(handle)


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.stopped = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            try:
                self.samples.append((time.monotonic(), sb.proc_status(self.pid)["VmRSS"]))
            except (OSError, IndexError):
                return


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--movies", type=int, default=27_000)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--load-s", type=float, default=30.0)
    p.add_argument("--refresh-timeout", type=float, default=3600.0)
    p.add_argument("--baseline-s", type=float, default=15.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--broker", choices=("kafka", "tansu"), default="kafka",
                   help="a real Apache Kafka broker (deploy/kafka/kafka.sh), or embedded Tansu")
    p.add_argument("--worker-env", action="append", default=[], metavar="RECSTREAM_X=V")
    p.add_argument("--swap", action="store_true", help="then promote a model: refit everyone")
    p.add_argument("--code-tree", default="", help="run the worker from this checkout")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop children in finally
    from recstream.settings import Settings

    load0 = os.getloadavg()
    out: dict = {"users": args.users, "movies": args.movies, "loadavg_start": load0}
    work = Path(tempfile.mkdtemp(prefix="bench-million-"))
    broker_port, web_port = sb.free_port(), sb.free_port()
    app_id = f"bench-million-{os.getpid()}"
    scheme = "kafka" if args.broker == "kafka" else "tansu"
    env = {**os.environ, "RECSTREAM_BROKER": f"{scheme}://127.0.0.1:{broker_port}",
           "RECSTREAM_APP_ID": app_id, "RECSTREAM_TOPIC": app_id,
           "RECSTREAM_WEB_PORT": str(web_port), "RECSTREAM_WEB_HOST": "127.0.0.1",
           "RECSTREAM_DATA_DIR": str(work / "data"), "RECSTREAM_API_URL": "http://127.0.0.1:9",
           "RECSTREAM_REGISTRY_DIR": str(work / "models"), "RECSTREAM_RETRAIN_EVERY_H": "0",
           "RECSTREAM_COLDSTART": "false", **dict(kv.split("=", 1) for kv in args.worker_env)}
    cwd = None
    if args.code_tree:
        cwd = str(Path(args.code_tree).resolve())
        env["PYTHONPATH"] = cwd
        out["code_tree"] = cwd
    settings = Settings.from_mapping({"app_id": app_id})
    rng = np.random.default_rng(args.seed)
    users = rng.permutation(np.arange(1, settings.max_user_id + 1))[: args.users].astype(np.int64)
    np.save(work / "ids.npy", users)
    movies = [f"movie+{i}+{1920 + i % 104}" for i in range(args.movies)]
    cmd = [sys.executable, "-m", "recstream.cli", "worker", "-l", "info"]
    try:
        with running_broker(args.broker, broker_port, work):
            # 1. A worker creates every topic with its partitions and configs, then stops cleanly.
            first = subprocess.Popen(cmd, env=env, stdout=open(work / "first.log", "w"),
                                     stderr=subprocess.STDOUT, cwd=cwd)
            wait_ready(web_port, first, 600)
            first.send_signal(signal.SIGTERM)
            first.wait(120)
            out.update(asyncio.run(produce_state(
                f"127.0.0.1:{broker_port}", app_id, settings.partitions, users, movies,
                settings.n_factors, args.seed)))
            print(json.dumps(out), flush=True)
            # 2. An empty disk: every table restored from its changelog.
            shutil.rmtree(work / "data", ignore_errors=True)
            log_path = work / "worker.log"
            t0 = time.monotonic()
            worker = subprocess.Popen(cmd, env=env, stdout=open(log_path, "w"),
                                      stderr=subprocess.STDOUT, cwd=cwd)
            rss = RssSampler(worker.pid)
            rss.start()
            try:
                recovered = None
                while recovered is None:
                    if worker.poll() is not None:
                        raise SystemExit(f"worker exited; see {log_path}")
                    if "tables recovered;" in log_path.read_text(errors="replace"):
                        recovered = time.monotonic()
                    time.sleep(0.5)
                ready = wait_ready(web_port, worker, 600)
                out.update(recovery_s=round(recovered - t0, 1), ready_s=round(ready - t0, 1),
                           rss_mb_at_ready=sb.proc_status(worker.pid)["VmRSS"])
                print(json.dumps(out), flush=True)
                # 3. The full refresh (every user stale), with the load running meanwhile.
                ns = argparse.Namespace(rate=args.rate, duration=args.load_s, warmup=2.0,
                                        timeout=2.0, max_user_id=settings.max_user_id,
                                        seed=args.seed, pin=False, profile="",
                                        baseline_duration=args.baseline_s)
                refreshed0 = metric(web_port, "recstream_answers_refreshed_total")
                out["during_refresh"] = sb.measure(ns, web_port, worker.pid, work / "ids.npy")
                out["during_refresh"]["refreshed_meanwhile"] = \
                    metric(web_port, "recstream_answers_refreshed_total") - refreshed0
                print(json.dumps(out), flush=True)
                # Done when the refresher's count stops growing (5 s without a change) after
                # most users: the users asked for meanwhile were re-ranked on the request path
                # instead, and are not in this count.
                done, last, changed = None, -1.0, time.monotonic()
                while time.monotonic() - ready < args.refresh_timeout:
                    count = metric(web_port, "recstream_answers_refreshed_total")
                    if count != last:
                        last, changed = count, time.monotonic()
                    elif count >= 0.5 * args.users and time.monotonic() - changed > 5.0:
                        done = changed
                        break
                    time.sleep(1.0)
                n_refreshed = metric(web_port, "recstream_answers_refreshed_total")
                elapsed = (done or time.monotonic()) - ready
                out.update(full_refresh_s=round(elapsed, 1) if done else None,
                           refreshed=n_refreshed,
                           refresh_users_per_s=round(n_refreshed / elapsed, 1))
                if done:
                    out["at_rest"] = sb.measure(ns, web_port, worker.pid, work / "ids.npy")
                out["rss_mb_at_rest"] = sb.proc_status(worker.pid)["VmRSS"]
                if args.swap:
                    print(json.dumps(out), flush=True)
                    run_swap(args, out, env=env, port=web_port, pid=worker.pid,
                             ids=work / "ids.npy", movies=movies, users=users,
                             n_factors=settings.n_factors, ns=ns, measure=sb.measure,
                             metric=metric)
                    out["rss_mb_after_swap"] = sb.proc_status(worker.pid)["VmRSS"]
            finally:
                rss.stopped.set()
                sb.stop(worker)
            out["rss_mb_peak"] = max((s for _, s in rss.samples), default=None)
            print(json.dumps(out), flush=True)
        base = sb.run_baseline(ns, work / "ids.npy")
        out["baseline"] = {k: base[k] for k in ("p50_ms", "p99_ms", "errors",
                                                "machine_busy_cores", "loadavg_1m")}
        out["p99_ratio_during_refresh"] = round(out["during_refresh"]["p99_ms"]
                                                / base["p99_ms"], 2)
        out["loadavg_end"] = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
