"""``recstream audit fairness|feedback|security|safety`` (issue #14).

Reads our telemetry from Kafka with plain consumers (never a worker's RocksDB):
the recommendations topic (every answer), the movielog, the user_history
changelog (age, gender from the user API), the movie-metadata topic (guardrail
flags the movie API's objects gave) and the suspects topic; then prints the
markdown report of :mod:`recstream.ops.audit_report` and, with ``--out``,
writes it to a file.  Everything is read into memory: an audit of a week of
the course stream is a few hundred MB.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click
import faust
import orjson
from faust.cli import argument, option

from recstream.ops.audit_report import EARLY_MINUTES, REPORTS, Telemetry
from recstream.ops.fit import Progress
from recstream.ops.provenance import scan
from recstream.ops.suspects import read_suspects
from recstream.ops.training_data import read_changelog
from recstream.parsing import parse_raw
from recstream.records import AccountCreated, Rating, RecommendationOutcome, WatchMinute
from recstream.settings import Settings
from recstream.topics import topic_names


def add_line(t: Telemetry, raw: bytes, settings: Settings, started: set) -> None:
    rec = parse_raw(raw, rating_min=settings.rating_min, rating_max=settings.rating_max,
                    max_user_id=settings.max_user_id, max_minute=settings.max_minute)
    if isinstance(rec, WatchMinute):
        if (rec.user, rec.movie) not in started:  # the first minute seen starts the watch
            started.add((rec.user, rec.movie))
            t.watches.append((rec.time, rec.user, rec.movie))
        if rec.minute < EARLY_MINUTES and rec.user in t.new_accounts:
            t.early_minutes.append((rec.time, rec.user, rec.movie, rec.minute))
    elif isinstance(rec, Rating):
        t.ratings.append((rec.time, rec.user, rec.movie, rec.rating))
    elif isinstance(rec, AccountCreated):
        t.accounts.append((rec.time, rec.user))
        t.new_accounts.add(rec.user)
    elif isinstance(rec, RecommendationOutcome) and rec.status == 200 and rec.movies:
        t.shown.append((rec.time, rec.user, list(rec.movies)))


def add_served(t: Telemetry, raw: bytes) -> None:
    try:
        r = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    if isinstance(r, dict) and isinstance(r.get("user"), int) and r["user"] >= 0:
        t.served.append((float(r.get("time") or 0.0), r["user"], list(r.get("movies") or [])))


def add_flags(t: Telemetry, raw: bytes) -> None:
    try:
        meta = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    if isinstance(meta, dict) and isinstance(meta.get("id"), str):
        t.flags[meta["id"]] = (meta.get("safe_for_all") is True,
                               meta.get("safe_for_minors") is True)


async def collect(settings: Settings, progress: Progress) -> Telemetry:
    names = topic_names(settings)
    t = Telemetry()
    progress.stage("reading answers, movielog, metadata")
    for _, _, raw in await scan(settings, names["recommendations"], lambda k, v: True):
        add_served(t, raw)
    started: set = set()
    for _, _, raw in await scan(settings, names["movielog"], lambda k, v: True):
        add_line(t, raw, settings, started)
    for _, _, raw in await scan(settings, names["movie_metadata"], lambda k, v: True):
        add_flags(t, raw)
    progress.stage("reading demographics and suspects")
    histories, _ = await read_changelog(settings, progress)
    t.demographics = {u: (h.age, h.gender) for u, h in histories.items()
                      if h.age is not None or h.gender}
    t.suspects, _ = await read_suspects(settings, progress)
    return t.sort()


def read_groups(path: Path) -> dict[int, str]:
    """``user,label`` lines (a header or bad line is skipped)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        user, _, label = line.partition(",")
        if user.strip().isdigit() and label.strip():
            out[int(user)] = label.strip()
    return out


def register(app: faust.App, s: Settings) -> None:
    @app.command(
        argument("kind", type=click.Choice(sorted(REPORTS))),
        option("--out", type=click.Path(dir_okay=False), default=None,
               help="also write the markdown report to this file"),
        option("--groups", type=click.Path(exists=True, dir_okay=False), default=None,
               help="CSV of user,label: an extra fairness attribute"),
        name="audit",
    )
    async def audit(self, kind: str, out: Optional[str], groups: Optional[str]) -> None:
        """Fairness, feedback-loop, security or safety report from our telemetry topics."""
        telemetry = await collect(s, Progress())
        if groups:
            telemetry.groups = read_groups(Path(groups))
        report = REPORTS[kind](telemetry)
        print(report, flush=True)
        if out:
            Path(out).write_text(report + "\n", encoding="utf-8")
            print(f"written to {out}", file=sys.stderr)
