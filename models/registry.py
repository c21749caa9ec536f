"""The model registry: immutable versions, one serving pointer, every decision logged.

Layout under ``root`` (a directory every worker can read; a shared volume in
production)::

    versions/<version>/{arrays.npz, manifest.json}   immutable (models.artifact)
    serving.json                                      the pointer workers follow
    decisions.jsonl                                   append-only: gates, promotions, rollbacks

The pointer names the serving version and a *generation* that grows by one on
every promotion or rollback.  Vectors learnt online carry the generation they
were learnt in, so a worker can tell the new base's vectors from those of the
model it replaced (they live in different factor spaces).  The pointer also
keeps the stack of versions it replaced, which is what ``rollback`` pops.

Writers take an exclusive ``flock`` on ``root/.lock``; the pointer is
replaced by rename, so a reader sees the old pointer or the new one.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from models.artifact import list_versions, load_version, new_version_id, save_version
from models.gate import GateDecision

SERVING_FILE = "serving.json"
DECISIONS_FILE = "decisions.jsonl"
HISTORY_LIMIT = 20


class RegistryError(RuntimeError):
    """An operation the registry refuses (unknown version, nothing to roll back to)."""


# The outcome of a promotion gate, with the numbers it compared: one class for the
# aggregate rule below and the paired per-user gate (models.gate).
Decision = GateDecision


# Below this many users in common, a paired bootstrap interval says nothing (with 4 users
# every resample can share the sign of the three that moved): ranking is inconclusive.
MIN_PAIRED_USERS = 30
# (metric, higher is better) — the gate checks each metric both sides report.
GATE_METRICS = (("rmse", False), ("recall_at_20", True), ("ndcg_at_20", True))


def allowance(name: str, current: float, candidate: Mapping[str, Any],
              tolerance: float) -> float:
    """How much worse than ``current`` a candidate may score before it counts as worse.

    Used when the trainer measured no paired per-user differences (see ``gate``).  The
    larger of the relative ``tolerance`` and the sampling noise of the holdout (95%,
    normal approximation): for RMSE its standard error ``rmse / sqrt(2 n_test)``;
    for a ranking metric in [0, 1] the binomial ``sqrt(v (1 - v) / n_ranked_users)``.
    On a small holdout (a few dozen users) the noise dominates: a 2% drop in Recall@20
    measured on 100 users says nothing.
    """
    relative = tolerance * abs(current)
    if name == "rmse":
        n = int(candidate.get("n_test") or 0)
        noise = 1.96 * current / math.sqrt(2 * n) if n > 0 else 0.0
    else:
        n = int(candidate.get("n_ranked_users") or 0)
        share = min(max(current, 0.0), 1.0)
        noise = 1.96 * math.sqrt(share * (1 - share) / n) if n > 0 else 0.0
    return max(relative, noise)


def gate(candidate: Mapping[str, Any], serving: Optional[Mapping[str, Any]], *,
         tolerance: float) -> Decision:
    """Promote only a candidate no worse than the serving version beyond :func:`allowance`.

    Both metric sets must come from the same holdout and the same users (the trainer
    evaluates the serving version on the candidate's holdout, on the users both know).
    Where the candidate carries ``paired`` per-user differences with bootstrap intervals
    (``{metric: {"ci95": [lo, hi]}}``), a ranking metric counts as worse only if the
    whole interval lies below ``-tolerance * serving``: a significant regression; on
    fewer than ``MIN_PAIRED_USERS`` users in common the ranking comparison is recorded
    as inconclusive and RMSE (with its noise allowance) decides.
    A candidate with no finite metrics, or evaluated on no rows, never passes.  With
    nothing serving, a candidate passes if it has its metrics and, when the trainer
    measured a popularity baseline (``baseline_recall_at_20``), ranks at least as well.
    """
    reasons: list[str] = []
    compared: dict[str, Any] = {"tolerance": tolerance}
    if int(candidate.get("n_test", 0) or 0) <= 0:
        return Decision(False, ["candidate was evaluated on no holdout rows"], compared)
    checked = 0
    for name, higher in GATE_METRICS:
        value = _finite(candidate.get(name))
        if value is None:
            continue
        checked += 1
        if serving is None:
            compared[name] = {"candidate": value}
            continue
        current = _finite(serving.get(name))
        compared[name] = {"candidate": value, "serving": current}
        if current is None:
            continue
        margin = allowance(name, current, candidate, tolerance)
        compared[name]["allowance"] = margin
        pairs = candidate.get("paired") or {}
        paired = pairs.get(name)
        if higher and paired and paired.get("ci95"):
            # Paired per-user differences: worse only if the whole 95% interval of the
            # mean difference lies below -tolerance * serving, on enough users for a
            # bootstrap interval to mean anything.
            compared[name]["paired_ci95"] = paired["ci95"]
            compared[name]["paired_users"] = pairs.get("users", 0)
            if int(pairs.get("users", 0)) < MIN_PAIRED_USERS:
                compared[name]["inconclusive"] = (f"{pairs.get('users', 0)} users in common "
                                                  f"(< {MIN_PAIRED_USERS})")
                continue
            if paired["ci95"][1] < -tolerance * current:
                reasons.append(f"{name} {value:.4f} vs serving {current:.4f}: paired "
                               f"difference CI95 {paired['ci95'][0]:+.4f}..{paired['ci95'][1]:+.4f}"
                               f" is below -{tolerance:.0%}")
            continue
        if higher and value < current - margin:
            reasons.append(f"{name} {value:.4f} < serving {current:.4f} - {margin:.4f}")
        elif not higher and value > current + margin:
            reasons.append(f"{name} {value:.4f} > serving {current:.4f} + {margin:.4f}")
    if checked == 0:
        return Decision(False, ["candidate has no finite gate metric"], compared)
    baseline = _finite(candidate.get("baseline_recall_at_20"))
    recall = _finite(candidate.get("recall_at_20"))
    if serving is None and baseline is not None and recall is not None:
        compared["baseline_recall_at_20"] = baseline
        if recall < baseline:
            reasons.append(f"recall_at_20 {recall:.4f} < popularity baseline {baseline:.4f}")
    return Decision(not reasons, reasons or ["no worse than serving beyond tolerance and noise"],
                    compared)


class Registry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"

    # -- versions --------------------------------------------------------------------
    def versions(self) -> list[str]:
        return list_versions(self.versions_dir)

    def path(self, version: str) -> Path:
        path = self.versions_dir / version
        if "/" in version or version.startswith(".") or not (path / "manifest.json").exists():
            raise RegistryError(f"no such model version: {version!r}")
        return path

    def manifest(self, version: str) -> dict[str, Any]:
        return json.loads((self.path(version) / "manifest.json").read_text(encoding="utf-8"))

    def load(self, version: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return load_version(self.path(version))

    def add(self, arrays: Mapping[str, np.ndarray], manifest: Mapping[str, Any], *,
            version: Optional[str] = None) -> str:
        version = version or new_version_id()
        save_version(self.versions_dir, version, arrays, manifest)
        self._log({"action": "add", "version": version})
        return version

    # -- the serving pointer ---------------------------------------------------------
    def serving(self) -> Optional[dict[str, Any]]:
        try:
            return json.loads((self.root / SERVING_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def promote(self, version: str, *, decision: Mapping[str, Any],
                actor: str = "") -> dict[str, Any]:
        """Make ``version`` the serving one (the caller has decided; the decision is logged)."""
        self.path(version)  # must exist
        with self._locked():
            current = self.serving()
            history = list(current.get("history", [])) if current else []
            if current:
                history.append(current["version"])
            pointer = self._pointer(version, current, history[-HISTORY_LIMIT:], "promote",
                                    decision, actor)
            self._write_pointer(pointer)
            self._log({"action": "promote", **pointer})
        return pointer

    def rollback(self, *, reason: str, actor: str = "") -> dict[str, Any]:
        """Serve the version the current one replaced (as a new generation)."""
        with self._locked():
            current = self.serving()
            if not current or not current.get("history"):
                raise RegistryError("nothing to roll back to: no earlier serving version")
            history = list(current["history"])
            previous = history.pop()
            self.path(previous)
            pointer = self._pointer(previous, current, history, "rollback",
                                    {"reason": reason, "from": current["version"]}, actor)
            self._write_pointer(pointer)
            self._log({"action": "rollback", **pointer})
        return pointer

    def record(self, entry: Mapping[str, Any]) -> None:
        """Log a decision that changed nothing (e.g. a candidate the gate rejected)."""
        with self._locked():
            self._log(dict(entry))

    def decisions(self) -> list[dict[str, Any]]:
        try:
            lines = (self.root / DECISIONS_FILE).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    # -- internals -------------------------------------------------------------------
    @staticmethod
    def _pointer(version: str, current: Optional[dict], history: list[str], action: str,
                 decision: Mapping[str, Any], actor: str) -> dict[str, Any]:
        return {"version": version,
                "generation": (int(current["generation"]) + 1) if current else 1,
                "promoted_at": time.time(), "action": action, "actor": actor or _actor(),
                "decision": dict(decision), "history": history}

    def _write_pointer(self, pointer: Mapping[str, Any]) -> None:
        tmp = self.root / f".{SERVING_FILE}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(pointer, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / SERVING_FILE)

    def _log(self, entry: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        body = {"at": time.time(), **entry}
        with open(self.root / DECISIONS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(body, sort_keys=True, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _finite(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _actor() -> str:
    return f"{os.environ.get('USER') or os.environ.get('HOSTNAME') or 'unknown'}@{os.getpid()}"


__all__ = ["Decision", "Registry", "RegistryError", "gate", "new_version_id"]
