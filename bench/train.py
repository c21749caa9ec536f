"""Retraining cost: ``recstream train --source state`` on a synthetic 1M-rating changelog.

1. Starts an embedded Tansu broker (or uses ``--broker``).
2. Writes N synthetic ratings (``models.datasets.planted_ratings``: low-rank tastes,
   Zipf-like popularity and activity) as the ``user_history`` changelog holds them: one
   record per user, as a compacted changelog (or a worker that wrote each user once)
   leaves it.
3. Runs ``recstream train --source state --json`` as an operator would and prints its
   timings (data load, holdout fit + scoring, final fit, total) as one JSON line.

    .venv/bin/python bench/train.py [--ratings 1000000] [--users 60000] [--items 20000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402

from recstream.kafka import ensure_topic  # noqa: E402
from models.datasets import planted_ratings  # noqa: E402
from recstream.broker import running_tansu  # noqa: E402
from tables.codecs import UserHistory, encode_history  # noqa: E402

PARTITIONS = 8


async def write_changelog(bootstrap: str, topic: str, args) -> tuple[int, int]:
    data = planted_ratings(args.users, args.items, args.ratings, seed=11)
    histories: dict[int, UserHistory] = {}
    for u, i, r, t in zip(data.users.tolist(), data.items.tolist(), data.values.tolist(),
                          data.timestamps.tolist()):
        histories.setdefault(u, UserHistory()).ratings[f"movie+{i}"] = [int(r), t]
    await ensure_topic([bootstrap], topic, PARTITIONS)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=1 << 20, max_request_size=8 << 20)
    await producer.start()
    try:
        for user, history in histories.items():
            await producer.send(topic, encode_history(history), key=str(user).encode(),
                                partition=user % PARTITIONS)
        await producer.flush()
    finally:
        await producer.stop()
    return len(histories), len(data)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ratings", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=60_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--broker", default="", help="host:port of a running broker")
    p.add_argument("--port", type=int, default=19192)
    args = p.parse_args()
    if args.broker:
        return run(args, args.broker, "kafka")
    with running_tansu(args.port):
        return run(args, f"127.0.0.1:{args.port}", "tansu")


def run(args, bootstrap: str, scheme: str) -> int:
    app_id = f"bench-train-{os.getpid()}"
    started = time.perf_counter()
    users, ratings = asyncio.run(write_changelog(bootstrap, f"{app_id}-user_history-changelog",
                                                 args))
    written = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RECSTREAM_BROKER": f"{scheme}://{bootstrap}",
               "RECSTREAM_APP_ID": app_id, "RECSTREAM_PARTITIONS": str(PARTITIONS),
               "RECSTREAM_DATA_DIR": f"{tmp}/data", "RECSTREAM_REGISTRY_DIR": f"{tmp}/models"}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "recstream.cli", "train", "--source",
                               "state", "--window-hours", "1000000", "--json"], env=env,
                              cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps({"ratings": ratings, "users": users, "items": args.items,
                      "changelog_write_s": round(written, 2), "command_wall_s": round(wall, 2),
                      **{k: round(v, 2) for k, v in report["timings"].items()},
                      "holdout_n_test": report["metrics"]["n_test"],
                      "rmse": report["metrics"]["rmse"],
                      "recall_at_20": report["metrics"]["recall_at_20"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
