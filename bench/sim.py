"""How many movielog events/s the simulator emits on one core.

Runs the platform loop in fast mode (clock jumps event to event) against an
in-process recommender, pinned to one CPU, writing to a sink that discards
lines (or to Kafka with --kafka HOST:PORT), and prints one JSON line per case.
The recommender's ingest target is 10k events/s per worker (SPEC §7).  The
last case makes and writes the world's past (``--backfill-days``): its volume
and how fast it is made and delivered.

    .venv/bin/python bench/sim.py [--users 1000000] [--lines 500000] [--kafka 127.0.0.1:29092]
    .venv/bin/python bench/sim.py --only-past [--past-days 30] [--past-lines 400000] [--kafka ...]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recstream.sim.lines import parse_start  # noqa: E402
from recstream.sim.options import SimOptions  # noqa: E402
from recstream.sim.past import make_past, write_past  # noqa: E402
from recstream.sim.recommenders import builtin  # noqa: E402
from recstream.sim.sinks import KafkaSink, TruthWriter  # noqa: E402
from recstream.sim.traffic import Platform  # noqa: E402
from recstream.sim.world import build_synthetic  # noqa: E402


class NullSink:
    async def start(self) -> None: ...
    async def write(self, batch) -> None: ...
    async def flush(self) -> None: ...
    async def close(self) -> None: ...


async def case(users: int, lines: int, policy: str, truth: bool, kafka: str, scenarios: dict) -> dict:
    options = SimOptions(users=users, fast=True, rate=200.0, kafka=bool(kafka), api=False, scenarios=scenarios)
    started = time.perf_counter()
    world = build_synthetic(options)
    build_s = time.perf_counter() - started
    sink = KafkaSink(kafka.split(","), "sim-bench", partitions=8) if kafka else NullSink()
    await sink.start()
    writer = TruthWriter(os.devnull) if truth else None
    if writer:
        writer.open()
    platform = Platform(world, options, builtin(policy, world), [sink], truth=writer)
    started = time.perf_counter()
    cpu = time.process_time()
    await platform.run(max_lines=lines)
    await sink.close()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"users": users, "movies": len(world.catalog), "recommender": policy, "truth_with_oracle": truth,
            "sink": "kafka" if kafka else "null", "scenarios": sorted(scenarios), "lines": platform.emitted,
            "sessions": sum(platform.telemetry.sessions.values()), "world_build_s": round(build_s, 2),
            "wall_s": round(wall, 2), "events_per_s": round(platform.emitted / wall),
            "events_per_cpu_s": round(platform.emitted / max(cpu, 1e-9))}


async def past_case(users: int, days: float, budget: int, kafka: str) -> dict:
    options = SimOptions(users=users, fast=True, kafka=bool(kafka), api=False)
    world = build_synthetic(options)
    sink = KafkaSink(kafka.split(","), "sim-bench-past", partitions=8) if kafka else NullSink()
    await sink.start()
    started, cpu = time.perf_counter(), time.process_time()
    past = make_past(world, options, end=parse_start(options.start), days=days, max_lines=budget)
    make_s, make_cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    await write_past(past, [sink])
    write_s = time.perf_counter() - started
    await sink.close()
    return {"case": "past", "world_users": users, "budget": budget, **past.summary(),
            "make_s": round(make_s, 2), "make_cpu_s": round(make_cpu, 2),
            "sink": "kafka" if kafka else "null", "write_s": round(write_s, 2),
            "write_lines_per_s": round(len(past) / max(write_s, 1e-9))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--lines", type=int, default=300_000)
    p.add_argument("--kafka", default="", help="bootstrap servers; default: discard lines")
    p.add_argument("--all-cores", action="store_true", help="do not pin to one core")
    p.add_argument("--past-days", type=float, default=30.0)
    p.add_argument("--past-lines", type=int, default=400_000)
    p.add_argument("--only-past", action="store_true", help="only the past (back-fill) case")
    args = p.parse_args()
    if not args.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cases = [("popularity", False, {}), ("popularity", True, {}), ("oracle", True, {}),
             ("popularity", False, {"malformed": {}, "duplicates": {}, "out-of-order": {}})]
    for policy, truth, scenarios in [] if args.only_past else cases:
        print(json.dumps(asyncio.run(case(args.users, args.lines, policy, truth, args.kafka, scenarios))), flush=True)
    print(json.dumps(asyncio.run(past_case(args.users, args.past_days, args.past_lines, args.kafka))), flush=True)


if __name__ == "__main__":
    main()
