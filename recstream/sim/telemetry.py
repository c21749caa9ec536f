"""The simulator's own telemetry: plain counters on the hot path, Prometheus at scrape time.

Bumping a ``prometheus_client`` metric per line would cost more than making the
line, so the engine increments dict entries and a custom collector turns them
into metric families only when ``/metrics`` is read.  ``summary()`` is the
one-line status printed every few seconds.
"""
from __future__ import annotations

import bisect
import collections
import time
from typing import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from recstream.sim.lines import format_time

LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 200, 400, 600, 1000, 2000)


class Telemetry:
    def __init__(self) -> None:
        self.lines: collections.Counter[str] = collections.Counter()        # by kind
        self.requests: collections.Counter[str] = collections.Counter()     # by status / error class
        self.api: collections.Counter[tuple[str, str]] = collections.Counter()  # (endpoint, status)
        self.sessions: collections.Counter[str] = collections.Counter()     # reco / organic
        self.safety: collections.Counter[str] = collections.Counter()       # unsafe_shown / unsafe_picked
        self.attacks: collections.Counter[str] = collections.Counter()
        self.bucket_counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.latency_sum_ms = 0.0
        self.recent_ms: collections.deque[int] = collections.deque(maxlen=5000)
        self.sim_time = 0.0
        self.served_true_sum = 0.0
        self.picked_true_sum = 0.0
        self._last = (time.monotonic(), 0, 0)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]

    def observe_latency(self, ms: int) -> None:
        self.bucket_counts[bisect.bisect_left(LATENCY_BUCKETS_MS, ms)] += 1
        self.latency_sum_ms += ms
        self.recent_ms.append(ms)

    def total_lines(self) -> int:
        return sum(self.lines.values())

    def collect(self) -> Iterator[object]:
        lines = CounterMetricFamily("sim_lines", "movielog lines emitted", labels=["kind"])
        for kind, n in self.lines.items():
            lines.add_metric([kind], n)
        yield lines
        reqs = CounterMetricFamily("sim_recommend_requests", "calls to /recommend by outcome", labels=["outcome"])
        for status, n in self.requests.items():
            reqs.add_metric([status], n)
        yield reqs
        api = CounterMetricFamily("sim_api_requests", "user/movie API requests", labels=["endpoint", "status"])
        for (endpoint, status), n in self.api.items():
            api.add_metric([endpoint, status], n)
        yield api
        sessions = CounterMetricFamily("sim_sessions", "watch sessions by where the pick came from", labels=["source"])
        for source, n in self.sessions.items():
            sessions.add_metric([source], n)
        yield sessions
        safety = CounterMetricFamily("sim_safety_events", "unsafe titles shown to / picked by minors", labels=["kind"])
        for kind, n in self.safety.items():
            safety.add_metric([kind], n)
        yield safety
        attacks = CounterMetricFamily("sim_attack_events", "injected attack actions", labels=["attack"])
        for kind, n in self.attacks.items():
            attacks.add_metric([kind], n)
        yield attacks
        cumulative, buckets = 0, []
        for bound, n in zip(LATENCY_BUCKETS_MS, self.bucket_counts):
            cumulative += n
            buckets.append((str(bound / 1000), cumulative))
        buckets.append(("+Inf", cumulative + self.bucket_counts[-1]))
        yield HistogramMetricFamily("sim_recommend_latency_seconds", "latency the platform measured",
                                    buckets=buckets, sum_value=self.latency_sum_ms / 1000)
        yield GaugeMetricFamily("sim_time_seconds", "simulated clock (epoch seconds)", value=self.sim_time)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def summary(self) -> str:
        """``events/s``, requests and their status mix, latency p50/p99 since the last call."""
        now = time.monotonic()
        lines, requests = self.total_lines(), sum(self.requests.values())
        then, lines0, requests0 = self._last
        self._last = (now, lines, requests)
        dt = max(now - then, 1e-9)
        recent = sorted(self.recent_ms)
        p50 = recent[len(recent) // 2] if recent else 0
        p99 = recent[min(len(recent) - 1, int(len(recent) * 0.99))] if recent else 0
        mix = " ".join(f"{k}:{v}" for k, v in sorted(self.requests.items()))
        api = sum(self.api.values())
        return (f"sim {format_time(self.sim_time)} events/s={(lines - lines0) / dt:,.0f} lines={lines:,} "
                f"requests={requests:,} ({(requests - requests0) / dt:,.1f}/s) status[{mix}] "
                f"latency p50={p50}ms p99={p99}ms api={api:,}")
