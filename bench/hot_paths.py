"""Two small hot paths whose speed used to be asserted in unit tests, timed here instead.

- the title index (cold start matches self-descriptions against the catalogue): build time on
  the real movie sample and per-lookup time for exact, misspelt and unknown titles, beside a
  same-run baseline of ``normalise_title`` alone on the same queries;
- one dashboard sample on a registry filled like a busy worker's, beside a same-run baseline of
  ``registry.collect()`` (what any Prometheus scrape pays).

Prints one JSON line with the machine's load.

    .venv/bin/python bench/hot_paths.py [--lookups 2000] [--samples 300]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.titles import TitleIndex, normalise_title  # noqa: E402
from recstream.prometheus import Metrics  # noqa: E402
from tests.web.test_dashboard import fill  # noqa: E402
from web.dashboard import PANELS  # noqa: E402
from web.dashboard_sampler import Sampler  # noqa: E402

MOVIES = ROOT.parent / "shared" / "data" / "mlip-stream-samples" / "movies.jsonl"
QUERIES = ["the shawshank redemtpion", "Toy Story", "american hustel", "Zorblax Quintessence"]


def per_call(fn, items) -> float:
    started = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - started) / len(items)


def titles(lookups: int) -> dict:
    rows = [json.loads(line) for line in MOVIES.read_text().splitlines() if line.strip()]
    catalogue = [(r["id"], r["title"], None) for r in rows if isinstance(r.get("title"), str)]
    started = time.perf_counter()
    index = TitleIndex(catalogue)
    build_s = time.perf_counter() - started
    queries = (QUERIES * (lookups // len(QUERIES) + 1))[:lookups]
    lookup_s = per_call(index.lookup, queries)
    baseline_s = per_call(normalise_title, queries)
    return {"titles": len(index), "build_s": round(build_s, 3),
            "lookup_us": round(lookup_s * 1e6, 1), "normalise_only_us": round(baseline_s * 1e6, 2),
            "lookup_over_normalise": round(lookup_s / baseline_s, 1)}


def sampler(samples: int) -> dict:
    m = Metrics()
    fill(m)
    s = Sampler(m.registry, PANELS)
    costs, scrapes = [], []
    for _ in range(samples):
        m.requests.labels("personal").inc()
        m.latency.observe(0.002)
        started = time.perf_counter()
        s.sample()
        costs.append(time.perf_counter() - started)
        started = time.perf_counter()
        list(m.registry.collect())
        scrapes.append(time.perf_counter() - started)
    sample_ms, scrape_ms = statistics.median(costs) * 1e3, statistics.median(scrapes) * 1e3
    return {"sample_median_ms": round(sample_ms, 3), "collect_median_ms": round(scrape_ms, 3),
            "sample_over_collect": round(sample_ms / scrape_ms, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    out = {"load_1m": round(load, 2), "title_index": titles(args.lookups),
           "dashboard": sampler(args.samples)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
