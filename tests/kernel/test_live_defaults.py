"""Issue #10's defaults: a past for `recstream run`, retraining on by time and by volume."""
from __future__ import annotations

from agents.model_follower import retrain_due
from recstream.cli import sim_argv
from recstream.settings import Settings


def test_run_gives_the_simulator_a_30_day_past_unless_told_otherwise():
    assert sim_argv([]) == ["--backfill-days", "30"]
    assert sim_argv(["--seed", "3"]) == ["--backfill-days", "30", "--seed", "3"]
    assert sim_argv(["--backfill-days", "0"]) == ["--backfill-days", "0"]
    assert sim_argv(["--backfill-days=2"]) == ["--backfill-days=2"]


def test_retraining_is_on_by_default_and_due_by_time_or_by_new_data():
    s = Settings()
    assert s.retrain_every_h > 0 and s.retrain_min_new_interactions > 0
    assert s.retrain_window_h == 0  # every interaction held
    hour = s.retrain_every_h * 3600.0
    assert not retrain_due(s, hour - 1, s.retrain_min_new_interactions - 1)
    assert retrain_due(s, hour, 0)
    assert retrain_due(s, 1.0, s.retrain_min_new_interactions)
    time_only = s.replace(retrain_min_new_interactions=0)
    assert not retrain_due(time_only, 1.0, 10**9)
    volume_only = s.replace(retrain_every_h=0.0)
    assert not retrain_due(volume_only, 10 * hour, 0) and retrain_due(volume_only, 0, 10**6)
