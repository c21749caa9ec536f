"""Where a worker's CPU per event goes, from a py-spy raw profile (``BENCH_PROFILE``).

    .venv/bin/python bench/pyspy_shares.py PROFILE.raw CPU_US_PER_EVENT [PROFILE2 CPU2 ...]

Idle samples (a thread waiting in ``select``/``epoll`` or an idle pool worker) are left
out; each active sample goes to the first category below any of whose patterns appears in
one of its frames (root first), and each category's share of the active samples times
the run's CPU µs per event (``bench/ingest.py``'s ``worker_cpu_us_per_event``) is printed
as a markdown table row, one column per profile.
"""
from __future__ import annotations

import collections
import sys

IDLE = ("EpollSelector.select", "_worker (concurrent", "_do_waitpid", "Condition.wait",
        "Event.wait (threading")
CONSUMER_THREAD = "Faust's consumer thread (aiokafka fetch, decode, hand-over)"
RULES = [
    ("/metrics scrape (bench)", ("prometheus_client", "metrics_view", "generate_latest")),
    ("cold start: user API for first-seen users", ("profiles.py", "coldstart",
                                                   "aiohttp/connector", "_sock_connect")),
    ("parse", ("parsing.py",)),
    ("monitor observe", ("monitor.py", "windows.py", "fairness")),
    ("user writer seal/write: RocksDB put + changelog send",
     ("_write (agents/user_writer", "seal (agents/user_writer", "(tables/users.py",
      "changelog.py")),
    ("user writer stage: state, fold-in", ("stage (agents/user_writer", "user_events.py",
                                           "_watch (", "_rate (", "_created", "_outcome",
                                           "codecs.py", "foldin")),
    ("ingest agent other", ("stage (agents/ingest", "run_batches", "agents/ingest")),
    ("movie writer", ("agents/movies.py",)),
    ("item follower/broadcast", ("item_follower", "broadcast")),
    ("Faust delivery: fetcher/_drain_messages/on_message", ("_drain_messages", "on_message",
                                                            "conductor", "getmany")),
    ("Faust delivery: stream iteration/take_events", ("streams.py", "channels.py",
                                                      "take_events")),
    ("producer send + sender", ("aiokafka/producer",)),
    ("aiokafka consumer/connection (main thread)", ("aiokafka/",)),
    ("asyncio loop under Faust (run_once, handles, futures, socket writes)", ("faust/",)),
    ("other", ("",)),
]


def shares(path: str) -> dict[str, float]:
    counts: collections.Counter = collections.Counter()
    for line in open(path):
        stack, n = line.rstrip().rsplit(" ", 1)
        frames = stack.split(";")
        if any(frames[-1].startswith(p) for p in IDLE):
            continue
        if not frames[0].startswith("_run_module"):  # not the main thread
            counts[CONSUMER_THREAD] += int(n)
            continue
        for category, patterns in RULES:
            if any(p in f for f in frames for p in patterns):
                counts[category] += int(n)
                break
    active = sum(counts.values())
    return {k: v / active for k, v in counts.items()}


def main(argv: list[str]) -> None:
    runs = [(shares(argv[i]), float(argv[i + 1])) for i in range(0, len(argv), 2)]
    first, cpu = runs[0]
    for category in sorted({k for s, _ in runs for k in s}, key=lambda k: -first.get(k, 0)):
        cells = [f"{s.get(category, 0) * c:.0f} ({100 * s.get(category, 0):.1f}%)"
                 for s, c in runs]
        print(f"| {category} | " + " | ".join(cells) + " |")
    print("| **total** | " + " | ".join(f"**{c:.0f}**" for _, c in runs) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
