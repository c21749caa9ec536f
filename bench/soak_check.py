"""The soak's end-of-run accounting: every line, every rating, every counter, from the broker.

Nothing here asks a worker: the truth is what was produced (the simulator's ``--out`` copy
and the ``movielog`` topic itself), the verdict is what the workers made durable (the
``user_history`` and ``movie_stats`` changelogs, the quarantine topic, the consumer
group's committed offsets), i.e. exactly what a restarted worker would hold.

* lines: produced (file) == in the topic; each parsed with the kernel parser into valid or
  rejected (with its reason); every rejected line's (partition, offset) is in the
  quarantine topic; the group committed every partition to its end (all consumed).
* ratings, for **every** user: the held ``{movie: stars}`` equals the oracle's (the same
  idempotent rules over the topic's lines: latest rating by event time), no movie missing,
  wrong or extra; watch starts likewise (which movies a user started).
* movie counters: plays and ratings per movie equal the oracle's (none lost, none twice).
"""
from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition

from recstream.kafka import admin, end_offsets, reader
from recstream.ops.training_data import LogAggregator, _read_topic, latest_values, \
    histories_from_changelog
from recstream.parsing import parse_raw
from recstream.records import RecommendationOutcome, Rejected
from recstream.settings import Settings


async def group_lag(settings: Settings, topic: str) -> int:
    """Lines of ``topic`` the worker group has not committed yet (end − committed)."""
    client = admin(settings.bootstrap_servers)
    consumer = reader(settings.bootstrap_servers)
    await client.start()
    await consumer.start()
    try:
        committed = await client.list_consumer_group_offsets(settings.app_id)
        parts = await consumer._client._wait_on_metadata(topic)  # Kafka: not in bootstrap
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        ends = await end_offsets(consumer, settings, tps)
        return sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps)
    finally:
        await consumer.stop()
        await client.close()


def pipeline_topics(settings: Settings, topic: str) -> list[str]:
    """Every topic the worker group consumes on the way from a movielog line to the tables:
    the movielog, the re-keyed events, the cold-start profiles and the movie updates.  A
    line is only done when all of them are consumed (a committed movielog offset says only
    that its line was parsed and forwarded)."""
    app = settings.app_id
    return [topic, f"{app}-events", f"{app}-user-profiles", f"{app}-movie-updates"]


async def pipeline_lag(settings: Settings, topic: str) -> dict[str, int]:
    """``group_lag`` of each of :func:`pipeline_topics` (a topic not created yet: 0)."""
    lags = {}
    for name in pipeline_topics(settings, topic):
        try:
            lags[name] = await group_lag(settings, name)
        except (KeyError, TypeError):  # no metadata: nothing was ever produced to it
            lags[name] = 0
    return lags


async def _latest(settings: Settings, topic: str) -> dict[bytes, bytes]:
    records: list[tuple[bytes | None, bytes | None]] = []
    await _read_topic(settings, topic, lambda r: records.append((r.key, r.value)), None)
    return latest_values(records)


async def check(settings: Settings, produced_file: Path | None) -> dict[str, Any]:
    s = settings
    oracle = LogAggregator(s)
    rejected: dict[tuple[int, int], str] = {}
    reasons: Counter = Counter()
    graded: Counter = Counter()

    def on_line(record) -> None:
        oracle.add(record.value)
        parsed = parse_raw(record.value or b"", rating_min=s.rating_min,
                           rating_max=s.rating_max, max_user_id=s.max_user_id,
                           max_minute=s.max_minute)
        if isinstance(parsed, Rejected):
            rejected[(record.partition, record.offset)] = parsed.reason
            reasons[parsed.reason.split(":")[0]] += 1
        elif isinstance(parsed, RecommendationOutcome):  # the graders' view of each request
            graded["requests"] += 1
            graded["200"] += parsed.status == 200
            graded["200_within_600ms"] += (parsed.status == 200 and bool(parsed.movies)
                                           and 0 <= parsed.latency_ms <= 600)

    log_range = await _read_topic(s, s.topic, on_line, None)
    in_topic = sum(e - b for b, e in log_range.offsets.values())
    quarantined: dict[tuple[int, int], str] = {}

    def on_reject(record) -> None:
        value = orjson.loads(record.value)
        if value.get("topic") == s.topic:
            quarantined[(value["partition"], value["offset"])] = value.get("reason", "")

    await _read_topic(s, f"{s.app_id}-quarantine", on_reject, None)
    held = histories_from_changelog(await _latest(s, f"{s.app_id}-user_history-changelog"))
    stats = await _latest(s, f"{s.app_id}-movie_stats-changelog")

    lost = wrong = extra = starts_lost = users_bad = 0
    examples: list[str] = []
    lost_pairs: list[tuple[int, str]] = []  # for bench/soak_explain.py
    want_counts: Counter = Counter()
    for user in set(oracle.users) | set(held):
        want_h = oracle.users.get(user)
        if want_h is not None:
            want_counts.update(("plays", m) for m in want_h.watches)
            want_counts.update(("ratings", m) for m in want_h.ratings)
            want_h.trim(s.history_limit)
        want = {m: r[0] for m, r in (want_h.ratings if want_h else {}).items()}
        got_h = held.get(user)
        got = {m: r[0] for m, r in (got_h.ratings if got_h else {}).items()}
        u_lost = sum(m not in got for m in want)
        lost_pairs.extend((user, m) for m in want if m not in got)
        u_wrong = sum(m in got and got[m] != r for m, r in want.items())
        u_extra = sum(m not in want for m in got)
        u_starts = sum(m not in (got_h.watches if got_h else {})
                       for m in (want_h.watches if want_h else {}))
        lost, wrong, extra, starts_lost = (lost + u_lost, wrong + u_wrong, extra + u_extra,
                                           starts_lost + u_starts)
        if u_lost or u_wrong or u_extra or u_starts:
            users_bad += 1
            if len(examples) < 5:
                examples.append(f"user {user}: lost {u_lost} wrong {u_wrong} extra {u_extra} "
                                f"starts lost {u_starts}")
    got_counts: Counter = Counter()
    for key, value in stats.items():
        raw = orjson.loads(value)
        got_counts[("plays", key.decode())] = raw.get("plays", 0)
        got_counts[("ratings", key.decode())] = raw.get("ratings", 0)
    counter_diff = {k: (got_counts[k], want_counts[k]) for k in set(+got_counts) | set(want_counts)
                    if got_counts[k] != want_counts[k]}
    produced = None
    if produced_file is not None and produced_file.exists():
        with produced_file.open("rb") as f:
            produced = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    missing_q = set(rejected) - set(quarantined)
    return {
        "graders": {**graded, "share_ok": graded["200_within_600ms"] / max(graded["requests"], 1)},
        "lines_produced": produced, "lines_in_topic": in_topic,
        "valid": in_topic - len(rejected), "rejected": len(rejected),
        "reject_reasons": dict(reasons.most_common()),
        "quarantined": len(quarantined), "rejected_not_quarantined": len(missing_q),
        "quarantined_not_rejected": len(set(quarantined) - set(rejected)),
        "unconsumed": await group_lag(s, s.topic),
        # the later hops too: a rating still in the events topic is not in the tables yet
        "unconsumed_pipeline": sum((await pipeline_lag(s, s.topic)).values()),
        "users_checked": len(set(oracle.users) | set(held)),
        "users_with_ratings": sum(bool(h.ratings) for h in oracle.users.values()),
        "ratings_expected": sum(len(h.ratings) for h in oracle.users.values()),
        "ratings_lost": lost, "ratings_wrong": wrong, "ratings_extra": extra,
        "watch_starts_lost": starts_lost, "users_mismatched": users_bad,
        "examples": examples,
        "movie_counters_checked": len(want_counts), "movie_counters_wrong": len(counter_diff),
        "movie_counter_examples": sorted(counter_diff.items())[:5],
        # every discrepancy itself (bounded), for bench/soak_explain.py
        "detail": {"ratings_lost": lost_pairs[:1000],
                   "rejected_not_quarantined": sorted(missing_q)[:1000],
                   "movie_counters_wrong": [[k[0], k[1], g, w] for k, (g, w)
                                            in sorted(counter_diff.items())[:1000]]},
    }


def verdict(report: dict[str, Any]) -> list[str]:
    """What the check found wrong (empty when every line and rating is accounted for)."""
    bad = []
    if report["lines_produced"] is not None and report["lines_produced"] != report["lines_in_topic"]:
        bad.append(f"{report['lines_produced']} lines produced, {report['lines_in_topic']} in topic")
    for key in ("rejected_not_quarantined", "quarantined_not_rejected", "unconsumed",
                "unconsumed_pipeline",
                "ratings_lost", "ratings_wrong", "ratings_extra", "watch_starts_lost",
                "movie_counters_wrong"):
        if report[key]:
            bad.append(f"{key}: {report[key]}")
    return bad


if __name__ == "__main__":  # check an existing run: RECSTREAM_* env of its workers
    import sys
    result = asyncio.run(check(Settings.from_env(), Path(sys.argv[1]) if sys.argv[1:] else None))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print("problems:", verdict(result) or "none")
