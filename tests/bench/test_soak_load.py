"""bench/soak_load.py: open-loop graders' load, deadline counted from the scheduled send."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import soak_load  # noqa: E402
from tests.conftest import free_port  # noqa: E402


async def _serve(handler) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get("/recommend/{user}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def test_counts_answers_within_the_deadline_and_misses_beside_them(tmp_path):
    async def handler(request: web.Request) -> web.Response:
        user = int(request.match_info["user"])
        if user % 4 == 0:
            await asyncio.sleep(1.0)      # past the 600 ms deadline: a timeout
        elif user % 4 == 1:
            return web.Response(status=500, text="boom\n")
        return web.Response(text="m1,m2\n")

    runner, port = await _serve(handler)
    stats = tmp_path / "load.json"
    try:
        await soak_load.drive(f"http://127.0.0.1:{port}", rate=80, seconds=1.5, users=400, seed=3,
                              stats=str(stats), start_at=0)
    finally:
        await runner.cleanup()
    data = json.loads(stats.read_text())
    s = soak_load.summarise(soak_load.merge([str(stats)]))
    assert s["requests"] == 120 == sum(r[0] for r in data["seconds"].values())
    # every request is one of: 200 in time, a non-200 answer, a timeout, an error
    non_200 = s["requests"] - s["answered_200"] - s["timeouts"] - s["errors"]
    assert s["timeouts"] > 10 and non_200 > 10 and s["answered_200_in_600ms"] > 30
    assert s["errors"] == 0
    assert s["answered_200"] == s["answered_200_in_600ms"]
    assert s["share_ok"] < 0.8
    assert set(data["send_lag_ms"]) == {"0.5", "0.99", "0.999"}


async def test_a_refused_connection_is_an_error_not_a_success(tmp_path):
    stats = tmp_path / "load.json"
    await soak_load.drive(f"http://127.0.0.1:{free_port()}", rate=40, seconds=0.5, users=10, seed=1,
                          stats=str(stats), start_at=0)
    s = soak_load.summarise(soak_load.merge([str(stats)]))
    assert s["requests"] == 20 and s["errors"] == 20 and s["share_ok"] == 0.0
