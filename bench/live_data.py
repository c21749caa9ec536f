"""Data, split and scoring shared by the live-quality benchmarks (bench/live_*.py).

Protocol (issue #10): each user's ratings in time order; the earliest ``train_fraction``
(0.8) train, the rest test; relevant = test ratings >= 4 stars (the original value, so
ml-latest-small's half stars are not rounded into relevance).  Hyperparameters are chosen
on a *validation* cut made the same way inside the training part only (its earliest
80% fit, the rest validate); the test part is read once, for the final numbers.
The training part becomes course-format lines in time order: per rating three
``GET /data/m/<slug>/<minute>.mpg`` lines then ``GET /rate/<slug>=<stars>`` (stars rounded
up to the platform's integers, as the simulator does for ml-latest-small).
"""
from __future__ import annotations

import csv
import json
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.datasets import (Interactions, from_arrays, load_ml100k, load_mlcsv,
                             load_movielog)
from models.gate import bootstrap_mean_ci
from models.metrics import catalogue_coverage, ndcg_at_k, recall_at_k

K = 20
RELEVANT = 4.0
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "movielens"


@dataclass(frozen=True)
class Split:
    train: Interactions          # items are slugs
    test: Interactions
    name: str

    def seen(self) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for u, i in zip(self.train.users.tolist(), self.train.items.tolist()):
            out.setdefault(u, set()).add(i)
        return out

    def test_users(self) -> list[int]:
        """Users with a relevant test item *and* training data (the ones the service knows)."""
        return sorted(set(self.relevant()) & set(self.train.users.tolist()))

    def relevant(self) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        keep = self.test.values >= RELEVANT
        for u, i in zip(self.test.users[keep].tolist(), self.test.items[keep].tolist()):
            out.setdefault(u, set()).add(i)
        return out


def _slug(title: str, year: int) -> str:
    from recstream.sim.realdata import split_title
    from recstream.sim.slugs import slugify
    name, parsed_year = split_title(title)
    return slugify(name, parsed_year or year)


def movie_slugs(folder: Path) -> dict[str, str]:
    """MovieLens movie id (text) → a unique course-style slug from its title."""
    raw: list[tuple[str, str]] = []
    if (folder / "u.item").exists():
        for line in (folder / "u.item").read_text(encoding="latin-1").splitlines():
            f = line.split("|")
            raw.append((f[0], f[1]))
    else:
        with open(folder / "movies.csv", newline="", encoding="utf-8") as fh:
            raw = [(r[0], r[1]) for r in list(csv.reader(fh))[1:]]
    out, used = {}, set()
    for movie, title in raw:
        slug = _slug(title, 0).strip("+") or f"movie+{movie}"
        if slug in used:
            slug = f"{slug}+{movie}"
        used.add(slug)
        out[movie] = slug
    return out


def movie_objects(folder: Path) -> dict[str, bytes]:
    """slug → a movie API object from MovieLens's own title and genres (adult: False).

    Only movies the movie API confirmed are served (issue #14), so a worker replaying
    MovieLens needs a movie API for its slugs; this is MovieLens's real metadata in the
    course format (no overview or certification: the genre rule decides for minors).
    """
    slugs, genres = movie_slugs(folder), {}
    if (folder / "u.item").exists():
        names = [ln.split("|")[0] for ln in
                 (folder / "u.genre").read_text(encoding="latin-1").splitlines() if ln.strip()]
        for line in (folder / "u.item").read_text(encoding="latin-1").splitlines():
            f = line.split("|")
            genres[f[0]] = [n for n, flag in zip(names, f[5:]) if flag == "1"], f[1]
    else:
        with open(folder / "movies.csv", newline="", encoding="utf-8") as fh:
            for r in list(csv.reader(fh))[1:]:
                genres[r[0]] = [g for g in r[2].split("|") if g != "(no genres listed)"], r[1]
    return {slug: json.dumps({"id": slug, "title": genres[m][1], "adult": "False",
                              "genres": [{"name": g} for g in genres[m][0]]}).encode()
            for m, slug in slugs.items() if m in genres}


def load(name: str, folder: Path | None = None) -> Interactions:
    """``ml-100k`` or ``ml-latest-small`` with items as slugs, or a movielog file's ratings
    (e.g. a simulator world's stream: ``recstream sim --no-kafka --out FILE``)."""
    if Path(name).is_file():
        return load_movielog(name, signal="rating")
    folder = Path(folder or DATA / name)
    data = load_ml100k(folder) if (folder / "u.data").exists() else load_mlcsv(
        folder / "ratings.csv")
    slugs = movie_slugs(folder)
    items = np.asarray([slugs[i] for i in data.items.tolist()])
    return from_arrays(data.users, items, data.values, data.timestamps)


def per_user_split(data: Interactions, train_fraction: float = 0.8, name: str = ""
                   ) -> Split:
    """Earliest ``train_fraction`` of each user's interactions train (ties: file order)."""
    order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))
    users = data.users[order]
    start = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    counts = np.diff(np.r_[start, users.size])
    rank = np.arange(users.size) - np.repeat(start, counts)
    cut = np.repeat(np.floor(counts * train_fraction).astype(np.int64), counts)
    train = np.zeros(len(data), bool)
    train[order] = rank < cut
    return Split(data.subset(train).time_ordered(), data.subset(~train).time_ordered(),
                 name or f"per-user earliest {train_fraction:.0%}")


def course_lines(train: Interactions) -> list[str]:
    """Time-ordered movielog lines: three watched minutes, then the rating, per rating."""
    epoch = dt.datetime(1970, 1, 1)
    lines = []
    for u, item, r, t in zip(train.users.tolist(), train.items.tolist(),
                             train.values.tolist(), train.timestamps.tolist()):
        stamp = (epoch + dt.timedelta(seconds=int(t))).strftime("%Y-%m-%dT%H:%M:%S")
        for minute in range(3):
            lines.append(f"{stamp},{u},GET /data/m/{item}/{minute}.mpg")
        lines.append(f"{stamp},{u},GET /rate/{item}={min(5, max(1, int(np.ceil(r))))}")
    return lines


def score_lists(lists: dict[int, list[str]], split: Split, *, resamples: int = 2000,
                seed: int = 0) -> dict[str, object]:
    """Recall@20 / NDCG@20 (+ bootstrap CI95 over users), coverage, already-seen served."""
    relevant, seen = split.relevant(), split.seen()
    users = [u for u in relevant if u in lists]
    recall = np.array([recall_at_k(lists[u], relevant[u], K) for u in users])
    ndcg = np.array([ndcg_at_k(lists[u], relevant[u], K) for u in users])
    catalogue = set(split.train.items.tolist())
    seen_served = sum(len(set(items[:K]) & seen.get(u, set())) for u, items in lists.items())
    return {"users": len(users), "recall": float(recall.mean()) if users else float("nan"),
            "recall_ci95": bootstrap_mean_ci(recall, resamples=resamples, seed=seed),
            "ndcg": float(ndcg.mean()) if users else float("nan"),
            "ndcg_ci95": bootstrap_mean_ci(ndcg, resamples=resamples, seed=seed),
            "coverage": catalogue_coverage([v[:K] for v in lists.values()], catalogue),
            "seen_served": int(seen_served),
            "per_user_recall": dict(zip(users, recall.tolist())),
            "per_user_ndcg": dict(zip(users, ndcg.tolist()))}


def table(rows: list[tuple[str, dict]], baseline: str = "popularity") -> str:
    """A Markdown table of scored lists, with each row's recall relative to the baseline."""
    base = dict(rows).get(baseline, {}).get("recall")
    out = ["| lists | users | Recall@20 (CI95) | NDCG@20 (CI95) | x popularity | coverage "
           "| already-seen served |", "|---|---|---|---|---|---|---|"]
    for name, s in rows:
        rel = f"{s['recall'] / base:.2f}x" if base else "-"
        out.append(f"| {name} | {s['users']} | {s['recall']:.4f} ({s['recall_ci95'][0]:.4f}.."
                   f"{s['recall_ci95'][1]:.4f}) | {s['ndcg']:.4f} ({s['ndcg_ci95'][0]:.4f}.."
                   f"{s['ndcg_ci95'][1]:.4f}) | {rel} | {s['coverage']:.3f} "
                   f"| {s['seen_served']} |")
    return "\n".join(out)
