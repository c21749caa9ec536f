"""Per-request cost of /recommend's guard (issue #14), against an empty loop in the same run.

Times what the view adds per answer: the limiter (on and off), the unsafe-exposure
re-check of a 20-title line, and the scraping detector's append; plus the detector's
drain per request (in the timer, off the request path).

    .venv/bin/python bench/guard.py [--requests 200000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.attack_watch import ScrapingWatch  # noqa: E402
from models.detectors import ScrapingDetector  # noqa: E402
from recstream.prometheus import Metrics  # noqa: E402
from tables.memory import ItemIndex, UserIndex  # noqa: E402
from web.guard import ExposureMonitor, RateLimiter  # noqa: E402


def per_call_us(fn, args: list) -> float:
    started = time.perf_counter()
    for a in args:
        fn(*a)
    return (time.perf_counter() - started) / len(args) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=200_000)
    n = p.parse_args().requests
    rng = np.random.default_rng(0)
    items, users = ItemIndex(8, init_scale=0.1, seed=0), UserIndex(8, 20, 1_000_000)
    for i in range(27_000):
        items.row(f"m+{i}")
        items.set_flags(f"m+{i}", adult=False, minors_ok=i % 6 != 0)
    for u in range(50_000):
        row = users.row(u)  # first: growth swaps the arrays in
        users.minor[row] = u % 3 == 0
    metrics = Metrics()
    exposure = ExposureMonitor(items, users, metrics)
    lines = [",".join(f"m+{i}" for i in rng.choice(27_000, 20, replace=False)) for _ in range(1000)]
    calls = [(int(rng.integers(0, 60_000)), lines[k % 1000]) for k in range(n)]
    clients = [(f"10.0.{k % 200}.{k % 250}",) for k in range(n)]
    off, on = RateLimiter(rate_per_s=0, burst=1), RateLimiter(rate_per_s=100.0, burst=200,
                                                                grader_cidrs="192.0.2.0/24")
    watch = ScrapingWatch(detector=ScrapingDetector(), metrics=metrics)
    base = per_call_us(lambda *a: None, calls)
    results = {
        "empty loop": base,
        "limiter off": per_call_us(off.allow, clients),
        "limiter on (200 clients)": per_call_us(on.allow, clients),
        "exposure check (20 titles)": per_call_us(exposure.check, calls),
        "scraping append": per_call_us(watch.request, [(c[0], u) for (u, _), c in zip(calls, clients)]),
    }
    started = time.perf_counter()
    watch.drain()
    results["scraping drain (timer), per request"] = (time.perf_counter() - started) / n * 1e6
    for name, us in results.items():
        print(f"{name:40s} {us:7.2f} µs")


if __name__ == "__main__":
    main()
