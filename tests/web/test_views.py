"""HTTP views through aiohttp's test client, on a runtime filled by hand (no Kafka).

SPEC §3: ``GET /recommend/<userid>`` always answers ``200 text/plain`` with one line of up
to 20 comma-separated movie ids, whatever the id, never a stack trace.
"""
from __future__ import annotations

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from recstream.parsing import parse_line
from tables.codecs import user_key
from tables.context import partition_for
from tests.wiring import routes, user_writer
from web.views import parse_user_id

N_MOVIES = 30
MOVIES = [f"movie+{i:02d}+19{50 + i}" for i in range(N_MOVIES)]
ADULT = "adult+film+1999"
R_RATED = "r+rated+2001"
MINOR = 77


def fill(rt) -> None:
    """A catalogue with popularity, factors, and two unsafe titles that would rank first."""
    n = rt.settings.n_factors
    for i, movie in enumerate(MOVIES):
        factors = np.zeros(n, np.float32)
        factors[i % n] = 1.0 + i / 100
        rt.items.update(movie, bias=0.0, factors=factors, pop_score=float(i), pop_time=0.0)
        rt.items.set_flags(movie, adult=False, minors_ok=True)  # confirmed by the movie API
    for movie in (ADULT, R_RATED):
        rt.items.update(movie, bias=5.0, factors=np.ones(n, np.float32), pop_score=1000.0,
                        pop_time=0.0)
    rt.items.set_flags(ADULT, adult=True, minors_ok=False)
    rt.items.set_flags(R_RATED, adult=False, minors_ok=False)
    axis0 = np.zeros(n, np.float32)
    axis0[0] = 1.0
    rt.users.set_vector(1, 0.0, axis0)
    rt.users.minor[rt.users.get_row(1)] = False  # a confirmed adult
    rt.users.invalidate(rt.users.get_row(1))
    row = rt.users.set_vector(MINOR, 0.0, axis0)
    rt.users.minor[row] = True
    rt.users.invalidate(row)
    rt.recommender.refresh_fallback()
    rt.readiness.items_loaded.set()


async def start(rt) -> TestClient:
    app = web.Application()
    app.add_routes(routes(rt))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(rt):
    fill(rt)
    client = await start(rt)
    yield client
    await client.close()


@pytest.fixture
async def empty_client(rt):
    client = await start(rt)
    yield client
    await client.close()


def requests_total(rt, source: str) -> float:
    return rt.metrics.registry.get_sample_value("recstream_requests_total",
                                                {"source": source}) or 0.0


async def get_line(client: TestClient, path: str | URL) -> str:
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == "text/plain"
    body = await response.text()
    assert "\n" not in body.rstrip("\n") and "Traceback" not in body
    return body


def check_answer(body: str, *, minor: bool = False) -> list[str]:
    ids = body.split(",")
    assert body and 1 <= len(ids) <= 20
    assert len(set(ids)) == len(ids)
    assert set(ids) <= set(MOVIES) | {R_RATED}  # known movies only
    assert ADULT not in ids
    if minor:
        assert R_RATED not in ids
    return ids


# -- /recommend ---------------------------------------------------------------------------

async def test_known_user_gets_a_personal_answer(client, rt):
    ids = check_answer(await get_line(client, "/recommend/1"))
    assert len(ids) == 20
    n = rt.settings.n_factors
    # Axis 0 first: the movies whose factor is on axis 0, strongest first, R-rated allowed.
    assert ids[:4] == [R_RATED] + [MOVIES[i] for i in sorted(range(0, N_MOVIES, n),
                                                            reverse=True)[:3]]
    assert requests_total(rt, "personal") == 1


async def test_minor_never_gets_restricted_titles(client, rt):
    ids = check_answer(await get_line(client, f"/recommend/{MINOR}"), minor=True)
    assert ids[0] == MOVIES[24]  # the best axis-0 movie that is safe


async def test_unknown_user_gets_the_popular_safe_fallback(client, rt):
    ids = check_answer(await get_line(client, "/recommend/123456"), minor=True)
    assert ids == MOVIES[::-1][:20]  # most popular first; the unsafe hits are left out
    assert requests_total(rt, "fallback") == 1


BAD_IDS = [
    "abc", "-1", "99999999999999999999", "%2e%2e", "..%2Fetc", "..%2F..%2Fetc%2Fpasswd",
    "%D9%A1%D9%A2", "%EF%BC%91", "1" * 4000, "%00", "1%2F2", "0x10", "%2B5", "%205", "1e3",
    "5.0", "1000001", "%F0%9F%8E%AC", "%27%3B--", "%3Cscript%3E",
]


@pytest.mark.parametrize("raw", BAD_IDS)
async def test_bad_ids_get_the_fallback(client, rt, raw):
    body = await get_line(client, URL("/recommend/" + raw, encoded=True))
    assert body == rt.recommender.fallback_line
    check_answer(body, minor=True)
    assert requests_total(rt, "invalid") == 1


async def test_empty_id_gets_the_fallback(client, rt):
    assert await get_line(client, "/recommend/") == rt.recommender.fallback_line


def test_parse_user_id():
    assert parse_user_id("0", 10) == 0 and parse_user_id("0010", 10) == 10
    for text in ("", "11", "-1", "١٢", "1" * 13, "1 ", "+1", "1_0"):
        assert parse_user_id(text, 10) is None, text


async def test_an_internal_error_still_answers(client, rt, monkeypatch, caplog):
    def broken(user):
        raise RuntimeError("boom")

    monkeypatch.setattr(rt.recommender, "answer_with_guardrails", broken)
    body = await get_line(client, "/recommend/1")
    assert body == rt.recommender.fallback_line and "boom" not in body
    assert requests_total(rt, "error") == 1
    assert "recommend failed" in caplog.text


async def test_a_starting_worker_answers_503_so_the_front_retries_elsewhere(empty_client, rt):
    response = await empty_client.get("/recommend/1")
    assert response.status == 503 and response.headers["Retry-After"] == "1"
    assert requests_total(rt, "starting") == 1


async def test_no_movies_yet_is_still_200_text(empty_client, rt):
    rt.readiness.items_loaded.set()  # loaded, but the world has no movies yet
    for path in ("/recommend/1", "/recommend/abc"):
        response = await empty_client.get(path)
        assert response.status == 200 and response.content_type == "text/plain"
        assert await response.text() == ""


async def test_a_rating_changes_the_next_answer(client, rt, make_event, recorder):
    """Ingest (the user writer) and serving share the process: no refresher needed."""
    before = check_answer(await get_line(client, "/recommend/1"))
    writer = user_writer(rt)
    target = before[0]
    text = f"2024-10-14T15:30:00,1,GET /rate/{target}=1"
    event = make_event(text.encode(), key=b"1",
                       partition=partition_for(user_key(1), rt.settings.partitions))
    await writer.apply([(event, parse_line(text))])
    after = check_answer(await get_line(client, "/recommend/1"))
    assert after != before
    assert target not in after  # rated: excluded from now on
    # A new user with a first watch becomes known and is never offered what they watch.
    text = f"2024-10-14T15:30:00,5,GET /data/m/{MOVIES[-1]}/0.mpg"
    event = make_event(text.encode(), key=b"5",
                       partition=partition_for(user_key(5), rt.settings.partitions))
    await writer.apply([(event, parse_line(text))])
    ids = check_answer(await get_line(client, "/recommend/5"), minor=False)
    assert MOVIES[-1] not in ids


# -- health, readiness, metrics -------------------------------------------------------------

async def test_healthz(empty_client):
    response = await empty_client.get("/healthz")
    assert response.status == 200 and await response.text() == "ok"


async def test_readyz_lists_what_is_missing(empty_client, rt):
    ready = rt.readiness
    response = await empty_client.get("/readyz")
    assert response.status == 503
    assert await response.text() == ("not ready: tables_recovered, items_loaded, users_loaded, "
                                     "model_loaded")
    ready.tables_recovered.set()
    ready.users_loaded.set()
    ready.model_loaded.set()
    response = await empty_client.get("/readyz")
    assert response.status == 503 and await response.text() == "not ready: items_loaded"
    assert rt.metrics.registry.get_sample_value("recstream_ready") == 0
    ready.items_loaded.set()
    response = await empty_client.get("/readyz")
    assert response.status == 200 and await response.text() == "ready"
    assert rt.metrics.registry.get_sample_value("recstream_ready") == 1


async def test_metrics_are_prometheus_text(client, rt):
    await get_line(client, "/recommend/1")
    await get_line(client, "/recommend/abc")
    await get_line(client, "/recommend/424242")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = await response.text()
    for expected in ('recstream_requests_total{source="personal"} 1.0',
                     'recstream_requests_total{source="invalid"} 1.0',
                     'recstream_requests_total{source="fallback"} 1.0',
                     "recstream_request_seconds_count 3.0",
                     'recstream_answers_by_user_total{source="personal",user="returning"} 1.0',
                     'recstream_answers_by_user_total{source="fallback",user="new"} 1.0',
                     'recstream_answers_by_user_total{source="invalid",user="new"} 1.0',
                     "# TYPE recstream_rejects_total counter"):
        assert expected in text, expected
    # Only this worker's registry: nothing from the process-global default one.
    assert "python_gc_objects_collected_total" not in text
