"""The movie catalogue: metadata fetched from the movie API in bulk, cached.

Movies are asked for when their owner first sees them played; a background
task fetches up to ``api_batch_size`` (≤200) ids per call, publishes each
normalised record to the metadata topic (keyed by movie), and the
``write_catalog`` agent — the table's one writer — stores it.  The API being
slow or down only delays metadata (retried after ``api_retry_s``); ingest
never waits for it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import orjson

from recstream.api_checks import ApiObjectGate
from recstream.movie_api import normalise, records_from_response
from recstream.settings import Settings
from tables.codecs import movie_key
from tables.context import as_event

log = logging.getLogger(__name__)


class CatalogFetcher:
    """Queues movies to look up; one task fetches them in bulk and publishes the records."""

    def __init__(self, *, settings: Settings, catalog: Any, metadata_topic: Any,
                 api_calls: Any, gate: ApiObjectGate | None = None) -> None:
        self.settings = settings
        self.gate = gate  # #12: movie API objects checked against their schema
        self.catalog = catalog
        self.metadata_topic = metadata_topic
        self.api_calls = api_calls
        self.pending: set[str] = set()
        self.known: set[str] = set()
        self.retry_at: dict[str, float] = {}
        self.wake = asyncio.Event()

    def want(self, movie: str) -> None:
        if movie in self.known or movie in self.pending:
            return
        if len(self.pending) >= self.settings.unconfirmed_max:
            return  # bounded: a flood of slugs waits for the next play of each
        if self.retry_at.get(movie, 0.0) > time.monotonic():
            return
        if self.catalog.get(movie_key(movie)) is not None:
            self.known.add(movie)
            return
        self.pending.add(movie)
        if len(self.pending) >= self.settings.api_batch_size:
            self.wake.set()

    async def run(self) -> None:
        s = self.settings
        timeout = aiohttp.ClientTimeout(total=s.api_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass
                self.wake.clear()
                while self.pending:
                    batch = sorted(self.pending)[: s.api_batch_size]
                    self.pending.difference_update(batch)
                    await self.fetch(session, batch)

    async def fetch(self, session: aiohttp.ClientSession, movies: list[str]) -> None:
        s = self.settings
        url = f"{s.api_url.rstrip('/')}/movie/{','.join(movies)}"
        metrics = self.api_calls
        try:
            async with session.get(url) as response:
                if response.status == 404:
                    found = []
                elif response.status != 200:
                    raise aiohttp.ClientResponseError(response.request_info, (),
                                                      status=response.status)
                else:
                    found = records_from_response(orjson.loads(await response.read()))
        except (aiohttp.ClientError, asyncio.TimeoutError, orjson.JSONDecodeError, OSError) as exc:
            metrics.labels("error").inc()
            log.info("movie API unavailable (%s); %d ids retried in %.0fs",
                     type(exc).__name__, len(movies), s.api_retry_s)
            self.defer(movies, s.api_retry_s)
            return
        metrics.labels("ok").inc()
        got = set()
        for raw in found:
            if self.gate is not None and not await self.gate.check("movie", raw):
                continue  # no usable id: counted and quarantined, never stored
            record = normalise(raw)
            if record["id"] in movies:
                got.add(record["id"])
                await self.metadata_topic.send(key=movie_key(record["id"]),
                                               value=orjson.dumps(record))
        self.known.update(got)
        self.defer([m for m in movies if m not in got], 10 * s.api_retry_s)

    def defer(self, movies: list[str], hold_s: float) -> None:
        """Not before ``hold_s``; at most ``unconfirmed_max`` ids wait (oldest dropped).

        An unconfirmed id is never served (fail closed), so forgetting one only
        means it is asked for again the next time it is played.
        """
        retry, bound = time.monotonic() + hold_s, self.settings.unconfirmed_max
        for m in movies:
            self.retry_at.pop(m, None)  # re-inserted last: dicts keep insertion order
            self.retry_at[m] = retry
        while len(self.retry_at) > bound:
            del self.retry_at[next(iter(self.retry_at))]


def register(app, fetcher: CatalogFetcher) -> CatalogFetcher:
    """``write_catalog`` (the catalogue table's one writer) and the fetch task."""
    catalog = fetcher.catalog

    @app.agent(fetcher.metadata_topic, name="write_catalog")
    async def write_catalog(stream) -> None:
        async for event in stream.events():
            if event.key and event.value:
                with as_event(event):
                    catalog[event.key] = event.value
                fetcher.known.add(event.key.decode())

    @app.task
    async def fetch_catalog() -> None:
        await fetcher.run()

    return fetcher
