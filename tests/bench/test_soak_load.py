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
    # only users 2 and 3 mod 4 can count (half of them): a 500 or a late answer never does;
    # on a starved box some of those are late too, so only an upper bound holds everywhere
    assert s["answered_200"] < 0.7 * s["requests"]
    assert s["answered_200_in_600ms"] <= s["answered_200"]
    assert s["timeouts"] + s["not_sent_client_behind"] > 10   # the 1-second answers
    assert s["errors"] == 0
    assert set(data["send_lag_ms"]) == {"0.5", "0.99", "0.999"}


async def test_a_refused_connection_is_an_error_not_a_success(tmp_path):
    stats = tmp_path / "load.json"
    await soak_load.drive(f"http://127.0.0.1:{free_port()}", rate=40, seconds=0.5, users=10, seed=1,
                          stats=str(stats), start_at=0)
    s = soak_load.summarise(soak_load.merge([str(stats)]))
    assert s["requests"] == 20 and s["share_ok"] == 0.0 and s["errors"] > 0
    assert s["errors"] + s["not_sent_client_behind"] == 20  # a starved box sends some late


async def test_a_client_at_its_cap_counts_what_it_could_not_send(tmp_path):
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(0.4)
        return web.Response(text="m1\n")

    runner, port = await _serve(handler)
    stats = tmp_path / "load.json"
    try:
        await soak_load.drive(f"http://127.0.0.1:{port}", rate=50, seconds=1.0, users=10, seed=2,
                              stats=str(stats), start_at=0, max_inflight=2)
    finally:
        await runner.cleanup()
    s = soak_load.summarise(soak_load.merge([str(stats)]))
    assert s["requests"] == 50
    assert 30 < s["not_sent_client_behind"] < 50            # two open at a time, 0.4 s each
    assert s["answered_200"] <= s["requests"] - s["not_sent_client_behind"]


async def test_with_two_workers_a_dead_one_is_retried_on_the_other(tmp_path):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="m1\n")

    runner, port = await _serve(handler)
    stats = tmp_path / "load.json"
    try:
        await soak_load.drive(f"http://127.0.0.1:{free_port()},http://127.0.0.1:{port}", rate=40,
                              seconds=0.5, users=10, seed=4, stats=str(stats), start_at=0)
    finally:
        await runner.cleanup()
    s = soak_load.summarise(soak_load.merge([str(stats)]))
    # half the requests go first to the dead one: every request is still answered (late ones
    # on a starved box aside), none is an error
    assert s["requests"] == 20 and s["errors"] == 0
    assert s["answered_200"] + s["timeouts"] + s["not_sent_client_behind"] == 20
    assert s["answered_200"] >= 10
