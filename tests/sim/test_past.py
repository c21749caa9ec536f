"""The world's past: organic history before the live start, deterministic, continued by the same users."""
from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pytest

from recstream.parsing import parse_line
from recstream.records import AccountCreated, Rating, Rejected, WatchMinute
from recstream.sim.cli import main
from recstream.sim.lines import parse_start
from recstream.sim.options import SimOptions
from recstream.sim.past import DAY, make_past, write_past
from recstream.sim.recommenders import PopularityRecommender
from recstream.sim.sinks import MemorySink
from recstream.sim.traffic import Platform
from recstream.sim.world import build_synthetic

START = "2025-01-06T00:00:00"


def past_of(options: SimOptions, *, days: float = 3.0, max_lines: int = 30_000):
    world = build_synthetic(options)
    return world, make_past(world, options, end=parse_start(START), days=days, max_lines=max_lines)


def parsed(lines: list[str]) -> list[object]:
    records = [parse_line(line) for line in lines]
    assert not [r for r in records if isinstance(r, Rejected)], "the past must be valid movielog"
    return records


def test_past_lies_before_the_live_start_in_time_order(small_options):
    world, past = past_of(small_options, days=3.0)
    end = parse_start(START)
    records = parsed(past.lines)
    times = [r.time for r in records]
    assert len(past) >= 30_000 and len(past) < 30_000 + 16 * 400          # the budget, overshoot ≤ one small chunk
    assert end - 3 * DAY <= min(times) and max(times) < end
    assert times == sorted(times)
    assert [r.user for r in records] == past.keys.tolist()                  # keyed by user, as live lines are
    assert not any("recommendation request" in line for line in past.lines)  # no recommender in the past
    kinds = {type(r) for r in records}
    assert kinds == {WatchMinute, Rating, AccountCreated}
    ratings = [r for r in records if isinstance(r, Rating)]
    assert len(ratings) == past.ratings > 0 and all(1 <= r.rating <= 5 for r in ratings)
    # Ratings follow true taste: the movies users rated 5 are truly liked more than those rated 1.
    index = world.catalog.index
    true = {stars: np.mean([world.taste.ratings(world.population.index_of(r.user), np.array([index[r.movie]]))[0]
                            for r in ratings if r.rating == stars]) for stars in (1, 5)}
    assert true[5] > true[1] + 1.0


def test_each_watch_runs_minute_by_minute_and_accounts_come_first(small_options):
    _, past = past_of(small_options)
    records = parsed(past.lines)
    minutes: dict[tuple[int, str], list[int]] = {}
    first_seen: dict[int, float] = {}
    created: dict[int, float] = {}
    for r in records:
        if isinstance(r, WatchMinute):
            minutes.setdefault((r.user, r.movie), []).append(r.minute)
            first_seen.setdefault(r.user, r.time)
        elif isinstance(r, AccountCreated):
            created[r.user] = r.time
    assert all(m == list(range(len(m))) for m in minutes.values())        # 0, 1, 2, ... once per (user, movie)
    assert created and all(created[u] <= first_seen[u] for u in created)
    assert len(created) == len(past.accounts)


def test_past_is_deterministic_for_a_seed(small_options):
    _, a = past_of(small_options)
    _, b = past_of(small_options)
    _, c = past_of(small_options.replace(seed=small_options.seed + 1))
    assert a.lines == b.lines and a.keys.tolist() == b.keys.tolist()
    assert a.lines != c.lines


def test_no_past_when_disabled(small_options):
    world, past = past_of(small_options, days=0)
    assert len(past) == 0 and past.seen == {} and past.summary()["lines"] == 0


def test_live_traffic_continues_with_the_past_users(small_options):
    world, past = past_of(small_options, days=3.0)
    sink = MemorySink()
    asyncio.run(write_past(past, [sink]))
    assert sink.lines == past.lines and sink.keys == past.keys.tolist()
    live = MemorySink()
    platform = Platform(world, small_options.replace(start=START, duration=3600.0), PopularityRecommender(world),
                        [live], seen=past.seen)
    asyncio.run(platform.run())
    live_records = parsed(live.lines)
    assert min(r.time for r in live_records) >= past.end > max(r.time for r in parsed(past.lines))
    live_users = {r.user for r in live_records}
    returning = live_users & {int(u) for u in past.keys.tolist()}
    # Arrivals are activity-weighted, as in the past: heavy users come back, more than their head count says.
    share_of_population = len(past.seen) / len(world.population)
    assert len(returning) / len(live_users) > 1.5 * share_of_population, (len(returning), len(live_users))
    # The past's new accounts exist now: live traffic does not create them again.
    created_live = {r.user for r in live_records if isinstance(r, AccountCreated)}
    assert not created_live & {int(world.population.ids[i]) for i in past.accounts}


def test_cli_writes_the_past_then_live_lines(tmp_path):
    out, truth = tmp_path / "movielog.txt", tmp_path / "truth.jsonl"
    rc = main(["--users", "3000", "--movies", "800", "--seed", "5", "--fast", "--duration", "1800", "--no-kafka",
               "--no-api", "--quiet", "--no-oracle", "--recommender", "builtin:popularity", "--start", START,
               "--backfill-days", "2", "--backfill-lines", "20000", "--out", str(out), "--truth", str(truth)])
    assert rc == 0
    records = parsed(out.read_text().splitlines())
    summary = [r for r in map(orjson.loads, truth.read_text().splitlines()) if r["kind"] == "past"]
    assert len(summary) == 1 and summary[0]["lines"] == next(k for k, r in enumerate(records) if r.time >= parse_start(START))
    end = parse_start(START)
    n_past = next(k for k, r in enumerate(records) if r.time >= end)
    past, live = records[:n_past], records[n_past:]
    assert len(past) >= 20_000 and all(r.time < end for r in past) and all(r.time >= end - 2 * DAY for r in past)
    assert live and min(r.time for r in live) >= end
    returning = {r.user for r in live} & {r.user for r in past}
    assert returning, "live users include past users"
    # Live users do not re-pick what they watched in the past (seen penalty carried over).
    watched_before = {(r.user, r.movie) for r in past if isinstance(r, WatchMinute)}
    starts_live = {(r.user, r.movie) for r in live if isinstance(r, WatchMinute) and r.minute == 0}
    assert len(starts_live & watched_before) <= max(1, len(starts_live) // 50)


@pytest.mark.parametrize("bad", [{"backfill_days": -1.0}, {"backfill_days": 0.2}, {"backfill_lines": -5}])
def test_bad_backfill_options_are_errors(bad):
    with pytest.raises(ValueError, match="backfill"):
        SimOptions(**bad)
