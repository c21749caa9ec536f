"""The live fairness monitor through the writer wrap, on constructed telemetry (#14 phase 3)."""
from __future__ import annotations

import math
from types import SimpleNamespace

from agents.attack_watch import WatchedWriter
from agents.fairness_watch import FairnessWatch
from models.fairness_live import GroupConversion
from recstream.records import Rating, RecommendationOutcome, WatchMinute
from tables.codecs import user_key
from tests.wiring import user_writer


def outcome(t, user, movies, status=200):
    return RecommendationOutcome(time=t, user=user, server="x", status=status, movies=movies,
                                 error="", latency_ms=4)


async def test_a_group_that_never_converts_is_flagged_the_rest_are_not(rt, make_event, tmp_path):
    groups = tmp_path / "groups.csv"
    groups.write_text("user,group\n" + "".join(f"{u},niche\n" for u in range(100, 160)))
    profiles = {u: SimpleNamespace(age=30 if u % 2 else 16, gender="F" if u % 2 else "M")
                for u in range(0, 200)}
    watch = FairnessWatch(monitor=GroupConversion(convert_s=3600.0, window_s=86_400.0),
                          profile_of=profiles.get, metrics=rt.metrics, groups_file=str(groups))
    writer = WatchedWriter(user_writer(rt), None, observers=(watch,))
    records = []
    for k in range(3):                       # three answers per user, an hour and a half apart
        t0 = 1_000.0 + k * 5_400.0
        for u in range(200):
            records.append(outcome(t0 + u, u, ["a+1990", "b+1991"]))
            if u not in range(100, 160) and u % 5:  # the niche group never picks from our list
                records.append(WatchMinute(time=t0 + u + 60, user=u, movie="a+1990", minute=0))
                records.append(Rating(time=t0 + u + 90, user=u, movie="a+1990", rating=4))
    records.append(outcome(20_000.0, 7, [], status=500))  # errors are not answers
    for rec in records:
        await writer.apply([(make_event(rec, key=user_key(rec.user)), rec)])
    watch.monitor.advance(30_000.0)
    bounds = watch.export()
    assert bounds[("operator", "niche")] > 0.2
    assert all(not b > 0.2 for key, b in bounds.items() if key != ("operator", "niche"))
    get = rt.metrics.registry.get_sample_value
    assert get("recstream_fairness_answers", {"attribute": "operator", "group": "niche"}) == 180
    assert get("recstream_fairness_conversion", {"attribute": "operator", "group": "niche"}) == 0
    assert get("recstream_fairness_conversion",
               {"attribute": "operator", "group": "rest"}) == 0.8
    assert get("recstream_fairness_pick_rating", {"attribute": "gender", "group": "F"}) == 4.0
    assert get("recstream_fairness_answers", {"attribute": "age", "group": "<18"}) == 300
    # the niche group has no picks: its rating shortfall cannot be judged
    assert math.isnan(get("recstream_fairness_shortfall_lower",
                          {"attribute": "operator", "group": "niche", "measure": "rating"}))
