"""Headless Chromium for the dashboard tests: dump the rendered DOM, take a screenshot.

Plain helpers like ``tests/brokers.py``.  The flags keep Chromium off the network it would
otherwise try (Google lookups, component updates, sync), which hangs on a closed network;
each run gets a fresh profile.  ``/usr/bin/chromium`` is Debian's package (``make
system-deps``); ``RECSTREAM_CHROMIUM`` overrides the path.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")


def chromium() -> str:
    """The browser's path, or skip the test with the command that installs it."""
    path = os.environ.get("RECSTREAM_CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser")
    if not path:
        pytest.skip("headless Chromium not installed (make system-deps)")
    return path


def _args(url: str, profile: str, *, budget_ms: int, screenshot: Path | None,
          size: tuple[int, int]) -> list[str]:
    args = [chromium(), *FLAGS, f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}", f"--window-size={size[0]},{size[1]}"]
    args.append(f"--screenshot={screenshot}" if screenshot else "--dump-dom")
    return args + [url]


def render(url: str, *, budget_ms: int = 3000, screenshot: Path | None = None,
           size: tuple[int, int] = (1400, 1900), timeout: float = 60.0) -> str:
    """The DOM after ``budget_ms`` of virtual time (or write a PNG when ``screenshot``)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        done = subprocess.run(_args(url, profile, budget_ms=budget_ms, screenshot=screenshot,
                                    size=size), capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode()


async def render_async(url: str, *, budget_ms: int = 3000, screenshot: Path | None = None,
                       size: tuple[int, int] = (1400, 1900), timeout: float = 60.0) -> str:
    """:func:`render` without blocking the loop (for a server in the same loop)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            *_args(url, profile, budget_ms=budget_ms, screenshot=screenshot, size=size),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


@dataclasses.dataclass
class PanelState:
    id: str
    points: int
    series: int
    state: str
    paths: int = 0
    text: list[str] = dataclasses.field(default_factory=list)


class _Panels(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.panels: dict[str, PanelState] = {}
        self._open: PanelState | None = None
        self._depth = 0
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = {k: v or "" for k, v in a.items()}
        if tag == "section" and "data-panel" in a:
            self._open = PanelState(a["data-panel"], int(a.get("data-points") or 0),
                                    int(a.get("data-series") or 0), a.get("data-state") or "")
            self.panels[self._open.id] = self._open
            self._depth = 0
        if self._open is not None:
            if tag == "section":
                self._depth += 1
            if tag == "path" and a.get("data-series"):
                self._open.paths += 1

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag == "section":
            self._depth -= 1
            if self._depth == 0:
                self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None and data.strip():
            self._open.text.append(data.strip())


def panels(dom: str) -> tuple[dict[str, PanelState], dict[str, str]]:
    """Each dashboard panel's state from a dumped DOM, and the body's attributes."""
    parser = _Panels()
    parser.feed(dom)
    return parser.panels, parser.body
