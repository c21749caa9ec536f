"""The clean-shutdown marker is written on a clean exit only (issue #12)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from recstream.clean_exit import Worker, clean_marker, run_then_mark


def fake_app(tmp_path, crash_reason=None):
    (tmp_path / "tables").mkdir()
    return SimpleNamespace(conf=SimpleNamespace(tabledir=str(tmp_path / "tables")),
                           crash_reason=crash_reason)


def test_a_clean_exit_writes_the_marker(tmp_path):
    app = fake_app(tmp_path)
    with pytest.raises(SystemExit):
        run_then_mark(app, lambda: (_ for _ in ()).throw(SystemExit(0)))
    assert clean_marker(app).exists()


@pytest.mark.parametrize("failure", [SystemExit(1), RuntimeError("boom"), KeyboardInterrupt()])
def test_an_unhandled_exception_or_failure_status_writes_no_marker(tmp_path, failure):
    app = fake_app(tmp_path)

    def run():
        raise failure

    with pytest.raises(type(failure)):
        run_then_mark(app, run)
    assert not clean_marker(app).exists()


def test_a_crashed_app_exiting_with_status_0_writes_no_marker(tmp_path):
    app = fake_app(tmp_path, crash_reason=RuntimeError("agent died"))
    with pytest.raises(SystemExit):
        run_then_mark(app, lambda: (_ for _ in ()).throw(SystemExit(0)))
    assert not clean_marker(app).exists()


def test_the_app_runs_this_worker_and_no_atexit_hook_writes_the_marker(rt):
    import agents.lifecycle as lifecycle
    assert rt.app.conf.Worker is Worker
    assert "atexit" not in vars(lifecycle)
