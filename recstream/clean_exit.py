"""The clean-shutdown marker, written only when the worker really exited cleanly.

agents.lifecycle trusts the local RocksDB stores at start only if the last run
left this marker (otherwise it rebuilds them from the changelogs, see
``discard_state_after_crash``).  An ``atexit`` hook wrote it for every exit,
including one by an unhandled exception, after which the stores may be ahead
of their changelogs.  The marker is now written by the worker itself, after its
services stopped, and only if it exits with status 0 and the app did not crash.

The same worker stops listening for HTTP the moment it is told to stop (SIGTERM or
SIGINT).  Faust stops its web server last, after the consumer, the tables and the
agents — about two seconds in which the port still accepts connections that nothing
answers in time: a front (deploy/nginx) waited out its per-attempt timeout on them, and
a peer forwarding a user to this worker waited out ``route_timeout_s`` before serving
its fallback, so one request could miss the 600 ms deadline twice over.  Refused
connections are retried on another worker at once, and peers back off from this one.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import faust

MARKER_NAME = "clean-shutdown"
log = logging.getLogger(__name__)


def clean_marker(app: Any) -> Path:
    return Path(app.conf.tabledir).parent / MARKER_NAME


def run_then_mark(app: Any, run: Callable[[], Any]) -> Any:
    """Run the worker (``run`` ends with ``SystemExit``); mark a clean exit only."""
    clean = False
    try:
        result = run()
        clean = True
        return result
    except SystemExit as exc:
        clean = exc.code in (0, None)
        raise
    finally:
        marker = clean_marker(app)
        if clean and getattr(app, "crash_reason", None) is None and marker.parent.exists():
            marker.touch()


class Worker(faust.Worker):
    """Faust's worker (``faust -A recstream.app worker`` too) writing the marker on a clean exit."""

    def execute_from_commandline(self) -> Any:  # type: ignore[override]
        return run_then_mark(self.app, super().execute_from_commandline)

    def _on_sigterm(self) -> None:
        stop_listening(self.app)
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        stop_listening(self.app)
        super()._on_sigint()


def stop_listening(app: Any) -> int:
    """Close the web server's listening sockets now; requests already accepted finish.

    → the number of listening servers closed (0 when the web server never started).
    """
    web = vars(app).get("web")  # Faust's cached web driver; never built here if absent
    runner = getattr(web, "_runner", None)
    closed = 0
    for site in list(getattr(runner, "sites", ()) or ()):
        server = getattr(site, "_server", None)  # the asyncio.Server aiohttp's site opened
        if server is None:
            continue
        # On the server's own loop: the worker's, or its thread's with ``web_thread``.
        server.get_loop().call_soon_threadsafe(server.close)
        closed += 1
    if closed:
        log.info("stopping: %d listening socket(s) closed, no new requests accepted", closed)
    return closed

