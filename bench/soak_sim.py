"""``recstream sim`` for the soak, with its user/movie API bound to loopback only.

Same arguments as ``recstream sim``; the only change is ``api_host=127.0.0.1`` (the
simulator's default listens on every interface, as the course platform does).
"""
from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recstream.settings import Settings  # noqa: E402
from recstream.sim.cli import build_parser, options_from_args, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    options = options_from_args(args).replace(api_host="127.0.0.1")
    return asyncio.run(run(options, Settings.from_env(), topic=args.topic,
                           max_lines=args.max_lines))


if __name__ == "__main__":
    raise SystemExit(main())
