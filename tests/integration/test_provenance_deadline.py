"""``recstream provenance`` never passes off a scan cut by its deadline as complete (#12)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest

from recstream.ops.provenance import ScanDeadline, scan
from recstream.settings import Settings
from tests.integration.conftest import ROOT, produce


def test_a_scan_cut_by_its_deadline_says_so_and_the_command_exits_non_zero(broker):
    topic = f"movielog-{uuid.uuid4().hex[:8]}"
    lines = [f"2026-11-22T20:01:{i % 60:02d},{i},GET /rate/m{i}=4" for i in range(2000)]
    produce(broker, topic, lines)
    settings = Settings.from_env({"RECSTREAM_BROKER": broker, "RECSTREAM_TOPIC": topic,
                                  "RECSTREAM_PARTITIONS": "4"})
    found = asyncio.run(scan(settings, topic, lambda k, v: True, timeout_s=60.0))
    assert len(found) == len(lines)  # a complete scan returns everything
    with pytest.raises(ScanDeadline) as cut:
        asyncio.run(scan(settings, topic, lambda k, v: True, timeout_s=0.0))
    assert cut.value.unread and cut.value.topic == topic

    env = {**os.environ, "RECSTREAM_BROKER": broker, "RECSTREAM_TOPIC": topic,
           "RECSTREAM_PARTITIONS": "4", "RECSTREAM_APP_ID": f"it-{uuid.uuid4().hex[:8]}"}
    done = subprocess.run([sys.executable, "-m", "recstream.cli", "provenance", "--user", "7",
                           "--at", "2026-11-22T20:01:07", "--timeout", "0"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "deadline" in done.stderr
