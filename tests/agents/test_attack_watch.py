"""Live detectors (issue #14) on constructed telemetry, through the app's own parts."""
from __future__ import annotations

import orjson

from agents.attack_watch import AlarmBlock, ScrapingWatch, SybilWatch, WatchedWriter
from models.detectors import ScrapingDetector, SybilDetector
from recstream.ops.suspects import exclude, parse_suspect
from recstream.records import AccountCreated, Rating, RecommendationOutcome, WatchMinute
from tables.codecs import UserHistory, user_key
from tests.wiring import user_writer

PUSHED, HIT = "pushed+movie+2024", "big+hit+2024"


def wave(t0: float, first_user: int, n: int, movie: str, *, gap_s: float, minutes: int):
    """n young accounts created gap_s apart, each watching `minutes` of movie and rating 5."""
    out = []
    for i in range(n):
        user, t = first_user + i, t0 + i * gap_s
        out.append(AccountCreated(time=t, user=user))
        out += [WatchMinute(time=t + 1 + m, user=user, movie=movie, minute=m)
                for m in range(minutes)]
        out.append(Rating(time=t + minutes + 2, user=user, movie=movie, rating=5))
    return out


async def test_a_sybil_wave_is_suspected_published_and_counted_honest_fans_are_not(
        rt, recorder, make_event):
    watch = SybilWatch(detector=SybilDetector(min_accounts=10), producer=rt.producer,
                       topic=rt.topics.suspects, metrics=rt.metrics)
    writer = WatchedWriter(user_writer(rt), watch)
    # 40 honest new users who arrive an hour apart each and watch the hit before rating it.
    honest = wave(0.0, 1000, 40, HIT, gap_s=900.0, minutes=30)
    sybils = wave(5000.0, 2000, 30, PUSHED, gap_s=2.0, minutes=1)
    for rec in sorted(honest + sybils, key=lambda r: r.time):
        await writer.apply([(make_event(rec, key=user_key(rec.user)), rec)])
    published = [parse_suspect(v) for k, v in recorder.on("suspects")]
    users = {u for u, _ in published}
    assert {m for _, m in published} == {PUSHED}
    assert len(users) >= 27 and users <= set(range(2000, 2030))      # recall >= 90%, no FP
    assert rt.metrics.registry.get_sample_value(
        "recstream_sybil_suspected_accounts_total") == len(users)
    assert rt.metrics.registry.get_sample_value("recstream_sybil_pushed_movies") == 1
    assert rt.user_store.peek(1000) is not None  # the writer still applied everything


def test_training_drops_the_suspects_ratings_of_the_pushed_movie_only():
    h = UserHistory()
    h.rate(PUSHED, 5, 10.0)
    h.rate(HIT, 4, 11.0)
    h.watch(PUSHED, 0, 9.0, 60)
    honest = UserHistory()
    honest.rate(PUSHED, 5, 10.0)
    out, dropped = exclude({1: h, 2: honest}, {1: {PUSHED}, 99: {PUSHED}})
    assert dropped == 1
    assert set(out[1].ratings) == {HIT} and PUSHED not in out[1].watches
    assert set(out[2].ratings) == {PUSHED}
    assert parse_suspect(orjson.dumps({"user": 3, "movie": "m"})) == (3, "m")
    for bad in (b"", b"[]", b"{", orjson.dumps({"user": True, "movie": "m"})):
        assert parse_suspect(bad) is None


def test_a_client_walking_user_ids_is_flagged_the_graders_client_is_not(rt):
    scraping = ScrapingWatch(detector=ScrapingDetector(), metrics=rt.metrics)
    t = 1_000.0
    for i in range(400):  # a scraper walking ids, never echoed in the movielog
        scraping.queue.append((t + i * 0.05, "198.51.100.9", 5000 + i))
        # the graders' client: random users, each echoed by an outcome line
        user = (i * 7919) % 100_000
        scraping.queue.append((t + i * 0.05, "10.0.0.1", user))
        scraping.outcome(t + i * 0.05 + 0.2, user)
    scraping.outcome(t + 40.0, 1)  # the movielog has been read past every request
    assert scraping.drain() == ["198.51.100.9"]
    assert scraping.drain() == []  # flagged once
    assert rt.metrics.registry.get_sample_value(
        "recstream_scraping_flagged_clients_total") == 1


async def test_outcome_lines_reach_the_scraping_detector_through_the_writer(rt, make_event):
    scraping = ScrapingWatch(detector=ScrapingDetector(), metrics=rt.metrics)
    watch = SybilWatch(detector=SybilDetector(), producer=rt.producer,
                       topic=rt.topics.suspects, metrics=rt.metrics, scraping=scraping)
    rec = RecommendationOutcome(time=50.0, user=7, server="x", status=200, movies=["a"],
                                error="", latency_ms=10)
    event = make_event(rec, key=user_key(7))
    event.message.timestamp = 1_700_000_000.5  # when the platform produced the line
    await WatchedWriter(user_writer(rt), watch).apply([(event, rec)])
    # the wall clock of the request side, not the line's own (stream) time
    assert scraping.detector.outcomes == {7: 1_700_000_000.5}


async def test_a_sped_up_stream_flags_the_scraper_but_never_the_graders(rt, make_event):
    """Outcome lines whose own times run 720x faster than the wall (a sped-up simulator)."""
    scraping = ScrapingWatch(detector=ScrapingDetector(), metrics=rt.metrics)
    watch = SybilWatch(detector=SybilDetector(), producer=rt.producer,
                       topic=rt.topics.suspects, metrics=rt.metrics, scraping=scraping)
    writer = WatchedWriter(user_writer(rt), watch)
    wall, flagged = 1_700_000_000.0, []
    for i in range(400):
        if i % 20 == 0:
            flagged += scraping.drain()  # the timer, every second of the wall
        now = wall + i * 0.05
        scraping.queue.append((now, "127.0.0.1 recstream-sim/scraper", 1 + (i * 104729) % 90_000))
        user = 1 + (i * 7919) % 100_000
        scraping.queue.append((now, "127.0.0.1 recstream-sim/platform", user))
        rec = RecommendationOutcome(time=5_000.0 + i * 36.0, user=user, server="x", status=200,
                                    movies=["a"], error="", latency_ms=3)
        event = make_event(rec, key=user_key(user))
        event.message.timestamp = now + 0.3  # produced just after our answer
        await writer.apply([(event, rec)])
    assert flagged == ["127.0.0.1 recstream-sim/scraper"]
    # the old rule (the lines' stream times beside wall-clock requests) judged every
    # graders' call unconfirmed; the scraper's random ids are not a sequential walk
    assert scraping.detector.flagged["127.0.0.1 recstream-sim/scraper"][2] == "unconfirmed"


async def test_once_suspected_the_wave_stops_moving_the_live_model(rt, make_event):
    watch = SybilWatch(detector=SybilDetector(min_accounts=10), producer=rt.producer,
                       topic=rt.topics.suspects, metrics=rt.metrics)
    writer = WatchedWriter(user_writer(rt), watch)
    sybils = wave(5000.0, 2000, 30, PUSHED, gap_s=2.0, minutes=1)
    honest = [AccountCreated(time=3000.0, user=3000)]                # a real fan, same movie,
    honest += [WatchMinute(time=5150.0 + m, user=3000, movie=PUSHED, minute=m)  # who watched
               for m in range(40)]
    honest.append(Rating(time=5200.0, user=3000, movie=PUSHED, rating=5))
    extra = [Rating(time=5200.0, user=2025, movie=HIT, rating=4)]    # a suspect's other movie
    for rec in sorted(sybils + honest + extra, key=lambda r: r.time):
        await writer.apply([(make_event(rec, key=user_key(rec.user)), rec)])
    suspected = set(watch.poisoned)
    assert len(suspected) >= 27 and 3000 not in suspected
    late = [u for u in range(2000, 2030) if u in suspected and
            u > min(suspected) + watch.detector.min_accounts]       # flagged before they rated
    assert late and all(PUSHED not in rt.user_store.peek(u).ratings for u in late)
    assert PUSHED in rt.user_store.peek(3000).ratings                # the fan is applied
    assert HIT in rt.user_store.peek(2025).ratings                   # and the suspect's other
    skipped = rt.metrics.registry.get_sample_value("recstream_sybil_skipped_events_total")
    assert skipped >= len(late)            # each rating, dropped in the batch that flagged it


async def test_a_pushed_movie_is_served_to_nobody_while_its_alarm_lasts(rt, make_event):
    items, rec = rt.items, rt.recommender
    for k, movie in enumerate([PUSHED, HIT] + [f"filler+{i}+2000" for i in range(30)]):
        items.update(movie, pop_score=100.0 - k, pop_time=5000.0)  # the pushed one on top
        items.set_flags(movie, adult=False, minors_ok=True)
    rec.observe_time(5000.0)
    rec.refresh_fallback()
    assert rec.fallback().split(",")[0] == PUSHED
    now = {"t": 5000.0}

    def rank_again() -> None:
        rt.users.invalidate_all()
        rec.refresh_fallback()
    block = AlarmBlock(items=items, clock=lambda: now["t"], hold_s=3600.0,
                       blocked=rt.metrics.sybil_blocked, on_change=rank_again)
    watch = SybilWatch(detector=SybilDetector(min_accounts=10), producer=rt.producer,
                       topic=rt.topics.suspects, metrics=rt.metrics, block=block)
    writer = WatchedWriter(user_writer(rt), watch)
    for r in wave(5000.0, 2000, 20, PUSHED, gap_s=2.0, minutes=1):
        await writer.apply([(make_event(r, key=user_key(r.user)), r)])
    assert PUSHED not in rec.fallback().split(",") and HIT in rec.fallback().split(",")
    assert rt.metrics.registry.get_sample_value("recstream_sybil_withheld_movies") == 1
    items.set_flags(PUSHED, adult=False, minors_ok=True)   # the catalogue confirms it again
    block.enforce()
    assert PUSHED not in rec.fallback().split(",")         # still withheld
    now["t"] = max(block.active.values()) + 3600.0 + 1      # the alarm is over
    block.enforce()
    assert rec.fallback().split(",")[0] == PUSHED
    assert rt.metrics.registry.get_sample_value("recstream_sybil_withheld_movies") == 0
