"""The graders' request load for the soak, from processes lighter than the simulator's loop.

Why (issue #12, phase 4): the simulator's graders' loop shares one Python event loop with
the whole platform simulation — every watched minute is a heap event, every line an
aiokafka ``send`` and a scenario transform — so at a few hundred arrivals a second its loop
turns too slowly to keep its own 600 ms deadlines.  Here each process only asks: open-loop arrivals at a fixed rate (a request is
sent at its scheduled time whether or not earlier ones were answered), raw HTTP/1.1 over
asyncio streams on kept-alive connections (no client library per request), the deadline
counted from the *scheduled* send time, so a client that falls behind counts its own lag
against the service rather than hiding it.  ``send_lag_ms`` (scheduled → written) says how
much of a miss was the client's.

Per wall-clock second (of the scheduled time): [requests, status 200, 200 within the
deadline, timeouts, connection errors, not sent] — "not sent" is a request due while the
process was already more than the deadline behind or had ``--max-inflight`` requests open
(a miss that the client, not the service, caused; counted so it is never hidden, and capped
so a slow service cannot drive the client into thousands of connections); written as JSON to ``--stats`` at the end (and
every 5 s).  Several processes (``--procs``) share ``--rate``; users are drawn uniformly from
``1..--users`` with a per-process seed.

With several ``--url``s (comma-separated: the workers themselves) the client applies
deploy/nginx's retry policy itself instead of going through a front: on this 2-core box a
Python front costs as much CPU per request as a worker, where nginx (not installed here)
costs next to nothing.

    python bench/soak_load.py --url http://127.0.0.1:24011 --rate 500 --procs 2 \
        --seconds 60 --users 5000 --stats /tmp/load.json
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import random
import signal
import time
from collections import defaultdict
from urllib.parse import urlsplit

DEADLINE_S = 0.6
TRY_TIMEOUT_S = 0.25  # deploy/nginx/recstream.conf: proxy_read_timeout


class Pool:
    """Kept-alive HTTP/1.1 connections to one host; a connection is used by one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, path: str) -> int:
        conn = self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length:
                await reader.readexactly(length)
        except BaseException:
            writer.close()  # a half-read or cancelled answer: the connection cannot be reused
            raise
        if close:
            writer.close()
        else:
            self.idle.append(conn)
        return status


async def ask(pools: list[Pool], first: int, path: str, due: float) -> int:
    """One URL: one attempt until the deadline.  Several (workers, no front): deploy/nginx's
    policy (recstream.conf) — round robin, ``TRY_TIMEOUT_S`` per attempt, the next one on an
    error, a timeout or a 502/503, two attempts, all within the deadline."""
    if len(pools) == 1:
        remaining = DEADLINE_S - (time.time() - due)
        return await asyncio.wait_for(pools[0].get(path), max(remaining, 0.001))
    for attempt in range(2):
        remaining = DEADLINE_S - (time.time() - due)
        if remaining <= 0:
            raise TimeoutError
        try:
            status = await asyncio.wait_for(pools[(first + attempt) % len(pools)].get(path),
                                            min(TRY_TIMEOUT_S, remaining) if attempt == 0 else remaining)
        except (asyncio.TimeoutError, TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            if attempt == 1:
                raise
            continue
        if status not in (502, 503) or attempt == 1:
            return status
    raise AssertionError("unreachable")


async def drive(url: str, rate: float, seconds: float, users: int, seed: int, stats: str,
                start_at: float, *, max_inflight: int = 256, ramp_s: float = 0.0) -> None:
    pools = [Pool(sp.hostname or "127.0.0.1", sp.port or 80) for sp in map(urlsplit, url.split(","))]
    turn = itertools.count()
    rng = random.Random(seed)
    # second -> [requests, 200, 200 within deadline, timeouts, errors, not sent (client behind)]
    rows: dict[int, list[int]] = defaultdict(lambda: [0] * 6)
    lags: list[float] = []
    slow: list[float] = []
    tasks: set[asyncio.Task] = set()

    async def one(due: float, uid: int) -> None:
        lags.append(time.time() - due)
        row = rows[int(due)]
        row[0] += 1
        try:
            status = await ask(pools, next(turn), f"/recommend/{uid}", due)
        except (asyncio.TimeoutError, TimeoutError):
            row[3] += 1
            return
        except (OSError, asyncio.IncompleteReadError, ValueError):
            row[4] += 1
            return
        took = time.time() - due
        row[1] += status == 200
        row[2] += status == 200 and took <= DEADLINE_S
        if took > 0.25:
            slow.append(round(took, 3))

    def dump() -> None:
        tmp = stats + ".tmp"
        with open(tmp, "w") as out:
            lag = sorted(lags)
            json.dump({"seconds": {str(k): v for k, v in sorted(rows.items())},
                       "send_lag_ms": {q: round(1000 * lag[min(int(q * len(lag)), len(lag) - 1)], 1)
                                       for q in (0.5, 0.99, 0.999)} if lag else {},
                       "slowest": sorted(slow)[-50:]}, out)
        os.replace(tmp, stats)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    due = max(start_at, time.time())
    first, end, sent = due, due + seconds, 0
    last_dump = time.time()
    while due < end and not stop.is_set():
        now = time.time()
        if due > now:
            await asyncio.sleep(due - now)
            now = time.time()
        if now - due > DEADLINE_S or len(tasks) >= max_inflight:
            # the client itself is too far behind (or at its cap): a miss, counted, never hidden
            row = rows[int(due)]
            row[0] += 1
            row[5] += 1
        else:
            task = loop.create_task(one(due, rng.randint(1, users)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if now > due:
            await asyncio.sleep(0)  # behind: let the open requests move
        sent += 1
        if ramp_s > 0:
            due += 1.0 / (rate * min(1.0, 0.1 + 0.9 * (due - first) / ramp_s))
        else:
            due = first + sent / rate  # no drift from summed steps
        if now - last_dump > 5:
            dump()
            last_dump = now
    if tasks:
        await asyncio.wait(list(tasks), timeout=DEADLINE_S + 1)
    for pool in pools:
        for _, writer in pool.idle:
            writer.close()
    await asyncio.sleep(0.05)  # let the transports close
    dump()


def _proc(args: argparse.Namespace, k: int, start_at: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(drive(args.url, args.rate / args.procs, args.seconds, args.users,
                      args.seed * 1000 + k, f"{args.stats}.{k}", start_at,
                      max_inflight=args.max_inflight, ramp_s=args.ramp_s))


def merge(paths: list[str]) -> dict:
    """The processes' per-second rows summed, and their send-lag quantiles side by side."""
    seconds: dict[int, list[int]] = defaultdict(lambda: [0] * 6)
    lags, slow = [], []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for key, row in data["seconds"].items():
            seconds[int(key)] = [a + b for a, b in zip(seconds[int(key)], row)]
        lags.append(data["send_lag_ms"])
        slow += data["slowest"]
    return {"seconds": {str(k): v for k, v in sorted(seconds.items())}, "send_lag_ms": lags,
            "slowest": sorted(slow)[-50:]}


def summarise(merged: dict, first: float = 0, last: float = float("inf")) -> dict:
    rows = [v for k, v in merged["seconds"].items() if first <= int(k) <= last]
    total = sum(r[0] for r in rows)
    ok = sum(r[2] for r in rows)
    span = max(len(rows), 1)
    return {"requests": total, "requests_per_s": round(total / span, 1),
            "answered_200": sum(r[1] for r in rows), "answered_200_in_600ms": ok,
            "timeouts": sum(r[3] for r in rows), "errors": sum(r[4] for r in rows),
            "not_sent_client_behind": sum(r[5] for r in rows),
            "share_ok": ok / total if total else 0.0, "send_lag_ms": merged["send_lag_ms"],
            "slowest_s": merged["slowest"][-5:]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, default=500.0, help="requests per second, all processes")
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--max-inflight", type=int, default=256,
                   help="per process; a request due while at the cap is counted as not sent")
    p.add_argument("--ramp-s", type=float, default=0.0,
                   help="rate rises linearly from 10%% to 100%% over this many seconds (capacity probe)")
    p.add_argument("--stats", required=True, help="per-process files are STATS.0, STATS.1, ...")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start_at = time.time() + 0.5
    procs = [multiprocessing.Process(target=_proc, args=(args, k, start_at)) for k in range(args.procs)]
    for p in procs:
        p.start()
    signal.signal(signal.SIGTERM, lambda *_: [p.terminate() for p in procs])
    for p in procs:
        p.join()
    merged = merge([f"{args.stats}.{k}" for k in range(args.procs)])
    with open(args.stats, "w") as out:
        json.dump(merged, out)
    print(json.dumps({"load": os.getloadavg(), **summarise(merged)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
