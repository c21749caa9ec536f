"""/recommend's guard (issue #14): signed routing, per-client limits, unsafe-exposure counter."""
from __future__ import annotations

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.attack_watch import ScrapingWatch
from models.detectors import ScrapingDetector
from recstream.settings import Settings, SettingsError
from tests.wiring import routes
from web.guard import ExposureMonitor, Guard, RateLimiter, RouteSigner
from web.routing import ROUTED_HEADER

SAFE, HORROR, UNCONFIRMED = "safe+film+2001", "scary+film+2002", "fake+slug+2024"


def test_only_a_peer_signed_routing_header_verifies():
    signer, other = RouteSigner("shared-secret"), RouteSigner("another-secret")
    value = signer.sign("/recommend/7", now=1000.0)
    assert signer.verify(value, "/recommend/7", now=1010.0)
    assert RouteSigner("shared-secret").verify(value, "/recommend/7", now=1010.0)  # a peer
    assert not other.verify(value, "/recommend/7", now=1010.0)       # wrong secret
    assert not signer.verify(value, "/recommend/8", now=1010.0)      # another path
    assert not signer.verify(value, "/recommend/7", now=1100.0)      # replayed too late
    for forged in (None, "", "1", "x.y", "1000." + "0" * 64):
        assert not signer.verify(forged, "/recommend/7", now=1000.0)
    assert not RouteSigner("").verify(RouteSigner("").sign("/p"), "/p")  # random per process


def test_token_bucket_throttles_clients_but_never_graders():
    limiter = RateLimiter(rate_per_s=2.0, burst=5, grader_cidrs="10.1.0.0/16, 192.0.2.7")
    assert [limiter.allow("198.51.100.1", now=0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.allow("198.51.100.1", now=0.5)          # one token back after 0.5 s
    assert not limiter.allow("198.51.100.1", now=0.5)
    assert all(limiter.allow("10.1.200.3", now=0.0) for _ in range(10_000))
    assert all(limiter.allow("192.0.2.7", now=0.0) for _ in range(1000))
    assert all(RateLimiter(rate_per_s=0, burst=1).allow("x", now=0.0) for _ in range(100))
    small = RateLimiter(rate_per_s=1.0, burst=1, max_clients=100)
    for i in range(1000):
        small.allow(f"203.0.113.{i % 250}-{i}", now=0.0)
    assert len(small.buckets) <= 100                         # bounded memory


def test_bad_grader_cidr_stops_the_process_at_start():
    with pytest.raises(SettingsError, match="grader_cidrs"):
        Settings.from_mapping({"grader_cidrs": "10.0.0.0/8,not-an-address"})


def confirm(rt) -> None:
    n = rt.settings.n_factors
    for i, movie in enumerate((SAFE, HORROR, UNCONFIRMED)):
        rt.items.update(movie, bias=0.0, factors=np.ones(n, np.float32), pop_score=float(3 - i))
    rt.items.set_flags(SAFE, adult=False, minors_ok=True)
    rt.items.set_flags(HORROR, adult=False, minors_ok=False)


def test_exposure_monitor_counts_unsafe_titles_by_audience(rt):
    confirm(rt)
    monitor = ExposureMonitor(rt.items, rt.users, rt.metrics)
    adult = rt.users.row(1)
    rt.users.minor[adult] = False
    assert monitor.check(1, f"{SAFE},{HORROR}") == 0
    assert monitor.check(1, f"{SAFE},{UNCONFIRMED}") == 1      # never confirmed: unsafe for all
    assert monitor.check(2, f"{SAFE},{HORROR}") == 1           # unknown user: minors' rules
    assert monitor.check(None, f"{HORROR},{UNCONFIRMED}") == 2  # invalid id: minors' rules
    # Ranked from the profile fetched for this request (cold start at the first request):
    # an adult the index does not hold yet.  An unconfirmed title stays unsafe for anyone.
    assert monitor.check(3, f"{SAFE},{HORROR}", profile_adult=True) == 0
    assert monitor.check(3, f"{SAFE},{UNCONFIRMED}", profile_adult=True) == 1
    assert monitor.check(None, HORROR, profile_adult=True) == 1  # no user: never an adult
    value = rt.metrics.registry.get_sample_value
    assert value("recstream_unsafe_exposures_total", {"audience": "adult"}) == 2
    assert value("recstream_unsafe_exposures_total", {"audience": "minor_or_unknown"}) == 4
    assert value("recstream_served_titles_total", {"audience": "adult"}) == 8


@pytest.fixture
async def guarded(rt):
    confirm(rt)
    rt.recommender.refresh_fallback()
    rt.readiness.items_loaded.set()
    guard = Guard(signer=RouteSigner("s"), limiter=RateLimiter(rate_per_s=0.001, burst=3),
                  exposure=ExposureMonitor(rt.items, rt.users, rt.metrics))
    app = web.Application()
    app.add_routes(routes(rt, guard=guard))
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, guard
    await client.close()


async def test_over_budget_clients_get_429_and_a_forged_routed_header_does_not_help(guarded, rt):
    client, guard = guarded
    statuses = [(await client.get("/recommend/5")).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert (await client.get("/recommend/5", headers={ROUTED_HEADER: "1"})).status == 429
    signed = {ROUTED_HEADER: guard.signer.sign("/recommend/5")}
    response = await client.get("/recommend/5", headers=signed)  # a peer's forward
    assert response.status == 200 and await response.text() == SAFE
    assert rt.metrics.registry.get_sample_value("recstream_requests_total",
                                                {"source": "throttled"}) == 1


async def test_graders_are_never_throttled(rt):
    confirm(rt)
    rt.recommender.refresh_fallback()
    rt.readiness.items_loaded.set()
    guard = Guard(signer=RouteSigner("s"),
                  limiter=RateLimiter(rate_per_s=0.001, burst=1, grader_cidrs="127.0.0.0/8"),
                  exposure=ExposureMonitor(rt.items, rt.users, rt.metrics))
    app = web.Application()
    app.add_routes(routes(rt, guard=guard))
    async with TestClient(TestServer(app)) as client:
        for _ in range(50):
            response = await client.get("/recommend/5")
            assert response.status == 200 and await response.text() == SAFE
    assert rt.metrics.registry.get_sample_value("recstream_unsafe_exposures_total",
                                                {"audience": "minor_or_unknown"}) == 0


def test_exposure_gauges_see_concentration_and_decay(rt):
    n = rt.settings.n_factors
    movies = [f"film+{i}+2000" for i in range(100)]
    for movie in movies:
        rt.items.update(movie, bias=0.0, factors=np.ones(n, np.float32))
        rt.items.set_flags(movie, adult=False, minors_ok=True)
    monitor = ExposureMonitor(rt.items, rt.users, rt.metrics)
    for _ in range(50):
        monitor.check(1, ",".join(movies[:20]))           # everyone gets the same 20
    narrow = monitor.sample()
    gauge = rt.metrics.registry.get_sample_value
    assert narrow["coverage"] == 0.2 and gauge("recstream_exposure", {"measure": "coverage"}) == 0.2
    assert narrow["gini"] == pytest.approx(0.8)
    for k in range(50):
        monitor.check(1, ",".join(movies[(k * 20) % 100:(k * 20) % 100 + 20]))  # spread
    spread = monitor.sample()
    assert spread["coverage"] == 1.0 and spread["gini"] < narrow["gini"]
    assert gauge("recstream_exposure", {"measure": "coverage"}) == 1.0
    for _ in range(12):  # no answers: the counts decay; the head (more exposures) goes last
        monitor.sample()
    assert not monitor.exposed
    assert gauge("recstream_exposure", {"measure": "coverage"}) == 0.2  # an empty sample sets nothing


@pytest.mark.parametrize("graders, flagged", [("10.0.0.0/8", ["walking"]),   # 127.0.0.1 is not one
                                              ("127.0.0.0/8", []),           # the graders' own address
                                              ("", [])])                     # nothing known: echo rules only
async def test_an_outsider_walking_user_ids_is_flagged_at_the_web_layer(rt, graders, flagged):
    """#14 phase 4: no outcome line is ever read here; a client from outside the graders'
    addresses asking for 100 distinct users is flagged on its requests alone."""
    confirm(rt)
    rt.recommender.refresh_fallback()
    rt.readiness.items_loaded.set()
    scraping = ScrapingWatch(detector=ScrapingDetector(), metrics=rt.metrics)
    guard = Guard(signer=RouteSigner("s"), scraping=scraping,
                  limiter=RateLimiter(rate_per_s=0, burst=1, grader_cidrs=graders),
                  exposure=ExposureMonitor(rt.items, rt.users, rt.metrics))
    app = web.Application()
    app.add_routes(routes(rt, guard=guard))
    async with TestClient(TestServer(app)) as client:
        for user in range(1, 100):
            assert (await client.get(f"/recommend/{user * 7919 % 100_000}")).status == 200
        assert scraping.drain() == []                     # 99 calls: not yet
        for _ in range(50):                               # one user many times: not a walk
            await client.get("/recommend/3", headers={"User-Agent": "app"})
        await client.get("/recommend/424242")
        new = scraping.drain()
    assert [scraping.detector.flagged[c][2] for c in new] == flagged
    assert all(" app" not in c for c in new)
    assert rt.metrics.registry.get_sample_value(
        "recstream_scraping_flagged_clients_total") == len(flagged)
