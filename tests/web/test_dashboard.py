"""The built-in dashboard: sampler maths, ring buffer, JSON and page (no Kafka).

Quantiles and rates are computed from the deltas between two samples, so each point
describes its own interval; known answers follow Prometheus' ``histogram_quantile``.
"""
from __future__ import annotations

import math
import time

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from recstream.prometheus import Metrics
from tests.chromium import panels, render_async
from web.dashboard import PANELS, make_routes
from web.dashboard_sampler import Sampler, histogram_quantile

INF = math.inf


# -- histogram quantiles ----------------------------------------------------------------

@pytest.mark.parametrize("q, counts, expected", [
    (0.5, [10, 10, 10, 10], 0.05),    # all in the first bucket, which starts at 0
    (0.99, [10, 10, 10, 10], 0.099),
    (0.5, [0, 10, 20, 20], 0.2),      # rank 10 ends bucket (0.1, 0.2]
    (0.99, [0, 10, 20, 20], 0.2 + 0.3 * 9.8 / 10),
    (0.25, [0, 0, 8, 8], 0.2 + 0.3 * 0.25),
    (0.5, [0, 0, 0, 5], 0.5),         # only +Inf: the highest finite bound, as Prometheus
    (0.99, [1, 1, 1, 100], 0.5),
    (0.5, [0, 0, 0, 0], None),        # nothing observed: no quantile, not 0
])
def test_histogram_quantile_known_answers(q, counts, expected):
    got = histogram_quantile(q, [0.1, 0.2, 0.5, INF], [float(c) for c in counts])
    assert got == (None if expected is None else pytest.approx(expected))


def test_histogram_quantile_matches_a_slow_oracle():
    """Observations spread evenly inside each bucket: the interpolated quantile is exact."""
    bounds = [1.0, 2.0, 4.0, 8.0, INF]
    per_bucket = [4, 0, 8, 4, 0]
    values = []
    lower = 0.0
    for upper, n in zip(bounds[:-1], per_bucket):
        values += [lower + (upper - lower) * (i + 1) / n for i in range(n)]
        lower = upper
    cumulative = [float(sum(per_bucket[:i + 1])) for i in range(len(bounds))]
    for q in (0.25, 0.5, 0.75, 1.0):
        oracle = sorted(values)[math.ceil(q * len(values)) - 1]  # nearest-rank quantile
        assert histogram_quantile(q, bounds, cumulative) == pytest.approx(oracle)


def series_by_legend(snapshot: dict, panel: str) -> dict[str, list]:
    return {s["legend"]: snapshot["columns"][s["id"]] for s in snapshot["series"]
            if s["panel"] == panel}


def test_quantiles_and_rates_come_from_the_interval_not_the_lifetime():
    m = Metrics()
    sampler = Sampler(m.registry, PANELS, every_s=5, horizon_s=60)
    sampler.sample(now=100.0, monotonic=0.0)  # the baseline: no interval yet
    for _ in range(100):
        m.latency.observe(0.003)           # (0.002, 0.005]
        m.requests.labels("personal").inc()
    sampler.sample(now=105.0, monotonic=5.0)
    for _ in range(10):
        m.latency.observe(0.3)             # (0.25, 0.6]
        m.requests.labels("fallback").inc()
    sampler.sample(now=110.0, monotonic=10.0)
    sampler.sample(now=115.0, monotonic=15.0)  # an idle interval
    snap = sampler.snapshot()
    latency = series_by_legend(snap, "latency")
    assert latency["worker p50"][:3] == [None, pytest.approx(0.0035), pytest.approx(0.425)]
    assert latency["worker p99"][1] == pytest.approx(0.002 + 0.003 * 0.99)
    assert latency["worker p50"][3] is None  # no request, no quantile (not the lifetime's)
    rates = series_by_legend(snap, "requests")
    assert rates["personal"] == [None, 20.0, 0.0, 0.0]
    # A label set that appears between two samples counts from 0, not from its first value.
    assert rates["fallback"] == [None, None, 2.0, 0.0]


def test_ring_buffer_keeps_the_horizon_and_aligns_late_series():
    m = Metrics()
    sampler = Sampler(m.registry, PANELS, every_s=5, horizon_s=20)
    assert sampler.capacity == 4
    for i in range(10):
        if i == 8:
            m.drift.labels("genre").set(0.3)
        sampler.sample(now=1000.0 + 5 * i, monotonic=5.0 * i)
    snap = sampler.snapshot()
    assert snap["t"] == [1030.0, 1035.0, 1040.0, 1045.0]
    assert all(len(column) == 4 for column in snap["columns"].values())
    assert series_by_legend(snap, "drift")["genre"] == [None, None, 0.3, 0.3]
    # The page asks for what it has not seen yet.
    newer = sampler.snapshot(since=1035.0)
    assert newer["t"] == [1040.0, 1045.0]
    assert all(len(column) == 2 for column in newer["columns"].values())
    assert sampler.snapshot(since=2000.0)["t"] == []


def fill(m: Metrics, n_partitions: int = 8) -> None:
    """Every metric the dashboard draws, with the label sets of a busy worker."""
    for window in ("5m", "1h"):
        m.availability.labels(window).set(0.97)
        m.online_conversion.labels(window).set(0.12)
        m.online_watch_through.labels(window).set(0.4)
        m.online_rating.labels(window).set(3.8)
        m.licence_cost_per_view.labels(window).set(0.35)
        m.licence_cost_per_hour.labels(window).set(120.0)
    for feature in ("rating", "watch_minutes", "genre", "age", "gender", "occupation",
                    "release_year", "latency"):
        m.drift.labels(feature).set(0.02)
    for topic in ("movielog", "events", "movie-updates", "item-broadcast"):
        m.consumer_lag.labels(topic).set(3 * n_partitions)
    m.model_info.labels("v3").set(1)
    m.model_generation.set(3)
    m.model_age.set(600)
    for source in ("personal", "fallback", "invalid", "routed", "owner_down", "error",
                   "coldstart", "stale"):
        m.requests.labels(source).inc(5)
    for result in ("ok", "slow", "error"):
        m.platform_requests.labels(result).inc(3)
    for v in (0.0004, 0.001, 0.003, 0.02, 0.3, 2.0):
        m.latency.observe(v)
        m.platform_latency.observe(v)


def test_sampling_keeps_its_own_cost_and_every_drift_line():
    """It runs on the serving loop; its speed is bench/hot_paths.py's claim, not a timed test."""
    m = Metrics()
    fill(m)
    sampler = Sampler(m.registry, PANELS)
    for i in range(300):
        m.requests.labels("personal").inc()
        m.latency.observe(0.002)
        sampler.sample()
    assert sampler.samples == 300 and sampler.max_s > 0
    snap = sampler.snapshot()
    assert snap["sampler"]["samples"] == 300 and snap["sampler"]["max_ms"] >= snap["sampler"]["mean_ms"] > 0
    assert len([s for s in snap["series"] if s["panel"] == "drift"]) == 8


# -- the JSON and the page ----------------------------------------------------------------

@pytest.fixture
async def dash(rt):
    sampler = Sampler(rt.metrics.registry, PANELS, every_s=5, horizon_s=3600)
    app = web.Application()
    app.add_routes(make_routes(sampler))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield sampler, client
    await client.close()


async def test_series_json_after_metric_updates(dash, rt):
    sampler, client = dash
    m = rt.metrics
    sampler.sample(now=1000.0, monotonic=0.0)
    m.availability.labels("1h").set(0.98)
    m.platform_requests.labels("ok").inc(9)
    m.platform_requests.labels("error").inc(1)
    m.drift.labels("rating").set(0.05)
    m.drift.labels("genre").set(0.31)
    m.model_info.labels("v7").set(1)
    m.model_generation.set(7)
    m.licence_cost_per_view.labels("1h").set(0.42)
    m.online_rating.labels("1h").set(float("nan"))  # undefined yet: drawn as a gap
    m.answers_by_user.labels("personal", "returning").inc(3)
    m.answers_by_user.labels("popular", "returning").inc(1)
    m.answers_by_user.labels("fallback", "new").inc(4)
    sampler.sample(now=1005.0, monotonic=5.0)

    response = await client.get("/dashboard/series.json")
    assert response.status == 200 and response.content_type == "application/json"
    snap = orjson.loads(await response.read())
    assert snap["t"] == [1000.0, 1005.0] and snap["interval_s"] == 5
    assert [p["id"] for p in snap["panels"]] == [p.id for p in PANELS]
    availability = series_by_legend(snap, "availability")
    assert availability == {"availability 1h": [None, 0.98], "ok share per sample": [None, 0.9]}
    assert series_by_legend(snap, "personal") == {"personal share, returning users": [None, 0.75],
                                                  "personal share, all users": [None, 0.375]}
    assert series_by_legend(snap, "drift") == {"rating": [None, 0.05], "genre": [None, 0.31]}
    model = series_by_legend(snap, "model")
    assert model["version"] == [None, "v7"] and model["generation"] == [0.0, 7.0]
    assert series_by_legend(snap, "cost")["per view 1h"] == [None, 0.42]
    assert series_by_legend(snap, "quality")["mean rating 1h"] == [None, None]
    kinds = {s["legend"]: (s["kind"], s["axis"]) for s in snap["series"]}
    assert kinds["version"] == ("text", "left") and kinds["age"] == ("number", "right")
    assert snap["sampler"]["samples"] == 2 and snap["sampler"]["max_ms"] > 0

    response = await client.get("/dashboard/series.json", params={"since": "1000"})
    assert orjson.loads(await response.read())["t"] == [1005.0]
    response = await client.get("/dashboard/series.json", params={"since": "soon"})
    assert response.status == 400


async def test_page_is_self_contained_html(dash):
    _, client = dash
    response = await client.get("/dashboard")
    assert response.status == 200 and response.content_type == "text/html"
    page = await response.text()
    assert "dashboard/series.json" in page and "<svg" not in page.split("<script>")[0]
    for external in ("http://", "https://", "//cdn", "<link"):  # no network at view time
        assert external not in page.replace("http://www.w3.org/2000/svg", ""), external


async def test_the_page_draws_data_and_says_when_there_is_none(dash, rt):
    """Chromium renders the page: panels with samples have points, the others say so."""
    sampler, client = dash
    m = rt.metrics
    for i in range(4):
        m.availability.labels("1h").set(0.9 + i / 100)
        m.drift.labels("rating").set(0.01 * i)
        m.requests.labels("personal").inc(10)
        m.latency.observe(0.004)
        sampler.sample(now=time.time() - 15 + 5 * i, monotonic=5.0 * i)
    dom = await render_async(str(client.make_url("/dashboard")), budget_ms=2000)
    found, body = panels(dom)
    assert body.get("data-loaded") == "true", dom[-2000:]
    assert set(found) == {p.id for p in PANELS}
    assert found["availability"].points == 4  # the gauge; no outcome lines: no ok share
    assert found["drift"].points == 4 and found["drift"].paths == 1
    assert found["latency"].points == 3 * 2  # p50 and p99 over three intervals
    assert found["requests"].points == 3
    for empty in ("quality", "cost", "lag"):
        assert found[empty].state == "empty" and "no data yet" in " ".join(found[empty].text)
    assert found["drift"].state == "data" and "moderate" in found["drift"].text


async def test_register_mounts_the_page_and_a_timer_on_the_worker(app):
    paths = {r.resource.canonical for r in app.web.web_app.router.routes()}
    assert {"/dashboard", "/dashboard/series.json"} <= paths
    names = [getattr(task, "__qualname__", "") for task in app._app_tasks]  # @app.task/timer
    assert "register.<locals>.sample_metrics" in names, names
