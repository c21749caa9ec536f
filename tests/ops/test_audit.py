"""``recstream audit``'s reports on constructed telemetry (issue #14)."""
from __future__ import annotations

import numpy as np
import orjson

from recstream.ops.audit import add_flags, add_line, add_served, read_groups
from recstream.ops.audit_report import (Telemetry, conversions, fairness, feedback_measures,
                                        safety, safety_counts, security)
from recstream.settings import Settings

MOVIES = [f"m+{i}+2000" for i in range(50)]


def world(*, biased: bool, seed: int = 1, users: int = 400) -> Telemetry:
    """Every user gets one answer an hour; women convert 30% (men 10% when biased, else 30%)."""
    rng = np.random.default_rng(seed)
    t = Telemetry()
    for u in range(users):
        gender = "F" if u % 2 else "M"
        t.demographics[u] = (20 + u % 40, gender)
        for h in range(5):
            when = h * 3600.0 + u
            listed = list(rng.choice(MOVIES, 20, replace=False))
            t.served.append((when, u, listed))
            p = 0.1 if (biased and gender == "M") else 0.3
            if rng.random() < p:
                t.watches.append((when + 60, u, listed[0]))
    t.flags = {m: (True, True) for m in MOVIES}
    return t.sort()


def test_conversion_is_attributed_within_the_hour_only():
    t = Telemetry(served=[(0.0, 1, ["a", "b"]), (0.0, 2, ["a"])],
                  watches=[(100.0, 1, "b"), (4000.0, 2, "a")])
    users, conv = conversions(t)
    assert users.tolist() == [1, 2] and conv.tolist() == [1.0, 0.0]


def test_a_disadvantaged_group_is_visible_and_no_difference_when_there_is_none():
    biased = fairness(world(biased=True), n_boot=500)
    section = biased.split("## By gender")[1].split("## By")[0]
    assert "Best F vs worst M" in section
    assert "CI excludes 0" in section or "bound broken" in section
    fair = fairness(world(biased=False), n_boot=500)
    section = fair.split("## By gender")[1].split("## By")[0]
    assert "no visible difference" in section


def test_feedback_measures_see_concentration():
    spread = world(biased=False)
    narrow = world(biased=False)
    narrow.served = [(w, u, MOVIES[:20]) for w, u, _ in narrow.served]
    a, b = feedback_measures(spread), feedback_measures(narrow)
    assert b["gini"] > a["gini"] and b["coverage"] < a["coverage"] == 1.0
    assert 0 < a["watches_from_lists"] <= 1


def test_safety_counts_unsafe_and_unconfirmed_titles_by_audience():
    t = Telemetry(served=[(0.0, 1, ["ok", "horror"]), (0.0, 2, ["horror", "fake"]),
                          (0.0, 3, ["ok"])],
                  demographics={1: (40, "F"), 2: (12, "M")},
                  flags={"ok": (True, True), "horror": (True, False)})
    counts = safety_counts(t)
    assert counts["adult"] == {"titles": 2}
    assert counts["minor"] == {"titles": 2, "unsafe": 2, "unconfirmed": 1}
    assert counts["unknown"] == {"titles": 1}
    assert "broken (2)" in safety(t)
    t.served = t.served[:1] + t.served[2:]
    assert "**met**" in safety(t)
    t.served = t.served[:1]  # adults only: nothing shows the minors' rule held (#14 phase 4)
    assert "**not shown" in safety(t) and "met" not in safety(t).split("Requirement")[1]


def test_security_replays_the_sybil_detector_and_reports_reach():
    t = Telemetry()
    for i in range(20):
        u = 900 + i
        t.accounts.append((1000.0 + 2 * i, u))
        t.ratings.append((1001.0 + 2 * i, u, "pushed", 5))
    t.served = [(2000.0, u, ["pushed"] if u == 5 else ["x"]) for u in range(200)]
    t.suspects = {900: {"pushed"}}
    report = security(t.sort())
    assert "| suspected offline | 20 |" in report and "| both | 1 |" in report
    assert "| pushed | 1 of 200 users (0.50%) |" in report


def test_readers_parse_topic_records():
    t, s = Telemetry(), Settings.from_mapping({})
    started: set = set()
    for line in ("2025-01-01T00:00:00,5,GET /data/m/a+2000/0.mpg",
                 "2025-01-01T00:01:00,5,GET /data/m/a+2000/1.mpg",
                 "2025-01-01T00:02:00,5,GET /rate/a+2000=4",
                 "2025-01-01T00:03:00,6,GET /create_account", "garbage"):
        add_line(t, line.encode(), s, started)
    assert len(t.watches) == 1 and len(t.ratings) == 1
    add_served(t, orjson.dumps({"user": 5, "time": 1.0, "movies": ["a+2000"]}))
    add_served(t, b"{bad")
    add_flags(t, orjson.dumps({"id": "a+2000", "safe_for_all": True, "safe_for_minors": False}))
    add_flags(t, orjson.dumps({"id": "b+2000"}))
    assert t.served == [(1.0, 5, ["a+2000"])]
    assert t.flags == {"a+2000": (True, False), "b+2000": (False, False)}


def test_an_operator_group_is_audited_too(tmp_path):
    t = world(biased=False)
    path = tmp_path / "groups.csv"
    path.write_text("user,group\n" + "".join(f"{u},g{u % 3}\n" for u in range(400)) + "x,y\n")
    t.groups = read_groups(path)
    assert len(t.groups) == 400
    assert "## By group" in fairness(t, n_boot=200)


def test_conversion_pairs_watches_with_the_platforms_outcome_lines_not_our_wall_clock():
    """#14 phase 4: our answer log stamps the worker's wall clock; under a sped-up simulator
    (or a replay) that is not the movielog's clock, and every answer looked unconverted.
    The platform's outcome lines carry the movielog's own time."""
    t, s = Telemetry(), Settings.from_mapping({})
    started: set = set()
    for line in ("2025-01-01T00:00:00,5,recommendation request x:8082, status 200, "
                 "result: a+2000, b+2000, 12 ms",
                 "2025-01-01T00:00:00,6,recommendation request x:8082, status 0, "
                 "result: java.net.SocketTimeoutException, 600 ms",
                 "2025-01-01T00:10:00,5,GET /data/m/b+2000/0.mpg"):
        add_line(t, line.encode(), s, started)
    add_served(t, orjson.dumps({"user": 5, "time": 1_796_000_000.0, "movies": ["a+2000", "b+2000"]}))
    t.sort()
    assert [(u, m) for _, u, m in t.shown] == [(5, ["a+2000", "b+2000"])]
    users, conv = conversions(t)
    assert users.tolist() == [5] and conv.tolist() == [1.0]
    t.shown = []  # no outcome lines in the movielog: our own log (and its clock) is used
    assert conversions(t)[1].tolist() == [0.0]


def test_security_reach_is_judged_hour_by_hour_from_the_push_not_over_organic_exposure():
    """#14 phase 5: reach was counted over every answer of the run on our own log's clock,
    so a movie shown organically before the wave counted as reached, and an hour in which
    the wave got through was averaged away.  Now: the platform's outcome lines, from the
    wave's first suspect rating on, per hour."""
    t = Telemetry()
    wave_at = 10 * 3600.0
    for i in range(20):
        u = 900 + i
        t.accounts.append((wave_at + 2 * i, u))
        t.ratings.append((wave_at + 1 + 2 * i, u, "pushed", 5))
    t.suspects = {900 + i: {"pushed"} for i in range(20)}
    # before the wave: 10 of 100 users shown it organically
    t.shown = [(3600.0, u, ["pushed", "x"] if u < 10 else ["x"]) for u in range(100)]
    # the hour after the wave: nobody; two hours later: 3 of 100 (a 3% hour)
    t.shown += [(wave_at + 1800.0, u, ["x"]) for u in range(100)]
    t.shown += [(wave_at + 2.5 * 3600, u, ["x", "pushed"] if u < 3 else ["x"])
                for u in range(100)]
    t.served = [(1_796_000_000.0, u, ["pushed"]) for u in range(100)]  # our wall clock
    report = security(t.sort())
    assert "organically before the push: 10 of 100" in report
    assert "| pushed | 3 of 100 users (3.00%) |" in report   # distinct users after the push
    assert "worst hour: 3.00% (3 of 100, hour 2)" in report
    assert "1 of 2 hours over 1%" in report and "**broken**" in report
    t.shown = [row for row in t.shown if row[0] < wave_at + 3600]
    report = security(t.sort())
    assert "| pushed | 0 of 100 users (0.00%) |" in report and "**met**" in report


def test_the_offline_sybil_replay_sees_how_much_a_young_account_watched():
    """#14 phase 5: the audit replayed only each watch's first minute into the detector, so
    every young account's rating looked shallow and honest new users who watched a hit for
    half an hour and rated it alike were suspected offline (the live detector, fed every
    minute, does not suspect them)."""
    t, s = Telemetry(), Settings.from_mapping({})
    started: set = set()
    lines = []
    for i in range(12):                       # 12 new accounts, 5 minutes apart: no burst
        u, minute0 = 500 + i, 5 * i
        lines.append(f"2025-01-01T00:{minute0:02d}:00,{u},GET /create_account")
        lines += [f"2025-01-01T00:{minute0:02d}:{10 + k:02d},{u},GET /data/m/hit+2000/{k}.mpg"
                  for k in range(30)]
        lines.append(f"2025-01-01T00:{minute0 + 1:02d}:00,{u},GET /rate/hit+2000=5")
    for line in lines:
        add_line(t, line.encode(), s, started)
    report = security(t.sort())
    assert "| suspected offline | 0 |" in report, report
    # the same accounts rating what they barely watched are a wave
    shallow = Telemetry()
    started = set()
    for line in lines:
        if "/data/m/" in line and not line.endswith("/0.mpg"):
            continue
        add_line(shallow, line.encode(), s, started)
    assert "| suspected offline | 12 |" in security(shallow.sort())
