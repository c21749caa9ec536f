"""bench/serve.py's load client role: an open-loop schedule, latency from the scheduled time."""
from __future__ import annotations

import asyncio
import json
import os
import resource
import time

import numpy as np

MALFORMED = ["abc", "-1", "1.5", "", "%20", "12a", "0x1f", "9999999999999", "..%2F..%2Fetc"]


# -- load client (subprocess role) -------------------------------------------------------
def request_paths(known: np.ndarray, n: int, max_user_id: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    picks = known[rng.integers(0, len(known), n)]
    odd = np.flatnonzero(rng.random(n) < 0.05)
    known_set = set(known.tolist())
    out = [str(u) for u in picks.tolist()]
    for j, i in enumerate(odd.tolist()):
        if j % 2:
            out[i] = MALFORMED[j // 2 % len(MALFORMED)]
        else:  # a well-formed id we do not know (beyond max_user_id when all are known)
            u = int(rng.integers(1, max_user_id + 1))
            out[i] = str(u if u not in known_set else max_user_id + 1 + j)
    return out


async def load(args) -> dict:
    import aiohttp
    from yarl import URL

    known = np.load(args.ids)
    total = int(args.rate * (args.warmup + args.duration))
    base = f"http://127.0.0.1:{args.port}/recommend/"
    urls = [URL(base + p, encoded=True)
            for p in request_paths(known, total, args.max_user_id, args.seed)]
    latency = np.full(total, np.nan)
    ok = np.zeros(total, bool)
    connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    clock = time.perf_counter
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def one(i: int, scheduled: float) -> None:
            try:
                async with session.get(urls[i]) as resp:
                    body = await resp.read()
                    ok[i] = resp.status == 200 and bool(body.strip())
            except Exception:
                pass
            latency[i] = clock() - scheduled

        pending: set[asyncio.Task] = set()
        t0 = clock() + 0.05
        for i in range(total):
            scheduled = t0 + i / args.rate
            delay = scheduled - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            elif i % 16 == 0:
                await asyncio.sleep(0)
            task = asyncio.ensure_future(one(i, scheduled))
            pending.add(task)
            task.add_done_callback(pending.discard)
        sent_span = clock() - t0
        await asyncio.gather(*pending)
    counted = slice(int(args.rate * args.warmup), total)
    ms = latency[counted] * 1000.0
    bad = ~ok[counted]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    pct = np.percentile(ms, [50, 95, 99, 99.9])
    return {"requests": int(ms.size), "rate_achieved": round(total / sent_span, 1),
            "errors": int(bad.sum()), "p50_ms": round(pct[0], 3), "p95_ms": round(pct[1], 3),
            "p99_ms": round(pct[2], 3), "p999_ms": round(pct[3], 3),
            "max_ms": round(float(ms.max()), 3), "over_600ms": int((ms > 600).sum()),
            "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}


def run_client(args) -> None:
    if args.pin and os.cpu_count() >= 2:
        os.sched_setaffinity(0, {1})
    print("RESULT " + json.dumps(asyncio.run(load(args))), flush=True)


