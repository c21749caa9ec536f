"""What the issue-#14 live benches watch while the simulator drives a worker (phase 5).

A live run is void when the worker falls behind the simulator: its lists are then
answered from stale or empty state (fail closed) and what it flags comes late.  So
every run samples, while the traffic runs, the worker's own
``recstream_consumer_lag{topic="movielog"}`` and how many lines it has counted
(``recstream_lines_total``), and reports the worst lag and the read rate next to
its numbers; afterwards it waits until the worker has counted every line the
simulator wrote.
"""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path


def sim_lines(sim_log: Path) -> int:
    """Lines the simulator counted (its past included), from its last summary line."""
    found = re.findall(r" lines=([\d,]+)", sim_log.read_text(errors="replace"))
    return int(found[-1].replace(",", "")) if found else 0


def wait_ingested(worker, sim_log: Path, limit_s: float) -> bool:
    """Until the worker has counted every line the simulator wrote (valid or rejected);
    then 10 s more for the last batch through the detectors and the answer refresh."""
    want, deadline = sim_lines(sim_log), time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if worker.metric("recstream_lines_total") >= want:
            time.sleep(10.0)
            return True
        time.sleep(3.0)
    return False


def _samples(body: str) -> tuple[float, float]:
    lag = lines = 0.0
    for line in body.splitlines():
        if line.startswith('recstream_consumer_lag{topic="movielog"}'):
            lag = float(line.rsplit(" ", 1)[1])
        elif line.startswith("recstream_lines_total"):
            lines += float(line.rsplit(" ", 1)[1])
    return lag, lines


class LagSampler:
    """A thread reading the worker's movielog lag and line count every ``period_s``
    while the traffic runs (``with LagSampler(worker): ...``)."""

    def __init__(self, worker, period_s: float = 5.0) -> None:
        self.worker, self.period_s = worker, period_s
        self.rows: list[tuple[float, float, float]] = []   # (wall s, lag, lines counted)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.period_s):
            try:
                _, body = self.worker.get("/metrics")
            except OSError:
                continue
            lag, lines = _samples(body.decode(errors="replace"))
            self.rows.append((round(time.monotonic() - started, 1), lag, lines))

    def __enter__(self) -> "LagSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.period_s + 10)

    def summary(self, written: int = 0, traffic_s: float = 0.0) -> dict:
        """Worst and last lag (messages), the read rate (lines/s), the samples kept; given the
        lines the simulator wrote in ``traffic_s``, the worst lag in seconds of its writing."""
        if not self.rows:
            return {"samples": 0, "written_lines": written}
        lags = [lag for _, lag, _ in self.rows]
        (t0, _, n0), (t1, _, n1) = self.rows[0], self.rows[-1]
        out = {"samples": len(self.rows), "max_lag": max(lags), "last_lag": lags[-1],
               "mean_lag": round(sum(lags) / len(lags), 1),
               "read_lines_per_s": round((n1 - n0) / max(t1 - t0, 1e-9), 1),
               "written_lines": written, "series": [(t, lag) for t, lag, _ in self.rows]}
        if written and traffic_s > 0:
            out["max_lag_s"] = round(max(lags) / (written / traffic_s), 1)
        return out
