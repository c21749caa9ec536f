"""Assignment: stable across processes, balanced, monotone under ramps, independent across salts."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from models.experiments.assignment import (CANARY_RAMP, HOLDOUT, Allocation, canary, next_ramp_step,
                                           unit_hash)

REPO = Path(__file__).resolve().parents[2]
IDS = np.arange(1, 100_001)


def test_hash_is_a_known_value_and_equal_for_int_numpy_and_text_ids():
    # blake2b(b"exp-1:42", digest_size=8) read big-endian over 2**64, pinned: changing the
    # hash would silently move every running experiment's users between arms.
    got = unit_hash("exp-1", [42, np.int64(42), "42"])
    assert got.tolist() == pytest.approx([0.7671635750908922] * 3, rel=1e-15)


def test_assignment_is_stable_across_processes():
    """A fresh interpreter (with a different PYTHONHASHSEED) assigns exactly the same arms."""
    alloc = Allocation("exp-stable", ("a", "b", "c"), (1, 1, 2), exposure=0.7)
    here = alloc.assign(IDS[:2000])
    script = ("import numpy as np, sys\n"
              "from models.experiments.assignment import Allocation\n"
              "a = Allocation('exp-stable', ('a','b','c'), (1,1,2), exposure=0.7)\n"
              "sys.stdout.write(','.join(map(str, a.assign(np.arange(1, 2001)).tolist())))")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                         env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"}, timeout=60, check=True)
    assert np.array_equal(here, np.array(out.stdout.split(","), dtype=np.int64))


def test_arms_are_balanced_on_100k_ids():
    alloc = Allocation("exp-balance", ("control", "b", "c"), (2, 1, 1), exposure=0.9)
    arms = alloc.assign(IDS)
    counts = [int(np.sum(arms == HOLDOUT))] + [int(np.sum(arms == i)) for i in range(3)]
    expected = np.array([0.1, 0.45, 0.225, 0.225]) * len(IDS)
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    assert np.allclose(alloc.shares, [0.45, 0.225, 0.225])


def test_a_skewed_assignment_would_fail_the_same_balance_check():
    """The balance check has teeth: a 51/49 split on 100k ids is rejected."""
    arms = (unit_hash("exp-skew", IDS) < 0.51).astype(int)
    assert stats.chisquare(np.bincount(arms), [len(IDS) / 2] * 2).pvalue < 1e-3


def test_canary_ramp_keeps_everyone_already_in_treatment():
    ids = IDS[:30_000]
    previous = np.zeros(len(ids), dtype=bool)
    for share in CANARY_RAMP:
        treated = canary("exp-canary", share).assign(ids) == 0
        assert not np.any(previous & ~treated), f"someone left treatment when ramping to {share}"
        assert abs(treated.mean() - share) < 4 * np.sqrt(share * (1 - share) / len(ids))
        previous = treated


def test_exposure_ramp_never_moves_a_user_between_arms():
    ids = IDS[:20_000]
    small = Allocation("exp-ramp", ("a", "b"), (1, 1), exposure=0.2).assign(ids)
    large = Allocation("exp-ramp", ("a", "b"), (1, 1), exposure=0.8).assign(ids)
    inside = small != HOLDOUT
    assert np.array_equal(small[inside], large[inside])
    assert 0.18 < inside.mean() < 0.22 and 0.78 < (large != HOLDOUT).mean() < 0.82


def test_experiments_with_different_salts_are_independent():
    one = Allocation("exp-one", ("a", "b"), (1, 1)).assign(IDS)
    two = Allocation("exp-two", ("a", "b"), (1, 1)).assign(IDS)
    table = np.array([[np.sum((one == i) & (two == j)) for j in range(2)] for i in range(2)])
    assert stats.chi2_contingency(table, correction=False).pvalue > 1e-3
    same = Allocation("exp-one", ("x", "y"), (1, 1)).assign(IDS)
    assert np.array_equal(one, same)      # only the salt matters, not the arm names


def test_arm_of_and_validation():
    alloc = Allocation("exp-x", ("a", "b"), (1, 1), exposure=0.5)
    names = [alloc.arm_of(u) for u in range(1, 200)]
    assert set(names) == {"a", "b", None}
    assert next_ramp_step(0.01) == 0.05 and next_ramp_step(0.25) == 0.5 and next_ramp_step(0.5) is None
    for bad in (dict(salt="", arms=("a",), weights=(1,)), dict(salt="s", arms=("a", "a"), weights=(1, 1)),
                dict(salt="s", arms=("a",), weights=(1, 2)), dict(salt="s", arms=("a",), weights=(1,), exposure=2)):
        with pytest.raises(ValueError):
            Allocation(**bad)
