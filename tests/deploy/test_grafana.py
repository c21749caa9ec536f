"""The Grafana dashboard and its provisioning: valid structure, a layout without overlaps,
and queries over metrics our workers (or our recording rules) really export."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.deploy.promql import SYNTHETIC_SERIES, TARGET_LABELS, exported, references

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "recstream.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "recstream.yml"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "recstream.yml"
GRID_WIDTH = 24


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def data_panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def recorded() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["record"] for g in groups for r in g["rules"] if "record" in r}


def test_dashboard_top_level(dashboard: dict) -> None:
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    assert dashboard["title"]
    assert "id" not in dashboard or dashboard["id"] is None  # provisioned: Grafana assigns it
    assert dashboard["panels"]


def test_panel_ids_are_unique(dashboard: dict) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids))


def test_panels_have_type_grid_targets_and_datasource(dashboard: dict) -> None:
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    for panel in dashboard["panels"]:
        assert panel["type"] in {"row", "timeseries", "stat", "gauge", "table", "bargauge"}
        assert panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == uid


def cells(panel: dict) -> set[tuple[int, int]]:
    g = panel["gridPos"]
    return {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}


def test_grid_positions_fit_and_do_not_overlap(dashboard: dict) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] >= 0 and g["y"] >= 0, panel["title"]
        assert g["x"] + g["w"] <= GRID_WIDTH, panel["title"]
        for cell in cells(panel):
            assert cell not in taken, f"{panel['title']!r} overlaps {taken[cell]!r} at {cell}"
            taken[cell] = panel["title"]


def test_overlap_check_detects_an_overlap() -> None:
    a = {"gridPos": {"x": 0, "y": 0, "w": 12, "h": 8}}
    b = {"gridPos": {"x": 11, "y": 7, "w": 4, "h": 2}}
    c = {"gridPos": {"x": 12, "y": 0, "w": 12, "h": 8}}
    assert cells(a) & cells(b)
    assert not cells(a) & cells(c)


def test_every_query_uses_exported_metrics(dashboard: dict) -> None:
    exp = exported()
    known = exp.names | recorded() | SYNTHETIC_SERIES
    for panel in data_panels(dashboard):
        for target in panel["targets"]:
            refs = references(target["expr"])
            assert refs.metrics, (panel["title"], target["expr"])
            assert refs.metrics <= known, (panel["title"], refs.metrics - known)
            for metric, labels in refs.matchers:
                assert labels <= exp.labels.get(metric, frozenset()) | TARGET_LABELS
            grouping = exp.all_labels | TARGET_LABELS
            assert refs.grouping_labels <= grouping, (panel["title"], refs.grouping_labels)


def test_dashboard_covers_the_monitoring_roadmap(dashboard: dict) -> None:
    """SPEC §6.9: availability (both views), latency, quality, cost, drift, lag, models."""
    used = set().union(*(references(t["expr"]).metrics
                         for p in data_panels(dashboard) for t in p["targets"]))
    for required in ("recstream:platform_availability:ratio_rate1h",
                     "recstream:own_availability:ratio_rate1h",
                     "recstream:request_seconds:p99_5m", "recstream:platform_latency_seconds:p99_5m",
                     "recstream_requests_total", "recstream:online_conversion:avg",
                     "recstream:online_watch_through:avg", "recstream:online_rating_mean:avg",
                     "recstream:licence_cost_per_view:avg", "recstream:licence_cost:per_hour_rate1h",
                     "recstream:drift_psi:max", "recstream:consumer_lag:sum", "recstream_model_info",
                     "recstream_model_generation", "recstream_model_age_seconds",
                     "recstream_retrains_total", "recstream_rejects_total"):
        assert required in used, required


def test_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    datasources = yaml.safe_load(DATASOURCES.read_text())
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(PROVIDERS.read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    # compose mounts deploy/grafana/dashboards at this path (test_manifests checks the mount)
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
