"""API schemas over every real sample object, a 100k-object fuzz, and our answer checks."""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recstream.schemas import (MOVIE_SCHEMA, USER_SCHEMA, check_answer, compare_outcome,
                               validate_movie, validate_user)
from tests.conftest import sample_path


def _lines(name: str) -> list[dict]:
    with open(sample_path(name), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def users() -> list[dict]:
    return _lines("users.jsonl")


@pytest.fixture(scope="module")
def movies() -> list[dict]:
    return _lines("movies.jsonl")


def test_every_real_user_is_accepted_clean(users):
    assert len(users) == 16329
    for raw in users:
        user, violations = validate_user(raw)
        assert violations == [] and user is not None
        assert user["user_id"] == raw["user_id"] and user["age"] == raw["age"]
        assert user["gender"] in {"M", "F"} and user["likes"] is None


def test_every_real_movie_is_accepted_and_its_violations_counted(movies):
    counts: Counter = Counter()
    for raw in movies:
        movie, violations = validate_movie(raw)
        assert movie is not None and movie["id"] == raw["id"]
        assert movie["adult"] is False  # "False" strings, all of them
        counts.update(violations)
    # The real gaps: no genres (an empty list), runtime 0, release_date "null".
    assert counts == {("genres", "missing"): 743, ("runtime", "out_of_range"): 353,
                      ("release_date", "missing"): 23}


def test_quirks_are_normalised():
    raw = {"id": "twin+dragons+1992", "adult": "False", "budget": "10000000", "popularity": "10.2",
           "vote_average": "6.2", "vote_count": "72", "homepage": "null", "title": "Twin Dragons",
           "genres": [{"id": 35, "name": "Comedy"}], "release_date": "1992-01-15", "runtime": 89,
           "license_cost": "0.35", "original_language": "cn"}
    movie, violations = validate_movie(raw)
    assert violations == []
    assert movie["budget"] == 10_000_000 and movie["vote_count"] == 72 and movie["popularity"] == 10.2
    assert movie["year"] == 1992 and movie["licence_cost"] == 0.35 and movie["adult"] is False
    assert movie["genres"] == [{"id": 35, "name": "Comedy"}]


@pytest.mark.parametrize("field, value, reason", [
    ("adult", "maybe", "not_a_boolean"), ("adult", 1, "not_a_boolean"), ("budget", "-5", "out_of_range"),
    ("budget", "ten", "not_a_number"), ("vote_average", "11", "out_of_range"), ("budget", True, "wrong_type"),
    ("vote_count", "1.5", "not_an_integer"), ("popularity", "1e999", "not_finite"),
    ("release_date", "1992-13-01", "out_of_range"), ("release_date", "15/01/1992", "bad_format"),
    ("genres", "Comedy", "wrong_type"), ("genres", [{"id": 1, "name": "Drama"}, 5], "bad_items"),
    ("title", 42, "wrong_type"), ("adult", "null", "missing"), ("status", "Gone", "unknown_value"),
])
def test_bad_movie_fields_are_violations_not_rejections(movies, field, value, reason):
    raw = dict(movies[0])
    raw[field] = value
    movie, violations = validate_movie(raw)
    assert movie is not None and (field, reason) in violations
    if reason != "bad_items":
        assert movie[field] is None
    else:
        assert movie[field] == [{"id": 1, "name": "Drama"}]


@pytest.mark.parametrize("raw, reason", [
    ({"user_id": "-3", "age": 20}, "out_of_range"), ({"age": 20}, "missing"),
    ({"user_id": "24f162"}, "not_a_number"), ({"user_id": 1.5}, "not_an_integer"),
])
def test_users_without_a_usable_id_are_rejected_with_the_reason(raw, reason):
    user, violations = validate_user(raw)
    assert user is None and ("user_id", reason) in violations


def test_user_quirks_and_self_descriptions():
    user, violations = validate_user({"user_id": "7", "age": "15", "gender": "X", "occupation": "",
                                      "likes": "the matrix", "dislikes": 3})
    assert user == {"user_id": 7, "age": 15, "gender": None, "occupation": None,
                    "likes": "the matrix", "dislikes": None}
    assert sorted(violations) == [("dislikes", "wrong_type"), ("gender", "unknown_value"),
                                  ("occupation", "missing")]
    custom, _ = validate_user({"user_id": 1, "fav": "heat"}, text_fields=("fav",))
    assert custom["fav"] == "heat"


@pytest.mark.parametrize("raw", [None, 3, "x", [], [{"id": "a"}], True, 1.5, {"id": None}, {}])
def test_non_objects_and_keyless_objects_are_rejected(raw):
    for validate in (validate_movie, validate_user):
        obj, violations = validate(raw)
        assert obj is None and violations


NASTY = [None, "", "null", "NaN", "nan", "1e999", "-1", -1, 0, 2 ** 70, -2 ** 70, 1e308, True, False,
         "True", "False", [], {}, [[[]]], [{"id": "x"}], {"name": 5}, "\x00", "é" * 50, "x" * 30_000,
         "1" * 5000, 3.5, "3.5", " 7 ", "1992-02-30", [None, {"id": 1, "name": " "}], {"a": [1, {"b": {}}]}]


def _assert_sound(result, schema) -> None:
    obj, violations = result
    assert isinstance(violations, list)
    assert all(isinstance(f, str) and isinstance(r, str) for f, r in violations)
    if obj is None:
        assert violations, "rejected without a reason"
        return
    assert set(schema) <= set(obj)
    for value in obj.values():
        if isinstance(value, float):
            assert math.isfinite(value)
    orjson.dumps(obj)  # normalised objects are plain JSON


def test_fuzz_100k_mutated_objects_never_crash(users, movies):
    """Seeded mutations of real objects: 0 crashes, every object accepted or rejected with a reason."""
    rng = np.random.default_rng(20261130)
    outcomes: Counter = Counter()
    pools = ((validate_user, users, USER_SCHEMA), (validate_movie, movies, MOVIE_SCHEMA))
    for i in range(100_000):
        validate, pool, schema = pools[i % 2]
        raw = copy.copy(pool[int(rng.integers(len(pool)))])
        fields = list(schema) + ["likes", "license_cost", "extra"]
        for _ in range(int(rng.integers(1, 4))):
            field = fields[int(rng.integers(len(fields)))]
            action = rng.random()
            if action < 0.2:
                raw.pop(field, None)
            else:
                raw[field] = NASTY[int(rng.integers(len(NASTY)))]
        if rng.random() < 0.01:
            raw = NASTY[int(rng.integers(len(NASTY)))]
        result = validate(raw)
        _assert_sound(result, schema)
        outcomes["accepted" if result[0] is not None else "rejected"] += 1
    assert outcomes["accepted"] + outcomes["rejected"] == 100_000
    assert outcomes["rejected"] > 1000 and outcomes["accepted"] > 50_000


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20)
objects = st.dictionaries(st.sampled_from(list(MOVIE_SCHEMA) + list(USER_SCHEMA) + ["likes"]),
                          json_values, max_size=12)


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, objects))
def test_any_json_value_is_accepted_or_rejected_with_a_reason(raw):
    _assert_sound(validate_movie(raw), MOVIE_SCHEMA)
    _assert_sound(validate_user(raw), USER_SCHEMA)


KNOWN = {"a+1999", "b+2000", "c+2001"}


@pytest.mark.parametrize("line, problems", [
    ("a+1999,b+2000", []),
    ("a+1999, b+2000 ,c+2001", []),
    ("", [("answer", "empty")]),
    (" , ", [("answer", "empty")]),
    ("a+1999\nb+2000", [("answer", "not_one_line")]),
    ("a+1999,,b+2000", [("answer", "blank_id")]),
    ("a+1999,a+1999", [("answer", "duplicate_id")]),
    ("a+1999,zz+1", [("answer", "unknown_id")]),
    (None, [("answer", "not_text")]),
])
def test_check_answer(line, problems):
    assert check_answer(line, KNOWN) == problems


def test_check_answer_counts_ids():
    ids = [f"m{i}" for i in range(21)]
    assert check_answer(",".join(ids[:20])) == []
    assert check_answer(",".join(ids)) == [("answer", "too_many_ids")]


def test_compare_outcome():
    sent = ["a+1999", "b+2000"]
    assert compare_outcome(sent, 200, ["a+1999", "b+2000"]) == []
    assert compare_outcome(sent, 400, [], "movie b+2000 not found") == [("status", "non_200")]
    assert compare_outcome(sent, 0, [], "java.util.concurrent.TimeoutException") == [("status", "non_200")]
    assert compare_outcome(sent, 200, ["a+1999"]) == [("result", "lost_ids")]
    assert compare_outcome(sent, 200, ["a+1999", "b+2000", "c"]) == [("result", "extra_ids")]
    assert compare_outcome(sent, 200, ["b+2000", "a+1999"]) == [("result", "reordered")]


def test_schemas_import_only_the_standard_library():
    """The kernel's parsing layer: importable with faust, numpy and our other layers blocked."""
    script = textwrap.dedent("""
        import sys
        BLOCKED = ("faust", "aiohttp", "mode", "aiokafka", "numpy", "scipy", "models", "tables",
                   "agents", "web", "rocksdict")
        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Blocker())
        import recstream.schemas
        print(recstream.schemas.validate_user({"user_id": 1})[0]["user_id"])
    """)
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
