"""The world model: seeded, scalable, calibrated to MovieLens, and honest about its truths."""
from __future__ import annotations


import numpy as np
import pytest

from recstream.sim.films import GENRE_NAMES
from recstream.sim.options import SimOptions
from recstream.sim.realdata import ML_GENRES
from recstream.sim.world import build_synthetic

from conftest import data_path


def gini(counts: np.ndarray) -> float:
    c = np.sort(np.asarray(counts, dtype=float))
    n = len(c)
    return float((2 * np.arange(1, n + 1) - n - 1) @ c / (n * c.sum()))


def stats(users: np.ndarray, movies: np.ndarray, ratings: np.ndarray, n_users: int, n_movies: int) -> dict[str, float]:
    return {"mean": float(ratings.mean()), "std": float(ratings.std()),
            "movie_gini": gini(np.bincount(movies, minlength=n_movies)),
            "user_gini": gini(np.bincount(users, minlength=n_users))}


def test_same_seed_same_world_and_different_seed_differs():
    a, b = build_synthetic(SimOptions(users=2000, movies=500, seed=1)), build_synthetic(SimOptions(users=2000, movies=500, seed=1))
    c = build_synthetic(SimOptions(users=2000, movies=500, seed=2))
    assert a.catalog.ids == b.catalog.ids and np.array_equal(a.taste.P, b.taste.P)
    assert a.self_description(1950) == b.self_description(1950)
    assert a.catalog.ids != c.catalog.ids


def test_million_users_without_a_dense_matrix():
    world = build_synthetic(SimOptions(users=1_000_000, movies=27_000, seed=3))
    biggest = max(a.nbytes for a in (world.taste.P, world.taste.Q, world.catalog.genres, world.population.activity))
    assert biggest < 1_000_000 * 27_000 // 100      # far from users × movies
    top = world.taste.oracle_top(999_999, 20)
    assert len(set(top.tolist())) == 20
    r = world.taste.ratings(999_999)
    assert np.all(r[top] >= np.sort(r)[-20] - 1e-6)


def test_minors_adult_titles_and_metadata(small_world):
    cat, taste = small_world.catalog, small_world.taste
    assert cat.adult.any() and taste.minor.any()
    assert np.all(cat.cert[cat.adult] == 4)
    movie = cat.movie_json(int(np.flatnonzero(cat.adult)[0]))
    assert movie["adult"] == "True" and movie["certification"] == "NC-17"
    for key in ("budget", "popularity", "vote_average", "vote_count", "license_cost"):
        assert isinstance(movie[key], str), key
    assert movie["homepage"] == "null"
    clean = cat.movie_json(0, quirks=False)
    assert isinstance(clean["budget"], int) and clean["homepage"] is None
    minor = int(np.flatnonzero(taste.minor)[0])
    assert not taste.unsafe_for_minor[taste.oracle_top(minor, 20)].any()


def test_self_descriptions_name_truly_liked_and_disliked_movies(small_world):
    pop, cat = small_world.population, small_world.catalog
    describing = np.flatnonzero(pop.describes)[:200]
    assert len(describing) > 50
    gaps, garbled, outside = [], 0, 0
    for i in describing.tolist():
        likes, dislikes = small_world.self_description(i)
        liked = [m["true_rating"] for m in likes["mentions"] if m["movie"]]
        disliked = [m["true_rating"] for m in dislikes["mentions"] if m["movie"]]
        gaps.append(min(liked) - max(disliked))
        for m in likes["mentions"] + dislikes["mentions"]:
            outside += m["movie"] is None
            garbled += m["movie"] is not None and m["text"] not in (cat.titles[cat.index[m["movie"]]],) \
                and not m["text"].startswith(cat.titles[cat.index[m["movie"]]] + " (")
        assert small_world.user_json(i)["likes"] == likes["text"]
    assert np.mean(np.array(gaps) > 0) > 0.95
    assert garbled > 20 and outside > 10


def test_calibrated_to_movielens_100k_within_10_percent():
    path = data_path("movielens", "ml-100k", "u.data")
    real = np.loadtxt(path, dtype=np.int64)
    n_users, n_movies = int(real[:, 0].max()), int(real[:, 1].max())
    target = stats(real[:, 0] - 1, real[:, 1] - 1, real[:, 2], n_users, n_movies)
    world = build_synthetic(SimOptions(users=n_users, movies=n_movies, existing_share=1.0, seed=11))
    sim = world.sample_history(len(real), np.random.default_rng(0))
    got = stats(sim[:, 0], sim[:, 1], sim[:, 2], n_users, n_movies)
    for key, value in target.items():
        assert got[key] == pytest.approx(value, rel=0.10), (key, got, target)


def test_genre_mix_matches_movielens():
    path = data_path("movielens", "ml-latest-small", "movies.csv")
    import csv
    with open(path, newline="", encoding="utf-8") as fh:
        names = [ML_GENRES.get(g, g) for row in list(csv.reader(fh))[1:] for g in row[2].split("|")]
    real = np.array([names.count(g) for g in GENRE_NAMES], dtype=float)
    world = build_synthetic(SimOptions(users=10, movies=9742, seed=5))
    sim = world.catalog.genres.sum(0).astype(float)
    real, sim = real / real.sum(), sim / sim.sum()
    assert 0.5 * np.abs(real - sim).sum() < 0.10                  # total variation distance
    for g in ("Drama", "Comedy", "Thriller", "Action", "Romance"):
        k = GENRE_NAMES.index(g)
        assert sim[k] == pytest.approx(real[k], rel=0.25), g


def test_the_population_bias_group_truly_likes_the_mainstream_less():
    """#14 phase 4: the group's true ratings of the most popular titles (what a popularity
    list shows) sit below the rest's, where before they were as high; everyone else rates
    exactly as with the scenario off."""
    off = build_synthetic(SimOptions(users=3000, movies=800, seed=7))
    on = build_synthetic(SimOptions(users=3000, movies=800, seed=7, scenarios={"population-bias": {}}))
    flat = build_synthetic(SimOptions(users=3000, movies=800, seed=7,
                                      scenarios={"population-bias": {"mainstream": 0.0}}))
    group = on.population.group.astype(bool)
    assert 0.1 < group.mean() < 0.2
    top = np.argsort(-on.catalog.weight)[:20]
    rest = np.flatnonzero(~group)[:300]
    for u in rest:  # not a member: same ratings as without the scenario
        np.testing.assert_allclose(on.taste.ratings(int(u), top), off.taste.ratings(int(u), top),
                                   atol=1e-5)
    def mean_top(world, users):
        return float(np.mean([world.taste.ratings(int(u), top).mean() for u in users]))
    members = np.flatnonzero(group)[:300]
    gap_on = mean_top(on, rest) - mean_top(on, members)
    gap_flat = mean_top(flat, rest) - mean_top(flat, members)
    assert gap_on > gap_flat + 0.3 and gap_on > 0.3
