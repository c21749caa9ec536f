"""Retraining cost: ``recstream train --source state`` on a synthetic 1M-rating changelog.

1. Starts an embedded Tansu broker (or uses ``--broker``).
2. Writes N synthetic ratings (``models.datasets.planted_ratings``: low-rank tastes,
   Zipf-like popularity and activity) as the ``user_history`` changelog holds them: one
   record per user, as a compacted changelog (or a worker that wrote each user once)
   leaves it.
3. Runs ``recstream train --source state --json`` as an operator would and prints its
   timings (data load, holdout fit + scoring, final fit, total) as one JSON line.
4. With ``--baseline-tree DIR`` (a checkout of older code, e.g. ``git archive <commit>``),
   runs the same command from that tree on the same changelog in the same run, alternating
   ``--repeat`` times, and prints the ratio of the command totals beside the load average.

    .venv/bin/python bench/train.py [--ratings 1000000] [--users 60000] [--items 20000]
    .venv/bin/python bench/train.py --baseline-tree /tmp/base --factors 32 --model ials
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
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
    p.add_argument("--baseline-tree", default="", help="older code to time beside this tree")
    p.add_argument("--factors", type=int, default=0, help="RECSTREAM_N_FACTORS (0: default)")
    p.add_argument("--model", default="", help="--model of recstream train (default: its own)")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    if args.broker:
        return run(args, args.broker, "kafka")
    with running_tansu(args.port):
        return run(args, f"127.0.0.1:{args.port}", "tansu")


def train_once(args, tree: Path, bootstrap: str, scheme: str, app_id: str) -> dict:
    """One ``recstream train`` from ``tree``'s code → its report's numbers."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RECSTREAM_BROKER": f"{scheme}://{bootstrap}",
               "RECSTREAM_APP_ID": app_id, "RECSTREAM_PARTITIONS": str(PARTITIONS),
               "RECSTREAM_DATA_DIR": f"{tmp}/data", "RECSTREAM_REGISTRY_DIR": f"{tmp}/models",
               "PYTHONPATH": str(tree)}
        if args.factors:
            env["RECSTREAM_N_FACTORS"] = str(args.factors)
        extra = ["--model", args.model] if args.model else []
        load = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "recstream.cli", "train", "--source",
                               "state", "--window-hours", "1000000", "--json", *extra],
                              env=env, cwd=tree, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"{tree}: {done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # CPU seconds: on a shared machine the wall time mostly measures the other processes.
    return {"tree": str(tree), "model": report.get("model"), "command_wall_s": round(wall, 2),
            "command_cpu_s": round(cpu, 2),
            "load_1m_at_start": round(load, 1), "load_1m_at_end": round(os.getloadavg()[0], 1),
            **{k: round(v, 2) for k, v in report["timings"].items()},
            "holdout_n_test": report["metrics"].get("n_test"),
            "recall_at_20": report["metrics"].get("recall_at_20")}


def run(args, bootstrap: str, scheme: str) -> int:
    app_id = f"bench-train-{os.getpid()}"
    started = time.perf_counter()
    users, ratings = asyncio.run(write_changelog(bootstrap, f"{app_id}-user_history-changelog",
                                                 args))
    written = time.perf_counter() - started
    trees = [ROOT] + ([Path(args.baseline_tree).resolve()] if args.baseline_tree else [])
    runs: dict[str, list[dict]] = {str(t): [] for t in trees}
    try:
        for _ in range(args.repeat):
            for tree in trees:  # alternating, so both see the same machine
                result = train_once(args, tree, bootstrap, scheme, app_id)
                runs[str(tree)].append(result)
                print(json.dumps({"ratings": ratings, "users": users, "items": args.items,
                                  "changelog_write_s": round(written, 2), **result}),
                      flush=True)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.baseline_tree:
        this = sum(r["total_seconds"] for r in runs[str(ROOT)])
        base = sum(r["total_seconds"] for r in runs[str(trees[1])])
        this_cpu = sum(r["command_cpu_s"] for r in runs[str(ROOT)])
        base_cpu = sum(r["command_cpu_s"] for r in runs[str(trees[1])])
        print(json.dumps({"this_total_s": round(this / args.repeat, 2),
                          "baseline_total_s": round(base / args.repeat, 2),
                          "ratio_this_to_baseline": round(this / base, 3),
                          "this_cpu_s": round(this_cpu / args.repeat, 2),
                          "baseline_cpu_s": round(base_cpu / args.repeat, 2),
                          "cpu_ratio_this_to_baseline": round(this_cpu / base_cpu, 3),
                          "load": [round(x, 1) for x in os.getloadavg()]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
