"""The live-quality protocol: the split, the course lines the worker parses, the scoring."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.live_data import DATA, course_lines, load, per_user_split, score_lists  # noqa: E402
from models.datasets import from_arrays  # noqa: E402
from recstream.parsing import parse_line  # noqa: E402
from recstream.records import Rating, WatchMinute  # noqa: E402


def toy():
    # user 1: five ratings at t=5..1 (out of order); user 2: two ratings
    return from_arrays([1, 1, 1, 1, 1, 2, 2], ["e", "d", "c", "b", "a", "x", "y"],
                       [5, 4, 3, 4.5, 1, 4, 2], [5, 4, 3, 2, 1, 10, 20])


def test_per_user_split_keeps_each_users_earliest_share():
    split = per_user_split(toy(), 0.8)
    train = sorted(zip(split.train.users.tolist(), split.train.items.tolist()))
    assert train == [(1, "a"), (1, "b"), (1, "c"), (1, "d"), (2, "x")]
    assert sorted(split.test.items.tolist()) == ["e", "y"]
    assert split.relevant() == {1: {"e"}}  # y was rated 2
    assert np.all(np.diff(split.train.timestamps) >= 0)


def test_course_lines_parse_as_three_minutes_then_the_rating():
    split = per_user_split(toy(), 0.8)
    lines = course_lines(split.train)
    assert len(lines) == 4 * len(split.train)
    parsed = [parse_line(line) for line in lines[:4]]
    assert [type(p) for p in parsed] == [WatchMinute] * 3 + [Rating]
    assert parsed[0].movie == "a" and parsed[3].rating == 1
    half = [parse_line(line) for line in lines if "/rate/b=" in line]
    assert half[0].rating == 5  # 4.5 stars -> the platform's integer stars, rounded up


def test_score_lists_counts_seen_and_hits():
    split = per_user_split(toy(), 0.8)
    got = score_lists({1: ["e", "a", "zz"], 2: ["y"]}, split, resamples=50)
    assert got["users"] == 1 and got["recall"] == 1.0 and got["seen_served"] == 1
    assert 0 < got["coverage"] <= 1


def test_real_slugs_are_unique_and_valid():
    data = load("ml-100k", DATA / "ml-100k")
    slugs = np.unique(data.items)
    assert slugs.size == 1682
    assert all(isinstance(parse_line(f"2020-01-01T00:00:00,1,GET /rate/{s}=4"), Rating)
               for s in slugs)


def test_test_users_have_training_data():
    data = from_arrays([1, 1, 1, 1, 1, 3], ["a", "b", "c", "d", "e", "z"], [4, 4, 4, 4, 5, 5],
                       [1, 2, 3, 4, 5, 6])
    split = per_user_split(data, 0.8)
    assert split.relevant() == {1: {"e"}, 3: {"z"}}  # user 3's only rating is a test rating
    assert split.test_users() == [1]
