"""The soak's front: deploy/nginx's retry policy for /recommend, and a stallable API proxy.

One process, two listeners (loopback only):

* ``--port``: round robin over the workers; an attempt that errors, takes longer than
  ``--try-timeout`` (nginx ``proxy_read_timeout`` 250 ms) or answers 502/503 is retried
  once on the next worker (``proxy_next_upstream_tries 2``).  Every request's outcome is
  counted per wall-clock second (requests, answered 200, answered 200 within the 600 ms
  deadline as measured here) and written to ``--stats`` as JSON on SIGTERM / every 5 s.
* ``--api-port``: forwards the workers' user/movie API calls to ``--api-upstream`` (the
  simulator), except while the file ``--stall-flag`` exists: then each call hangs until the
  flag is removed (a stalled API, not a refusing one).

    python bench/soak_front.py --port 24011 --workers http://127.0.0.1:1,http://127.0.0.1:2 \
        --api-port 24012 --api-upstream http://127.0.0.1:24010 --stall-flag /tmp/stall \
        --stats /tmp/front.json
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import time
from collections import defaultdict

import aiohttp
from aiohttp import web

DEADLINE_S = 0.6


class Front:
    def __init__(self, workers: list[str], try_timeout: float) -> None:
        self.workers = workers
        self.turn = itertools.count()
        self.timeout = aiohttp.ClientTimeout(total=try_timeout)
        self.session: aiohttp.ClientSession | None = None
        # second → [requests, status 200, 200 within the deadline, retried]
        self.seconds: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self.slowest: list[float] = []

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, keepalive_timeout=30))

    async def recommend(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        first = next(self.turn)
        status, body, retried = 502, b"", 0
        for attempt in range(2):
            url = self.workers[(first + attempt) % len(self.workers)] + request.path_qs
            try:
                async with self.session.get(url, timeout=self.timeout) as answer:
                    status, body = answer.status, await answer.read()
                if status not in (502, 503):
                    break
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                status, body = 502, b"no worker answered\n"
            retried = 1
        took = time.monotonic() - started
        row = self.seconds[int(time.time())]
        row[0] += 1
        row[1] += status == 200
        row[2] += status == 200 and took <= DEADLINE_S
        row[3] += retried
        if took > 0.25:
            self.slowest.append(round(took, 3))
        return web.Response(status=status, body=body, content_type="text/plain")

    def dump(self, path: str) -> None:
        tmp = path + ".tmp"
        with open(tmp, "w") as out:
            json.dump({"seconds": {str(k): v for k, v in sorted(self.seconds.items())},
                       "slowest": sorted(self.slowest)[-50:]}, out)
        os.replace(tmp, path)


class StallableApi:
    def __init__(self, upstream: str, flag: str) -> None:
        self.upstream, self.flag = upstream, flag
        self.session: aiohttp.ClientSession | None = None
        self.stalled_calls = 0

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def forward(self, request: web.Request) -> web.Response:
        if os.path.exists(self.flag):
            self.stalled_calls += 1
            while os.path.exists(self.flag):
                await asyncio.sleep(0.2)
        try:
            async with self.session.get(self.upstream + request.path_qs) as answer:
                return web.Response(status=answer.status, body=await answer.read(),
                                    content_type=answer.content_type)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return web.Response(status=502, text="api upstream failed\n")


async def main(args: argparse.Namespace) -> None:
    front = Front(args.workers.split(","), args.try_timeout)
    api = StallableApi(args.api_upstream, args.stall_flag)
    await front.start()
    await api.start()
    rec_app = web.Application()
    rec_app.router.add_get("/front/healthz", lambda r: web.Response(text="ok\n"))
    rec_app.router.add_get("/{tail:.*}", front.recommend)
    api_app = web.Application()
    api_app.router.add_get("/{tail:.*}", api.forward)
    runners = []
    for app, port in ((rec_app, args.port), (api_app, args.api_port)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        runners.append(runner)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 5.0)
        except asyncio.TimeoutError:
            pass
        front.dump(args.stats)
    for runner in runners:
        await runner.cleanup()
    await front.session.close()
    await api.session.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", required=True, help="comma-separated worker base URLs")
    p.add_argument("--try-timeout", type=float, default=0.25)
    p.add_argument("--api-port", type=int, required=True)
    p.add_argument("--api-upstream", required=True)
    p.add_argument("--stall-flag", required=True)
    p.add_argument("--stats", required=True)
    asyncio.run(main(p.parse_args()))
