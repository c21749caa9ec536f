"""Shared fixtures for the simulator tests: small seeded worlds and the real data, if present."""
from __future__ import annotations

from pathlib import Path

import pytest

from recstream.sim.options import SimOptions
from recstream.sim.world import World, build_synthetic

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def data_path(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    return path


@pytest.fixture(scope="session")
def small_options() -> SimOptions:
    return SimOptions(users=3000, movies=1500, seed=7, fast=True, rate=20.0, kafka=False, api=False,
                      new_user_share=0.05, minor_share=0.2, adult_share=0.05)


@pytest.fixture
def small_world(small_options: SimOptions) -> World:
    """Fresh per test: the platform mutates accounts as users sign up."""
    return build_synthetic(small_options)
