"""Prometheus config and rules: promtool validates and unit-tests them; every metric and
label they name must exist in ``recstream.prometheus.Metrics()``."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from recstream.settings import Settings
from tests.deploy.promql import SYNTHETIC_SERIES, TARGET_LABELS, exported, references

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
CONFIG = PROM / "prometheus.yml"
RULES = PROM / "rules" / "recstream.yml"
UNIT_TESTS = sorted((PROM / "tests").glob("*.yml"))
SEVERITIES = {"critical", "warning", "info"}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:  # a missing tool is a failure, never a skip
        pytest.fail("promtool not found: run `make system-deps` (Debian package prometheus)")
    return path


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=PROM, capture_output=True, text=True,
                          timeout=300)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


def alerts() -> list[dict]:
    return [r for r in rules() if "alert" in r]


def recorded() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def test_promtool_checks_config(promtool: str) -> None:
    result = run(promtool, "check", "config", CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_checks_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(RULES.relative_to(PROM)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules())} rules found" in result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass(promtool: str) -> None:
    assert UNIT_TESTS, "no promtool unit tests in deploy/prometheus/tests"
    result = run(promtool, "test", "rules", *(str(p.relative_to(PROM)) for p in UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS), result.stdout


def test_promtool_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """A wrong expectation is reported: the unit tests are not vacuous."""
    broken = yaml.safe_load(UNIT_TESTS[0].read_text())
    broken["rule_files"] = [str(RULES)]
    for test in broken["tests"]:
        for case in test.get("alert_rule_test", []):
            case["exp_alerts"] = [] if case["exp_alerts"] else [{"exp_labels": {"severity": "x"}}]
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    result = run(promtool, "test", "rules", str(path))
    assert result.returncode != 0, result.stdout


def unit_test_cases() -> tuple[dict[str, set[bool]], set[str], list[str]]:
    """Per alert, whether it was expected firing (True) and/or quiet (False); the exprs of
    promql tests; the input series of every test."""
    seen: dict[str, set[bool]] = {}
    exprs: set[str] = set()
    series: list[str] = []
    for path in UNIT_TESTS:
        spec = yaml.safe_load(path.read_text())
        assert spec["rule_files"] == ["../rules/recstream.yml"], path
        for test in spec["tests"]:
            series += [s["series"] for s in test.get("input_series", [])]
            for case in test.get("alert_rule_test", []):
                seen.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
            exprs |= {case["expr"] for case in test.get("promql_expr_test", [])}
    return seen, exprs, series


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    seen, _, _ = unit_test_cases()
    names = {a["alert"] for a in alerts()}
    assert set(seen) <= names, f"tests name unknown alerts: {set(seen) - names}"
    missing = {name: {True, False} - seen.get(name, set()) for name in names}
    assert not {k: v for k, v in missing.items() if v}, missing


def test_every_recording_rule_value_is_unit_tested() -> None:
    _, exprs, _ = unit_test_cases()
    tested = set().union(*(references(e).metrics for e in exprs))
    assert recorded() - tested == set()


def test_alerts_have_severity_and_annotations() -> None:
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for alert in alerts():
        assert alert["labels"]["severity"] in SEVERITIES, alert["alert"]
        for key in ("summary", "description", "runbook"):
            assert alert["annotations"].get(key, "").strip(), (alert["alert"], key)
        assert alert["alert"].startswith("Recstream"), alert["alert"]


def test_recording_rule_names_follow_convention() -> None:
    for name in recorded():
        level, metric, operation = name.split(":")
        assert level == "recstream" and metric and operation, name


def test_rules_use_only_exported_metrics_and_labels() -> None:
    exp = exported()
    known = exp.names | recorded() | SYNTHETIC_SERIES
    for rule in rules():
        refs = references(rule["expr"])
        assert refs.metrics, rule
        assert refs.metrics <= known, (rule.get("alert") or rule.get("record"),
                                       refs.metrics - known)
        for metric, labels in refs.matchers:
            allowed = exp.labels.get(metric, frozenset()) | TARGET_LABELS
            assert labels <= allowed, (metric, labels - allowed)
        allowed_grouping = exp.all_labels | TARGET_LABELS
        assert refs.grouping_labels <= allowed_grouping, refs.grouping_labels - allowed_grouping


def test_unit_test_inputs_use_exported_metric_names() -> None:
    """The promtool tests feed the series a worker really exports (with their labels)."""
    exp = exported()
    _, _, series = unit_test_cases()
    assert series
    for text in series:
        refs = references(text)
        (name,) = refs.metrics
        assert name in exp.names | SYNTHETIC_SERIES, name
        if name in exp.names:
            ((_, labels),) = refs.matchers
            assert labels - TARGET_LABELS <= exp.labels[name], (name, labels)


def test_metric_name_checks_catch_a_rename() -> None:
    refs = references('sum by (result) (rate(recstream_platform_request_total{result="ok"}[5m]))')
    assert refs.metrics == {"recstream_platform_request_total"}
    assert "recstream_platform_request_total" not in exported().names
    assert "recstream_platform_requests_total" in exported().names
    assert exported().labels["recstream_request_seconds_bucket"] == {"le"}


def test_references_tokenises_promql() -> None:
    refs = references(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{le="0.6", job=~"x|y"}[5m])))\n'
        '  / ignoring(instance) b:c:d offset 1d > bool 1e3  # comment mentions not_a_metric\n'
        '  and on (feature) max_over_time(c[$__rate_interval]) unless absent(up{job="w"})')
    assert refs.metrics == {"a_bucket", "b:c:d", "c", "up"}
    assert ("a_bucket", {"le", "job"}) in refs.matchers
    assert refs.grouping_labels == {"le", "instance", "feature"}


def test_scrape_config_targets_the_workers_port() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # the job the worker-down alerts select on
    assert "recstream-worker" in jobs
    assert all('job="recstream-worker"' in a["expr"] for a in alerts() if "up{" in a["expr"])
    targets = [t for sc in jobs["recstream-worker"]["static_configs"] for t in sc["targets"]]
    assert len(targets) >= 2
    assert {t.rsplit(":", 1)[1] for t in targets} == {str(Settings().web_port)}
    assert jobs["recstream-worker"].get("metrics_path", "/metrics") == "/metrics"
    assert (CONFIG.parent / config["rule_files"][0]).parent == RULES.parent
