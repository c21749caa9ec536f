"""The user/movie APIs: bulk ids, course quirks, 404s, 429s and scenario faults."""
from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from recstream.sim.api import TokenBucket, build_app
from recstream.sim.telemetry import Telemetry


async def _client(world, options, **kw):
    client = TestClient(TestServer(build_app(world, options, Telemetry(), **kw)))
    await client.start_server()
    return client


async def test_bulk_lookup_quirks_and_unknown_ids(small_world, small_options):
    client = await _client(small_world, small_options)
    try:
        ids = small_world.catalog.ids[:150] + ["no+such+movie+1900"]
        resp = await client.get("/movie/" + ",".join(ids))
        body = await resp.json()
        assert resp.status == 200 and len(body) == 151
        assert body[0]["id"] == ids[0] and isinstance(body[0]["budget"], str) and body[0]["adult"] in ("True", "False")
        assert body[-1] == {"id": "no+such+movie+1900", "message": "movie not found"}
        assert (await client.get("/movie/no+such+movie+1900")).status == 404
        assert (await client.get("/movie/" + ",".join(small_world.catalog.ids[:201]))).status == 400
        resp = await client.get("/user/1")
        user = await resp.json()
        assert set(user) == {"user_id", "age", "occupation", "gender"} and user["user_id"] == 1
        future = len(small_world.population)                   # not signed up yet
        assert (await client.get(f"/user/{future}")).status == 404
        assert (await client.get("/user/-3")).status == 404
        users = await (await client.get("/user/1,2,3")).json()
        assert [u["user_id"] for u in users] == [1, 2, 3]
        assert b"sim_api_requests" in await (await client.get("/metrics")).read()
    finally:
        await client.close()


async def test_self_description_appears_for_new_accounts(small_world, small_options):
    pop = small_world.population
    i = None
    while i is None or not pop.describes[i]:
        i = pop.sign_up()
    client = await _client(small_world, small_options)
    try:
        user = await (await client.get(f"/user/{pop.ids[i]}")).json()
        assert user["likes"] and user["dislikes"]
    finally:
        await client.close()


async def test_rate_limit_answers_429(small_world, small_options):
    client = await _client(small_world, small_options.replace(api_rate_per_s=1.0, api_burst=5))
    try:
        statuses = [(await client.get("/user/1", headers={"X-Client-Id": "scraper"})).status for _ in range(12)]
        assert statuses[:5] == [200] * 5 and statuses.count(429) >= 6
        assert (await client.get("/user/1", headers={"X-Client-Id": "polite"})).status == 200
    finally:
        await client.close()


async def test_outage_and_field_drift(small_world, small_options):
    options = small_options.replace(scenarios={"api-outage": {"period_s": 100, "down_s": 50},
                                               "extra-fields": {"share": 1.0}})
    elapsed = [10.0]
    client = await _client(small_world, options, sim_elapsed=lambda: elapsed[0])
    try:
        movie = await (await client.get("/movie/" + small_world.catalog.ids[0])).json()
        assert "x_debug_shard" in movie
        elapsed[0] = 75.0
        assert (await client.get("/user/1")).status == 503
    finally:
        await client.close()


def test_token_bucket_refills():
    bucket = TokenBucket(rate=2.0, burst=2)
    assert bucket.allow("a", 0.0) and bucket.allow("a", 0.0) and not bucket.allow("a", 0.0)
    assert bucket.allow("a", 0.6)
