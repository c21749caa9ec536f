"""Cost of the monitor on the ingest path: ``Monitor.observe`` (+ ``watched``/``rated``) per event.

Parses the real movielog sample once, then times the monitor's calls alone over it
(repeated to ``--events``), against a loop that only iterates the same records (the
baseline measured in the same run).  Prints one JSON line.

    .venv/bin/python bench/monitor.py [--events 200000]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recstream.prometheus import Metrics  # noqa: E402
from recstream.monitor import Monitor  # noqa: E402
from recstream.parsing import parse_line  # noqa: E402
from recstream.records import Rating, Rejected, WatchMinute  # noqa: E402
from recstream.settings import Settings  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "data" / "mlip-stream-samples" / "movielog_lines.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    records = [r for r in (parse_line(line) for line in
                           SAMPLE.read_text(encoding="utf-8").splitlines())
               if not isinstance(r, Rejected)]
    records = (records * (args.events // len(records) + 1))[:args.events]
    monitor = Monitor(Settings.from_mapping({}), Metrics(), lambda movie: 0.5)

    started = time.perf_counter()
    for record in records:
        pass
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    for record in records:
        monitor.observe(record, record.user % 8, None)
        if type(record) is WatchMinute:
            monitor.watched(record, record.minute == 0, record.minute == 60)
        elif type(record) is Rating:
            monitor.rated(record, True)
    took = time.perf_counter() - started
    print(json.dumps({"events": len(records), "monitor_us_per_event":
                      round((took - baseline) / len(records) * 1e6, 3),
                      "loop_us_per_event": round(baseline / len(records) * 1e6, 3)}))


if __name__ == "__main__":
    main()
