"""The users: demographics and activity as flat arrays, so 1M users cost ~20 MB.

Synthetic user ids are 1..N and index = id − 1 (no dict); users loaded from a
file keep their own sparse ids through ``lookup``.  Accounts past
``existing_share`` do not exist yet: they appear with ``GET /create_account``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

# MovieLens-1M occupations with the course API's spelling; weights from users.jsonl.
OCCUPATIONS = (
    "other or not specified", "academic/educator", "artist", "clerical/admin",
    "college/grad student", "customer service", "doctor/health care", "executive/managerial",
    "farmer", "homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
    "scientist", "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)
OCCUPATION_P = np.array([7, 5, 3, 2, 24, 1, 2, 19, 0.2, 0.5, 2, 1, 5, 1, 13, 5, 4, 3, 0.5, 1, 1.8])
ACTIVITY_SIGMA = 1.3  # log-normal spread; calibrated against ml-100k's ratings-per-user Gini
GENDERS = ("M", "F")


@dataclasses.dataclass(slots=True)
class Population:
    ids: np.ndarray         # int64 user ids
    age: np.ndarray         # int16
    gender: np.ndarray      # int8 index into GENDERS
    occupation: np.ndarray  # int8 index into OCCUPATIONS
    activity: np.ndarray    # float64 relative arrival weight
    created: np.ndarray     # bool: the account exists (mutable: sign-ups flip it)
    describes: np.ndarray   # bool: wrote a self-description when signing up
    group: np.ndarray       # int8: 1 = the population-bias group
    lookup: dict[int, int] | None = None   # id → index when ids are not 1..N
    cumulative: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    next_new: int = 0       # index of the next account to be created

    def __post_init__(self) -> None:
        self.refresh_weights()
        missing = np.flatnonzero(~self.created)
        self.next_new = int(missing[0]) if len(missing) else len(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def refresh_weights(self) -> None:
        """Only existing accounts arrive on their own; new ones are drawn in sign-up order."""
        self.cumulative = np.cumsum(np.where(self.created, self.activity, 0.0))

    def index_of(self, user_id: int) -> int | None:
        if self.lookup is not None:
            return self.lookup.get(user_id)
        i = user_id - 1
        return i if 0 <= i < len(self.ids) else None

    def sample_active(self, rng: np.random.Generator, size: int) -> np.ndarray:
        u = rng.random(size) * self.cumulative[-1]
        return np.minimum(np.searchsorted(self.cumulative, u, side="right"), len(self.ids) - 1)

    def sign_up(self) -> int | None:
        """The next new account's index (now created), or ``None`` when all exist."""
        while self.next_new < len(self.ids) and self.created[self.next_new]:
            self.next_new += 1
        if self.next_new >= len(self.ids):
            return None
        i = self.next_new
        self.created[i] = True
        self.next_new += 1
        return i

    def user_json(self, i: int) -> dict[str, Any]:
        return {"user_id": int(self.ids[i]), "age": int(self.age[i]),
                "occupation": OCCUPATIONS[int(self.occupation[i])], "gender": GENDERS[int(self.gender[i])]}


def synthetic_ages(n: int, rng: np.random.Generator, minor_share: float) -> np.ndarray:
    """Median ~29 and a long tail to 90 like the course users; ``minor_share`` under 18."""
    age = 18 + rng.gamma(2.0, 6.5, size=n)
    minors = rng.random(n) < minor_share
    age[minors] = rng.integers(8, 18, size=int(minors.sum()))
    return age.clip(8, 90).astype(np.int16)


def synthetic_population(n: int, rng: np.random.Generator, *, existing_share: float = 0.9,
                         describe_share: float = 0.6, minor_share: float = 0.05) -> Population:
    created = np.zeros(n, dtype=bool)
    created[: max(1, int(round(n * existing_share)))] = True
    return Population(
        ids=np.arange(1, n + 1, dtype=np.int64),
        age=synthetic_ages(n, rng, minor_share),
        gender=(rng.random(n) < 0.2).astype(np.int8),
        occupation=rng.choice(len(OCCUPATIONS), size=n, p=OCCUPATION_P / OCCUPATION_P.sum()).astype(np.int8),
        activity=np.exp(ACTIVITY_SIGMA * rng.standard_normal(n)),
        created=created,
        describes=~created & (rng.random(n) < describe_share),
        group=np.zeros(n, dtype=np.int8),
    )
