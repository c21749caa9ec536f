"""Every line the simulator writes goes through recstream's own parser, like the real samples do."""
from __future__ import annotations

import asyncio
import collections

import numpy as np
from sim_helpers import simulate

from recstream.parsing import parse_line, valid_movie_id
from recstream.records import Rating, RecommendationOutcome, Rejected, WatchMinute
from recstream.sim import lines
from recstream.sim.recommenders import PopularityRecommender, RecommenderHTTPError
from recstream.sim.scenarios import corrupt
from recstream.sim.slugs import slugify

from conftest import data_path


class Flaky:
    """Cycles through every outcome the platform must log: ok, slow, error, junk, unknown ids, crash."""

    def __init__(self, ok):
        self.ok, self.n = ok, 0

    async def __call__(self, uid):
        self.n += 1
        kind = self.n % 6
        if kind == 1:
            await asyncio.sleep(0.2)                       # past the deadline
        if kind == 2:
            raise RecommenderHTTPError(500, "Internal Server Error, sorry")
        if kind == 3:
            return ['["not+a+movie+2000"', "x"]             # JSON instead of plain ids
        if kind == 4:
            raise ConnectionRefusedError()
        if kind == 5:
            return []
        return await self.ok(uid)


async def test_every_emitted_line_parses(small_world, small_options):
    recommender = Flaky(PopularityRecommender(small_world))
    sink, truth, _ = await simulate(small_world, small_options.replace(rate=2.0, deadline_s=0.1), recommender, duration=2400,
                                    server="fall2025-team-1.example.edu:8082")
    assert len(sink.lines) > 500
    kinds = collections.Counter()
    statuses = collections.Counter()
    for line in sink.lines:
        record = parse_line(line)
        assert not isinstance(record, Rejected), (line, record)
        kinds[type(record).__name__] += 1
        if isinstance(record, RecommendationOutcome):
            statuses[record.status] += 1
            assert record.server == "fall2025-team-1.example.edu:8082"
            assert record.latency_ms >= 0
    assert set(kinds) == {"WatchMinute", "Rating", "AccountCreated", "RecommendationOutcome"}
    assert {200, 0, 500, 400} <= set(statuses)


async def test_parsed_fields_match_what_happened(small_world, small_options):
    sink, truth, _ = await simulate(small_world, small_options, PopularityRecommender(small_world), duration=1800)
    answer = PopularityRecommender(small_world).answer
    sessions = [r for r in truth.records if r["kind"] == "session"]
    watched = collections.defaultdict(list)
    for line in sink.lines:
        record = parse_line(line)
        if isinstance(record, RecommendationOutcome):
            assert record.status == 200 and record.movies == answer
        elif isinstance(record, WatchMinute):
            watched[(record.user, record.movie)].append(record.minute)
        elif isinstance(record, Rating):
            assert 1 <= record.rating <= 5
    # minute by minute, in order, starting at 0, for every session that began
    for minutes in watched.values():
        assert minutes == list(range(len(minutes))) or sorted(set(minutes)) == list(range(max(minutes) + 1))
    started = {(s["user"], s["movie"]) for s in sessions}
    assert set(watched) <= started


def test_time_format_matches_the_java_platform():
    t = lines.parse_start("2024-02-27T01:50:00")
    fmt = lines.TimeFormatter()
    assert fmt.seconds(t) == "2024-02-27T01:50"                # seconds dropped when zero
    assert fmt.seconds(t + 7.9) == "2024-02-27T01:50:07"
    assert fmt.millis(t + 62.071) == "2024-02-27T01:51:02.071"
    assert lines.format_time(t + 1.5, 6) == "2024-02-27T01:50:01.500000"
    assert lines.format_time(t + 1.122692921, 9)[:-3] == "2024-02-27T01:50:01.122692"  # float64 precision
    for text in (fmt.seconds(t), fmt.millis(t + 62.071), lines.format_time(t + 1.122692921, 9)):
        assert not isinstance(parse_line(f"{text},1,GET /create_account"), Rejected)


def test_slugs_follow_the_real_rules_and_parse(small_world):
    assert slugify("Monsters, Inc.", 2001) == "monsters_+inc.+2001"
    assert slugify("M*A*S*H", 1970) == "m*a*s*h+1970"
    assert slugify("Percy Jackson & the Olympians: The Lightning Thief", 2010) == \
        "percy+jackson++the+olympians+the+lightning+thief+2010"
    assert slugify("À la mode", 1993) == "+la+mode+1993"
    assert slugify("Endeavour", None) == "endeavour+"
    ids = small_world.catalog.ids
    assert all(valid_movie_id(slug) for slug in ids)
    assert len(set(ids)) == len(ids)
    assert any("_" in s for s in ids) and any("++" in s for s in ids) and any(s.startswith("+") for s in ids)


def test_malformed_lines_are_rejected(small_world):
    rng = np.random.default_rng(1)
    valid = [lines.watch("2022-10-28T04:23:23", 579130, "inception+2010", 115),
             lines.rate("2022-10-28T04:23", 12, "m*a*s*h+1970", 4),
             lines.create_account("2022-10-28T04:23:23", 5),
             lines.recommendation("2022-10-28T04:23:23.097", 44572, "host:8082", 200, "a+1999, b+2000", 56)]
    reasons = collections.Counter()
    for k in range(3000):
        bad = corrupt(valid[k % 4], rng)
        record = parse_line(bad)
        assert isinstance(record, Rejected), (valid[k % 4], bad, record)
        reasons[record.reason] += 1
    assert len(reasons) >= 6


def test_real_sample_lines_go_through_the_same_parser():
    path = data_path("mlip-stream-samples", "movielog_lines.txt")
    kinds, rejected = collections.Counter(), []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = parse_line(line)
        kinds[type(record).__name__] += 1
        if isinstance(record, Rejected):
            rejected.append(line)
    assert kinds["WatchMinute"] > 30_000 and kinds["Rating"] > 20_000 and kinds["RecommendationOutcome"] > 300
    assert len(rejected) < 20  # only the few corrupted lines the platform injected
