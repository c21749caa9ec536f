"""Fuzzed movielog lines through the kernel parser and the ingest quarantine path (issue #12).

Seeded mutations of real lines (``../shared/data/mlip-stream-samples/movielog_lines.txt``):
the simulator's 17 malformed kinds (``recstream.sim.scenarios.corrupt``), byte flips,
inserted/deleted characters, swapped or repeated fields, invalid UTF-8, NULs and control
characters, huge numbers, long lines, and a share left intact.  Two passes over the same lines:

1. ``recstream.parsing.parse_raw``: every line either accepted as a record (whose fields are
   then checked: user id in range, valid slug, rating in scale, minute in range, finite
   time) or rejected with a non-empty reason; any exception is a crash.
2. ``agents.ingest.Ingest.stage`` on an app built by ``create_app`` (the worker's own
   code), with the producer and the user writer replaced by recorders: every rejected line
   must come out on the quarantine topic with its reason and source (topic, partition,
   offset), every valid one staged for the writer or forwarded to its partition, and the
   ``recstream_lines_total`` / ``recstream_rejects_total`` counters must add up.

    .venv/bin/python bench/fuzz.py --lines 1000000          # prints one JSON object
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recstream.parsing import parse_raw, valid_movie_id  # noqa: E402
from recstream.records import Rating, Rejected, WatchMinute  # noqa: E402
from recstream.sim.scenarios import corrupt  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "data" / "mlip-stream-samples" / "movielog_lines.txt"
NASTY = ["\x00", "\r", "\t", " ", ",", ",,", "=", "/", "\u00e9", "\u202e", "\ud83c\udfac",
         "-1", "99999999999999999999", "1e9", "NaN", "inf", "0x1f", "+", "++", "..", "%2C"]
PARSE_ARGS = dict(rating_min=1, rating_max=5, max_user_id=1_000_000, max_minute=1_440)


def fuzz_lines(n: int, seed: int, base: list[str]) -> Iterator[bytes]:
    """``n`` seeded lines: ~10% intact, the rest mutated one to three times."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        line = base[int(rng.integers(len(base)))]
        if rng.random() < 0.10:
            yield line.encode()
            continue
        for _ in range(int(rng.integers(1, 4))):
            line = _mutate(line, rng)
        raw = line.encode("utf-8", "surrogatepass")
        if rng.random() < 0.03:  # invalid UTF-8 somewhere
            at = int(rng.integers(len(raw) + 1))
            raw = raw[:at] + bytes([int(rng.integers(0x80, 0x100))]) + raw[at:]
        yield raw


def _mutate(line: str, rng: np.random.Generator) -> str:
    kind = int(rng.integers(9))
    at = int(rng.integers(len(line) + 1))
    if kind == 0 and line.count(",") >= 2:  # the simulator's kinds expect a well-formed line
        return corrupt(line, rng)
    if kind == 1:  # replace one character
        return line[:at] + NASTY[int(rng.integers(len(NASTY)))] + line[at + 1:]
    if kind == 2:  # insert
        return line[:at] + NASTY[int(rng.integers(len(NASTY)))] + line[at:]
    if kind == 3:  # delete a span
        return line[:at] + line[at + int(rng.integers(1, 6)):]
    fields = line.split(",")
    if kind == 4 and len(fields) > 1:  # swap two fields
        i, j = rng.integers(len(fields), size=2)
        fields[i], fields[j] = fields[j], fields[i]
        return ",".join(fields)
    if kind == 5:  # repeat a field
        i = int(rng.integers(len(fields)))
        return ",".join(fields[:i + 1] + fields[i:])
    if kind == 6:  # a number grows huge or negative
        digits = [k for k, c in enumerate(line) if c.isdigit()]
        if digits:
            k = digits[int(rng.integers(len(digits)))]
            return line[:k] + str(int(rng.choice([-1, 10 ** 20, 2 ** 63]))) + line[k + 1:]
    if kind == 7:  # long line
        return line + "x" * int(rng.choice([100, 10_000, 80_000]))
    return line.upper() if rng.random() < 0.5 else line.replace(",", ", ")


def check_accepted(record) -> str | None:
    """What is wrong with an accepted record (None: nothing)."""
    if not (0 <= record.user <= PARSE_ARGS["max_user_id"]):
        return "user out of range"
    if not math.isfinite(record.time):
        return "time not finite"
    if isinstance(record, (Rating, WatchMinute)) and not valid_movie_id(record.movie):
        return "bad slug accepted"
    if isinstance(record, Rating) and not (1 <= record.rating <= 5):
        return "rating outside the scale"
    if isinstance(record, WatchMinute) and not (0 <= record.minute <= PARSE_ARGS["max_minute"]):
        return "minute outside range"
    return None


def parser_pass(lines: list[bytes]) -> dict:
    outcomes, reasons, unsound = Counter(), Counter(), Counter()
    crashes: list[str] = []
    started = time.perf_counter()
    for raw in lines:
        try:
            record = parse_raw(raw, **PARSE_ARGS)
        except Exception as exc:  # noqa: BLE001 - the point: count, never raise
            crashes.append(f"{type(exc).__name__}: {raw[:80]!r}")
            continue
        if isinstance(record, Rejected):
            outcomes["rejected"] += 1
            reasons[record.reason or "<no reason>"] += 1
        else:
            outcomes[f"accepted:{type(record).__name__}"] += 1
            problem = check_accepted(record)
            if problem:
                unsound[problem] += 1
    took = time.perf_counter() - started
    return {"lines": len(lines), "crashes": len(crashes), "crash_examples": crashes[:5],
            "outcomes": dict(outcomes), "reject_reasons": dict(reasons.most_common()),
            "accepted_unsound": dict(unsound), "seconds": round(took, 1),
            "lines_per_s": round(len(lines) / took)}


async def ingest_pass(lines: list[bytes], batch: int = 1000) -> dict:
    """The worker's ingest stage over every line, Kafka and the user writer recorded."""
    from recstream.app import create_app, parts_of
    from recstream.settings import Settings
    from tests.wiring import ingest as ingest_of

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_mapping({"data_dir": tmp, "partitions": 4})
        app = create_app(settings)
        rt = parts_of(app)
        quarantined: list = []
        forwarded = staged = 0
        names = {rt.topics.quarantine.get_topic_name(): "quarantine",
                 rt.topics.events.get_topic_name(): "events"}

        async def produce(topic, key, value) -> None:
            nonlocal forwarded
            if names.get(topic.get_topic_name()) == "quarantine":
                quarantined.append(SimpleNamespace(**orjson.loads(value)))
            else:
                forwarded += 1

        class Writer:
            async def stage(self, local) -> None:
                nonlocal staged
                staged += len(local)

            async def commit(self) -> None:
                return None

            def seal(self) -> asyncio.Future:  # the pipelined write (#11): nothing to write
                done = asyncio.get_running_loop().create_future()
                done.set_result(None)
                return done

        rt.producer.produce = produce
        app.consumer.topic_partitions = lambda topic: settings.partitions
        ingest = ingest_of(rt, Writer())
        crashes = 0
        started = time.perf_counter()
        for first in range(0, len(lines), batch):
            events = [SimpleNamespace(value=raw, message=SimpleNamespace(
                topic="movielog", partition=(first + i) % 4, offset=first + i))
                for i, raw in enumerate(lines[first:first + batch])]
            try:
                await ingest.consume(events, forward=True)
            except Exception:  # noqa: BLE001
                crashes += 1
        took = time.perf_counter() - started
        registry = rt.metrics.registry
        counted = {o: registry.get_sample_value("recstream_lines_total", {"outcome": o}) or 0
                   for o in ("valid", "rejected")}
        sources_ok = all(r.reason and r.topic == "movielog" and r.offset >= 0 and
                         r.partition == r.offset % 4 for r in quarantined)
        return {"lines": len(lines), "batch_crashes": crashes, "quarantined": len(quarantined),
                "staged": staged, "forwarded": forwarded, "counted": counted,
                "quarantine_sources_ok": sources_ok,
                "seconds": round(took, 1), "lines_per_s": round(len(lines) / took)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=20261201)
    p.add_argument("--skip-ingest", action="store_true")
    args = p.parse_args(argv)
    base = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    load = os.getloadavg()
    lines = list(fuzz_lines(args.lines, args.seed, base))
    intact = parser_pass([line.encode() for line in base])  # baseline: the real lines as they are
    fuzzed = parser_pass(lines)
    result = {"load": load, "seed": args.seed, "baseline_real_lines": intact, "fuzzed": fuzzed}
    if not args.skip_ingest:
        result["ingest"] = asyncio.run(ingest_pass(lines))
    result["ok"] = verdict(result)
    print(json.dumps(result, indent=2))
    return 0 if not result["ok"] else 1


def verdict(result: dict) -> list[str]:
    """Problems found (empty: every line accepted soundly or rejected with a reason)."""
    f = result["fuzzed"]
    bad = []
    if f["crashes"]:
        bad.append(f"{f['crashes']} parser crashes")
    if f["accepted_unsound"]:
        bad.append(f"unsound accepted records: {f['accepted_unsound']}")
    if "<no reason>" in f["reject_reasons"]:
        bad.append("rejects without a reason")
    ing = result.get("ingest")
    if ing:
        rejected = f["outcomes"].get("rejected", 0)
        if ing["batch_crashes"]:
            bad.append(f"{ing['batch_crashes']} ingest batches raised")
        if ing["quarantined"] != rejected or ing["counted"]["rejected"] != rejected:
            bad.append(f"quarantined {ing['quarantined']} / counted {ing['counted']['rejected']}"
                       f" != rejected {rejected}")
        if ing["staged"] + ing["forwarded"] + ing["quarantined"] != ing["lines"]:
            bad.append("staged + forwarded + quarantined != lines")
        if not ing["quarantine_sources_ok"]:
            bad.append("a quarantined line lost its reason or source")
    return bad


if __name__ == "__main__":
    raise SystemExit(main())
