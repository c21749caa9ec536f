"""bench/live_watch.py: the live benches' consumer-lag watch (issue #14 phase 5)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.live_watch import LagSampler, sim_lines  # noqa: E402

BODY = """# HELP recstream_consumer_lag messages behind
recstream_consumer_lag{topic="movielog"} %d
recstream_consumer_lag{topic="events"} 99999
recstream_lines_total{kind="watch"} %d
recstream_lines_total{kind="rate"} 10
"""


class FakeWorker:
    def __init__(self) -> None:
        self.calls = 0

    def get(self, path: str):
        assert path == "/metrics"
        self.calls += 1
        return 200, (BODY % (100 * self.calls, 1000 * self.calls)).encode()


def test_the_sampler_reads_the_movielog_lag_and_the_lines_counted():
    worker = FakeWorker()
    with LagSampler(worker, period_s=0.02) as lag:
        deadline = time.monotonic() + 5
        while len(lag.rows) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    summary = lag.summary()
    assert summary["samples"] >= 3
    assert summary["max_lag"] == 100 * len(lag.rows) == summary["last_lag"]   # not "events"
    assert lag.rows[0][2] == 1010.0                                         # every kind summed
    assert summary["read_lines_per_s"] > 0 and "max_lag_s" not in summary
    written = lag.summary(written=1000, traffic_s=10.0)   # 100 lines/s written
    assert written["max_lag_s"] == written["max_lag"] / 100
    assert LagSampler(worker).summary() == {"samples": 0, "written_lines": 0}


def test_sim_lines_takes_the_last_summary(tmp_path):
    log = tmp_path / "sim.log"
    log.write_text("sim x lines=1,000 requests=5\nsim y lines=231,664 requests=9\n")
    assert sim_lines(log) == 231_664
    log.write_text("nothing yet\n")
    assert sim_lines(log) == 0
