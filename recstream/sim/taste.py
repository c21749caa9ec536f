"""True preferences: the ground truth the recommender must discover, never a dense matrix.

    true(u, i) = mu + b_u + b_i + p_u·q_i + age_i·z_age(u) + gender_i·z_gender(u), clipped to [1, 5]

Item factors are built from genre embeddings plus noise, so a user's genre
taste is ``p_u · E[g]`` and genres carry real signal; age and gender effects
are per-item slopes that favour e.g. family titles for children.  One user's
row against 27k movies is one small mat-vec (~50 µs), which is all the
traffic loop and the oracle ever need.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from recstream.sim.films import GENRE_INDEX, MINOR_UNSAFE_CERTS, Catalog
from recstream.sim.population import Population

LOW, HIGH = 1.0, 5.0


@dataclasses.dataclass(slots=True)
class Taste:
    mu: float
    user_bias: np.ndarray    # float32 (n_users,)
    item_bias: np.ndarray    # float32 (n_movies,)
    P: np.ndarray            # float32 (n_users, k)
    Q: np.ndarray            # float32 (n_movies, k)
    age_slope: np.ndarray    # float32 (n_movies,)
    gender_slope: np.ndarray  # float32 (n_movies,)
    age_z: np.ndarray        # float32 (n_users,)
    gender_z: np.ndarray     # float32 (n_users,)
    genre_embed: np.ndarray  # float32 (n_genres, k)
    unsafe_for_minor: np.ndarray  # bool (n_movies,): adult flag or R/NC-17
    minor: np.ndarray        # bool (n_users,)

    def ratings(self, u: int, items: np.ndarray | None = None) -> np.ndarray:
        """True ratings of user index ``u`` for movie indices ``items`` (all when ``None``)."""
        if items is None:
            raw = self.Q @ self.P[u] + self.item_bias + self.age_slope * self.age_z[u] \
                + self.gender_slope * self.gender_z[u]
        else:
            raw = self.Q[items] @ self.P[u] + self.item_bias[items] \
                + self.age_slope[items] * self.age_z[u] + self.gender_slope[items] * self.gender_z[u]
        return np.clip(raw + (self.mu + self.user_bias[u]), LOW, HIGH)

    def ratings_many(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Vectorised: ``users`` (n,), ``items`` (n, c) → (n, c)."""
        raw = np.einsum("nk,nck->nc", self.P[users], self.Q[items]) + self.item_bias[items] \
            + self.age_slope[items] * self.age_z[users, None] + self.gender_slope[items] * self.gender_z[users, None]
        return np.clip(raw + (self.mu + self.user_bias[users])[:, None], LOW, HIGH)

    def oracle_top(self, u: int, k: int = 20, exclude: set[int] | None = None) -> np.ndarray:
        """The k movies this user truly likes most (unsafe ones skipped for minors)."""
        scores = self.ratings(u).astype(np.float64)
        if self.minor[u]:
            scores[self.unsafe_for_minor] = -np.inf
        if exclude:
            scores[list(exclude)] = -np.inf
        top = np.argpartition(-scores, k)[:k]
        return top[np.argsort(-scores[top])]

    def genre_taste(self, u: int) -> np.ndarray:
        return self.genre_embed @ self.P[u]


def synthetic_taste(catalog: Catalog, population: Population, rng: np.random.Generator, *,
                    factors: int = 16, mu: float = 2.6) -> Taste:
    n_m, n_u = len(catalog), len(population)
    genres = catalog.genres.astype(np.float32)
    genres_norm = genres / np.sqrt(np.maximum(genres.sum(1, keepdims=True), 1))
    embed = rng.normal(0, 0.45, size=(genres.shape[1], factors)).astype(np.float32)
    Q = 0.75 * genres_norm @ embed + rng.normal(0, 0.3, size=(n_m, factors)).astype(np.float32)
    P = rng.standard_normal((n_u, factors), dtype=np.float32)
    P *= np.float32(0.42)
    z_pop = np.log(catalog.weight * n_m)
    z_pop = (z_pop - z_pop.mean()) / max(z_pop.std(), 1e-9)
    item_bias = (0.22 * z_pop + rng.normal(0, 0.38, size=n_m)).astype(np.float32)
    g = lambda name: genres[:, GENRE_INDEX[name]]  # noqa: E731
    age_slope = (-0.35 * np.maximum(g("Family"), g("Animation")) + 0.12 * np.maximum(g("History"), g("War"))
                 + rng.normal(0, 0.08, size=n_m)).astype(np.float32)
    gender_slope = (0.15 * g("Romance") - 0.12 * np.maximum(g("Action"), g("War"))
                    + rng.normal(0, 0.06, size=n_m)).astype(np.float32)
    user_bias = rng.normal(0, 0.5, size=n_u).astype(np.float32)
    catalog.vote_average[:] = np.clip(6.2 + 1.6 * item_bias + rng.normal(0, 0.3, n_m), 1, 9.5)
    return Taste(
        mu=mu, user_bias=user_bias, item_bias=item_bias, P=P, Q=Q.astype(np.float32),
        age_slope=age_slope, gender_slope=gender_slope,
        age_z=((population.age.astype(np.float32) - 30) / 15).astype(np.float32),
        gender_z=np.where(population.gender == 1, 1, -1).astype(np.float32),
        genre_embed=embed, unsafe_for_minor=unsafe_for_minors(catalog),
        minor=population.age < 18,
    )


def unsafe_for_minors(catalog: Catalog) -> np.ndarray:
    return catalog.adult | np.isin(catalog.cert, MINOR_UNSAFE_CERTS)


def apply_group_bias(taste: Taste, population: Population, rng: np.random.Generator, *,
                     share: float, activity: float, genres: list[str],
                     popularity: np.ndarray | None = None, mainstream: float = 0.0) -> None:
    """Make a group with distinct tastes (loves ``genres``, dislikes the mainstream) and lower activity.

    Disliking the mainstream is one more factor: the movie's standardised log-popularity,
    weighted ``-mainstream`` for the group and 0 for everyone else (their ratings do not
    change).  Without it (``mainstream`` 0, as before #14 phase 4) the group's shift
    towards its genres left the popular titles as liked as ever — the item bias carries
    popularity — so a popularity list served the group no worse and it converted *more*.
    """
    members = rng.random(len(population)) < share
    population.group[members] = 1
    population.activity[members] *= activity
    population.refresh_weights()
    idx = [GENRE_INDEX[g] for g in genres if g in GENRE_INDEX]
    direction = taste.genre_embed[idx].sum(0)
    direction /= max(float(np.linalg.norm(direction)), 1e-9)
    taste.P[members] = 0.5 * taste.P[members] + 1.2 * direction
    if popularity is not None and mainstream:
        z = np.log(np.maximum(popularity.astype(np.float64), 1e-12))
        z = (z - z.mean()) / max(float(z.std()), 1e-9)
        weight = np.where(members, -float(mainstream), 0.0)
        taste.Q = np.hstack([taste.Q, z[:, None]]).astype(np.float32)
        taste.P = np.hstack([taste.P, weight[:, None]]).astype(np.float32)
        taste.genre_embed = np.hstack([taste.genre_embed, np.zeros((len(taste.genre_embed), 1))]
                                      ).astype(np.float32)
