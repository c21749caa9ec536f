"""``recstream sim`` / ``python -m recstream.sim``: build a world and run the platform against us.

Examples::

    recstream sim --no-kafka --out var/movielog.txt --truth var/truth.jsonl
    recstream sim --users 1000000 --rate 200 --speed 60 --scenario malformed --scenario sybil
    recstream sim --movielens ../shared/data/movielens/ml-100k --recommender builtin:popularity --fast --duration 3600
    recstream sim --backfill-days 30        # 30 days of history at full speed, then live traffic
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from typing import Callable

from aiohttp import web

from recstream.settings import Settings
from recstream.sim import recommenders
from recstream.sim.api import build_app, truth_app
from recstream.sim.lines import parse_start
from recstream.sim.options import SCENARIOS, SimOptions, load_scenario_file
from recstream.sim.past import Past, make_past, write_past
from recstream.sim.sinks import FileSink, KafkaSink, Sink, TruthWriter
from recstream.sim.sources import build_world
from recstream.sim.telemetry import Telemetry
from recstream.sim.traffic import Platform
from recstream.sim.world import World

log = logging.getLogger("recstream.sim")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recstream sim", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    w = p.add_argument_group("world")
    w.add_argument("--seed", type=int, default=42)
    w.add_argument("--users", type=int, default=100_000, help="synthetic users (default 100k; 1M works)")
    w.add_argument("--movies", type=int, default=27_000)
    w.add_argument("--movielens", metavar="DIR", default="", help="ml-100k, ml-latest-small or ml-1m directory")
    w.add_argument("--catalog", metavar="MOVIES.jsonl", default="", help="course movie JSON lines")
    w.add_argument("--users-file", metavar="USERS.jsonl", default="", help="course user JSON lines")
    t = p.add_argument_group("traffic")
    t.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second")
    t.add_argument("--fast", action="store_true", help="run the clock as fast as possible")
    t.add_argument("--rate", type=float, default=20.0, help="mean arrivals per real second")
    t.add_argument("--duration", type=float, default=0.0, help="simulated seconds (0 = until stopped)")
    t.add_argument("--start", default="2025-01-06T00:00:00", help="simulated start time, or 'now'")
    t.add_argument("--rating-scale", default="1-5", help="e.g. 1-5 or 1-10")
    t.add_argument("--recommender", default="", metavar="URL",
                   help="service base URL (default http://127.0.0.1:<web_port>) or builtin:random|popularity|oracle")
    t.add_argument("--max-lines", type=int, default=0, help="stop after this many lines")
    t.add_argument("--new-user-share", type=float, default=0.02,
                   help="arrivals that are first visits of new accounts (cold-start experiments)")
    t.add_argument("--backfill-days", type=float, default=0.0, metavar="D",
                   help="first write D days of organic history before --start at full speed (0 = none, "
                        "the default; 30 is what `recstream run` should pass)")
    t.add_argument("--backfill-lines", type=int, default=400_000, metavar="N",
                   help="size budget of that history in lines (default 400k: 1-3 min of worker ingest)")
    o = p.add_argument_group("output")
    o.add_argument("--out", default="", metavar="FILE", help="also write lines to FILE ('-' = stdout)")
    o.add_argument("--no-kafka", action="store_true")
    o.add_argument("--topic", default="", help="movielog topic (default from settings)")
    o.add_argument("--truth", default="", metavar="PATH", help="ground truth JSON lines (never for the recommender)")
    o.add_argument("--no-oracle", action="store_true", help="skip per-session oracle top-20 in the truth")
    o.add_argument("--api-port", type=int, default=8080)
    o.add_argument("--no-api", action="store_true")
    o.add_argument("--truth-port", type=int, default=0, help="serve true affinities on this port")
    o.add_argument("--clean-json", action="store_true", help="API numbers as numbers, nulls as null")
    o.add_argument("--quiet", action="store_true", help="no periodic summary line")
    s = p.add_argument_group("scenarios")
    s.add_argument("--scenario", action="append", default=[], choices=SCENARIOS, metavar="NAME",
                   help=f"enable a scenario (repeatable): {', '.join(SCENARIOS)}")
    s.add_argument("--scenario-file", default="", metavar="JSON", help='{"scenarios": {"malformed": {"share": 0.05}}}')
    return p


def options_from_args(args: argparse.Namespace) -> SimOptions:
    scenarios = {name: {} for name in args.scenario}
    if args.scenario_file:
        scenarios.update(load_scenario_file(args.scenario_file))
    lo, _, hi = args.rating_scale.partition("-")
    return SimOptions(
        seed=args.seed, users=args.users, movies=args.movies, movielens=args.movielens, catalog=args.catalog,
        users_file=args.users_file, speed=args.speed, fast=args.fast, rate=args.rate, duration=args.duration,
        start=args.start, new_user_share=args.new_user_share, backfill_days=args.backfill_days, backfill_lines=args.backfill_lines,
        rating_min=int(lo), rating_max=int(hi), recommender=args.recommender,
        out=args.out, kafka=not args.no_kafka, truth=args.truth, truth_oracle=not args.no_oracle,
        api_port=args.api_port, api=not args.no_api, json_quirks=not args.clean_json,
        summary_every_s=0.0 if args.quiet else 5.0, scenarios=scenarios,
    )


async def run(options: SimOptions, settings: Settings, *, topic: str = "", max_lines: int = 0,
              truth_port: int = 0) -> int:
    started = time.monotonic()
    world = build_world(options)
    log.info("world %s: %d users x %d movies built in %.1fs", world.source, len(world.population),
             len(world.catalog), time.monotonic() - started)
    telemetry = Telemetry()
    started = time.monotonic()
    past = make_past(world, options, end=parse_start(options.start), days=options.backfill_days,
                     max_lines=options.backfill_lines)
    if len(past):
        log.info("past: %s made in %.1fs", past.summary(), time.monotonic() - started)
    if options.recommender.startswith("builtin:"):
        recommender = recommenders.builtin(options.recommender.split(":", 1)[1], world, options.seed)
        server = getattr(recommender, "server", "builtin:8082")
        scraper = recommender
    else:
        url = options.recommender or f"http://127.0.0.1:{settings.web_port}"
        recommender = recommenders.HttpRecommender(url, timeout_s=options.deadline_s)
        scraper = recommenders.HttpRecommender(  # "source": the scraper's own host (e.g. 127.0.0.2)
            url, timeout_s=options.deadline_s, client_name="scraper",
            source=str((options.scenario("scraping") or {}).get("source", "")))
        server = recommender.server
    sinks: list[Sink] = []
    if options.kafka:
        sinks.append(KafkaSink(settings.bootstrap_servers, topic or settings.topic, partitions=settings.partitions,
                               replication=settings.replication_factor))
    if options.out:
        sinks.append(FileSink(options.out))
    truth = TruthWriter(options.truth) if options.truth else None
    platform = Platform(world, options, recommender, sinks, truth=truth, telemetry=telemetry,
                        server=server, scraper=scraper, seen=past.seen)
    runners: list[web.AppRunner] = []
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, platform.stop)
    try:
        for sink in sinks:
            await sink.start()
        if truth is not None:
            truth.open()
            truth.write({"kind": "world", "source": world.source, "seed": options.seed, "users": len(world.population),
                         "movies": len(world.catalog), "scenarios": sorted(options.scenarios)})
        if options.api:
            elapsed = lambda: platform.now - platform.start  # noqa: E731
            runners.append(await _serve(build_app(world, options, telemetry, elapsed), options.api_host, options.api_port))
        if truth_port:
            runners.append(await _serve(truth_app(world), "127.0.0.1", truth_port))
        if len(past):
            await _backfill(past, world, sinks, truth, telemetry, lambda: platform.stopped)
        summary = loop.create_task(_summaries(telemetry, options.summary_every_s)) if options.summary_every_s else None
        await platform.run(max_lines=max_lines)
        if summary is not None:
            summary.cancel()
        print(telemetry.summary(), file=sys.stderr)
    finally:
        for sink in sinks:
            with contextlib.suppress(Exception):
                await sink.close()
        if truth is not None:
            truth.close()
        for runner in runners:
            await runner.cleanup()
        for client in {id(recommender): recommender, id(scraper): scraper}.values():
            close = getattr(client, "close", None)
            if close is not None:
                await close()
    return 0


async def _backfill(past: Past, world: World, sinks: list[Sink], truth: TruthWriter | None, telemetry: Telemetry,
                    stopped: Callable[[], bool]) -> None:
    """Write the past before live traffic; its new accounts' self-descriptions go to the truth."""
    started = time.monotonic()
    await write_past(past, sinks, stopped=stopped)
    took = time.monotonic() - started
    telemetry.lines["past"] += len(past)
    log.info("past: %d lines written in %.1fs (%.0f lines/s); live traffic starts", len(past), took,
             len(past) / max(took, 1e-9))
    if truth is not None:
        truth.write({"kind": "past", **past.summary(), "start": past.start, "end": past.end,
                     "write_s": round(took, 3)})
        for i, t in zip(past.accounts, past.account_times):
            if world.population.describes[i]:
                likes, dislikes = world.self_description(i)
                truth.write({"kind": "account", "t": t, "user": int(world.population.ids[i]), "likes": likes,
                             "dislikes": dislikes, "past": True})


async def _serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _summaries(telemetry: Telemetry, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        print(telemetry.summary(), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        options = options_from_args(args)
        settings = Settings.from_env()
    except ValueError as error:
        print(f"recstream sim: {error}", file=sys.stderr)
        return 2
    return asyncio.run(run(options, settings, topic=args.topic, max_lines=args.max_lines, truth_port=args.truth_port))


if __name__ == "__main__":
    raise SystemExit(main())
