"""The dashboard's sampler: this worker's Prometheus registry into a bounded ring buffer.

:class:`Sampler` reads the registry every few seconds into one hour of rows (at 5 s).
Gauges are kept as they are; counters become rates and shares, and histograms become
p50/p99, from the *deltas* between two samples, so each point describes its own interval
rather than the whole life of the process.  Sampling is one pass over the ~20 collectors
drawn (about 0.3 ms with every label set of a busy worker; the cost is measured and
reported in the JSON and on the page).  Which panels are drawn is ``web/dashboard.py``'s
``PANELS``; a panel is a :class:`Panel` of :class:`Source` s.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import math
import time
from typing import Any, Mapping

SAMPLE_EVERY_S = 5.0
HORIZON_S = 3600.0


@dataclasses.dataclass(frozen=True)
class Source:
    """One way of turning a metric family into series.

    kind: ``gauge`` (value per label set), ``rate`` (counter delta per second, per label
    set), ``share`` (delta of the samples matching ``match`` over the delta of all),
    ``quantile`` (``q`` of a histogram's bucket deltas), ``info`` (the label value of
    ``label`` whose gauge is 1: a text series, drawn as markers).
    """

    kind: str
    metric: str
    legend: str = ""
    axis: str = "left"
    q: float = 0.0
    match: tuple[tuple[str, str], ...] = ()
    label: str = ""
    within: tuple[tuple[str, str], ...] = ()  # ``share``: the denominator's samples only


@dataclasses.dataclass(frozen=True)
class Panel:
    id: str
    title: str
    unit: str
    sources: tuple[Source, ...]
    right_unit: str = ""
    refs: tuple[tuple[float, str], ...] = ()  # horizontal reference lines (value, label)


_SUFFIXES = {"gauge": ("",), "info": ("",), "rate": ("_total",), "share": ("_total",),
             "quantile": ("_bucket",)}


def histogram_quantile(q: float, bounds: list[float], counts: list[float]) -> float | None:
    """The ``q`` quantile of observations counted per bucket, as Prometheus computes it.

    ``bounds`` are the buckets' upper bounds, ascending, the last one ``+Inf``; ``counts`` are
    cumulative (``le``) counts of the same buckets.  Linear interpolation inside the bucket
    holding the rank; the first bucket starts at 0; a rank in the ``+Inf`` bucket answers the
    highest finite bound.  ``None`` when nothing was observed.
    """
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    for i, cum in enumerate(counts):
        if cum >= rank:
            break
    if math.isinf(bounds[i]):
        return bounds[i - 1] if i > 0 else None
    lower = bounds[i - 1] if i > 0 else 0.0
    below = counts[i - 1] if i > 0 else 0.0
    in_bucket = cum - below
    if in_bucket <= 0:
        return bounds[i]
    return lower + (bounds[i] - lower) * (rank - below) / in_bucket


@functools.lru_cache(maxsize=256)
def _bound(le: str) -> float:
    return float(le)


def _number(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value


@dataclasses.dataclass
class Series:
    id: str
    panel: str
    legend: str
    axis: str
    kind: str


class Sampler:
    """Samples the registry into a ring buffer of ``horizon_s / every_s`` rows."""

    def __init__(self, registry: Any, panels: tuple[Panel, ...], *,
                 every_s: float = SAMPLE_EVERY_S, horizon_s: float = HORIZON_S) -> None:
        self.every_s = every_s
        self.horizon_s = horizon_s
        self.capacity = max(2, int(round(horizon_s / every_s)))
        self.panels = panels
        names = {s.metric + suffix for p in panels for s in p.sources for suffix in
                 _SUFFIXES[s.kind]}
        self._view = registry.restricted_registry(names)  # collects only what we draw
        self.times: collections.deque[float] = collections.deque(maxlen=self.capacity)
        self.columns: dict[str, collections.deque] = {}
        self.series: dict[str, Series] = {}
        self._previous: dict[tuple, float] = {}  # counter/bucket values at the last sample
        self._previous_at: float | None = None
        self._ids: dict[tuple, str] = {}
        self.samples = 0
        self.last_s = self.max_s = self.total_s = 0.0

    # -- sampling ------------------------------------------------------------------------
    def sample(self, now: float | None = None, monotonic: float | None = None) -> None:
        started = time.perf_counter()
        now = time.time() if now is None else now
        mono = time.monotonic() if monotonic is None else monotonic
        dt = None if self._previous_at is None else mono - self._previous_at
        families = {f.name: f for f in self._view.collect()}
        current: dict[tuple, float] = {}
        row: dict[str, Any] = {}
        for panel in self.panels:
            for source in panel.sources:
                family = families.get(source.metric)
                if family is not None:
                    self._evaluate(panel, source, family.samples, dt, current, row)
        self._previous, self._previous_at = current, mono
        self._append(round(now, 3), row)
        spent = time.perf_counter() - started
        self.samples += 1
        self.last_s, self.total_s = spent, self.total_s + spent
        self.max_s = max(self.max_s, spent)

    def _evaluate(self, panel: Panel, source: Source, samples: list, dt: float | None,
                  current: dict, row: dict) -> None:
        # A metric's label names come in a fixed order, so label *values* identify a series.
        kind, name = source.kind, source.metric
        if kind == "gauge":
            for s in samples:
                row[self._id(panel, source, s.labels)] = _number(s.value)
        elif kind == "info":
            live = sorted(s.labels.get(source.label, "") for s in samples if s.value == 1)
            row[self._id(panel, source, {})] = ",".join(live) if live else None
        elif kind in ("rate", "share"):
            deltas: dict[tuple, tuple[Mapping[str, str], float]] = {}
            for s in samples:
                key = (name, *s.labels.values())
                current[key] = s.value
                if dt is not None:  # a label set new since the last sample started at 0
                    deltas[key] = (s.labels, max(0.0, s.value - self._previous.get(key, 0.0)))
            if dt is None or dt <= 0:
                return
            if kind == "rate":
                for labels, delta in deltas.values():
                    row[self._id(panel, source, labels)] = delta / dt
            else:
                pool = [(labels, d) for labels, d in deltas.values()
                        if all(labels.get(k) == v for k, v in source.within)]
                total = sum(d for _, d in pool)
                hits = sum(d for labels, d in pool
                           if all(labels.get(k) == v for k, v in source.match))
                row[self._id(panel, source, {})] = hits / total if total else None
        elif kind == "quantile":
            groups: dict[tuple, tuple[Mapping[str, str], list]] = {}
            for s in samples:
                key = (name, *s.labels.values())
                current[key] = s.value
                delta = s.value - self._previous.get(key, 0.0)
                group = key[:-1]  # ``le`` is a histogram's last label
                if group not in groups:
                    groups[group] = ({k: v for k, v in s.labels.items() if k != "le"}, [])
                groups[group][1].append((_bound(s.labels["le"]), max(0.0, delta)))
            for labels, buckets in groups.values():
                value = None
                if dt is not None:
                    buckets.sort()
                    value = histogram_quantile(source.q, [b for b, _ in buckets],
                                               [c for _, c in buckets])
                row[self._id(panel, source, labels)] = value

    def _id(self, panel: Panel, source: Source, labels: Mapping[str, str]) -> str:
        """The series id of ``source`` for ``labels``, registered on first sight."""
        cache_key = (panel.id, source, *labels.values())
        series_id = self._ids.get(cache_key)
        if series_id is None:
            suffix = " ".join(labels.values())
            legend = " ".join(p for p in (source.legend, suffix) if p) or source.metric
            series_id = f"{panel.id}/{source.kind}/{source.metric}/{source.q:g}/{suffix}"
            if source.within:  # two shares of one metric in a panel: tell them apart
                series_id += "/within:" + ",".join(f"{k}={v}" for k, v in source.within)
            self._ids[cache_key] = series_id
            self.series[series_id] = Series(series_id, panel.id, legend, source.axis,
                                            "text" if source.kind == "info" else "number")
        return series_id

    def _append(self, now: float, row: dict[str, Any]) -> None:
        filled = len(self.times)
        self.times.append(now)
        for series_id in row.keys() - self.columns.keys():
            self.columns[series_id] = collections.deque(itertools.repeat(None, filled),
                                                        maxlen=self.capacity)
        for series_id, column in self.columns.items():
            column.append(row.get(series_id))

    # -- reading -------------------------------------------------------------------------
    def snapshot(self, since: float | None = None) -> dict[str, Any]:
        """Everything the page needs; with ``since``, only the rows sampled after it."""
        n = len(self.times)
        start = 0
        if since is not None:
            newer = sum(1 for _ in itertools.takewhile(lambda t: t > since, reversed(self.times)))
            start = n - newer
        cut = (lambda column: list(itertools.islice(column, start, n))) if start else list
        return {
            "now": round(time.time(), 3),
            "interval_s": self.every_s,
            "horizon_s": self.horizon_s,
            "panels": [{"id": p.id, "title": p.title, "unit": p.unit,
                        "right_unit": p.right_unit, "refs": [list(r) for r in p.refs]}
                       for p in self.panels],
            "series": [dataclasses.asdict(s) for s in self.series.values()],
            "t": cut(self.times),
            "columns": {series_id: cut(column) for series_id, column in self.columns.items()},
            "sampler": {"samples": self.samples, "last_ms": self.last_s * 1e3,
                        "max_ms": self.max_s * 1e3,
                        "mean_ms": self.total_s * 1e3 / self.samples if self.samples else 0.0},
        }
