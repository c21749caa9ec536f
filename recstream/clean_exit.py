"""The clean-shutdown marker, written only when the worker really exited cleanly.

agents.lifecycle trusts the local RocksDB stores at start only if the last run
left this marker (otherwise it rebuilds them from the changelogs, see
``discard_state_after_crash``).  An ``atexit`` hook wrote it for every exit,
including one by an unhandled exception, after which the stores may be ahead
of their changelogs.  The marker is now written by the worker itself, after its
services stopped, and only if it exits with status 0 and the app did not crash.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import faust

MARKER_NAME = "clean-shutdown"


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
