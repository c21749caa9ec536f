"""Issue #10 on real brokers: a user with 1,200 watched movies never gets one back.

The bounded history keeps 200 entries; the exclusion set is the complete per-user set,
persisted in the same changelog record.  Other users watch the same movies and more, so
the popular and the learnt rankings both favour what the heavy user already saw.
"""
from __future__ import annotations

import datetime
import json

from models.guardrails import safe_for_minors
from tests.integration.conftest import Worker, produce, wait_for
from tests.integration.movie_api import MovieApi, load_objects

HEAVY, WATCHED, EXTRA = 4242, 1_200, 60


def lines() -> list[str]:
    t0 = datetime.datetime(2025, 2, 1, 0, 0, 0)
    out: list[str] = []
    seen = [f"seen+{i}" for i in range(WATCHED)]
    for i, movie in enumerate(seen):
        stamp = (t0 + datetime.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S")
        out.append(f"{stamp},{HEAVY},GET /data/m/{movie}/0.mpg")
    for user in range(1, 31):  # others: the heavy user's movies first, then new ones
        for j, movie in enumerate(seen[:40] + [f"new+{k}" for k in range(EXTRA)]):
            stamp = (t0 + datetime.timedelta(hours=1, seconds=user * 100 + j)
                     ).strftime("%Y-%m-%dT%H:%M:%S")
            out.append(f"{stamp},{user},GET /data/m/{movie}/0.mpg")
            if j % 5 == 0:
                out.append(f"{stamp},{user},GET /rate/{movie}=5")
    out.append(f"2025-02-01T03:00:00,{HEAVY},GET /rate/seen+0=5")  # the heavy user rates too
    return out


def movie_objects() -> dict[str, bytes]:
    """A real course movie object (safe for minors) under each of this test's slugs:
    only movies the movie API confirmed are served (issue #14)."""
    template = next(obj for obj in map(json.loads, load_objects().values())
                    if safe_for_minors(obj))  # the heavy user's age is unknown
    slugs = [f"seen+{i}" for i in range(WATCHED)] + [f"new+{k}" for k in range(EXTRA)]
    return {slug: json.dumps(dict(template, id=slug, title=slug)).encode() for slug in slugs}


def test_a_user_with_1200_watched_movies_is_never_served_one(make_worker, tmp_path):
    api = MovieApi(movie_objects())
    worker = Worker(make_worker.broker, make_worker.app_id, make_worker.topic,
                    tmp_path / "own-data", tmp_path / "own-worker.log", api_url=api.url).start()
    try:
        _check_heavy_user(make_worker, worker)
    finally:
        worker.stop()
        api.close()


def _check_heavy_user(make_worker, worker) -> None:
    sent = lines()
    assert produce(make_worker.broker, make_worker.topic, sent) == len(sent)
    wait_for(lambda: worker.metric("recstream_lines_total") >= len(sent), 180,
             "every line to be accounted for")
    assert worker.metric("recstream_lines_total") == len(sent)
    watched = {f"seen+{i}" for i in range(WATCHED)}
    wait_for(lambda: worker.user(HEAVY)["has_vector"], 60, "the heavy user's vector")
    # The item broadcast reaches the in-memory index a little after the user tables.
    wait_for(lambda: worker.get(f"/recommend/{HEAVY}")[1].count(b",") >= 19, 60,
             "a full answer for the heavy user")
    state = worker.user(HEAVY)
    assert state["movies"] == WATCHED and len(state["watches"]) == 200, \
        (state["movies"], len(state["watches"]))
    for _ in range(3):  # asked repeatedly: the answer is recomputed from the tables
        status, body = worker.get(f"/recommend/{HEAVY}")
        assert status == 200
        served = body.decode().split(",")
        assert served and not set(served) & watched, sorted(set(served) & watched)
        assert set(served) <= {f"new+{k}" for k in range(EXTRA)}
