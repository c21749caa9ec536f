"""How long until a new rating changes that user's next answer (SPEC §7: p99 ≤ 1 s).

Starts an embedded Tansu broker and a real ``recstream worker``, warms it with
the real movielog sample, then for each trial picks a user, reads their
answer, produces one rating line for the first movie of that answer (a movie
the user has now seen must leave the list) and polls ``/recommend`` every
5 ms until the answer changes.  Prints one JSON line with p50/p90/p99/max.

    .venv/bin/python bench/freshness.py [--trials 200] [--source FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402

from bench.procs import free_port  # noqa: E402
from recstream.ops.replay import replay_file  # noqa: E402
from recstream.broker import running_tansu  # noqa: E402
from recstream.parsing import parse_line  # noqa: E402
from recstream.records import Rating, WatchMinute  # noqa: E402
from tests.integration.movie_api import MovieApi  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "data" / "mlip-stream-samples" / "movielog_lines.txt"


def get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
        return r.status, r.read().decode()


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("worker exited")
        try:
            if get(port, "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("worker not ready")


def metric_sum(port: int, prefix: str) -> float:
    _, text = get(port, "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix))


def wait_quiet(port: int, timeout: float = 120) -> None:
    """Until no answer was recomputed and no model step taken for 2 s (backlogs drained)."""
    deadline = time.monotonic() + timeout
    last, since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        now = (metric_sum(port, "recstream_answers_refreshed_total")
               + metric_sum(port, "recstream_model_updates_total"))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 2.0:
            return
        time.sleep(0.2)


def lines_seen(port: int) -> float:
    _, text = get(port, "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("recstream_lines_total"))


async def trials(port: int, broker: str, topic: str, users: list[int], n: int) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=0)
    await producer.start()
    rng = random.Random(3)
    out = []
    try:
        for user in rng.sample(users, min(n, len(users))):
            _, before = get(port, f"/recommend/{user}")
            movie = before.split(",")[0]
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            line = f"{now},{user},GET /rate/{movie}=1".encode()
            start = time.perf_counter()
            await producer.send_and_wait(topic, line, key=str(user).encode())
            while True:
                _, after = get(port, f"/recommend/{user}")
                if after != before:
                    out.append(time.perf_counter() - start)
                    if out[-1] > 1.0:
                        print(f"slow trial {len(out)}: user {user} {out[-1]:.2f}s at "
                              f"{time.strftime('%H:%M:%S')}", file=sys.stderr)
                    break
                if time.perf_counter() - start > 10:
                    out.append(float("inf"))
                    break
                await asyncio.sleep(0.005)
    finally:
        await producer.stop()
    return out


@contextlib.contextmanager
def broker_running(kafka: bool, tmp: Path):
    port = free_port()
    if kafka:
        from tests.brokers import start_kafka, stop_kafka
        handle = start_kafka(port, tmp / "kafka")
        try:
            yield f"kafka://127.0.0.1:{port}"
        finally:
            stop_kafka(handle)
    else:
        with running_tansu(port):
            yield f"tansu://127.0.0.1:{port}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--source", default=str(SAMPLE))
    p.add_argument("--kafka", action="store_true",
                   help="run on Apache Kafka (deploy/kafka) instead of the embedded Tansu")
    args = p.parse_args()
    lines = [ln for ln in Path(args.source).read_text().split("\n") if ln.strip()]
    users = sorted({r.user for r in map(parse_line, lines) if isinstance(r, (Rating, WatchMinute))})
    movie_api = MovieApi()  # the real course objects: only confirmed movies are served (#14)
    with tempfile.TemporaryDirectory() as tmp, broker_running(args.kafka, Path(tmp)) as url:
        broker, topic, web = url.split("://")[1], f"fresh-{os.getpid()}", free_port()
        env = {**os.environ, "RECSTREAM_BROKER": url, "RECSTREAM_TOPIC": topic,
               "RECSTREAM_APP_ID": f"fresh-{os.getpid()}", "RECSTREAM_WEB_PORT": str(web),
               "RECSTREAM_DATA_DIR": f"{tmp}/data", "RECSTREAM_API_URL": movie_api.url}
        with open(f"{tmp}/worker.log", "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "recstream.cli", "worker", "-l", "warn"],
                                    env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(web, proc)
            asyncio.run(replay_file([broker], topic, 8, Path(args.source)))
            while lines_seen(web) < len(lines):
                time.sleep(0.2)
            wait_quiet(web)  # the refresher and the movie agent catch up after the replay
            latencies = sorted(asyncio.run(trials(web, broker, topic, users, args.trials)))
        finally:
            proc.terminate()
            proc.wait(30)
    q = lambda f: round(1000 * latencies[min(len(latencies) - 1, int(f * len(latencies)))], 1)
    print(json.dumps({"broker": "kafka" if args.kafka else "tansu", "trials": len(latencies), "p50_ms": q(0.5), "p90_ms": q(0.9),
                      "p99_ms": q(0.99), "max_ms": round(1000 * latencies[-1], 1),
                      "over_1s": sum(1 for x in latencies if x > 1.0)}))


if __name__ == "__main__":
    main()
