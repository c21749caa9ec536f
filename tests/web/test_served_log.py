"""Every answer's provenance reaches the recommendations topic, off the request path."""
from __future__ import annotations

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from recstream.records import RecommendationServed
from tables.codecs import user_key
from web.served_log import ProvenancePublisher
from tests.wiring import publisher as publisher_of, routes
from web.views import REQUEST_ID_HEADER
from tests.web.test_views import MINOR, fill


@pytest.fixture
def publisher(rt) -> ProvenancePublisher:
    publisher = publisher_of(rt)
    publisher.code_version = "git:test"
    return publisher


@pytest.fixture
async def client(rt, publisher):
    fill(rt)
    app = web.Application()
    app.add_routes(routes(rt, publisher=publisher))
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def test_each_answer_is_published_with_its_request_id_and_model(client, rt, recorder,
                                                                     publisher):
    rt.recommender.observe_time(1_700_000_000.0)
    ids = {}
    for path in ("/recommend/1", f"/recommend/{MINOR}", "/recommend/999", "/recommend/x"):
        response = await client.get(path)
        assert response.status == 200
        ids[path] = (response.headers[REQUEST_ID_HEADER], await response.text())
    assert not recorder.on("recommendations")  # nothing sent on the request path
    assert await publisher.drain() == 4
    sent = recorder.on("recommendations")
    assert len(sent) == 4
    by_id = {}
    for key, value in sent:
        # The recorder decodes with the topic's value type: the records are
        # RecommendationServed to downstream Faust consumers.
        assert isinstance(value, RecommendationServed)
        body = value.asdict()
        by_id[body["request_id"]] = (key, body)
    rid, line = ids["/recommend/1"]
    key, body = by_id[rid]
    assert key == user_key(1)
    assert body["movies"] == line.split(",") and body["source"] == "personal"
    assert body["model_version"] == "online" and body["generation"] == 0
    assert body["code_version"] == "git:test" and body["worker"] == rt.worker_id
    assert body["stream_time"] == 1_700_000_000.0 and body["latency_ms"] >= 0
    assert body["guardrails"] == ["no_adult"]
    assert by_id[ids[f"/recommend/{MINOR}"][0]][1]["guardrails"] == ["minor_safe"]
    unknown = by_id[ids["/recommend/999"][0]][1]
    assert (unknown["source"], unknown["fallback_reason"]) == ("fallback", "unknown user")
    invalid = by_id[ids["/recommend/x"][0]][1]
    assert (invalid["source"], invalid["user"]) == ("invalid", -1)
    raw = publisher.encode(publisher.pending[0] if publisher.pending else
                               ("r", 1.0, 2.0, 1, "a,b", "online", 0, "personal", 1.0, [], ""))[1]
    assert orjson.loads(raw)["movies"] == ["a", "b"]  # plain JSON for non-Faust consumers


async def test_a_full_queue_drops_the_oldest_and_counts_it(client, rt, publisher):
    publisher.max_pending = 3
    for _ in range(5):
        assert (await client.get("/recommend/1")).status == 200
    assert len(publisher.pending) == 3
    assert rt.metrics.registry.get_sample_value("recstream_provenance_dropped_total") == 2


async def test_a_failing_producer_keeps_the_records_for_later(client, rt, monkeypatch,
                                                              publisher):
    assert (await client.get("/recommend/1")).status == 200

    async def down(*args):
        raise ConnectionError("broker gone")

    monkeypatch.setattr(rt.producer, "produce", down)
    with pytest.raises(ConnectionError):
        await publisher.drain()
    assert len(publisher.pending) == 1
