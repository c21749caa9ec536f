"""Every knob of the simulator in one frozen object, beside (not inside) ``Settings``.

``Settings`` describes the recommender; ``SimOptions`` describes the world it
is tested against, so the two can vary independently (e.g. a 1–10 rating
scale in the world while the service still expects 1–5 is itself a scenario).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping

SCENARIOS = (
    "malformed",        # real kinds of broken lines (SPEC §2.1) and worse
    "rating-scale-10",  # ratings switch to 1–10 after `switch_after_s` of sim time
    "extra-fields",     # API answers gain unknown fields and lose some known ones
    "duplicates",       # lines redelivered 1–5 times
    "out-of-order",     # timestamps jittered backwards and some into the future
    "api-outage",       # API answers 503 during periodic windows
    "api-slow",         # API answers late
    "sybil",            # fresh accounts rating one movie 5 stars
    "scraping",         # one client asking /recommend for many user ids fast
    "flood",            # bursts of recommendation requests
    "population-bias",  # a group with distinct tastes and lower activity
)

# Per-scenario defaults; a scenario file may override any of them.
SCENARIO_DEFAULTS: dict[str, dict[str, Any]] = {
    "malformed": {"share": 0.01},
    "rating-scale-10": {"switch_after_s": 3600.0},
    "extra-fields": {"share": 0.2},
    "duplicates": {"share": 0.05, "max_copies": 5},
    "out-of-order": {"share": 0.02, "max_shift_s": 600.0, "future_share": 0.1},
    "api-outage": {"period_s": 600.0, "down_s": 60.0},
    "api-slow": {"delay_s": 1.5, "share": 0.3},
    "sybil": {"accounts": 50, "movie": "", "every_s": 1800.0, "extra_ratings": 2},
    "scraping": {"requests_per_s": 50.0, "client": "scraper-1", "source": ""},
    "flood": {"factor": 10.0, "period_s": 1800.0, "burst_s": 60.0},
    "population-bias": {"share": 0.15, "activity": 0.3, "genres": ["Documentary", "Animation", "Foreign"],
                        "mainstream": 0.2},
}


@dataclasses.dataclass(frozen=True, slots=True)
class SimOptions:
    """What world to build and how to drive it.  Times are simulated seconds."""

    seed: int = 42
    # World size (synthetic default) and real-data sources.
    users: int = 100_000
    movies: int = 27_000
    factors: int = 16
    existing_share: float = 0.9        # accounts that exist at start; the rest sign up later
    describe_share: float = 0.6        # new accounts that write a self-description
    minor_share: float = 0.05
    adult_share: float = 0.01
    movielens: str = ""
    catalog: str = ""
    users_file: str = ""
    # Traffic.
    speed: float = 60.0                # simulated seconds per real second
    fast: bool = False                 # run the clock as fast as possible (bench, tests)
    rate: float = 20.0                 # mean arrivals per real second
    duration: float = 0.0              # simulated seconds; 0 = forever
    start: str = "2025-01-06T00:00:00"
    diurnal: float = 0.5               # amplitude of the day/night arrival swing
    new_user_share: float = 0.02       # arrivals that are first visits of new accounts
    backfill_days: float = 0.0         # days of organic history written before live traffic (0 = none)
    backfill_lines: int = 400_000      # the history's size budget (see past.py for the trade-off)
    rating_min: int = 1
    rating_max: int = 5
    recommender: str = ""              # URL prefix; "" = settings.web_port on 127.0.0.1
    deadline_s: float = 0.6
    concurrency: int = 256
    # Output.
    out: str = ""
    kafka: bool = True
    truth: str = ""
    truth_oracle: bool = True          # compute oracle top-20 per session for regret
    api_port: int = 8080
    api_host: str = "0.0.0.0"
    api: bool = True
    api_rate_per_s: float = 100.0      # per client token bucket
    api_burst: int = 200
    json_quirks: bool = True           # numbers as strings, "null" strings, like the course API
    like_field: str = "likes"          # user JSON field answering "What movies do you like?"
    dislike_field: str = "dislikes"    # ... and "What movies do you not like?"
    summary_every_s: float = 5.0
    scenarios: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            (self.users >= 1 and self.movies >= 20, "need >= 1 user and >= 20 movies"),
            (self.speed > 0, "speed must be > 0"),
            (self.rate > 0, "rate must be > 0"),
            (0 < self.deadline_s <= 30, "deadline_s must be within (0, 30]"),
            (self.rating_min < self.rating_max, "rating_min must be below rating_max"),
            (self.backfill_days == 0 or self.backfill_days >= 1, "backfill days must be 0 (none) or >= 1"),
            (self.backfill_lines >= 0, "backfill lines must be >= 0"),
            (0 <= self.existing_share <= 1 and 0 <= self.describe_share <= 1, "shares are within [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"invalid simulator option: {message}")
        unknown = sorted(set(self.scenarios) - set(SCENARIOS))
        if unknown:
            raise ValueError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")

    def scenario(self, name: str) -> dict[str, Any] | None:
        """The parameters of an enabled scenario (defaults filled in), else ``None``."""
        if name not in self.scenarios:
            return None
        return {**SCENARIO_DEFAULTS[name], **dict(self.scenarios[name] or {})}

    def replace(self, **changes: Any) -> "SimOptions":
        return dataclasses.replace(self, **changes)


def load_scenario_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{"scenarios": {"malformed": {"share": 0.05}, "sybil": {}}}`` or a bare mapping/list."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, Mapping) and "scenarios" in data:
        data = data["scenarios"]
    if isinstance(data, list):
        return {str(name): {} for name in data}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a JSON object or list of scenario names")
    return {str(k): dict(v or {}) for k, v in data.items()}
