"""The canary controller's feed on real brokers: each look reads only what is new (#13 phase 4).

Phase 3's controller re-read both topics from the beginning at every look and died on the
scan deadline of a 300k-line movielog; the feed keeps its consumers' positions."""
from __future__ import annotations

import asyncio
import json
import uuid

from recstream.ops.experiment_feed import CanaryFeed, Tail
from recstream.settings import Settings
from tests.integration.conftest import produce

T0 = "2026-12-01T04:00:00"


def answer(user: int, arm: str, movies: list[str]) -> str:
    return json.dumps({"user": user, "arm": arm, "movies": movies, "source": "personal",
                       "time": 1.0, "latency_ms": 1.0})


def test_a_look_reads_what_is_new_and_nothing_twice(broker):
    app = f"feed-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_mapping({"broker": broker, "app_id": app,
                                      "topic": f"movielog-{app}"})
    log, recs = settings.topic, f"{app}-recommendations"
    produce(broker, log, [f"{T0},7,GET /data/m/alien+1979/{m}.mpg" for m in range(3)] +
            [f"{T0},8,GET /rate/alien+1979=4", "garbage line"])
    produce(broker, recs, [answer(7, "cn:bad", ["alien+1979"]), answer(8, "other:x", ["up+2009"]),
                           answer(9, "other:y,cn:control", ["up+2009"])])

    async def until(feed, done) -> None:  # a look may leave records for the next one
        for _ in range(20):
            await feed.look()
            if done():
                return
            await asyncio.sleep(0.5)

    def minutes(feed) -> int:
        return sum(len(v) for v in feed.minutes.values())

    async def run() -> tuple:
        feed = CanaryFeed(settings, "cn", quality=True)
        try:
            await until(feed, lambda: len(feed.answers) >= 2 and minutes(feed) >= 3)
            first = ([(a["user"], a["arm"]) for a in feed.answers], minutes(feed))
            await asyncio.to_thread(produce, broker, log, [
                f"{T0},9,GET /data/m/up+2009/0.mpg",
                f"{T0},7,recommendation request x, status 200, result: alien+1979, 12 ms"])
            await asyncio.to_thread(produce, broker, recs, [answer(10, "cn:bad", ["up+2009"])])
            await until(feed, lambda: len(feed.answers) >= 3 and minutes(feed) >= 4 and feed.outcomes)
            second = ([(a["user"], a["arm"]) for a in feed.answers], minutes(feed),
                      dict(feed.outcomes))
            watches = feed.watches({7, 9})
            for _ in range(3):  # nothing new: nothing added, however often it looks
                await feed.look()
            third = (len(feed.answers), minutes(feed))
            return first, second, watches, third
        finally:
            await feed.stop()

    first, second, watches, third = asyncio.run(run())
    assert sorted(first[0]) == [(7, "bad"), (9, "control")] and first[1] == 3
    assert sorted(second[0]) == [(7, "bad"), (9, "control"), (10, "bad")] and second[1] == 4
    assert list(second[2]) == [(7, ("alien+1979",))]
    assert sorted((w.user, w.movie) for w in watches) == [(7, "alien+1979"), (9, "up+2009")]
    assert third == (3, 4)


def test_a_topic_that_does_not_exist_yet_reads_empty_then_its_records(broker):
    app = f"feed-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_mapping({"broker": broker, "app_id": app})
    topic = f"{app}-late"

    async def run() -> tuple[list, list]:
        tail = Tail(settings, topic, lambda k, v: True)
        try:
            before = await tail.read(timeout_s=5)
            await asyncio.to_thread(produce, broker, topic, ["a", "b"])
            return before, await tail.read(timeout_s=30)
        finally:
            await tail.stop()

    before, after = asyncio.run(run())
    assert before == [] and sorted(after) == [b"a", b"b"]
