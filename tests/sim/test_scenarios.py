"""Scenarios are off by default and, when on, do what they say — in lines the parser can judge."""
from __future__ import annotations

import collections

from sim_helpers import simulate

from recstream.parsing import parse_line
from recstream.records import AccountCreated, Rating, Rejected
from recstream.sim.recommenders import PopularityRecommender


async def test_off_by_default_no_rejects_no_duplicates(small_world, small_options):
    sink, _, _ = await simulate(small_world, small_options, PopularityRecommender(small_world), duration=1200)
    assert not any(isinstance(parse_line(l), Rejected) for l in sink.lines)
    assert max(collections.Counter(sink.lines).values()) == 1


async def test_malformed_duplicates_and_disorder(small_world, small_options):
    options = small_options.replace(scenarios={"malformed": {"share": 0.05}, "duplicates": {"share": 0.05},
                                               "out-of-order": {"share": 0.05}})
    sink, _, _ = await simulate(small_world, options, PopularityRecommender(small_world), duration=1800)
    parsed = [parse_line(l) for l in sink.lines]
    bad = sum(isinstance(p, Rejected) for p in parsed)
    assert 0.02 < bad / len(parsed) < 0.08
    assert max(collections.Counter(sink.lines).values()) >= 2
    times = [p.time for p in parsed if not isinstance(p, Rejected)]
    assert sum(b < a - 60 for a, b in zip(times, times[1:])) > 5      # older lines after newer ones
    assert max(times) > min(times) + 86400                            # some stamped in the future


async def test_rating_scale_switches_to_ten(small_world, small_options):
    options = small_options.replace(scenarios={"rating-scale-10": {"switch_after_s": 600}})
    sink, _, _ = await simulate(small_world, options, PopularityRecommender(small_world), duration=3600)
    on_ten = [parse_line(l, rating_max=10) for l in sink.lines if "/rate/" in l]
    assert all(isinstance(r, Rating) for r in on_ten)
    assert max(r.rating for r in on_ten) > 5
    reasons = {parse_line(l).reason for l in sink.lines if "/rate/" in l and isinstance(parse_line(l), Rejected)}
    assert reasons == {"rating_out_of_scale"}


async def test_sybil_accounts_push_one_movie(small_world, small_options):
    options = small_options.replace(scenarios={"sybil": {"accounts": 20, "every_s": 1000}})
    sink, truth, platform = await simulate(small_world, options, PopularityRecommender(small_world), duration=1200)
    attack = next(r for r in truth.records if r.get("attack") == "sybil")
    fives = [p for p in map(parse_line, sink.lines)
             if isinstance(p, Rating) and p.movie == attack["movie"] and p.rating == 5 and p.user in attack["users"]]
    created = {p.user for p in map(parse_line, sink.lines) if isinstance(p, AccountCreated)}
    assert len(fives) == 20 and set(attack["users"]) <= created
    assert platform.telemetry.attacks["sybil_accounts"] == 20


async def test_scraping_and_flood(small_world, small_options):
    calls = collections.Counter()

    class Counting(PopularityRecommender):
        async def __call__(self, uid):
            calls["n"] += 1
            return await super().__call__(uid)

    rec = Counting(small_world)
    base, _, _ = await simulate(small_world, small_options, rec, duration=1800)
    baseline = calls["n"]
    calls.clear()
    options = small_options.replace(scenarios={"flood": {"factor": 10, "period_s": 900, "burst_s": 300},
                                               "scraping": {"requests_per_s": 30}})
    from sim_helpers import MemorySink, MemoryTruth, Platform
    platform = Platform(small_world, options.replace(duration=1800), rec, [MemorySink()], truth=MemoryTruth(),
                        scraper=rec)
    await platform.run()
    assert platform.telemetry.attacks["scrape_requests"] > 500
    assert calls["n"] - platform.telemetry.attacks["scrape_requests"] > 2 * baseline
