"""What PromQL expressions refer to, and what our registry exports — for deploy tests.

There is no PromQL parser for Python here, so expressions are tokenised just enough
to find metric names (identifiers that are not functions, keywords, numbers or
durations) and the label names used in matchers and grouping clauses.  Rule files
and dashboards are checked against what ``recstream.prometheus.Metrics()`` exports, so
renaming a metric or a label breaks CI instead of a silent dashboard.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client.metrics import MetricWrapperBase

from recstream.prometheus import Metrics

# Series Prometheus makes itself, per target, and labels it attaches to every series.
SYNTHETIC_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS"}
TARGET_LABELS = {"instance", "job"}

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan", "atan2"}
_COMMENT = re.compile(r"#[^\n]*")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_RANGE = re.compile(r"\[[^\]]*\]")
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-zA-Z]*|[A-Za-z_:][\w:]*(?:\s*\()?")


@dataclass
class References:
    metrics: set[str] = field(default_factory=set)
    # (metric or "" for a bare {...} selector, label names in its matchers)
    matchers: list[tuple[str, set[str]]] = field(default_factory=list)
    grouping_labels: set[str] = field(default_factory=set)


def references(expr: str) -> References:
    """Metric names and label names an expression uses (Grafana ``$var`` allowed)."""
    refs = References()
    text = _COMMENT.sub(" ", expr)
    # Placeholders of Grafana ($__rate_interval, ${var}) stand for durations or values.
    text = re.sub(r"\$\{?\w+\}?", "1", text)
    # Matchers first (their values are strings), then drop strings and ranges.
    for name, body in _SELECTOR.findall(_RANGE.sub(" ", text)):
        body = _STRING.sub('""', body)
        refs.matchers.append((name or "", set(_MATCHER_LABEL.findall(body))))
    text = _STRING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    for _, labels in _GROUPING.findall(text):
        refs.grouping_labels.update(x.strip() for x in labels.split(",") if x.strip())
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    for token in _TOKEN.findall(text):
        if token[0].isdigit() or token.endswith("("):
            continue  # a number, a duration or a function call
        if token.lower() in KEYWORDS:
            continue
        refs.metrics.add(token)
    for name, _ in refs.matchers:
        if name:
            refs.metrics.add(name)
    return refs


@dataclass(frozen=True)
class Exported:
    """Series names one worker can export, each with the label names it carries."""
    labels: dict[str, frozenset[str]]

    @property
    def names(self) -> set[str]:
        return set(self.labels)

    @property
    def all_labels(self) -> set[str]:
        out: set[str] = set()
        for labels in self.labels.values():
            out |= labels
        return out


def exported() -> Exported:
    """Every sample name ``Metrics()`` can expose, with Prometheus' suffixes."""
    metrics = Metrics()
    labels: dict[str, frozenset[str]] = {}
    wrappers = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    for metric in wrappers:
        described = metric.describe()[0]  # public: name without suffixes, type
        own = frozenset(metric._labelnames)  # no public accessor in prometheus_client
        if described.type == "counter":
            suffixes = {"_total": own, "_created": own}
        elif described.type == "histogram":
            suffixes = {"_bucket": own | {"le"}, "_sum": own, "_count": own, "_created": own}
        elif described.type == "summary":
            suffixes = {"": own | {"quantile"}, "_sum": own, "_count": own, "_created": own}
        else:
            suffixes = {"": own}
        for suffix, names in suffixes.items():
            labels[described.name + suffix] = names
    # Every family in the registry must have come from an attribute we looked at.
    families = {f.name for f in metrics.registry.collect()}
    described_names = {m.describe()[0].name for m in wrappers}
    assert families == described_names, families ^ described_names
    return Exported(labels)
