"""The platform's user and movie APIs on :8080, with the course's quirks and limits.

``GET /user/<ids>`` and ``GET /movie/<ids>`` take up to 200 comma-separated
ids.  One id answers one object (404 ``{"message": ...}`` if unknown), several
answer a list in request order where unknown ids appear as
``{"id": ..., "message": "... not found"}`` (404 only when none is known).
A per-client token bucket (client = ``X-Client-Id`` header, else the peer
address) answers 429.  Outage, slowness and field drift are scenarios.
The ground truth is served by a separate app (``truth_app``) on its own port
so the recommender can be pointed at the API without ever seeing it.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import numpy as np
import orjson
from aiohttp import web

from recstream.sim.options import SimOptions
from recstream.sim.telemetry import Telemetry
from recstream.sim.world import World

MAX_IDS = 200
_DROPPABLE_MOVIE = ("runtime", "budget", "vote_count", "overview", "release_date", "genres")
_DROPPABLE_USER = ("age", "occupation")


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.state: dict[str, tuple[float, float]] = {}

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self.state.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self.state[client] = (tokens, now)
            return False
        self.state[client] = (tokens - 1.0, now)
        return True


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def build_app(world: World, options: SimOptions, telemetry: Telemetry | None = None,
              sim_elapsed: Callable[[], float] = lambda: 0.0) -> web.Application:
    """``sim_elapsed`` gives simulated seconds since the start (drives outage windows)."""
    telemetry = telemetry or Telemetry()
    bucket = TokenBucket(options.api_rate_per_s, options.api_burst)
    outage, slow, drift = options.scenario("api-outage"), options.scenario("api-slow"), options.scenario("extra-fields")
    rng = np.random.default_rng((options.seed, 5))
    catalog, pop = world.catalog, world.population

    def movie(slug: str) -> Any:
        i = catalog.index.get(slug)
        if i is None:
            return None
        if catalog.raw_json is not None:
            return orjson.loads(catalog.raw_json[i]) | {"license_cost": _cost(catalog.cost[i], options.json_quirks)}
        return catalog.movie_json(i, quirks=options.json_quirks)

    def user(text: str) -> Any:
        if not (text.isascii() and text.isdigit()):
            return None
        i = pop.index_of(int(text))
        if i is None or not pop.created[i]:
            return None
        return world.user_json(i, like_field=options.like_field, dislike_field=options.dislike_field)

    def drifted(obj: dict[str, Any], droppable: tuple[str, ...]) -> dict[str, Any]:
        if drift is None or rng.random() >= float(drift["share"]):
            return obj
        obj = dict(obj)
        obj.pop(droppable[int(rng.integers(len(droppable)))], None)
        obj["x_debug_shard"] = str(int(rng.integers(1, 64)))
        return obj

    async def lookup(request: web.Request, kind: str, one: Callable[[str], Any], droppable: tuple[str, ...]) -> web.Response:
        client = request.headers.get("X-Client-Id") or request.remote or "unknown"
        status = 200
        try:
            if not bucket.allow(client):
                status = 429
                return _json({"message": "too many requests"}, 429)
            if outage and sim_elapsed() % float(outage["period_s"]) >= float(outage["period_s"]) - float(outage["down_s"]):
                status = 503
                return _json({"message": "service unavailable"}, 503)
            if slow and rng.random() < float(slow["share"]):
                await asyncio.sleep(float(slow["delay_s"]))
            ids = [s.strip() for s in request.match_info["ids"].split(",") if s.strip()]
            if not ids or len(ids) > MAX_IDS:
                status = 400
                return _json({"message": f"between 1 and {MAX_IDS} ids per request"}, 400)
            found = [one(i) for i in ids]
            if len(ids) == 1:
                if found[0] is None:
                    status = 404
                    return _json({"message": f"{kind} not found"}, 404)
                return _json(drifted(found[0], droppable))
            if all(f is None for f in found):
                status = 404
            return _json([drifted(f, droppable) if f is not None else {"id": i, "message": f"{kind} not found"}
                          for i, f in zip(ids, found)], status)
        finally:
            telemetry.api[(kind, str(status))] += 1

    async def get_user(request: web.Request) -> web.Response:
        return await lookup(request, "user", user, _DROPPABLE_USER)

    async def get_movie(request: web.Request) -> web.Response:
        return await lookup(request, "movie", movie, _DROPPABLE_MOVIE)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=telemetry.exposition(), headers={"Content-Type": "text/plain; version=0.0.4"})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/user/{ids}", get_user)
    app.router.add_get("/movie/{ids}", get_movie)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


def _cost(value: float, quirks: bool) -> Any:
    v = float(round(float(value), 2))
    return str(v) if quirks else v


def truth_app(world: World) -> web.Application:
    """True affinities on demand, for evaluation only: never point the recommender here."""

    def index(request: web.Request) -> int:
        i = world.population.index_of(int(request.match_info["uid"]))
        if i is None:
            raise web.HTTPNotFound(text="unknown user")
        return i

    async def affinity(request: web.Request) -> web.Response:
        i = index(request)
        slugs = [s for s in request.query.get("movies", "").split(",") if s in world.catalog.index]
        items = np.array([world.catalog.index[s] for s in slugs], dtype=np.int64)
        ratings = world.taste.ratings(i, items) if len(items) else []
        return _json({s: round(float(r), 4) for s, r in zip(slugs, ratings)})

    async def oracle(request: web.Request) -> web.Response:
        i = index(request)
        k = min(int(request.query.get("k", "20")), 200)
        top = world.taste.oracle_top(i, k)
        ratings = world.taste.ratings(i, top)
        return _json([[world.catalog.ids[m], round(float(r), 4)] for m, r in zip(top, ratings)])

    app = web.Application()
    app.router.add_get("/truth/affinity/{uid}", affinity)
    app.router.add_get("/truth/oracle/{uid}", oracle)
    return app
