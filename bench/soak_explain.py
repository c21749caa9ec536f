"""Where each discrepancy of the soak's check came from, read back from the broker.

``bench/soak_check.py`` says *that* a rating was lost, a rejected line is missing from the
quarantine or a movie counter reads low; this says *where*: the source line of each
(partition, offset, when it was produced), and which hop dropped it —

* a lost rating: did any ``user_history`` changelog record of the user ever hold it
  (``overwritten``: a later, staler snapshot replaced it) or none (``never_written``)?
* a low movie counter: which viewers' (or raters') first lines have no mark in any
  ``movie-updates`` message (``not_sent``: the user writer never told the movie's owner) or
  have one (``sent_not_counted``: the owner saw it and the count still misses it), and
  how the counter moved in the ``movie_stats`` changelog (a decrease is a stale overwrite);
* an unquarantined reject: its lines grouped by partition and produce time.

    RECSTREAM_BROKER=kafka://127.0.0.1:24000 RECSTREAM_APP_ID=... RECSTREAM_TOPIC=... \\
        .venv/bin/python bench/soak_explain.py RESULT.json   # a run's saved result
"""
from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.soak_check import check  # noqa: E402
from recstream.ops.training_data import _read_topic  # noqa: E402
from recstream.parsing import parse_raw  # noqa: E402
from recstream.records import Rating, WatchMinute  # noqa: E402
from recstream.settings import Settings  # noqa: E402
from tables.codecs import decode_history, decode_movie_stats  # noqa: E402


async def explain(settings: Settings, detail: dict[str, Any]) -> dict[str, Any]:
    """Per discrepancy in ``detail`` (soak_check's report["detail"]): its source and hop."""
    s = settings
    lost = {(int(u), m) for u, m in detail.get("ratings_lost", [])}
    counters = {(kind, movie): (got, want) for kind, movie, got, want
                in detail.get("movie_counters_wrong", [])}
    unq = {(int(p), int(o)) for p, o in detail.get("rejected_not_quarantined", [])}
    movies = {movie for _, movie in counters}
    lines: dict[tuple[int, str], list] = defaultdict(list)  # (user, movie) -> [kind, p, o, ts]
    unq_at: list[tuple[int, int, int]] = []

    def on_line(r) -> None:
        if (r.partition, r.offset) in unq:
            unq_at.append((r.partition, r.offset, r.timestamp))
        parsed = parse_raw(r.value or b"", rating_min=s.rating_min, rating_max=s.rating_max,
                           max_user_id=s.max_user_id, max_minute=s.max_minute)
        if isinstance(parsed, (Rating, WatchMinute)) and (
                parsed.movie in movies or (parsed.user, parsed.movie) in lost):
            kind = "rating" if isinstance(parsed, Rating) else "watch"
            lines[(parsed.user, parsed.movie)].append([kind, r.partition, r.offset, r.timestamp])

    await _read_topic(s, s.topic, on_line, None)
    history_versions: dict[int, list] = defaultdict(list)
    users = {u for u, _ in lost}

    def on_history(r) -> None:
        if r.key and r.key.isdigit() and int(r.key) in users:
            h = decode_history(r.value) if r.value else None
            history_versions[int(r.key)].append(
                (r.partition, r.offset, r.timestamp, {m for m in (h.ratings if h else {})}))

    if users:
        await _read_topic(s, f"{s.app_id}-user_history-changelog", on_history, None)
    sent: dict[str, set] = defaultdict(set)  # movie -> marks [source, offset] seen
    stats_versions: dict[str, list] = defaultdict(list)

    def on_update(r) -> None:
        value = orjson.loads(r.value) if r.value else {}
        if value.get("movie") in movies:
            for mark in (value.get("play_marks") or []) + (value.get("rating_marks") or []):
                sent[value["movie"]].add((mark[0], int(mark[1])))

    def on_stats(r) -> None:
        movie = (r.key or b"").decode(errors="replace")
        if movie in movies:
            st = decode_movie_stats(r.value)
            stats_versions[movie].append((r.offset, r.timestamp, st.plays, st.ratings))

    if movies:
        await _read_topic(s, f"{s.app_id}-movie-updates", on_update, None)
        await _read_topic(s, f"{s.app_id}-movie_stats-changelog", on_stats, None)
    return {"ratings_lost": [_rating(u, m, lines, history_versions) for u, m in sorted(lost)],
            "movie_counters_wrong": [_counter(kind, movie, got, want, lines, sent.get(movie, set()),
                                              stats_versions.get(movie, []), s.topic)
                                     for (kind, movie), (got, want) in sorted(counters.items())],
            "rejected_not_quarantined": _ranges(unq_at)}


def _rating(user: int, movie: str, lines: dict, versions: dict) -> dict:
    held = [v for v in versions.get(user, []) if movie in v[3]]
    last = versions[user][-1][:3] if versions.get(user) else None
    return {"user": user, "movie": movie,
            "lines": [l for l in lines.get((user, movie), []) if l[0] == "rating"],
            "changelog_records": len(versions.get(user, [])),
            "verdict": "overwritten" if held else "never_written",
            "first_holding": held[0][:3] if held else None, "last_record": last}


def _counter(kind: str, movie: str, got: int, want: int, lines: dict, marks: set,
             versions: list, topic: str) -> dict:
    sources = {(f"{topic}/{p}", o) for (u, m), ls in lines.items() if m == movie
               for _k, p, o, _t in ls}
    users = {}
    for (user, m), ls in lines.items():
        if m != movie:
            continue
        mine = [l for l in ls if l[0] == ("watch" if kind == "plays" else "rating")]
        if not mine:
            continue
        hit = any((f"{topic}/{p}", o) in marks for _k, p, o, _t in mine)
        users[user] = {"first": mine[0][1:], "marked": hit}
    drops = [(a[0], a[2], b[2]) for a, b in zip(versions, versions[1:]) if b[2] < a[2]]
    return {"kind": kind, "movie": movie, "held": got, "expected": want,
            "not_sent": sorted((u, v["first"]) for u, v in users.items() if not v["marked"]),
            "marks_from_other_sources": len(marks - sources),
            "changelog_versions": len(versions), "decreases": drops[:10],
            "last_versions": versions[-3:]}


def _ranges(at: list[tuple[int, int, int]]) -> list[dict]:
    by_p: dict[int, list] = defaultdict(list)
    for p, o, t in at:
        by_p[p].append((o, t))
    return [{"partition": p, "count": len(v), "offsets": [min(v)[0], max(v)[0]],
             "produced_ms": [min(t for _, t in v), max(t for _, t in v)]}
            for p, v in sorted(by_p.items())]


if __name__ == "__main__":
    settings = Settings.from_env()
    if sys.argv[1:]:
        report = orjson.loads(Path(sys.argv[1]).read_bytes())
        report = report.get("accounting", report)
        if "detail" not in report:  # a result from before the detail: check again
            report = asyncio.run(check(settings, None))
    else:
        report = asyncio.run(check(settings, None))
    out = asyncio.run(explain(settings, report["detail"]))
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
