"""The pushed movie's reach into other users' lists, hour by hour (issue #14 phase 5)."""
from __future__ import annotations

from models.poison_reach import reach_by_hour

H = 3600.0


def test_reach_counts_distinct_other_users_per_hour_after_the_push_only():
    shown = [
        (0.5 * H, 1, ["p", "x"]),          # before the push: organic exposure
        (0.6 * H, 2, ["x"]),
        (1.2 * H, 1, ["x", "p"]),          # hour 0 after the push at 1 h: reached at rank 2
        (1.3 * H, 1, ["p"]),               # same user, same hour: counted once
        (1.4 * H, 3, ["x"]),
        (1.5 * H, 99, ["p"]),              # a wave account: not another user
        (1.6 * H, 4, []),                  # an empty list shows nothing
        (3.1 * H, 2, ["x"]),               # hour 2: shown, not reached
    ]
    r = reach_by_hour(shown, {"p": 1.0 * H}, {99})
    assert r.before == (2, 1)
    assert r.hourly == [(0, 2, 1), (2, 1, 0)]
    assert r.after == (3, 1)
    assert r.positions == {2: 1, 1: 1}
    assert r.worst() == (0.5, 0, 2) and r.hours_over(0.01) == 1


def test_each_movie_counts_only_once_it_was_pushed_and_nothing_pushed_is_empty():
    shown = [(2.5 * H, 1, ["b"]), (2.6 * H, 2, ["a"])]
    r = reach_by_hour(shown, {"a": 2.0 * H, "b": 3.0 * H}, set())
    assert r.hourly == [(0, 2, 1)]          # "b" was listed before its own push
    assert reach_by_hour(shown, {}, set()).hourly == []
    assert reach_by_hour([], {"a": 0.0}, set()).worst() == (0.0, -1, 0)
