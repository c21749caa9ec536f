"""Every /recommend answer is checked before it leaves, and what we sent is kept (#12)."""
from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.web.test_views import MOVIES, fill
from tests.wiring import routes


def violations(rt, reason: str) -> float:
    return rt.metrics.registry.get_sample_value("recstream_answer_violations_total",
                                                {"reason": reason}) or 0.0


async def client_for(rt) -> TestClient:
    app = web.Application()
    app.add_routes(routes(rt, sent_answers=rt.sent_answers))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_a_broken_answer_is_replaced_by_the_fallback_and_counted(rt, monkeypatch):
    fill(rt)
    client = await client_for(rt)
    try:
        good = await (await client.get("/recommend/1")).text()
        assert good and violations(rt, "duplicate_id") == 0
        # the ranking returns a list with a repeated and an unknown id (a serving bug)
        broken = f"{MOVIES[3]},{MOVIES[3]},no+such+movie"
        monkeypatch.setattr(rt.recommender, "answer_with_guardrails",
                            lambda user: (broken, "personal", []))
        body = await (await client.get("/recommend/1")).text()
        assert body == rt.recommender.fallback_line != broken
        assert violations(rt, "duplicate_id") == 1 and violations(rt, "unknown_id") == 1
        # what was sent (the fallback) is what the outcome line is compared with
        assert rt.sent_answers.compare(1, 200, body.split(",")) == []
        assert rt.sent_answers.compare(1, 200, good.split(",")) == []
    finally:
        await client.close()
