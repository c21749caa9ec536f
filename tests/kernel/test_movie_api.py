"""Movie JSON normalisation (SPEC §2.2) on the real records, quirks included."""
from __future__ import annotations

import json

import pytest

from recstream.movie_api import (
    as_bool,
    as_float,
    is_adult,
    minors_ok,
    normalise,
    records_from_response,
)

KEYS = {"id", "title", "year", "genres", "adult", "certification", "runtime", "popularity",
        "vote_average", "vote_count", "language", "licence_cost", "safe_for_all", "safe_for_minors"}

# Line 1 of movies.jsonl (2019, compact JSON), verbatim.
TWIN_DRAGONS = json.loads(
    '{"id":"twin+dragons+1992","tmdb_id":18764,"imdb_id":"tt0105399","title":"Twin Dragons",'
    '"original_title":"双龙会","adult":"False","belongs_to_collection":{},"budget":"10000000",'
    '"genres":[{"id":35,"name":"Comedy"},{"id":28,"name":"Action"}],"homepage":"null",'
    '"original_language":"cn","overview":"Twins, separated at birth...","popularity":"10.222076",'
    '"poster_path":"/vl7aI8rWk9MoRp9j6VagrRZFxRM.jpg","production_companies":[],'
    '"production_countries":[{"iso_3166_1":"HK","name":"Hong Kong"}],"release_date":"1992-01-15"'
    ',"revenue":"8359717","runtime":89,"spoken_languages":[],"status":"Released",'
    '"tagline":"Twice the action!","vote_average":"6.2","vote_count":"72"}')


def test_known_record():
    assert normalise(TWIN_DRAGONS) == {
        "id": "twin+dragons+1992", "title": "Twin Dragons", "year": 1992,
        "genres": ["Comedy", "Action"], "adult": False, "certification": None, "runtime": 89,
        "popularity": 10.222076, "vote_average": 6.2, "vote_count": 72.0, "language": "cn",
        "licence_cost": None, "safe_for_all": True, "safe_for_minors": True,
    }


def test_every_real_record_normalises(movies_jsonl):
    count = 0
    no_year = no_runtime = 0
    with movies_jsonl.open(encoding="utf-8") as lines:
        for line in lines:
            raw = json.loads(line)
            out = normalise(raw)
            count += 1
            assert set(out) == KEYS
            assert out["id"] == raw["id"]
            assert out["adult"] is False  # every real record says "adult": "False"
            assert out["popularity"] is not None and out["popularity"] >= 0
            assert isinstance(out["vote_count"], float)
            assert all(isinstance(g, str) and g for g in out["genres"])
            no_year += out["year"] is None
            no_runtime += out["runtime"] is None
            if raw.get("release_date") == "null":
                assert out["year"] is None
            if raw.get("original_language") == "null":
                assert out["language"] is None
            json.dumps(out, allow_nan=False)  # what the catalogue agent publishes
    assert count == 21_905
    assert no_year == 23  # release_date "null"
    assert no_runtime == 353  # runtime 0 means unknown


def test_string_numbers_null_and_missing_fields():
    raw = {"id": "x+2000", "adult": "True", "budget": "10000000", "popularity": "null",
           "vote_average": "", "vote_count": "NaN", "runtime": "0", "release_date": "null",
           "original_language": "null", "genres": "null", "license_cost": "1.25",
           "certification": "null"}
    out = normalise(raw)
    assert out["adult"] is True
    assert out["popularity"] is None and out["vote_average"] is None
    assert out["vote_count"] is None and out["runtime"] is None and out["year"] is None
    assert out["language"] is None and out["genres"] == [] and out["certification"] is None
    assert out["licence_cost"] == 1.25
    assert normalise({}) == {"id": "", "title": None, "year": None, "genres": [],
                             "adult": False, "certification": None, "runtime": None,
                             "popularity": None, "vote_average": None, "vote_count": None,
                             "language": None, "licence_cost": None,
                             "safe_for_all": False, "safe_for_minors": False}


@pytest.mark.parametrize("value, expected", [
    ("10.5", 10.5), (3, 3.0), ("null", None), ("", None), (" None ", None), ("inf", None),
    ("-inf", None), ("nan", None), (True, None), ([], None), ({}, None), ("1e400", None),
    ("7,9", None),
])
def test_as_float(value, expected):
    assert as_float(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("True", True), ("true", True), (" TRUE ", True), ("1", True), (True, True),
    ("False", False), ("null", False), ("", False), (None, False), (1, False), ("no", False),
])
def test_as_bool(value, expected):
    assert as_bool(value) is expected


@pytest.mark.parametrize("meta, adult, for_minors", [
    ({"adult": "False"}, False, True),
    ({"adult": "True"}, True, False),
    ({"adult": "False", "certification": "R"}, False, False),
    ({"adult": "False", "certification": "nc-17"}, False, False),
    ({"adult": "False", "certification": "PG-13"}, False, True),
    ({"adult": "False", "certification": 18}, False, True),  # not a string: unknown
    ({}, False, True),
])
def test_guardrail_flags(meta, adult, for_minors):
    assert is_adult(meta) is adult
    assert minors_ok(meta) is for_minors


def test_records_from_bulk_response_shapes():
    a, b = {"id": "a+1"}, {"id": "b+2"}
    assert records_from_response([a, "junk", b, None]) == [a, b]
    assert records_from_response({"a+1": a, "b+2": b, "x": 3}) == [a, b]
    assert records_from_response(a) == [a]
    assert records_from_response("null") == [] == records_from_response(None)
