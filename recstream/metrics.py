"""Prometheus metrics of one app instance, in a registry of its own.

A registry per app (not the process-global one) lets tests build many apps in
one process and keeps ``/metrics`` to what this worker measured.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.6, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.lines = Counter("recstream_lines", "movielog lines consumed", ["outcome"], registry=r)
        self.events = Counter("recstream_events", "valid events applied, by kind", ["kind"],
                              registry=r)
        self.rejects = Counter("recstream_rejects", "lines quarantined, by reason", ["reason"],
                               registry=r)
        self.rekeyed = Counter("recstream_rekeyed", "events forwarded to their user's partition",
                               registry=r)
        self.duplicates = Counter("recstream_duplicate_events",
                                  "events that changed nothing (redelivered or stale)", ["kind"],
                                  registry=r)
        self.requests = Counter("recstream_requests", "/recommend answers, by source",
                                ["source"], registry=r)
        self.latency = Histogram("recstream_request_seconds", "/recommend latency in the worker",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.table_size = Gauge("recstream_table_keys", "keys held in memory indexes", ["table"],
                                registry=r)
        self.model_updates = Counter("recstream_model_updates", "online MF steps, by side",
                                     ["side"], registry=r)
        self.refreshed = Counter("recstream_answers_refreshed", "answers recomputed in background",
                                 registry=r)
        self.api_calls = Counter("recstream_api_calls", "calls to the platform APIs", ["outcome"],
                                 registry=r)
        self.outcomes = Counter("recstream_platform_outcomes",
                                "platform's logged /recommend outcomes", ["status"], registry=r)
        self.platform_latency = Histogram("recstream_platform_latency_seconds",
                                          "latency of our answers as the platform measured it",
                                          buckets=LATENCY_BUCKETS, registry=r)
        self.ready = Gauge("recstream_ready", "1 when tables are recovered and models loaded",
                           registry=r)
