"""Title matching: known answers on real catalogue titles, a perturbed-mention
precision/recall check, and a property test that ``match`` never raises."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.titles import (TitleIndex, edit_distance, normalise_title, split_mentions,
                           split_year)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MOVIES = DATA / "mlip-stream-samples" / "movies.jsonl"
needs_catalogue = pytest.mark.skipif(not MOVIES.exists(), reason="movies.jsonl not available")


def _year(release):
    return int(release[:4]) if isinstance(release, str) and release[:4].isdigit() else None


def _popularity(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


@pytest.fixture(scope="module")
def catalogue():
    rows = [json.loads(line) for line in MOVIES.read_text().splitlines() if line.strip()]
    return [(r["id"], r["title"], _year(r.get("release_date")), _popularity(r.get("popularity")))
            for r in rows if isinstance(r.get("title"), str)]


@pytest.fixture(scope="module")
def index(catalogue):
    return TitleIndex([(m, t, y) for m, t, y, _ in catalogue], popularity=[p for *_, p in catalogue])


SMALL = TitleIndex([
    ("the+matrix+1999", "The Matrix", 1999), ("toy+story+1995", "Toy Story", 1995),
    ("amlie+2001", "Amélie", 2001), ("romeo+and+juliet+1968", "Romeo and Juliet", 1968),
    ("romeo+1990", "Romeo", 1990), ("hamlet+1948", "Hamlet", 1948), ("hamlet+1996", "Hamlet", 1996),
    ("up+2009", "Up", 2009), ("us+2019", "Us", 2019), ("fast++furious+2009", "Fast & Furious", 2009),
])


def test_normalisation():
    assert normalise_title("Shawshank Redemption, The") == "the shawshank redemption"
    assert normalise_title("  AMÉLIE!! ") == "amelie"
    assert normalise_title("Fast & Furious") == normalise_title("fast and furious")
    assert normalise_title("Schindler's List") == "schindlers list"
    assert split_year("Hamlet (1996)") == [("Hamlet", 1996)]


def test_split_mentions_example():
    text = "I love The Matrix, Toy Story and amelie (2001); not a fan of horror"
    assert split_mentions(text) == ["The Matrix", "Toy Story", "amelie (2001)", "horror"]


def test_small_index_answers():
    assert [m for m, _ in SMALL.match("I love The Matrix, Toy Story and amelie (2001); not a fan of horror")] \
        == ["the+matrix+1999", "toy+story+1995", "amlie+2001"]
    assert SMALL.match("Romeo and Juliet")[0][0] == "romeo+and+juliet+1968"   # rejoined, not split
    assert SMALL.lookup("hamlet (1948)")[0] == "hamlet+1948"                  # year picks the version
    assert SMALL.lookup("Fast and Furious")[0] == "fast++furious+2009"
    assert SMALL.lookup("Uz") is None                                         # no typos on short titles
    assert SMALL.lookup("Toy Stroy")[0] == "toy+story+1995"
    assert SMALL.match("") == [] and SMALL.match(None) == []                  # type: ignore[arg-type]


def test_edit_distance_matches_a_full_table():
    def oracle(a, b):
        d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
                if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
        return d[-1][-1]

    rng = random.Random(0)
    for _ in range(3000):
        a = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 8)))
        b = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 8)))
        limit = rng.randint(0, 3)
        want = oracle(a, b)
        assert edit_distance(a, b, limit) == (want if want <= limit else limit + 1)


@needs_catalogue
def test_real_titles_known_answers(index):
    assert index.lookup("The Shawshank Redemption (1994)") == ("the+shawshank+redemption+1994", 1.0)
    assert index.lookup("shawshank redemption")[0] == "the+shawshank+redemption+1994"
    assert index.lookup("Shawshank Redemption, The")[0] == "the+shawshank+redemption+1994"
    assert index.lookup("the shawshank redemtpion")[0] == "the+shawshank+redemption+1994"
    assert index.lookup("SHAWSHANK  REDEMPTION!!!")[0] == "the+shawshank+redemption+1994"
    assert index.lookup("Toy Stroy 2")[0] == "toy+story+2+1999"
    assert index.lookup("amelie")[0] == "amlie+2001"
    got = dict(index.match("I loved toy story, amelie (2001) and American Hustel"))
    assert {"toy+story+1995", "amlie+2001", "american+hustle+2013"} <= set(got)


@needs_catalogue
def test_unknown_titles_get_nothing_confident(index):
    for text in ("Zorblax Quintessence", "The Flying Spaghetti Council", "Qwertyuiop Asdfgh",
                 "Mxyzptlk Returns Again", "not a fan of horror"):
        assert all(score < 0.9 for _, score in index.match(text)), text


@needs_catalogue
def test_the_real_catalogue_indexes_and_answers_every_kind_of_query(catalogue):
    """Build and query on the whole real sample (their speed: bench/hot_paths.py)."""
    index = TitleIndex([(m, t, y) for m, t, y, _ in catalogue])
    assert len(index) == len(catalogue)
    assert index.lookup("Toy Story") is not None
    assert index.lookup("Zorblax Quintessence") is None


def perturb(title: str, year: int | None, rng: random.Random) -> str:
    """How people write a title: case, year or not, 1-2 typos, cut short, ", The"."""
    kind = rng.randrange(7)
    if kind == 0:
        return title.lower()
    if kind == 1 and year:
        return f"{title} ({year})"
    if kind in (2, 3):
        out = title
        for _ in range(kind - 1):
            i = rng.randrange(1, max(2, len(out) - 1))
            op = rng.randrange(3)
            out = (out[:i] + out[i + 1:] if op == 0 else
                   out[:i] + out[i + 1:i + 2] + out[i:i + 1] + out[i + 2:] if op == 1 else
                   out[:i] + rng.choice("aeiourstn") + out[i + 1:])
        return out
    if kind == 4 and len(title.split()) > 3:
        return " ".join(title.split()[:-1])
    if kind == 5 and title.startswith("The "):
        return f"{title[4:]}, The"
    return title.upper() if kind == 6 else title.replace(":", "").replace(",", "")


@needs_catalogue
def test_precision_recall_on_perturbed_mentions(index, catalogue):
    rng = random.Random(7)
    same_title = {}
    for movie_id, title, _, _ in catalogue:
        same_title.setdefault(normalise_title(title), set()).add(movie_id)
    sample = rng.sample(catalogue, 600)
    returned = correct = 0
    for movie_id, title, year, _ in sample:
        got = index.lookup(perturb(title, year, rng))
        if got is None or got[1] < index.min_score:
            continue
        returned += 1
        # Without a year, any film of exactly that title is a right answer.
        correct += got[0] == movie_id or got[0] in same_title[normalise_title(title)]
    fake = ["Zorblax " + rng.choice(["Rising", "Forever", "Protocol"]) + f" {i}" for i in range(100)]
    false_hits = sum(1 for f in fake if (index.lookup(f) or ("", 0.0))[1] >= index.min_score)
    precision, recall = correct / max(returned, 1), correct / len(sample)
    print(f"\nperturbed mentions: n={len(sample)} precision={precision:.3f} recall={recall:.3f}; "
          f"unknown titles matched: {false_hits}/{len(fake)}")
    assert precision >= 0.95
    assert recall >= 0.85
    assert false_hits <= 2


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_match_never_raises(text):
    for score_and_id in SMALL.match(text):
        assert 0.0 < score_and_id[1] <= 1.0
    split_mentions(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["The Matrix", "toy story", ",", " and ", "&", "(1999)", "!!", "é",
                                 ", The", "hamlet", "  ", ";", "up", "\n"]), max_size=30))
def test_match_never_raises_on_title_soup(parts):
    assert isinstance(SMALL.match("".join(parts)), list)
