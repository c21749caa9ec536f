"""Loaders for offline evaluation: MovieLens files and raw ``movielog`` lines.

Every loader returns a :class:`Interactions` table (user, item, value,
timestamp) with items as text, so MovieLens ids and movie slugs flow through
the same code.  ``movielog`` is parsed minimally here (no ``recstream``
import, to keep ``models/`` pure); malformed lines are counted and skipped.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Interactions:
    users: np.ndarray       # int64
    items: np.ndarray       # unicode
    values: np.ndarray      # float64: rating or implicit weight
    timestamps: np.ndarray  # float64 seconds since the epoch
    skipped: int = 0        # malformed input lines

    def __len__(self) -> int:
        return int(self.users.size)

    def subset(self, mask: np.ndarray) -> "Interactions":
        return Interactions(self.users[mask], self.items[mask], self.values[mask],
                            self.timestamps[mask])

    def time_ordered(self) -> "Interactions":
        return self.subset(np.argsort(self.timestamps, kind="stable"))


@dataclass(frozen=True)
class UserInfo:
    """Demographics by user id (only ml-100k ships them)."""
    age: dict[int, int] = field(default_factory=dict)
    gender: dict[int, str] = field(default_factory=dict)


def from_arrays(users, items, values, timestamps=None) -> Interactions:
    users = np.asarray(users, dtype=np.int64)
    ts = np.zeros(users.size) if timestamps is None else np.asarray(timestamps, np.float64)
    items = np.asarray(items)
    items = items.astype(np.int64).astype(str) if items.dtype.kind == "f" else items.astype(str)
    return Interactions(users, items, np.asarray(values, np.float64), ts)


def load_ml100k(path: str | Path) -> Interactions:
    """A tab-separated ``u.data`` / ``uN.base`` / ``uN.test`` file (or the folder: u.data)."""
    path = Path(path)
    if path.is_dir():
        path = path / "u.data"
    raw = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    return from_arrays(raw[:, 0], raw[:, 1].astype(str), raw[:, 2], raw[:, 3])


def load_ml100k_users(folder: str | Path) -> UserInfo:
    """``u.user``: ``id|age|gender|occupation|zip``."""
    info = UserInfo()
    user_file = Path(folder) / "u.user"
    if not user_file.exists():
        return info
    for line in user_file.read_text(encoding="latin-1").splitlines():
        parts = line.split("|")
        if len(parts) >= 3 and parts[0].isdigit():
            info.age[int(parts[0])] = int(parts[1])
            info.gender[int(parts[0])] = parts[2]
    return info


def load_mlcsv(path: str | Path) -> Interactions:
    """CSV with header ``userId,movieId,rating,timestamp`` (ml-latest, ml-25m...)."""
    users, items, values, ts, skipped = [], [], [], [], 0
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                users.append(int(row["userId"]))
                items.append(row["movieId"])
                values.append(float(row["rating"]))
                ts.append(float(row["timestamp"]))
            except (KeyError, TypeError, ValueError):
                skipped += 1
    table = from_arrays(users, np.asarray(items, dtype=str), values, ts)
    return Interactions(table.users, table.items, table.values, table.timestamps, skipped)


def load_movielog(path: str | Path, signal: str = "rating") -> Interactions:
    """``movielog`` lines: ``signal='rating'`` keeps ``/rate`` lines (value = stars);
    ``signal='watch'`` keeps watch minutes summed per (user, movie) at first sight.

    Redelivered duplicates are dropped (same line seen twice).
    """
    if signal not in ("rating", "watch"):
        raise ValueError("signal must be 'rating' or 'watch'")
    seen: set[str] = set()
    rows: dict[tuple[int, str], list[float]] = {}
    skipped = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if not line or line in seen:
                continue
            seen.add(line)
            parsed = _parse_movielog(line, signal)
            if parsed is None:
                skipped += 1
                continue
            user, movie, value, ts = parsed
            if value is None:
                continue
            key = (user, movie)
            if signal == "watch" and key in rows:
                rows[key][0] += 1.0
                rows[key][1] = min(rows[key][1], ts)
            else:
                rows[key] = [value, ts]  # the latest rating wins
    keys = list(rows)
    table = from_arrays([k[0] for k in keys], np.asarray([k[1] for k in keys], dtype=str),
                        [rows[k][0] for k in keys], [rows[k][1] for k in keys])
    return Interactions(table.users, table.items, table.values, table.timestamps, skipped)


def _parse_movielog(line: str, signal: str):
    """``(user, movie, value|None, ts)``, value None for lines of the other kind; None if bad."""
    parts = line.split(",", 2)
    if len(parts) < 3:
        return None
    try:
        ts = datetime.fromisoformat(parts[0]).replace(tzinfo=timezone.utc).timestamp()
        user = int(parts[1])
    except ValueError:
        return None
    if user < 0:
        return None
    request = parts[2]
    if request.startswith("GET /rate/"):
        movie, _, stars = request[len("GET /rate/"):].rpartition("=")
        try:
            rating = float(int(stars))
        except ValueError:
            return None
        return (user, movie, rating if signal == "rating" else None, ts) if movie else None
    if request.startswith("GET /data/m/"):
        movie = request[len("GET /data/m/"):].split("/", 1)[0]
        return (user, movie, 1.0 if signal == "watch" else None, ts) if movie else None
    return (user, "", None, ts)


def planted_ratings(n_users: int, n_items: int, n_ratings: int, *, rank: int = 8,
                    noise: float = 0.5, seed: int = 0) -> Interactions:
    """Synthetic ratings from a known low-rank model (known-answer tests, timing).

    ``r = clip(round(3.5 + b_u + b_i + p_u . q_i + noise), 1, 5)`` with
    Zipf-like item popularity and user activity, like MovieLens; unique pairs.
    """
    rng = np.random.default_rng(seed)
    P = rng.normal(0, 1 / np.sqrt(rank), (n_users, rank))
    Q = rng.normal(0, 1, (n_items, rank))
    b_u, b_i = rng.normal(0, 0.3, n_users), rng.normal(0, 0.4, n_items)
    user_w = rng.pareto(1.5, n_users) + 1
    item_w = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pairs = np.zeros(0, np.int64)
    while pairs.size < n_ratings:
        need = int((n_ratings - pairs.size) * 1.3) + 16
        u = rng.choice(n_users, need, p=user_w / user_w.sum())
        i = rng.choice(n_items, need, p=item_w / item_w.sum())
        pairs = np.unique(np.r_[pairs, u * n_items + i])
    pairs = rng.permutation(pairs)[:n_ratings]
    u, i = pairs // n_items, pairs % n_items
    clean = 3.5 + b_u[u] + b_i[i] + np.einsum("ij,ij->i", P[u], Q[i])
    r = np.clip(np.round(clean + rng.normal(0, noise, u.size)), 1, 5)
    ts = rng.uniform(8.8e8, 9.8e8, u.size)
    return from_arrays(u, i.astype(str), r, ts)
