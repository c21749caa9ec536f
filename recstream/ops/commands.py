"""``recstream replay`` and ``recstream train``: operator commands on the app.

They run in their own process (``recstream <command>`` / ``faust -A recstream.app``),
never on a worker's loop, and read Kafka with plain clients (:mod:`recstream.kafka`).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import faust
from faust.cli import argument, option

from models.registry import Registry, gate
from recstream.modelupdates import announce
from recstream.ops.fit import NoData, TrainRequest, limit_blas_threads
from recstream.ops.fit import train as run_training
from recstream.ops.replay import replay_file
from recstream.ops.training_data import ReadError
from recstream.settings import Settings


def register(app: faust.App, s: Settings) -> None:
    """``recstream replay`` and ``recstream train`` on ``app``, configured by ``s``."""

    @app.command(
        argument("path", type=click.Path(exists=True, dir_okay=False)),
        option("--rate", type=float, default=0.0,
                         help="lines per second (0: as fast as the broker takes them)"),
        option("--limit", type=int, default=0, help="stop after this many lines"),
        name="replay",
    )
    async def replay(self, path: str, rate: float, limit: int) -> None:
        """Produce a movielog file into the movielog topic (keyed by user id)."""
        started = time.monotonic()
        sent = await replay_file(s.bootstrap_servers, s.topic, s.partitions, Path(path),
                                 rate, limit)
        took = time.monotonic() - started
        self.say(f"replayed {sent} lines from {path} to {s.topic} in {took:.1f}s")

    @app.command(
        option("--source", type=click.Choice(["state", "movielog"]), default="state",
               help="state: the user_history changelog; movielog: replay the raw topic"),
        option("--window-hours", type=float, default=None,
               help=f"hours of event time before the newest event, 0 = all "
                    f"(default RECSTREAM_RETRAIN_WINDOW_H = {s.retrain_window_h:g})"),
        option("--model", type=click.Choice(["als", "ials"]), default=s.retrain_model,
               help="ials: implicit ALS over every movie each user watched or rated, users "
                    "folded in exactly on each event; als: biased MF on ratings + online SGD "
                    f"(default RECSTREAM_RETRAIN_MODEL = {s.retrain_model})"),
        option("--promote", is_flag=True, default=False,
               help="gate against the serving version and promote + announce if it passes"),
        option("--json", "as_json", is_flag=True, default=False,
               help="print the report as one JSON line"),
        option("--blas-threads", type=int, default=1,
               help="OpenBLAS threads for the fit (0: leave as configured); 1 leaves the "
                    "worker a core"),
        name="train",
    )
    async def train(self, source: str, window_hours: float | None, model: str, promote: bool,
                    as_json: bool, blas_threads: int) -> None:
        """Retrain from Kafka (never the worker's RocksDB); store a version; maybe promote."""
        if window_hours is not None and window_hours < 0:
            raise click.BadParameter("must be >= 0 (0: all data)", param_hint="--window-hours")
        if blas_threads > 0:
            limit_blas_threads(blas_threads)
        request = TrainRequest(source=source, window_hours=window_hours, model=model,
                               promote=promote)
        try:
            report = await run_training(s, request, registry=Registry(s.registry_path),
                                        gate=gate, announce=announce)
        except (NoData, ReadError) as exc:
            print(f"recstream train: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        if as_json:
            print(json.dumps(report, sort_keys=True, default=str), flush=True)
        else:
            self.say(summary(report))


def summary(report: dict) -> str:
    """The human-readable lines of ``recstream train`` (``--json`` prints everything)."""
    m = report["metrics"]
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"version {report['version']} ({report['model']}, {report['source']}, "
             f"{report['data']['ratings']} ratings + {report['data']['pseudo_ratings']} "
             f"pseudo-ratings, {report['timings']['total_seconds']:.1f}s)",
             f"holdout: rmse {fmt(m.get('rmse'))} mae {fmt(m.get('mae'))} "
             f"recall@20 {fmt(m.get('recall_at_20'))} ndcg@20 {fmt(m.get('ndcg_at_20'))}"]
    serving = m.get("serving")
    if serving:
        lines.append(f"serving {serving['version']} on the same holdout: "
                     + (serving["error"] if "error" in serving else
                        f"rmse {fmt(serving.get('rmse'))} "
                        f"recall@20 {fmt(serving.get('recall_at_20'))}"))
    decision = report.get("decision")
    if decision is not None:
        lines.append(("promoted" if report["promoted"] else "not promoted") + ": "
                     + "; ".join(decision["reasons"]))
    return "\n".join(lines)
