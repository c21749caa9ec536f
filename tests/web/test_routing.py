"""Forwarding to a partition owner: a failed peer is left alone for a while."""
from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

import web.routing as routing
from tests.conftest import free_port
from tests.wiring import router as router_of
from web.routing import ROUTED_HEADER


async def test_a_failed_owner_is_skipped_for_the_backoff_then_asked_again(rt, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(routing.time, "monotonic", lambda: clock[0])
    router = router_of(rt)
    dead = f"http://127.0.0.1:{free_port()}"
    try:
        assert router.available(dead)
        assert await router.forward(dead, "/recommend/1") is None  # connection refused
        assert not router.available(dead)
        clock[0] += routing.PEER_BACKOFF_S - 0.1
        assert not router.available(dead)
        clock[0] += 0.2
        assert router.available(dead)
    finally:
        await router.close()


async def test_a_starting_owner_503_counts_as_down_and_a_200_clears_it(rt, monkeypatch):
    answers = {"status": 503}
    seen_headers = []

    async def recommend(request):
        seen_headers.append(request.headers.get(ROUTED_HEADER))
        return web.Response(status=answers["status"], text="a,b",
                            headers={"X-Request-Id": "owner-id-7"})

    app = web.Application()
    app.router.add_get("/recommend/{user}", recommend)
    server = TestServer(app)
    await server.start_server()
    router = router_of(rt)
    base = str(server.make_url("")).rstrip("/")
    clock = [50.0]
    monkeypatch.setattr(routing.time, "monotonic", lambda: clock[0])
    try:
        assert await router.forward(base, "/recommend/7") is None
        assert not router.available(base)
        clock[0] += routing.PEER_BACKOFF_S + 0.1
        answers["status"] = 200
        # the owner's request id comes back with its answer (it published it under that id)
        assert await router.forward(base, "/recommend/7") == ("a,b", "owner-id-7")
        assert router.available(base) and base not in router.down_until
        assert seen_headers == ["1", "1"]  # marked as forwarded: never forwarded again
    finally:
        await router.close()
        await server.close()
