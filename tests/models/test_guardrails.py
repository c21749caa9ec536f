"""Guardrails fail closed, on the real course movie objects and on constructed edge cases."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from models.guardrails import (ADULT, MINOR, STRICT_GENRES, UNKNOWN, allowed, audience,
                               block_reason, flags, needs_minor_filter, safe_for_all,
                               safe_for_minors)
from tests.conftest import sample_path


@pytest.fixture(scope="module")
def movies() -> dict[str, dict]:
    out: dict[str, dict] = {}
    with open(sample_path("movies.jsonl"), encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            out.setdefault(obj["id"], obj)
    return out


def test_unknown_metadata_is_shown_to_no_minor_and_to_nobody_unconfirmed():
    for meta in (None, {}, "twin+dragons+1992", [], {"id": "x", "genres": [{"id": 35, "name": "Comedy"}]},
                 {"adult": "maybe", "genres": [{"id": 35, "name": "Comedy"}]},
                 {"adult": "False", "genres": []}, {"adult": "False", "genres": "null"}):
        assert not safe_for_minors(meta), meta
        assert block_reason(meta) == "unknown", meta
    assert not safe_for_all(None) and not safe_for_all({}) and not safe_for_all({"adult": "null"})


def test_adult_flag_blocks_everyone_in_both_spellings():
    for flag in (True, "True", " true "):
        meta = {"adult": flag, "genres": [{"id": 10751, "name": "Family"}], "certification": "G"}
        assert not safe_for_all(meta) and not safe_for_minors(meta)
        assert block_reason(meta) == "adult"


def test_certification_decides_when_present():
    base = {"adult": "False", "genres": [{"id": 27, "name": "Horror"}]}
    assert not safe_for_minors({**base, "certification": "R"})
    assert not safe_for_minors({**base, "certification": "nc-17"})
    assert safe_for_minors({**base, "certification": "PG-13"})  # a human rating beats the genre rule
    assert not safe_for_minors({**base, "certification": "??"})  # unrecognised: the heuristics apply
    assert not safe_for_minors({**base, "certification": "null"})


def test_real_objects(movies):
    shawshank = movies["the+shawshank+redemption+1994"]
    assert safe_for_all(shawshank)
    twin = movies["twin+dragons+1992"]
    assert safe_for_minors(twin) and block_reason(twin) is None
    horror = next(m for m in movies.values() if any(g["name"] == "Horror" for g in m["genres"]))
    assert safe_for_all(horror) and not safe_for_minors(horror)
    assert block_reason(horror) == "genre"
    explicit = next(m for m in movies.values()
                    if "prostitute" in m.get("overview", "") and
                    not {"Horror"} & {g["name"] for g in m["genres"]})
    assert block_reason(explicit) == "explicit_terms"


def test_keywords_are_read_when_present(movies):
    meta = dict(movies["twin+dragons+1992"])
    meta["keywords"] = [{"id": 1, "name": "erotica"}]
    assert block_reason(meta) == "explicit_terms"
    assert block_reason({**meta, "keywords": ["heroine", "sexy"]}) is None  # whole words only


def test_share_of_the_real_sample_blocked_for_minors(movies):
    """The numbers docs/safety.md quotes; a rule change that moves them must update the doc."""
    metas = list(movies.values())
    reasons = Counter(block_reason(m) for m in metas)
    n = len(metas)
    assert n == 18329
    assert reasons["adult"] == 0 and reasons["certification"] == 0  # the real data has neither
    assert reasons["unknown"] / n == pytest.approx(0.0348, abs=0.001)  # no genres
    assert reasons["genre"] / n == pytest.approx(0.0812, abs=0.001)  # Horror
    assert reasons["explicit_terms"] / n == pytest.approx(0.0538, abs=0.001)
    blocked = 1 - reasons[None] / n
    assert blocked == pytest.approx(0.1698, abs=0.001)
    strict = np.mean([not safe_for_minors(m, blocked_genres=STRICT_GENRES) for m in metas])
    assert strict == pytest.approx(0.3787, abs=0.001)


def test_vectorised_flags_agree_with_the_scalar_form(movies):
    metas = list(movies.values())[:3000] + [None, {"adult": "True", "genres": []}]
    everyone, minors = flags(metas)
    assert everyone.dtype == bool and minors.shape == (len(metas),)
    assert list(everyone) == [safe_for_all(m) for m in metas]
    assert list(minors) == [safe_for_minors(m) for m in metas]
    assert not (minors & ~everyone).any()


@pytest.mark.parametrize("age, expected", [
    (17, MINOR), (0, MINOR), (18, ADULT), (90, ADULT), ("27", ADULT), (" 12 ", MINOR), (30.0, ADULT),
    (None, UNKNOWN), (-1, UNKNOWN), (121, UNKNOWN), ("null", UNKNOWN), ("", UNKNOWN), (True, UNKNOWN),
    (17.5, UNKNOWN), (float("nan"), UNKNOWN), ([], UNKNOWN), ({"age": 30}, UNKNOWN), (np.int64(40), ADULT),
])
def test_audience(age, expected):
    assert audience(age) == expected


def test_unknown_age_gets_the_minors_mask():
    safe_all = np.array([True, True, False])
    safe_minors = np.array([True, False, False])
    assert allowed(ADULT, safe_all, safe_minors).tolist() == [True, True, False]
    for who in (MINOR, UNKNOWN, "anything else"):
        assert allowed(who, safe_all, safe_minors).tolist() == [True, False, False]
    assert needs_minor_filter(np.array([-1, 5, 17, 18, 64, 500])).tolist() == \
        [True, True, True, False, False, True]
