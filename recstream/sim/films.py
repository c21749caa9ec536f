"""The movie catalogue: columnar arrays (27k rows stay small) plus the API's JSON view.

Genre frequencies follow MovieLens (mapped onto TMDB's genre names), popularity
is a log-normal long tail, and quality is mildly correlated with popularity so
that a popularity ranking is better than chance but worse than personal taste.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from recstream.sim.slugs import slugify, synthetic_titles

# TMDB genre ids and names, with the share of genre tags in MovieLens
# (mean of ml-100k and ml-latest-small; Children→Family, Musical→Music, Sci-Fi→Science Fiction).
GENRES: tuple[tuple[int, str, float], ...] = (
    (18, "Drama", 0.224), (35, "Comedy", 0.172), (53, "Thriller", 0.086), (28, "Action", 0.085),
    (10749, "Romance", 0.078), (12, "Adventure", 0.052), (80, "Crime", 0.046),
    (878, "Science Fiction", 0.040), (27, "Horror", 0.038), (10751, "Family", 0.036),
    (9648, "Mystery", 0.024), (14, "Fantasy", 0.022), (16, "Animation", 0.022), (10752, "War", 0.021),
    (99, "Documentary", 0.018), (10402, "Music", 0.017), (37, "Western", 0.008),
    (36, "History", 0.008), (10769, "Foreign", 0.006), (10770, "TV Movie", 0.003),
)
GENRE_NAMES = tuple(g[1] for g in GENRES)
GENRE_INDEX = {name: i for i, name in enumerate(GENRE_NAMES)}
CERTS = ("G", "PG", "PG-13", "R", "NC-17")
MINOR_UNSAFE_CERTS = (3, 4)  # R and NC-17 are not for minors
LANGS = ("en", "fr", "ja", "de", "it", "es", "zh", "sv", "ru", "ko", "hi", "da")
LANG_P = (0.74, 0.06, 0.03, 0.025, 0.025, 0.02, 0.015, 0.01, 0.01, 0.01, 0.01, 0.01)
POPULARITY_SIGMA = 1.25  # log-normal spread; calibrated against ml-100k's item-count Gini


@dataclasses.dataclass(slots=True)
class Catalog:
    ids: list[str]
    titles: list[str]
    year: np.ndarray          # int16, 0 = unknown
    genres: np.ndarray        # bool (n, len(GENRES))
    adult: np.ndarray         # bool
    cert: np.ndarray          # int8 index into CERTS
    runtime: np.ndarray       # int16 minutes
    weight: np.ndarray        # float64 organic popularity weight (sums to 1)
    vote_average: np.ndarray  # float32
    vote_count: np.ndarray    # int32
    language: np.ndarray      # int8 index into LANGS
    budget: np.ndarray        # int64
    cost: np.ndarray          # float32 licence cost per play (USD)
    raw_json: list[str] | None = None   # verbatim course JSON when loaded from a file
    index: dict[str, int] = dataclasses.field(default_factory=dict)
    cumulative: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, dtype=np.float64)
        self.weight /= self.weight.sum()
        self.cumulative = np.cumsum(self.weight)
        self.index = {slug: i for i, slug in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def sample_popular(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        """Movie indices drawn by popularity (O(log n) each, no per-call allocation of p)."""
        u = rng.random(size) * self.cumulative[-1]
        return np.minimum(np.searchsorted(self.cumulative, u, side="right"), len(self.ids) - 1)

    def movie_json(self, i: int, *, quirks: bool = True) -> dict[str, Any]:
        """The ``/movie/<id>`` object; with ``quirks`` numbers are strings and gaps are ``"null"``."""
        year = int(self.year[i])
        null: Any = "null" if quirks else None
        s = str if quirks else (lambda v: v)
        popularity = round(float(self.weight[i]) * len(self.ids) * 4.0, 6)
        return {
            "id": self.ids[i], "tmdb_id": 10_000 + i, "imdb_id": f"tt{1_000_000 + i * 7:07d}",
            "title": self.titles[i], "original_title": self.titles[i],
            "adult": s(bool(self.adult[i])), "belongs_to_collection": {},
            "budget": s(int(self.budget[i])),
            "genres": [{"id": GENRES[g][0], "name": GENRES[g][1]} for g in np.flatnonzero(self.genres[i])],
            "homepage": null, "original_language": LANGS[int(self.language[i])],
            "overview": f"A {GENRE_NAMES[int(np.argmax(self.genres[i]))].lower()} film.",
            "popularity": s(popularity), "poster_path": null,
            "production_companies": [], "production_countries": [],
            "release_date": f"{year}-{1 + i % 12:02d}-{1 + i % 28:02d}" if year else null,
            "revenue": s(int(self.budget[i]) * (i % 4)), "runtime": int(self.runtime[i]),
            "spoken_languages": [], "status": "Released",
            "vote_average": s(float(round(float(self.vote_average[i]), 1))),
            "vote_count": s(int(self.vote_count[i])),
            "certification": CERTS[int(self.cert[i])],
            "license_cost": s(float(round(float(self.cost[i]), 2))),
        }


def licence_cost(weight: np.ndarray, year: np.ndarray) -> np.ndarray:
    """Popular and recent titles cost more per play (cents to about a dollar)."""
    rank = np.argsort(np.argsort(weight)) / max(len(weight) - 1, 1)
    recent = (year >= 2005).astype(np.float32)
    return np.round(0.02 + 0.6 * rank ** 3 + 0.25 * recent * rank, 2).astype(np.float32)


def certification(genres: np.ndarray, adult: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(adult)
    cert = rng.choice(5, size=n, p=(0.05, 0.15, 0.35, 0.45, 0.0)).astype(np.int8)
    kids = genres[:, GENRE_INDEX["Family"]] | genres[:, GENRE_INDEX["Animation"]]
    cert[kids] = rng.choice(2, size=int(kids.sum()), p=(0.5, 0.5))
    horror = genres[:, GENRE_INDEX["Horror"]] & ~kids
    cert[horror] = rng.choice((2, 3), size=int(horror.sum()), p=(0.3, 0.7))
    cert[adult] = 4
    return cert


def draw_genres(n: int, rng: np.random.Generator) -> np.ndarray:
    """1–4 genres per movie, without replacement, by MovieLens tag shares (Gumbel top-k)."""
    p = np.array([g[2] for g in GENRES])
    # Without replacement a movie cannot be "Drama" twice: raise big genres so tag shares still match.
    p = p ** 1.15
    keys = np.log(p / p.sum()) + rng.gumbel(size=(n, len(p)))
    order = np.argsort(-keys, axis=1)
    count = rng.choice((1, 2, 3, 4), size=n, p=(0.42, 0.34, 0.18, 0.06))
    genres = np.zeros((n, len(p)), dtype=bool)
    rows = np.arange(n)
    for k in range(4):
        take = count > k
        genres[rows[take], order[take, k]] = True
    return genres


def synthetic_catalog(n: int, rng: np.random.Generator, *, adult_share: float = 0.01) -> Catalog:
    titles = synthetic_titles(n, rng)
    year = (2016 - np.floor(rng.exponential(16.0, size=n))).clip(1915, 2016).astype(np.int16)
    year[rng.random(n) < 0.002] = 0
    genres = draw_genres(n, rng)
    adult = rng.random(n) < adult_share
    weight = np.exp(POPULARITY_SIGMA * rng.standard_normal(n))
    vote_count = np.maximum(0, weight / weight.mean() * 150 * np.exp(0.5 * rng.standard_normal(n))).astype(np.int32)
    budget = np.where(rng.random(n) < 0.6, 0, np.exp(rng.normal(16.0, 1.2, size=n))).astype(np.int64)
    ids = [slugify(t, int(y) or None) for t, y in zip(titles, year)]
    seen: set[str] = set()
    for i, slug in enumerate(ids):          # distinct titles can share a slug: shift the year
        while slug in seen:
            year[i] = year[i] - 1 if year[i] > 1915 else 2016
            slug = slugify(titles[i], int(year[i]))
        seen.add(slug)
        ids[i] = slug
    return Catalog(
        ids=ids, titles=titles, year=year, genres=genres, adult=adult,
        cert=certification(genres, adult, rng),
        runtime=rng.normal(102, 20, size=n).clip(45, 220).astype(np.int16),
        weight=weight, vote_average=np.zeros(n, np.float32), vote_count=vote_count,
        language=rng.choice(len(LANGS), size=n, p=np.array(LANG_P) / sum(LANG_P)).astype(np.int8),
        budget=budget, cost=licence_cost(weight, year),
    )
