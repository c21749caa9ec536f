"""bench/soak_faults.recovery_report: misses are counted over each fault's whole window."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.soak_faults import recovery_report  # noqa: E402


def test_a_stall_long_after_the_injection_is_counted_in_that_faults_window():
    secs = {s: [10, 10, 10, 0] for s in range(100, 200)}
    secs[160] = [10, 0, 0, 10]          # 60 s after fault 1: a whole second lost
    secs[161] = [10, 7, 7, 3]
    secs[180] = [10, 9, 9, 1]           # after fault 2
    events = [{"fault": "promotion", "at": 100.0, "done": 120.0},
              {"fault": "broker_restart", "at": 170.0, "done": 175.0}]
    first, second = recovery_report(events, secs)
    assert first["answers_recovered_s"] == 0        # the first clean 5 s: blind to the stall
    assert (first["window_requests"], first["window_missed"]) == (700, 13)
    assert first["window_seconds_missing"] == 2 and first["window_seconds_none_in_time"] == 1
    assert first["window_last_miss_s"] == 61
    assert (second["window_requests"], second["window_missed"]) == (300, 1)
    assert second["window_last_miss_s"] == 10 and second["window_seconds_none_in_time"] == 0
