"""bench/fuzz.py on a small seeded sample: the verdict is clean, and it can fail."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import fuzz  # noqa: E402
from tests.conftest import sample_path  # noqa: E402


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    base = [line for line in sample_path("movielog_lines.txt").read_text().splitlines() if line]
    return list(fuzz.fuzz_lines(3000, 7, base))


def test_fuzzed_lines_are_accepted_soundly_or_rejected_with_a_reason(lines):
    report = fuzz.parser_pass(lines)
    assert report["crashes"] == 0 and not report["accepted_unsound"]
    assert report["outcomes"]["rejected"] > 1000 and len(report["reject_reasons"]) >= 8
    assert sum(v for k, v in report["outcomes"].items() if k.startswith("accepted")) > 100
    assert fuzz.verdict({"fuzzed": report}) == []


def test_the_verdict_names_what_went_wrong():
    report = {"crashes": 2, "accepted_unsound": {"bad slug accepted": 1},
              "reject_reasons": {"<no reason>": 1}, "outcomes": {"rejected": 5}}
    assert len(fuzz.verdict({"fuzzed": report})) == 3
    ingest = {"lines": 10, "batch_crashes": 0, "quarantined": 4, "staged": 3, "forwarded": 2,
              "counted": {"rejected": 4}, "quarantine_sources_ok": True}
    assert any("quarantined 4" in p for p in fuzz.verdict(
        {"fuzzed": {**report, "crashes": 0, "accepted_unsound": {}, "reject_reasons": {}},
         "ingest": ingest}))


@pytest.mark.slow
def test_the_ingest_stage_quarantines_every_reject_with_its_source(lines):
    report = asyncio.run(fuzz.ingest_pass(lines[:1500], batch=250))
    parsed = fuzz.parser_pass(lines[:1500])
    assert report["batch_crashes"] == 0 and report["quarantine_sources_ok"]
    assert report["quarantined"] == parsed["outcomes"]["rejected"] == report["counted"]["rejected"]
    assert report["staged"] + report["forwarded"] + report["quarantined"] == 1500
