"""An experiment's declaration, as published on the experiments topic (pure data).

A spec is the whole truth about one experiment at one version: its arms (each a
named *policy*), their weights, the exposed share of traffic and its state.  The
topic is compacted by experiment id, so a worker that starts late reads the
newest version of every experiment and serves the same assignment as the others;
a lower or equal version never replaces a newer one (redelivery, reordering).

Policies (``Arm.policy``) the serving path understands:

* ``{"ranker": "baseline"}`` — the service's own ranking;
* ``{"ranker": "cost", "cost_weight": w}`` — the cost-aware re-ranker
  (:func:`models.costaware.cost_penalty`);
* ``{"ranker": "interleave", "a": {...}, "b": {...}}`` — team-draft interleaving of two
  rankers (each ``baseline`` or ``cost``) into one answer, teams recorded per answer;
* ``{"describe": true|false}`` — cold start with or without the self-description;
* ``{"ranker": "baseline", "fault_delay_ms": d}`` — a deliberately broken arm, for
  canary drills only (it delays the answer);
* ``{"ranker": "random"}`` — a deliberately bad ranker (random safe titles), for canary
  drills of the quality guardrail only;
* ``{"ranker": "noisy", "noise": s}`` — a degraded ranker (the service's scores plus
  Gaussian noise of ``s`` times their spread), a known-worse model for sensitivity drills.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from models.experiments.assignment import HOLDOUT, Allocation

STATES = ("running", "stopped", "rolled_back")
KINDS = ("ranker", "coldstart")
RANKERS = ("baseline", "cost", "interleave", "random", "noisy")


@dataclasses.dataclass(frozen=True, slots=True)
class Arm:
    name: str
    policy: dict


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    id: str
    kind: str
    arms: tuple[Arm, ...]
    weights: tuple[float, ...]
    exposure: float = 1.0
    version: int = 1
    state: str = "running"
    canary: bool = False
    note: str = ""
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown experiment kind {self.kind!r} (one of {KINDS})")
        if self.state not in STATES:
            raise ValueError(f"unknown state {self.state!r} (one of {STATES})")
        for arm in self.arms:
            _check_policy(self.kind, arm.policy)
        self.allocation  # validates arms, weights, exposure

    @property
    def allocation(self) -> Allocation:
        return Allocation(self.id, tuple(a.name for a in self.arms), tuple(self.weights),
                          self.exposure)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def arm_index(self, user: int) -> int:
        """Index into ``arms`` or ``HOLDOUT`` (also for every user of a stopped experiment)."""
        if not self.running:
            return HOLDOUT
        return int(self.allocation.assign([user])[0])

    def replace(self, **changes: Any) -> "ExperimentSpec":
        return dataclasses.replace(self, version=self.version + 1, **changes)

    def to_json(self) -> bytes:
        body = dataclasses.asdict(self)
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> "ExperimentSpec":
        body = json.loads(raw)
        body["arms"] = tuple(Arm(a["name"], dict(a["policy"])) for a in body["arms"])
        body["weights"] = tuple(float(w) for w in body["weights"])
        return cls(**body)


def _check_policy(kind: str, policy: dict) -> None:
    if kind == "coldstart":
        if not isinstance(policy.get("describe"), bool):
            raise ValueError(f"a cold-start arm needs describe: true|false, got {policy}")
        return
    ranker = policy.get("ranker")
    if ranker not in RANKERS:
        raise ValueError(f"unknown ranker {ranker!r} (one of {RANKERS})")
    if ranker == "cost" and not float(policy.get("cost_weight", -1)) >= 0:
        raise ValueError("a cost arm needs cost_weight >= 0")
    if ranker == "noisy" and not float(policy.get("noise", -1)) > 0:
        raise ValueError("a noisy arm needs noise > 0")
    if ranker == "interleave":
        for side in ("a", "b"):
            inner = policy.get(side)
            if not isinstance(inner, dict) or inner.get("ranker") == "interleave":
                raise ValueError(f"interleaving needs two plain rankers a and b, got {policy}")
            _check_policy(kind, inner)
    if float(policy.get("fault_delay_ms", 0)) < 0:
        raise ValueError("fault_delay_ms must be >= 0")


def parse_arm(text: str) -> Arm:
    """``name=baseline``, ``name=cost:0.5``, ``name=describe:on``, ``name=slow:200``,
    ``name=interleave:baseline/cost:0.5``, ``name=random`` → an :class:`Arm` (the CLI's arm syntax)."""
    name, _, rest = text.partition("=")
    if not name or not rest:
        raise ValueError(f"an arm is NAME=POLICY, got {text!r}")
    return Arm(name, _policy(rest))


def _policy(text: str) -> dict:
    head, _, arg = text.partition(":")
    if head == "baseline":
        return {"ranker": "baseline"}
    if head == "cost":
        return {"ranker": "cost", "cost_weight": float(arg)}
    if head == "describe":
        if arg not in ("on", "off"):
            raise ValueError("describe:on or describe:off")
        return {"describe": arg == "on"}
    if head == "interleave":
        a, _, b = arg.partition("/")
        return {"ranker": "interleave", "a": _policy(a), "b": _policy(b)}
    if head == "random":
        return {"ranker": "random"}
    if head == "noisy":
        return {"ranker": "noisy", "noise": float(arg)}
    if head == "slow":
        return {"ranker": "baseline", "fault_delay_ms": float(arg)}
    raise ValueError(f"unknown policy {text!r}")
