"""Worlds driven by real data: MovieLens (ratings → fitted true taste) or the course's JSON.

MovieLens: the true rating of (u, i) is a biased matrix factorisation fitted
by ALS to the real ratings, so simulated users re-enact the real ones' tastes
(ml-100k ``u.data``, ml-latest-small ``ratings.csv``, ml-1m ``ratings.dat``).
Course JSON: the real catalogue and users (served verbatim by the API), with
synthetic latent taste anchored on each movie's vote average.
Files are read in place and never copied.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import orjson

from recstream.sim.films import GENRE_INDEX, GENRES, LANGS, Catalog, certification, licence_cost
from recstream.sim.options import SimOptions
from recstream.sim.population import OCCUPATIONS, Population, synthetic_ages, synthetic_population
from recstream.sim.slugs import slugify
from recstream.sim.taste import Taste, synthetic_taste, unsafe_for_minors
from recstream.sim.world import World

ML_GENRES = {"Children's": "Family", "Children": "Family", "Sci-Fi": "Science Fiction", "Musical": "Music",
             "Film-Noir": "Crime", "IMAX": "Action"}
ML100K_OCCUPATIONS = {
    "administrator": "clerical/admin", "artist": "artist", "doctor": "doctor/health care",
    "educator": "academic/educator", "engineer": "technician/engineer", "entertainment": "artist",
    "executive": "executive/managerial", "healthcare": "doctor/health care", "homemaker": "homemaker",
    "lawyer": "lawyer", "librarian": "academic/educator", "marketing": "sales/marketing", "none": "unemployed",
    "other": "other or not specified", "programmer": "programmer", "retired": "retired",
    "salesman": "sales/marketing", "scientist": "scientist", "student": "college/grad student",
    "technician": "technician/engineer", "writer": "writer"}
_TITLE = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
_ARTICLE = re.compile(r"^(.*), (The|A|An|Les|La|Le|Il|Das|Der|Die|El)$")


def split_title(raw: str) -> tuple[str, int]:
    """``Shawshank Redemption, The (1994)`` → (``The Shawshank Redemption``, 1994)."""
    m = _TITLE.match(raw.strip())
    title, year = (m.group(1), int(m.group(2))) if m else (raw.strip(), 0)
    a = _ARTICLE.match(title)
    return (f"{a.group(2)} {a.group(1)}" if a else title), year


def _genre_matrix(names: list[list[str]]) -> np.ndarray:
    g = np.zeros((len(names), len(GENRES)), dtype=bool)
    for row, genres in enumerate(names):
        for name in genres:
            j = GENRE_INDEX.get(ML_GENRES.get(name, name))
            if j is not None:
                g[row, j] = True
    return g


def _read_movielens(path: Path) -> tuple[list[tuple[int, str, list[str]]], np.ndarray, list[tuple[int, int, int, int]] | None]:
    """→ movies (ml id, raw title, genres), ratings (user, ml movie id, rating 1–5 float), users or None."""
    if (path / "u.data").exists():
        genre_names = [l.split("|")[0] for l in (path / "u.genre").read_text().splitlines() if l.strip()]
        movies = []
        for line in (path / "u.item").read_text(encoding="latin-1").splitlines():
            f = line.split("|")
            movies.append((int(f[0]), f[1], [genre_names[k] for k, v in enumerate(f[5:]) if v == "1"]))
        ratings = np.loadtxt(path / "u.data", dtype=np.float64)[:, :3]
        users = []
        for line in (path / "u.user").read_text().splitlines():
            uid, age, gender, occ, _ = line.split("|")
            users.append((int(uid), int(age), int(gender == "F"), OCCUPATIONS.index(ML100K_OCCUPATIONS.get(occ, "other or not specified"))))
        return movies, ratings, users
    if (path / "ratings.dat").exists():
        movies = [(int(f[0]), f[1], f[2].split("|")) for f in
                  (l.split("::") for l in (path / "movies.dat").read_text(encoding="latin-1").splitlines() if l)]
        ratings = np.array([l.split("::")[:3] for l in (path / "ratings.dat").read_text().splitlines() if l], dtype=np.float64)
        users = [(int(f[0]), int(f[2]) if f[2] != "1" else 15, int(f[1] == "F"), int(f[3])) for f in
                 (l.split("::") for l in (path / "users.dat").read_text().splitlines() if l)]
        return movies, ratings, users
    if (path / "ratings.csv").exists():
        with open(path / "movies.csv", newline="", encoding="utf-8") as fh:
            movies = [(int(r[0]), r[1], r[2].split("|")) for r in list(csv.reader(fh))[1:]]
        with open(path / "ratings.csv", newline="", encoding="utf-8") as fh:
            ratings = np.array([r[:3] for r in list(csv.reader(fh))[1:]], dtype=np.float64)
        ratings[:, 2] = np.clip(np.ceil(ratings[:, 2]), 1, 5)   # half stars → the platform's integer stars
        return movies, ratings, None
    raise FileNotFoundError(f"{path}: no u.data, ratings.dat or ratings.csv (ml-100k, ml-1m, ml-latest-small)")


def fit_als(u: np.ndarray, i: np.ndarray, r: np.ndarray, n_u: int, n_m: int, rng: np.random.Generator, *,
            k: int = 16, reg: float = 8.0, iters: int = 8) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Biased MF by alternating least squares → (mu, b_u, b_i, P, Q)."""
    mu = float(r.mean())
    bu, bi = np.zeros(n_u), np.zeros(n_m)
    cu, ci = np.bincount(u, minlength=n_u), np.bincount(i, minlength=n_m)
    for _ in range(4):
        bi = np.bincount(i, r - mu - bu[u], minlength=n_m) / (ci + 10)
        bu = np.bincount(u, r - mu - bi[i], minlength=n_u) / (cu + 15)
    resid = r - mu - bu[u] - bi[i]
    P = rng.normal(0, 0.1, (n_u, k))
    Q = rng.normal(0, 0.1, (n_m, k))
    by_user, by_item = np.argsort(u, kind="stable"), np.argsort(i, kind="stable")
    u_starts, i_starts = np.r_[0, np.cumsum(cu)], np.r_[0, np.cumsum(ci)]
    eye = np.eye(k)
    for _ in range(iters):
        for rows, order, starts, X, Y, other in ((n_u, by_user, u_starts, P, Q, i), (n_m, by_item, i_starts, Q, P, u)):
            for row in range(rows):
                sel = order[starts[row]:starts[row + 1]]
                if len(sel) == 0:
                    continue
                Ys = Y[other[sel]]
                X[row] = np.linalg.solve(Ys.T @ Ys + reg * eye, Ys.T @ resid[sel])
    return mu, bu, bi, P, Q


def load_movielens(options: SimOptions) -> World:
    path = Path(options.movielens)
    rng = np.random.default_rng((options.seed, 11))
    movies, ratings, users = _read_movielens(path)
    titles, years = zip(*(split_title(raw) for _, raw, _ in movies))
    slugs, seen = [], set()
    for title, year, (mid, _, _) in zip(titles, years, movies):
        slug = slugify(title, year or None)
        slugs.append(slug if slug not in seen else slugify(f"{title} {mid}", year or None))
        seen.add(slugs[-1])
    movie_index = {mid: k for k, (mid, _, _) in enumerate(movies)}
    user_ids = np.array(sorted({int(x) for x in ratings[:, 0]} | {x[0] for x in users or []}), dtype=np.int64)
    lookup = {int(x): k for k, x in enumerate(user_ids)}
    keep = np.array([int(m) in movie_index for m in ratings[:, 1]])
    ratings = ratings[keep]
    u = np.array([lookup[int(x)] for x in ratings[:, 0]])
    i = np.array([movie_index[int(x)] for x in ratings[:, 1]])
    n_u, n_m = len(user_ids), len(movies)
    genres = _genre_matrix([g for _, _, g in movies])
    counts = np.bincount(i, minlength=n_m).astype(np.float64)
    year = np.array(years, dtype=np.int16)
    adult = np.zeros(n_m, dtype=bool)
    catalog = Catalog(
        ids=slugs, titles=list(titles), year=year, genres=genres, adult=adult,
        cert=certification(genres, adult, rng), runtime=rng.normal(104, 18, n_m).clip(60, 200).astype(np.int16),
        weight=counts + 0.5, vote_average=np.zeros(n_m, np.float32), vote_count=counts.astype(np.int32),
        language=np.zeros(n_m, np.int8), budget=np.zeros(n_m, np.int64), cost=licence_cost(counts + 0.5, year))
    n = n_u
    if users:
        demo = {uid: (age, gender, occ) for uid, age, gender, occ in users}
        age = np.array([demo.get(int(x), (30, 0, 0))[0] for x in user_ids], dtype=np.int16)
        gender = np.array([demo.get(int(x), (30, 0, 0))[1] for x in user_ids], dtype=np.int8)
        occupation = np.array([demo.get(int(x), (30, 0, 0))[2] for x in user_ids], dtype=np.int8)
    else:
        age, gender = synthetic_ages(n, rng, options.minor_share), (rng.random(n) < 0.2).astype(np.int8)
        occupation = rng.integers(0, len(OCCUPATIONS), n).astype(np.int8)
    population = Population(
        ids=user_ids, age=age, gender=gender, occupation=occupation,
        activity=np.bincount(u, minlength=n).astype(np.float64) + 1.0, created=np.ones(n, dtype=bool),
        describes=np.zeros(n, dtype=bool), group=np.zeros(n, dtype=np.int8), lookup=lookup)
    mu, bu, bi, P, Q = fit_als(u, i, ratings[:, 2], n_u, n_m, rng, k=options.factors)
    genres_norm = genres / np.sqrt(np.maximum(genres.sum(1, keepdims=True), 1))
    embed = np.linalg.lstsq(genres_norm, Q, rcond=None)[0].astype(np.float32)
    catalog.vote_average[:] = np.clip(2 * (mu + bi), 1, 10)
    taste = Taste(mu=mu, user_bias=bu.astype(np.float32), item_bias=bi.astype(np.float32),
                  P=P.astype(np.float32), Q=Q.astype(np.float32), age_slope=np.zeros(n_m, np.float32),
                  gender_slope=np.zeros(n_m, np.float32), age_z=np.zeros(n, np.float32),
                  gender_z=np.zeros(n, np.float32), genre_embed=embed,
                  unsafe_for_minor=unsafe_for_minors(catalog), minor=age < 18)
    return World(catalog, population, taste, seed=options.seed, source=f"movielens:{path.name}")


def _num(value: object, default: float = 0.0) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def load_course(options: SimOptions) -> World:
    """``--catalog movies.jsonl [--users-file users.jsonl]``: the real objects, synthetic taste."""
    rng = np.random.default_rng((options.seed, 13))
    raws, objs, seen = [], [], set()
    for line in Path(options.catalog).read_bytes().splitlines():
        if not line.strip():
            continue
        obj = orjson.loads(line)
        if obj.get("id") in seen or not isinstance(obj.get("id"), str):
            continue
        seen.add(obj["id"])
        raws.append(line.decode("utf-8"))
        objs.append(obj)
    year = np.array([int(str(o.get("release_date", ""))[:4]) if str(o.get("release_date", ""))[:4].isdigit() else 0
                     for o in objs], dtype=np.int16)
    genres = _genre_matrix([[g.get("name", "") for g in o.get("genres") or [] if isinstance(g, dict)] for o in objs])
    adult = np.array([str(o.get("adult", "False")).lower() == "true" for o in objs])
    weight = np.array([max(_num(o.get("popularity"), 0.1), 0.01) for o in objs])
    langs = [str(o.get("original_language", "en")) for o in objs]
    catalog = Catalog(
        ids=[o["id"] for o in objs], titles=[str(o.get("title", o["id"])) for o in objs], year=year, genres=genres,
        adult=adult, cert=certification(genres, adult, rng),
        runtime=np.array([int(_num(o.get("runtime"), 90)) or 90 for o in objs], dtype=np.int16), weight=weight,
        vote_average=np.array([_num(o.get("vote_average"), 6.0) for o in objs], dtype=np.float32),
        vote_count=np.array([int(_num(o.get("vote_count"))) for o in objs], dtype=np.int32),
        language=np.array([LANGS.index(x) if x in LANGS else 0 for x in langs], dtype=np.int8),
        budget=np.array([int(_num(o.get("budget"))) for o in objs], dtype=np.int64),
        cost=licence_cost(weight, year), raw_json=raws)
    population = _course_users(options, rng) if options.users_file else None
    if population is None:
        population = synthetic_population(options.users, rng, existing_share=options.existing_share,
                                          describe_share=options.describe_share, minor_share=options.minor_share)
    votes = catalog.vote_average.copy()
    taste = synthetic_taste(catalog, population, rng, factors=options.factors)
    catalog.vote_average[:] = votes
    z = (votes - votes.mean()) / max(float(votes.std()), 1e-6)
    taste.item_bias = (0.5 * taste.item_bias + 0.3 * z).astype(np.float32)
    return World(catalog, population, taste, seed=options.seed, source="course-json")


def _course_users(options: SimOptions, rng: np.random.Generator) -> Population:
    rows = [orjson.loads(l) for l in Path(options.users_file).read_bytes().splitlines() if l.strip()]
    rows = list({int(r["user_id"]): r for r in rows if "user_id" in r}.values())
    n = len(rows)
    ids = np.array([int(r["user_id"]) for r in rows], dtype=np.int64)
    occ = {name: k for k, name in enumerate(OCCUPATIONS)}
    return Population(
        ids=ids, age=np.array([int(_num(r.get("age"), 30)) for r in rows], dtype=np.int16),
        gender=np.array([int(r.get("gender") == "F") for r in rows], dtype=np.int8),
        occupation=np.array([occ.get(str(r.get("occupation")), 0) for r in rows], dtype=np.int8),
        activity=np.exp(1.3 * rng.standard_normal(n)), created=np.ones(n, dtype=bool),
        describes=np.zeros(n, dtype=bool), group=np.zeros(n, dtype=np.int8),
        lookup={int(x): k for k, x in enumerate(ids)})
