"""The world: catalogue + population + true taste, built from a seed or from real data.

Everything random comes from ``np.random.default_rng`` streams derived from the
one seed, so the same options give the same world on every machine.  The
self-description a new user writes is drawn from their true taste (named
movies are ones they truly like or dislike), then garbled the way people type.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from recstream.sim import behaviour
from recstream.sim.films import Catalog, synthetic_catalog
from recstream.sim.options import SimOptions
from recstream.sim.population import Population, synthetic_population
from recstream.sim.slugs import misspell
from recstream.sim.taste import Taste, apply_group_bias, synthetic_taste

# Well-known titles a user may name that a synthetic catalogue does not hold.
OUTSIDE_TITLES = ("Casablanca", "The Godfather", "Star Wars", "Titanic", "Amélie", "Inception",
                  "Spirited Away", "Pulp Fiction", "Frozen", "The Matrix", "Parasite", "Up")
_LIKE = ("I love {}.", "{} are my favourites", "really liked {}", "{}", "Anything like {}!")
_DISLIKE = ("I did not like {}.", "{} were boring", "not {}", "{}", "hated {}")


@dataclasses.dataclass(slots=True)
class World:
    catalog: Catalog
    population: Population
    taste: Taste
    seed: int = 42
    source: str = "synthetic"

    def user_json(self, i: int, *, like_field: str = "likes", dislike_field: str = "dislikes") -> dict[str, Any]:
        data = self.population.user_json(i)
        if self.population.describes[i]:
            likes, dislikes = self.self_description(i)
            data[like_field], data[dislike_field] = likes["text"], dislikes["text"]
        return data

    def self_description(self, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """("movies I like", "movies I don't like") as text plus the truth behind each mention."""
        rng = np.random.default_rng((self.seed, 7, int(self.population.ids[i])))
        pool = np.unique(self.catalog.sample_popular(rng, 200))
        r = self.taste.ratings(i, pool)
        order = np.argsort(-r)
        liked = pool[order[: int(rng.integers(1, 5))]]
        disliked = pool[order[::-1][: int(rng.integers(1, 4))]]
        return self._describe(liked, r[order][: len(liked)], _LIKE, rng), \
            self._describe(disliked, r[order[::-1]][: len(disliked)], _DISLIKE, rng)

    def _describe(self, movies: np.ndarray, ratings: np.ndarray, templates: tuple[str, ...],
                  rng: np.random.Generator) -> dict[str, Any]:
        names, mentions = [], []
        for m, r in zip(movies.tolist(), ratings.tolist()):
            title, year = self.catalog.titles[m], int(self.catalog.year[m])
            style = rng.random()
            if style < 0.3:
                title = misspell(title, rng)
            elif style < 0.5 and year:
                title = f"{title} ({year})"
            names.append(title)
            mentions.append({"movie": self.catalog.ids[m], "text": title, "true_rating": round(r, 3)})
        if rng.random() < 0.2:
            outside = OUTSIDE_TITLES[int(rng.integers(len(OUTSIDE_TITLES)))]
            names.append(outside)
            mentions.append({"movie": None, "text": outside, "true_rating": None})
        joined = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
        text = templates[int(rng.integers(len(templates)))].format(joined)
        return {"text": text, "mentions": mentions}

    def sample_history(self, n: int, rng: np.random.Generator, *, dedupe: bool = True) -> np.ndarray:
        """``n`` organic (user, movie, stated rating) rows, as MovieLens would have logged them."""
        rows: list[np.ndarray] = []
        seen: set[tuple[int, int]] = set()
        total = 0
        while total < n:
            users = self.population.sample_active(rng, min(20_000, 2 * (n - total) + 100))
            movies, true = behaviour.organic_many(self.taste, self.catalog, rng, users)
            stated = behaviour.stated_ratings(rng, true)
            batch = np.stack([users, movies, stated], axis=1)
            if dedupe:
                keep = []
                for k, (u, m) in enumerate(zip(users.tolist(), movies.tolist())):
                    if (u, m) not in seen:
                        seen.add((u, m))
                        keep.append(k)
                batch = batch[keep]
            rows.append(batch[: n - total])
            total += len(rows[-1])
        return np.concatenate(rows)


def build_synthetic(options: SimOptions) -> World:
    seeds = np.random.SeedSequence(options.seed).spawn(4)
    catalog = synthetic_catalog(options.movies, np.random.default_rng(seeds[0]), adult_share=options.adult_share)
    population = synthetic_population(
        options.users, np.random.default_rng(seeds[1]), existing_share=options.existing_share,
        describe_share=options.describe_share, minor_share=options.minor_share)
    taste = synthetic_taste(catalog, population, np.random.default_rng(seeds[2]), factors=options.factors)
    world = World(catalog, population, taste, seed=options.seed)
    apply_world_scenarios(world, options, np.random.default_rng(seeds[3]))
    return world


def apply_world_scenarios(world: World, options: SimOptions, rng: np.random.Generator) -> None:
    """Scenarios that change the world itself rather than its traffic (any source of world)."""
    bias = options.scenario("population-bias")
    if bias is not None:
        apply_group_bias(world.taste, world.population, rng, share=float(bias["share"]),
                         activity=float(bias["activity"]), genres=list(bias["genres"]),
                         popularity=world.catalog.weight, mainstream=float(bias["mainstream"]))
