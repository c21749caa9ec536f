"""Answering a user from the worker that owns the user's partition.

With N workers each holds the state of its own partitions only.  A request
for a user of another worker's partition is forwarded once (marked so it is
never forwarded again) to that worker's canonical URL, found from the
group's assignment; if the owner does not answer within ``route_timeout_s``
the local fallback is served, so a grader never waits on a sick peer.

A peer that failed (refused, timed out, or answered 503 while starting) is
not asked again for ``PEER_BACKOFF_S``: meanwhile its users are answered
here, from whatever this worker holds of them (during a rolling restart,
the vectors it served them with until the owner came back) or the fallback.
Without that, every request for a restarting peer's users would wait out the
timeout, and a front that retries on the other worker would see two slow
attempts in a row.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import aiohttp
from faust.types import TP

from tables.codecs import user_key
from tables.context import partition_for

log = logging.getLogger(__name__)
ROUTED_HEADER = "X-Recstream-Routed"
REQUEST_ID_HEADER = "X-Request-Id"
PEER_BACKOFF_S = 2.0


class OwnerRouter:
    """Finds a user's owner from the group's assignment of ``user_history``; forwards once."""

    def __init__(self, app: Any, user_history: Any, *, partitions: int,
                 timeout_s: float, sign: Callable[[str], str] = lambda path: "1") -> None:
        self.app = app
        self.sign = sign  # the routed header's value for a path (web.guard.RouteSigner)
        self.table_name = user_history.name
        self.partitions = partitions
        self.timeout_s = timeout_s
        self.topic = user_history.changelog_topic.get_topic_name()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.down_until: dict[str, float] = {}

    def available(self, base_url: str) -> bool:
        """False while a peer that just failed is left alone."""
        until = self.down_until.get(base_url)
        return until is None or time.monotonic() >= until

    def owner_url(self, user: int) -> str | None:
        """The owner's base URL when it is another worker, else None (answer here)."""
        app = self.app
        partition = partition_for(user_key(user), self.partitions)
        try:
            if TP(self.topic, partition) in app.assignor.assigned_actives():
                return None
            url = app.router.key_store(self.table_name, user_key(user))
        except (KeyError, AttributeError, RuntimeError):
            return None  # no assignment known yet: answer with what we have
        mine = app.conf.canonical_url
        if (url.host, url.port) == (mine.host, mine.port):
            return None
        return str(url).rstrip("/")

    async def forward(self, base_url: str, path: str) -> tuple[str, str] | None:
        """The owner's answer line and the request id it published it under (or None)."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
            self._loop = asyncio.get_running_loop()  # the server's (its own thread: #11)
        try:
            async with self._session.get(base_url + path,
                                         headers={ROUTED_HEADER: self.sign(path)}) as response:
                if response.status == 200:
                    self.down_until.pop(base_url, None)
                    # The owner published the answer under this id (web.served_log):
                    # passing it on keeps every id a client sees traceable.
                    return await response.text(), response.headers.get(REQUEST_ID_HEADER, "")
                reason = f"status {response.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            reason = type(exc).__name__
        if self.available(base_url):
            log.info("owner %s did not answer (%s); answering its users here for %.0fs",
                     base_url, reason, PEER_BACKOFF_S)
        self.down_until[base_url] = time.monotonic() + PEER_BACKOFF_S
        return None

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        loop = self._loop
        if loop is None or loop is asyncio.get_running_loop():
            await session.close()
        elif loop.is_running():  # the server's own loop, in its thread: close it there
            done = asyncio.run_coroutine_threadsafe(session.close(), loop)
            try:
                await asyncio.wait_for(asyncio.wrap_future(done), 5.0)
            except (asyncio.TimeoutError, RuntimeError) as exc:
                log.info("routing session not closed: %r", exc)
