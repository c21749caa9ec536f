"""``recstream models list|show|promote|rollback``: the registry from the Faust CLI.

``promote`` runs the same gate as a scheduled retrain: the paired per-user
comparison of the candidate and the serving version on the candidate's holdout
(the trainer stores both in the candidate's manifest); ``--force`` overrides a
failed gate and says so in the decision log.  Every promotion or rollback is
announced on the model-updates topic, which every worker follows.
"""
from __future__ import annotations

import datetime
import json
import sys
from typing import Any, Optional

import click
from faust.cli import argument, option

from models.registry import Registry, RegistryError
from recstream.modelupdates import announce
from recstream.ops.promotion import paired_gate
from recstream.ops.provenance import SCAN_TIMEOUT_S, ScanDeadline, lookup, stream_time
from recstream.settings import Settings


def gate_decision(settings: Settings, registry: Registry, version: str) -> dict[str, Any]:
    """The trainer's paired per-user gate on the holdout stored in the candidate's manifest.

    The trainer measured the candidate and the then-serving version on the same holdout
    users; if another version serves now, that comparison says nothing about it: refused.
    """
    metrics = dict(registry.manifest(version).get("metrics") or {})
    serving = registry.serving()
    if serving is not None and serving["version"] == version:
        return {"passed": False, "reasons": [f"{version} already serves"]}
    on_holdout = metrics.get("serving")
    if serving is None:
        return paired_gate(metrics, None, settings)
    if not isinstance(on_holdout, dict) or on_holdout.get("version") != serving["version"]:
        return {"passed": False, "reasons": [
            f"{version} was not compared with the serving version {serving['version']} on "
            "its holdout: retrain (recstream train --promote) to compare them"]}
    return paired_gate(metrics, on_holdout, settings)


def promote(settings: Settings, version: str, *, force: bool = False,
            actor: str = "") -> dict[str, Any]:
    """Gate, promote and announce → ``{"promoted": bool, "decision": ..., "pointer": ...}``."""
    registry = Registry(settings.registry_path)
    decision = gate_decision(settings, registry, version)
    if not decision["passed"] and not force:
        registry.record({"action": "reject", "version": version, "decision": decision,
                         "actor": actor})
        return {"promoted": False, "version": version, "decision": decision}
    if not decision["passed"]:
        decision["forced"] = True
    pointer = registry.promote(version, decision=decision, actor=actor)
    return {"promoted": True, "version": version, "decision": decision, "pointer": pointer}


def describe(registry: Registry) -> list[dict[str, Any]]:
    serving = registry.serving() or {}
    rows = []
    for version in registry.versions():
        manifest = registry.manifest(version)
        metrics = manifest.get("metrics") or {}
        rows.append({"version": version, "serving": version == serving.get("version"),
                     "model": manifest.get("model"), "created_at": manifest.get("created_at"),
                     "rows": manifest.get("rows"), "rmse": metrics.get("rmse"),
                     "recall_at_20": metrics.get("recall_at_20")})
    return rows


def _when(epoch: Optional[float]) -> str:
    if not epoch:
        return "-"
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%SZ")


def register(app, s: Settings) -> None:

    @app.command(
        argument("action", type=click.Choice(["list", "show", "promote", "rollback",
                                              "decisions"])),
        argument("version", required=False),
        option("--force", is_flag=True, default=False,
               help="promote even if the gate fails (recorded as forced)"),
        option("--reason", default="", help="why (recorded with a rollback)"),
        option("--json", "as_json", is_flag=True, default=False, help="one JSON object"),
        name="registry",
    )
    async def registry(self, action: str, version: Optional[str], force: bool, reason: str,
                     as_json: bool) -> None:
        """The model registry: list, show, promote (gated), rollback, decisions."""
        store = Registry(s.registry_path)
        try:
            result = await _run(store, action, version, force, reason)
        except RegistryError as exc:
            print(f"recstream models: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        if as_json or action in ("show", "decisions"):
            self.say(json.dumps(result, indent=None if as_json else 2, sort_keys=True,
                                default=str))
        elif action == "list":
            self.say(f"{'version':<28} {'model':<11} {'rmse':>7} {'recall@20':>9}  created")
            for row in result:
                mark = "*" if row["serving"] else " "
                rmse = f"{row['rmse']:.4f}" if isinstance(row["rmse"], float) else "-"
                rec = (f"{row['recall_at_20']:.4f}" if isinstance(row["recall_at_20"], float)
                       else "-")
                self.say(f"{mark}{row['version']:<27} {str(row['model']):<11} {rmse:>7} "
                         f"{rec:>9}  {row['created_at']}")
            pointer = store.serving()
            self.say(f"serving: {pointer['version']} generation {pointer['generation']} since "
                     f"{_when(pointer['promoted_at'])}" if pointer else "serving: online only")
        else:
            self.say(json.dumps(result, sort_keys=True, default=str))
        if action == "promote" and not result.get("promoted"):
            raise SystemExit(3)

    async def _run(registry: Registry, action: str, version: Optional[str], force: bool,
                   reason: str) -> Any:
        if action == "list":
            return describe(registry)
        if action == "decisions":
            return registry.decisions()[-50:]
        if action == "show":
            target = version or (registry.serving() or {}).get("version")
            if not target:
                raise RegistryError("no version given and nothing is serving")
            return {"manifest": registry.manifest(target),
                    "serving": registry.serving()}
        if action == "promote":
            if not version:
                raise RegistryError("promote needs a version (see `recstream models list`)")
            result = promote(s, version, force=force, actor="cli")
            if result["promoted"]:
                await announce(s, result["pointer"])
            return result
        pointer = registry.rollback(reason=reason or "operator rollback", actor="cli")
        await announce(s, pointer)
        return {"rolled_back_to": pointer["version"], "pointer": pointer}


def register_provenance(app, s: Settings) -> None:

    @app.command(
        argument("request_id", required=False, default=""),
        option("--user", type=int, default=None, help="the user of the outcome line"),
        option("--at", default=None,
               help="time of the outcome line on the stream clock (2026-11-22T20:01:02 or "
                    "epoch seconds)"),
        option("--timeout", type=float, default=SCAN_TIMEOUT_S,
               help="seconds a topic scan may take; past it the command fails (exit 3)"),
        name="provenance",
    )
    async def provenance(self, request_id: str, user: Optional[int], at: Optional[str],
                         timeout: float) -> None:
        """Answer → model version → training data window/offsets/hash + code version."""
        try:
            when = stream_time(at) if at else None
            result = await lookup(s, request_id=request_id, user=user, at=when,
                                  timeout_s=timeout)
        except ValueError as exc:
            print(f"recstream provenance: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        except ScanDeadline as exc:
            print(f"recstream provenance: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(3) from None
        self.say(json.dumps(result, indent=2, sort_keys=True, default=str))
        if result.get("served") is None:
            raise SystemExit(4)
