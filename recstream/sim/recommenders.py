"""Whom the platform asks: our service over HTTP, or an in-process policy for tests.

A recommender is any ``async (user_id) -> list[str]`` that raises on failure;
the platform (``traffic.py``) measures the time, enforces the 600 ms deadline
and turns each outcome into the line the course logs.  The built-in policies
(uniform random, popularity, oracle top-20) are the yardsticks the behaviour
test and the benchmark compare against.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
import numpy as np

from recstream.sim.world import World

Recommender = Callable[[int], Awaitable[list[str]]]


class RecommenderHTTPError(Exception):
    """The service answered with a non-200 status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


def split_answer(body: str) -> list[str]:
    """What the platform reads from a 200 answer: comma-separated tokens, stripped."""
    return [token.strip() for token in body.strip().split(",") if token.strip()]


class HttpRecommender:
    """``GET <base>/recommend/<uid>`` over one shared session."""

    def __init__(self, base_url: str, *, timeout_s: float = 0.6, client_name: str = "platform",
                 source: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.server = parts.netloc or self.base_url     # the <server> of the movielog line
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.timeout_s = timeout_s
        self.client_name = client_name
        self.source = source    # local address to call from ("" = any): another host's client
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=512, ttl_dns_cache=300,
                                             local_addr=(self.source, 0) if self.source else None)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers={"User-Agent": f"recstream-sim/{self.client_name}"})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __call__(self, user_id: int | str) -> list[str]:
        if self._session is None:
            await self.start()
        assert self._session is not None
        async with self._session.get(f"{self.base_url}/recommend/{user_id}") as response:
            body = await response.text(errors="replace")
            if response.status != 200:
                raise RecommenderHTTPError(response.status, body)
            return split_answer(body)


class RandomRecommender:
    """Uniformly random 20 movies: the floor."""

    server = "random:8082"

    def __init__(self, world: World, *, k: int = 20, seed: int = 0) -> None:
        self.ids = world.catalog.ids
        self.k = k
        self.rng = np.random.default_rng(seed)

    async def __call__(self, user_id: int) -> list[str]:
        return [self.ids[i] for i in self.rng.choice(len(self.ids), self.k, replace=False)]


class PopularityRecommender:
    """The same 20 most popular movies for everyone."""

    server = "popularity:8082"

    def __init__(self, world: World, *, k: int = 20) -> None:
        top = np.argsort(-world.catalog.weight)[:k]
        self.answer = [world.catalog.ids[i] for i in top]

    async def __call__(self, user_id: int) -> list[str]:
        return list(self.answer)


class OracleRecommender:
    """Each user's true top-20 (reads the ground truth; only for yardsticks)."""

    server = "oracle:8082"

    def __init__(self, world: World, *, k: int = 20) -> None:
        self.world = world
        self.k = k

    async def __call__(self, user_id: int) -> list[str]:
        i = self.world.population.index_of(user_id)
        if i is None:
            raise RecommenderHTTPError(404, "unknown user")
        return [self.world.catalog.ids[m] for m in self.world.taste.oracle_top(i, self.k)]


class SlowRecommender:
    """Wraps another and sleeps first: exercises the deadline path."""

    def __init__(self, inner: Recommender, delay_s: float, server: str = "slow:8082") -> None:
        self.inner, self.delay_s, self.server = inner, delay_s, server

    async def __call__(self, user_id: int) -> list[str]:
        await asyncio.sleep(self.delay_s)
        return await self.inner(user_id)


def builtin(name: str, world: World, seed: int = 0) -> Recommender:
    policies = {"random": lambda: RandomRecommender(world, seed=seed),
                "popularity": lambda: PopularityRecommender(world),
                "oracle": lambda: OracleRecommender(world)}
    if name not in policies:
        raise ValueError(f"unknown built-in recommender {name!r}; choose from {sorted(policies)}")
    return policies[name]()
