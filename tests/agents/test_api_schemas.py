"""Movie API objects are checked where they are fetched: counted, quarantined, never stored
without a usable id (#12)."""
from __future__ import annotations

import dataclasses

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from agents.metadata import CatalogFetcher
from recstream.api_checks import ApiObjectGate


async def test_the_movie_fetcher_quarantines_schema_violations(rt, recorder):
    objects = [
        {"id": "up+2009", "title": "Up", "adult": "False", "genres": [{"id": 1, "name": "A"}],
         "release_date": "2009-05-28", "runtime": "96"},
        {"id": "odd+2001", "title": "Odd", "adult": "null", "genres": "Drama",
         "release_date": "2001-13-45", "runtime": "-3"},
        {"title": "no id at all", "adult": False},
    ]

    async def movies(request):
        return web.Response(body=orjson.dumps(objects), content_type="application/json")

    api = web.Application()
    api.router.add_get("/movie/{ids}", movies)
    server = TestServer(api)
    await server.start_server()
    gate = ApiObjectGate(violations=rt.metrics.api_violations,
                         quarantine=lambda rejected: rt.topics.quarantine.send(value=rejected))
    settings = dataclasses.replace(rt.settings, api_url=str(server.make_url("")).rstrip("/"))
    fetcher = CatalogFetcher(settings=settings, catalog=rt.tables.movie_catalog,
                             metadata_topic=rt.topics.movie_metadata,
                             api_calls=rt.metrics.api_calls, gate=gate)
    try:
        async with aiohttp.ClientSession() as session:
            await fetcher.fetch(session, ["up+2009", "odd+2001"])
    finally:
        await server.close()
    stored = [key for key, _ in recorder.on("movie_metadata")]
    assert stored == [b"up+2009", b"odd+2001"]  # the quirky one is usable, the id-less not
    reasons = [rejected.reason for _, rejected in recorder.on("quarantine")]
    assert len(reasons) == 2 and reasons[0].startswith("movie_api:")
    assert "adult:missing" in reasons[0] and "$" not in reasons[0]
    sample = rt.metrics.registry.get_sample_value
    assert sample("recstream_api_schema_violations_total",
                  {"api": "movie", "field": "adult", "reason": "missing"}) == 1
    assert sample("recstream_api_schema_violations_total",
                  {"api": "movie", "field": "id", "reason": "missing"}) == 1


async def test_outcome_lines_are_compared_with_the_answers_we_sent(rt, make_event):
    from tests.agents.test_monitoring import apply_lines, line, sample
    from tests.wiring import user_writer

    writer = user_writer(rt)
    rt.sent_answers.record(5, "up+2009,cars+2006")
    rt.sent_answers.record(6, "up+2009")
    rt.sent_answers.record(7, "alien+1979")
    await apply_lines(
        rt, make_event, writer,
        line(5, "recommendation request h:8082, status 200, result: up+2009, cars+2006, 55 ms"),
        line(6, "recommendation request h:8082, status 200, result: up+2009, x+1, 40 ms"),
        line(7, "recommendation request h:8082, status 504, result: timeout", "15:30:01"),
        line(8, "recommendation request h:8082, status 200, result: a+1, 30 ms"))  # not ours
    assert sample(rt, "recstream_outcomes_compared_total") == 3
    assert sample(rt, "recstream_outcome_mismatches_total", reason="extra_ids") == 1
    assert sample(rt, "recstream_outcome_mismatches_total", reason="non_200") == 1
    assert sample(rt, "recstream_outcome_mismatches_total", reason="lost_ids") == 0
