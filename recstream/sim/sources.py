"""Which world to build: synthetic by default, MovieLens or the course's JSON when a path is given.

Kept apart from ``world`` (the World type and the synthetic one) so that
``realdata`` can build a World without the two modules importing each other.
"""
from __future__ import annotations

import numpy as np

from recstream.sim.options import SimOptions
from recstream.sim.realdata import load_course, load_movielens
from recstream.sim.world import World, apply_world_scenarios, build_synthetic


def build_world(options: SimOptions) -> World:
    """Synthetic by default; MovieLens or course JSON when a path is given."""
    if options.movielens or options.catalog:
        world = load_movielens(options) if options.movielens else load_course(options)
        apply_world_scenarios(world, options, np.random.default_rng((options.seed, 99)))
        return world
    return build_synthetic(options)
