"""Issue #11: the worker's HTTP server runs on its own loop, so it answers while the worker's is held.

The worker's own Faust web service (``app.web``, as ``recstream worker`` starts it)
with the recommend view mounted; the test then holds the worker's event loop (a
blocking call on it, as a long ingest batch or a Faust callback would) and asks
``/recommend`` meanwhile.  With the server on the worker's loop the request could
only be answered after the hold; in its own thread it is answered during it.
"""
from __future__ import annotations

import time
import urllib.request

import pytest

from tests.web.test_views import fill

HOLD_S = 1.5


async def hold_and_ask(app, port: int, path: str) -> tuple[int, str, float]:
    await app.web.start()
    try:
        started = time.perf_counter()
        # Blocking on purpose: the worker's loop is held for the whole request.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=HOLD_S) as r:
            status, body = r.status, r.read().decode()
        return status, body, time.perf_counter() - started
    finally:
        await app.web.stop()


@pytest.fixture
def settings(settings):
    return settings.replace(web_thread=True)  # RECSTREAM_WEB_THREAD=true


async def test_recommend_answers_while_the_worker_loop_is_held(app, rt) -> None:
    assert app.conf.web_in_thread
    fill(rt)
    status, body, seconds = await hold_and_ask(app, rt.settings.web_port, "/recommend/1")
    assert status == 200
    assert body and set(body.split(",")) <= set(rt.items.ids)
    assert seconds < HOLD_S  # answered by the server's own loop, not after the hold


def test_default_keeps_the_server_on_the_worker_loop(tmp_path) -> None:
    from recstream.app import create_app
    from recstream.settings import Settings
    from tests.conftest import free_port
    base = Settings.from_mapping({"data_dir": str(tmp_path), "web_port": free_port()})
    assert base.web_thread is False
    assert not create_app(base).conf.web_in_thread
